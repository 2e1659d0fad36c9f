/**
 * `npm run bench:mutants`: how well `iotrail check` finds the seeded kernel bugs. Runs the check once on the model as
 * it is (it must find nothing) and once per mutant (src/check/mutants.ts), each for up to `--time` seconds (60), and
 * prints whether it found a broken invariant, which, how long the first failing run took to come up, and the length of
 * the shrunk counterexample (scheduling choices, atomic steps, trace lines). A mutant whose guard is not applied in
 * the model files is never found: its row says so.
 *
 *   node dist/bench/mutants.js [--time S] [--seed N] [--threads N] [--workers N] [--only NAME] [--out DIR] [--json]
 *                              [--fixtures DIR]
 *
 * `--fixtures test/fixtures/mutants` also copies each mutant's counterexample there as `NAME.jsonl` and
 * `NAME.schedule.json`: the suite replays them (test/check/fixtures.test.ts), so a regression in the checks shows.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/cli/atomic.js';
import { DEFAULTS } from '../src/check/explore.js';
import { MUTANTS } from '../src/check/mutants.js';
import { runCheck } from '../src/check/run.js';
import type { CheckReport } from '../src/check/output.js';

interface Row {
  readonly mutant: string;
  readonly bug: string;
  readonly expected: readonly string[];
  readonly found: boolean;
  readonly invariant: string | undefined;
  readonly secondsToFailure: number | undefined;
  readonly choices: number | undefined;
  readonly steps: number | undefined;
  readonly lines: number | undefined;
  readonly runs: number;
  readonly seconds: number;
  readonly note: string;
}

async function main(): Promise<number> {
  const { values: o } = parseArgs({
    args: process.argv.slice(2),
    options: {
      time: { type: 'string' }, seed: { type: 'string' }, threads: { type: 'string' }, workers: { type: 'string' },
      only: { type: 'string', multiple: true }, out: { type: 'string' }, json: { type: 'boolean' }, fixtures: { type: 'string' },
    },
  });
  const time = o.time === undefined ? 60 : Number(o.time);
  const seed = o.seed === undefined ? 1 : Number(o.seed);
  const threads = o.threads === undefined ? DEFAULTS.threads : Number(o.threads);
  const workers = o.workers === undefined ? 1 : Number(o.workers);
  const out = o.out ?? 'logs/bench-mutants';
  const rows: Row[] = [];
  const run = async (mutants: string[]): Promise<CheckReport> =>
    runCheck({
      seed, threads, maxChoices: DEFAULTS.maxChoices, batchRuns: DEFAULTS.batchRuns, mutants, timeSec: time,
      shard: { index: 0, count: 1 }, workers, outDir: out,
    });
  const targets = [undefined, ...MUTANTS.filter((m) => o.only === undefined || o.only.includes(m.name))];
  for (const m of targets) {
    if (m?.pending !== undefined) {
      rows.push({
        mutant: m.name, bug: m.bug, expected: m.caughtBy, found: false, invariant: undefined, secondsToFailure: undefined, choices: undefined,
        steps: undefined, lines: undefined, runs: 0, seconds: 0, note: `pending: ${m.pending}`,
      });
      continue;
    }
    const r = await run(m === undefined ? [] : [m.name]);
    const f = r.failure;
    const note = m === undefined
      ? (f === undefined ? 'the model keeps every invariant' : `MODEL BUG: ${f.violation.message} (${f.files?.schedule ?? ''})`)
      : f === undefined ? 'not found (is its guard applied? iotrail check --list-mutants)'
        : m.caughtBy.includes(f.violation.name) ? '' : `caught by ${f.violation.name}, not by ${m.caughtBy.join('/')}`;
    rows.push({
      mutant: m?.name ?? '(none)', bug: m?.bug ?? 'the model as it is', expected: m?.caughtBy ?? [], found: f !== undefined,
      invariant: f?.violation.name, secondsToFailure: f?.secondsToFailure, choices: f?.choices, steps: f?.steps, lines: f?.lines,
      runs: r.runs, seconds: r.seconds, note,
    });
    if (m !== undefined && f?.files !== undefined && o.fixtures !== undefined) saveFixture(f.files, o.fixtures, m.name);
    if (!o.json) process.stderr.write(`${rows[rows.length - 1]!.mutant}: ${f === undefined ? 'nothing' : f.violation.name} after ${r.runs} runs\n`);
  }
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ seed, time, threads, workers, rows }, null, 2)}\n`);
  } else {
    const head = ['mutant', 'found', 'invariant', 's to 1st failure', 'choices', 'steps', 'lines', 'runs', 'note'];
    const cells = rows.map((r) => [
      r.mutant, r.mutant === '(none)' ? (r.found ? 'YES' : 'no') : r.found ? 'yes' : 'NO', r.invariant ?? '-',
      r.secondsToFailure === undefined ? '-' : r.secondsToFailure.toFixed(2), String(r.choices ?? '-'), String(r.steps ?? '-'),
      String(r.lines ?? '-'), String(r.runs), r.note,
    ]);
    const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
    const line = (c: readonly string[]): string => c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(w[i]!))).join('  ').trimEnd();
    process.stdout.write(`iotrail check against the seeded bugs: seed ${seed}, up to ${time} s each, ${threads} threads, ${workers} worker(s)\n`);
    process.stdout.write(`${line(head)}\n${cells.map(line).join('\n')}\n`);
  }
  const baselineBroken = rows[0]?.found === true;
  const missed = rows.filter((r) => r.mutant !== '(none)' && !r.found && !r.note.startsWith('pending')).length;
  return baselineBroken || missed > 0 ? 1 : 0;
}

/** Copies a counterexample under the mutant's name, its schedule naming the copied trace. */
function saveFixture(files: { readonly trace: string; readonly schedule: string }, dir: string, name: string): void {
  mkdirSync(dir, { recursive: true });
  const sched = JSON.parse(readFileSync(files.schedule, 'utf8')) as Record<string, unknown>;
  writeFileAtomic(join(dir, `${name}.jsonl`), readFileSync(files.trace, 'utf8'));
  writeFileAtomic(join(dir, `${name}.schedule.json`), `${JSON.stringify({ ...sched, trace: `${name}.jsonl` }, null, 1)}\n`);
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => { process.stderr.write(`bench:mutants: ${(e as Error).stack ?? String(e)}\n`); process.exitCode = 3; });
