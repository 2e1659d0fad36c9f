import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { replayFile } from '../../src/cli/replay_file.js';

const CORPUS = join(process.cwd(), '..', 'shared', 'conformance');
const CORE = join(CORPUS, 'core');

describe('the conformance corpus', () => {
  it('is present beside the checkout', () => {
    expect(existsSync(CORE), `${CORE} must exist (shared/ sits beside the repository)`).toBe(true);
  });

  const fixtureless = ['cmd_fail', 'cmd_length', 'cmd_ex_fail', 'global_options', 'simple_close'];
  for (const name of fixtureless) {
    it(`passes iommufd.${name}, the fixture-less selftest`, async () => {
      const r = await replayFile(join(CORE, `iommufd.${name}.jsonl`));
      expect(r.divergences.map((d) => `line ${d.line}: ${d.field}: ${d.observed} vs ${d.predicted}: ${d.why}`)).toEqual([]);
      expect(r.errors).toEqual([]);
      expect(r.passed).toBe(true);
    });
  }

  it('decodes every trace without a trace error or an internal model error, and breaks no invariant', async () => {
    const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith('.jsonl') ? [join(d, e.name)] : []));
    const files = walk(CORPUS);
    expect(files.length).toBeGreaterThan(100);
    for (const f of files) {
      // The kernel keeps every invariant on every trace it answered: checking them after every step must find nothing.
      const r = await replayFile(f, { invariants: true });
      expect({ f, errors: r.errors, internal: r.internal, violations: r.violations }).toEqual({ f, errors: [], internal: [], violations: [] });
      for (const d of r.divergences) expect(d.why.length, `${f}:${d.line}`).toBeGreaterThan(0);
    }
  });
});
