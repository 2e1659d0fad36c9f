import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { replayFile } from '../src/cli/replay_file.js';

const DIR = join(process.cwd(), 'examples');

describe('the bundled examples', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.jsonl'));
  it('exist', () => expect(files.length).toBeGreaterThan(0));
  for (const f of files) {
    it(`replay ${f} with no divergence and no broken invariant`, async () => {
      const r = await replayFile(join(DIR, f), { invariants: true });
      expect(r.divergences.map((d) => `line ${d.line}: ${d.field}: ${d.observed} vs ${d.predicted}: ${d.why}`)).toEqual([]);
      expect(r.errors).toEqual([]);
      expect(r.violations).toEqual([]);
    });
  }
});
