/**
 * `iotrail serve`: a local web page over a trace's index (node:http, no framework). The page (assets.ts) asks a
 * small JSON API and draws everything itself with DOM text nodes, never HTML strings: a trace is untrusted input,
 * and a path, a memfd name or a note can hold `<script>`. The server adds a strict Content-Security-Policy (no
 * inline script at all), answers only GET/HEAD, and checks the Host header (a page elsewhere cannot reach it by
 * DNS rebinding). It binds 127.0.0.1 unless told otherwise.
 *
 *   GET /                    the page;  /app.js, /app.css its script and style
 *   GET /api/meta            the trace: title, source, entries, lines, marks (divergences, errors)
 *   GET /api/at?n=N          the state after entry N (-1: initial): view, entry, its line, what it changed,
 *                            object lifetimes up to N
 *   GET /api/entries?from=A&to=B   entries A ≤ n < B (at most 500), for the event list
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { diffViews } from '../diff.js';
import { describeEvent } from '../format.js';
import type { TraceIndex } from '../index.js';
import { lifeAt, lifetimes, type Lifetime } from '../lifecycles.js';
import type { Json } from '../json.js';
import { APP_CSS, APP_JS, PAGE_HTML } from './assets.js';

export interface ServeOptions {
  readonly host?: string | undefined;
  /** 0 for any free port. */
  readonly port?: number | undefined;
  /** Shown as the page title (the trace's file name). */
  readonly title?: string | undefined;
}

export interface Served {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

const MAX_MARKS = 10_000;
const MAX_CHANGES = 300;
const MAX_ENTRIES = 500;
const MAX_ENDED = 60;

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
} as const;

export function startServer(idx: TraceIndex, opts: ServeOptions = {}): Promise<Served> {
  const host = opts.host ?? '127.0.0.1';
  let lives: Lifetime[] | undefined;
  const lifetimesOnce = (): Lifetime[] => (lives ??= lifetimes(idx));
  let allowedHosts = new Set<string>();

  const send = (res: ServerResponse, status: number, type: string, body: string, head: boolean): void => {
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
    res.end(head ? undefined : body);
  };
  const json = (res: ServerResponse, v: unknown, head: boolean, status = 200): void =>
    send(res, status, 'application/json; charset=utf-8', JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x)), head);

  const intParam = (u: URL, name: string, lo: number, hi: number, dflt?: number): number => {
    const raw = u.searchParams.get(name);
    if (raw === null) {
      if (dflt !== undefined) return dflt;
      throw new BadRequest(`missing ${name}`);
    }
    if (!/^-?[0-9]+$/.test(raw)) throw new BadRequest(`${name} must be an integer`);
    const v = Number(raw);
    if (v < lo || v > hi) throw new BadRequest(`${name} must be between ${lo} and ${hi}`);
    return v;
  };

  const entryJson = (n: number): Json => {
    const e = idx.entry(n);
    const info = idx.lineInfo(e.line);
    return { n, line: e.line, tid: e.tid, type: e.ev.type, text: describeEvent(e.ev), label: info.label };
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.writeHead(405, { ...SECURITY_HEADERS, Allow: 'GET, HEAD' });
      res.end();
      return;
    }
    if (!allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      send(res, 421, 'text/plain; charset=utf-8', 'wrong Host header\n', head);
      return;
    }
    const u = new URL(req.url ?? '/', 'http://localhost');
    try {
      switch (u.pathname) {
        case '/': case '/index.html': send(res, 200, 'text/html; charset=utf-8', PAGE_HTML, head); return;
        case '/app.js': send(res, 200, 'text/javascript; charset=utf-8', APP_JS, head); return;
        case '/app.css': send(res, 200, 'text/css; charset=utf-8', APP_CSS, head); return;
        case '/favicon.ico': res.writeHead(204, SECURITY_HEADERS); res.end(); return;
        case '/api/meta':
          json(res, {
            title: opts.title ?? 'trace', source: idx.meta.source, count: idx.count, lines: idx.lines, k: idx.k, snapshots: idx.checkpoints.length,
            marks: idx.marks.slice(0, MAX_MARKS), marksTotal: idx.marks.length,
          }, head);
          return;
        case '/api/at': {
          const n = intParam(u, 'n', -1, idx.count - 1);
          const view = idx.viewAt(n);
          const changes = n >= 0 ? diffViews(idx.viewAt(n - 1), view) : [];
          const e = n >= 0 ? idx.entry(n) : undefined;
          const info = e ? idx.lineInfo(e.line) : undefined;
          const all = lifetimesOnce().filter((l) => l.allocated <= n);
          const ended = all.filter((l) => l.ended !== undefined && l.ended <= n);
          const shown = [...all.filter((l) => l.ended === undefined || l.ended > n), ...ended.slice(-MAX_ENDED)];
          json(res, {
            n, entry: n >= 0 ? entryJson(n) : null, note: info?.note ?? null, view,
            changes: changes.slice(0, MAX_CHANGES), changesTotal: changes.length,
            marks: idx.marks.filter((m) => m.n === n),
            // Only what has happened by entry n: the page must not tell the future.
            lifetimes: shown.map((l) => ({
              ctx: l.ctx, id: l.id, kind: l.kind, state: lifeAt(l, n), allocated: l.allocated,
              finalized: l.finalized !== undefined && l.finalized <= n ? l.finalized : null, ended: l.ended !== undefined && l.ended <= n ? l.ended : null,
            })),
            endedTotal: ended.length,
          }, head);
          return;
        }
        case '/api/entries': {
          const from = intParam(u, 'from', 0, Math.max(0, idx.count), 0);
          const to = Math.min(intParam(u, 'to', 0, Number.MAX_SAFE_INTEGER, from + 50), from + MAX_ENTRIES, idx.count);
          const marks = new Map<number, string>();
          for (const m of idx.marks) if (m.n >= from && m.n < to && !marks.has(m.n)) marks.set(m.n, m.kind);
          const out: Json[] = [];
          for (let n = from; n < to; n++) out.push({ ...(entryJson(n) as Record<string, Json>), mark: marks.get(n) ?? null });
          json(res, { from, to, entries: out }, head);
          return;
        }
        default:
          send(res, 404, 'text/plain; charset=utf-8', 'not found\n', head);
      }
    } catch (e) {
      if (e instanceof BadRequest || e instanceof RangeError) json(res, { error: e.message }, head, 400);
      else json(res, { error: 'internal error' }, head, 500);
    }
  };

  return new Promise((resolveP, reject) => {
    const server = createServer(handle);
    server.on('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      const { port } = server.address() as AddressInfo;
      const h = host.includes(':') ? `[${host}]` : host;
      allowedHosts = new Set([`${h}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`].map((x) => x.toLowerCase()));
      resolveP({
        url: `http://${h}:${port}/`, server,
        close: () => new Promise<void>((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
      });
    });
  });
}

class BadRequest extends Error {}
