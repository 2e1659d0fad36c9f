/**
 * `iotrail serve` end to end: the JSON API and its guards, then Debian's chromium (headless, driven by
 * playwright-core) moving the slider and reading what the page shows; a trace full of `<script>` must show as text.
 * Screenshots: logs/serve.e2e.png (the test output, git-ignored) and docs/serve.png for the README (written when
 * missing, or when IOTRAIL_UPDATE_DOCS=1).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexText, type TraceIndex } from '../../src/timetravel/index.js';
import { startServer, type Served } from '../../src/timetravel/web/server.js';
import { EXAMPLES } from './support.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const EXAMPLE = join(EXAMPLES, 'timetravel', 'timetravel-unmap-twice.jsonl');
const OUT = join(process.cwd(), 'logs');

type Context = Awaited<ReturnType<typeof import('playwright-core')['chromium']['launchPersistentContext']>>;

async function launch(): Promise<{ ctx: Context; dir: string }> {
  expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium (CI does: see .ci/run)`).toBe(true);
  let pw: typeof import('playwright-core');
  try {
    pw = await import('playwright-core');
  } catch {
    throw new Error('playwright-core is not installed: it is a devDependency of iotrail (npm ci installs it)');
  }
  const dir = mkdtempSync(join(tmpdir(), 'iotrail-chromium-'));
  const ctx = await pw.chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1280, height: 900 } });
  return { ctx, dir };
}

/** A raw request, so the Host header and method can be anything. */
function raw(url: string, opts: { method?: string; host?: string }): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const u = new URL(url);
  return new Promise((resolveP, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: opts.method ?? 'GET', headers: opts.host ? { Host: opts.host } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolveP({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('iotrail serve', () => {
  let idx: TraceIndex;
  let served: Served;
  beforeAll(async () => {
    idx = indexText(readFileSync(EXAMPLE, 'utf8'));
    served = await startServer(idx, { title: 'timetravel-unmap-twice.jsonl' });
  });
  afterAll(async () => {
    await served?.close();
  });

  it('binds 127.0.0.1 and serves the state at any entry as JSON', async () => {
    expect(served.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const meta = await (await fetch(`${served.url}api/meta`)).json() as { count: number; marks: { n: number; line: number }[] };
    expect(meta.count).toBe(93);
    expect(meta.marks).toEqual([expect.objectContaining({ kind: 'divergence', n: 65, line: 10 })]);
    const at = await (await fetch(`${served.url}api/at?n=51`)).json() as { view: unknown; entry: { line: number } };
    expect(at.view).toEqual(idx.viewAt(51));
    expect(at.entry.line).toBe(7);
    const es = await (await fetch(`${served.url}api/entries?from=64&to=67`)).json() as { entries: { n: number; mark: string | null }[] };
    expect(es.entries.map((e) => [e.n, e.mark])).toEqual([[64, null], [65, 'divergence'], [66, null]]);
    expect((await fetch(`${served.url}api/at?n=93`)).status).toBe(400);
    expect((await fetch(`${served.url}api/at?n=x`)).status).toBe(400);
  });

  it('refuses other methods and other Host headers, and forbids inline script', async () => {
    expect((await raw(`${served.url}api/meta`, { method: 'POST' })).status).toBe(405);
    expect((await raw(`${served.url}api/meta`, { host: 'attacker.example:80' })).status).toBe(421);
    const page = await raw(served.url, {});
    expect(page.status).toBe(200);
    expect(String(page.headers['content-security-policy'])).toContain("script-src 'self'");
    expect(String(page.headers['content-security-policy'])).not.toContain('unsafe-inline');
  });

  it('in chromium: moves through time with the slider, marks the divergence, draws objects and IOVA spaces', async () => {
    const { ctx, dir } = await launch();
    try {
      const page = ctx.pages()[0] ?? await ctx.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(served.url);
      await page.waitForSelector('body[data-loaded="-1"]');
      expect(await page.title()).toBe('iotrail — timetravel-unmap-twice.jsonl');
      expect(await page.locator('#pos').textContent()).toBe('initial state');
      expect(await page.locator('#marks .tick.divergence').count()).toBe(1);

      await page.locator('#slider').fill('51');
      await page.waitForSelector('body[data-loaded="51"]');
      expect(await page.locator('#pos').textContent()).toBe('entry 51 of 92 · trace line 7 of 14');
      expect(await page.locator('#graph g.node').count()).toBe(4);
      expect(await page.locator('#graph g.node[data-life="finalized"]').count()).toBe(4);
      expect(await page.locator('#graph path.edge').count()).toBe(2); // HWPT 4 holds IOAS 1, DEVICE 3 holds HWPT 4
      expect(await page.locator('#iova [data-ioas="1"] rect.area').count()).toBe(2);
      expect(await page.locator('#iova rect.reserved').count()).toBe(2);
      expect(await page.locator('#domains [data-domain="1"] rect.map').count()).toBe(2);
      expect(await page.locator('#lifecycles td.life-finalized').count()).toBe(4);
      expect(await page.locator('#entry').textContent()).toContain('note: two more pages at IOVA 0x1004000');
      mkdirSync(OUT, { recursive: true });
      await page.screenshot({ path: join(OUT, 'serve.e2e.png'), fullPage: true });
      const docs = join(process.cwd(), 'docs', 'serve.png');
      if (!existsSync(docs) || process.env.IOTRAIL_UPDATE_DOCS === '1') {
        // For the README: the second map going into the domain, with what it changed.
        await page.locator('#slider').fill('48');
        await page.waitForSelector('body[data-loaded="48"]');
        await page.screenshot({ path: docs, fullPage: true });
        await page.locator('#slider').fill('51');
        await page.waitForSelector('body[data-loaded="51"]');
      }

      await page.locator('#nextmark').click();
      await page.waitForSelector('body[data-loaded="65"]');
      expect(await page.locator('#entry .markbox.divergence').textContent()).toMatch(/^DIVERGENCE \(line 10\): ret: observed 0, predicted ENOENT/);
      expect(await page.locator('#events tr.current').getAttribute('class')).toContain('divergence');
      expect(await page.locator('#iova [data-ioas="1"] rect.area').count()).toBe(1);

      await page.locator('#slider').focus();
      await page.keyboard.press('ArrowLeft');
      await page.waitForSelector('body[data-loaded="64"]');
      await page.locator('#end').click();
      await page.waitForSelector('body[data-loaded="92"]');
      expect(await page.locator('#graph').textContent()).toContain('no iommufd context is open');
      expect(await page.locator('#lifecycles td.life-destroyed').count()).toBe(4);
      expect(errors).toEqual([]);
    } finally {
      await ctx.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('in chromium: shows what a hostile trace holds as text and runs none of it', async () => {
    const evil = [
      { iotrail: 1, iommufd_test: true, source: '<script>window.__pwned = 1</script>', note: '<img src=x onerror="window.__pwned = 2">' },
      { op: 'open', path: '/tmp/<script>window.__pwned=3</script>', flags: ['O_RDWR'], ret: 5, note: '<script>window.__pwned = 4</script>' },
      { op: 'memfd_create', name: '<img src=x onerror=window.__pwned=5>', flags: 0, ret: 6 },
      { op: 'open', path: '/dev/iommu', flags: ['O_RDWR'], ret: '"><svg onload=window.__pwned=6>' },
    ].map((o) => JSON.stringify(o)).join('\n');
    const hostile = indexText(`${evil}\n`);
    const s = await startServer(hostile, { title: '<script>window.__pwned=7</script>.jsonl' });
    const { ctx, dir } = await launch();
    try {
      const page = ctx.pages()[0] ?? await ctx.newPage();
      await page.goto(`${s.url}#n=${hostile.count - 1}`);
      await page.waitForSelector(`body[data-loaded="${hostile.count - 1}"]`);
      await page.locator('#state-panel details summary').click();
      expect(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
      expect(await page.locator('img').count()).toBe(0);
      expect(await page.locator('script').count()).toBe(1);
      expect(await page.locator('#source').textContent()).toBe('<script>window.__pwned = 1</script>');
      expect(await page.locator('#title').textContent()).toBe('<script>window.__pwned=7</script>.jsonl');
      expect(await page.locator('#files').textContent()).toContain('/tmp/<script>window.__pwned=3</script>');
      expect(await page.locator('#files').textContent()).toContain('<img src=x onerror=window.__pwned=5>');
      await page.goto(`${s.url}#n=2`);
      await page.reload();
      await page.waitForSelector('body[data-loaded="2"]');
      expect(await page.locator('#entry').textContent()).toContain('note: <script>window.__pwned = 4</script>');
      expect(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    } finally {
      await ctx.close();
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
