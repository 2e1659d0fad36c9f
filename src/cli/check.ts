/**
 * `iotrail check`: property-based exploration of the model. Generates programs of calls over several threads,
 * interleaves their atomic steps, checks every invariant after every step, and shrinks and writes any failure.
 * Exit 0 when nothing broke, 1 when an invariant broke (or a reproduced schedule breaks one), 2 on a usage error.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { DEFAULTS } from '../check/explore.js';
import { MUTANTS, setMutants } from '../check/mutants.js';
import { formatReport, mergeReports, type CheckReport } from '../check/output.js';
import { reproduce } from '../check/replay_schedule.js';
import { runCheck } from '../check/run.js';
import { INVARIANTS } from '../projections/invariants.js';
import { Progress } from './progress.js';

export const CHECK_USAGE = `usage: iotrail check [--seed N] [--runs N | --time SECONDS] [--threads N] [--length N] [--workers N]
                     [--shard I/N] [--mutant NAME]... [--out DIR] [--full-checks] [--ignore-locks] [--json]
       iotrail check --merge REPORT.json...
       iotrail check --reproduce FILE.schedule.json
       iotrail check --list-mutants | --list-invariants
  --seed N         base seed (default: random, printed); the same seed finds the same counterexample
  --runs N         programs to run (default 1000), in batches of ${DEFAULTS.batchRuns}
  --time SECONDS   run for this long instead
  --threads N      threads per program (default ${DEFAULTS.threads})
  --length N       longest program, in scheduling choices (default ${DEFAULTS.maxChoices})
  --workers N      worker threads (default 1; 0 = one per core)
  --shard I/N      run only batches b with b % N == I (merge the shards' --json reports with --merge)
  --mutant NAME    switch a seeded kernel bug on (--list-mutants); repeatable
  --out DIR        where counterexamples are written (default logs)
  --full-checks    check every invariant over the whole state after every step (slow; cross-checks the incremental one)
  --ignore-locks   also explore interleavings the kernel's locks forbid (they break invariants: shows what the locks protect)
  --json           print the report as JSON
  --merge R...     merge shard reports (JSON) into one
  --reproduce F    replay a counterexample's trace under its schedule and report what breaks`;

function fail(msg: string): number {
  process.stderr.write(`iotrail check: ${msg}\n${CHECK_USAGE}\n`);
  return 2;
}

const posInt = (s: string): number | undefined => (/^[0-9]+$/.test(s) ? Number(s) : undefined);

export async function checkMain(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true,
      options: {
        seed: { type: 'string' }, runs: { type: 'string' }, time: { type: 'string' }, threads: { type: 'string' }, length: { type: 'string' },
        workers: { type: 'string' }, shard: { type: 'string' }, mutant: { type: 'string', multiple: true }, out: { type: 'string' },
        'full-checks': { type: 'boolean' }, 'ignore-locks': { type: 'boolean' }, json: { type: 'boolean' }, merge: { type: 'boolean' }, reproduce: { type: 'string' },
        'list-mutants': { type: 'boolean' }, 'list-invariants': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    return fail((e as Error).message);
  }
  const { values: o, positionals } = parsed;
  const say = (s: string): void => void process.stdout.write(`${s}\n`);
  if (o.help) {
    say(CHECK_USAGE);
    return 0;
  }
  if (o['list-mutants']) {
    if (o.json) say(JSON.stringify(MUTANTS, null, 2));
    else for (const m of MUTANTS) say(`${m.name}${m.pending ? ' (pending)' : ''}\n  ${m.bug}: ${m.description}\n  caught by: ${m.caughtBy.join(', ')}\n  edit: ${m.file}, ${m.anchor}${m.pending ? `\n  pending: ${m.pending}` : ''}`);
    return 0;
  }
  if (o['list-invariants']) {
    if (o.json) say(JSON.stringify(INVARIANTS, null, 2));
    else for (const i of INVARIANTS) say(`${i.name} (${i.kind})\n  ${i.doc}\n  rule: ${i.rule}`);
    return 0;
  }
  if (o.merge) {
    if (positionals.length === 0) return fail('--merge needs the reports to merge');
    let merged: CheckReport;
    try {
      merged = mergeReports(positionals.map((p) => JSON.parse(readFileSync(p, 'utf8')) as CheckReport));
    } catch (e) {
      return fail((e as Error).message);
    }
    say(o.json ? JSON.stringify(merged, null, 2) : formatReport(merged));
    return merged.failure === undefined ? 0 : 1;
  }
  if (positionals.length > 0) return fail(`unexpected argument ${JSON.stringify(positionals[0])}`);
  if (o.reproduce !== undefined) {
    let r;
    try {
      r = reproduce(o.reproduce);
    } catch (e) {
      return fail(`${o.reproduce}: ${(e as Error).message}`);
    }
    const res = r.result;
    for (const p of res.problems) say(`schedule problem: ${p}`);
    for (const d of res.divergences) say(`divergence: ${d}`);
    if (res.failure !== undefined) {
      const f = res.failure;
      say(`FAIL ${f.violation.name} at trace line ${f.line}, step ${f.step}, log entry ${f.n}\n  ${f.violation.message}\n  rule: ${f.violation.rule}`);
    } else say(`no invariant broken (${res.steps} steps of ${r.tracePath})`);
    return res.failure !== undefined || res.divergences.length > 0 ? 1 : 0;
  }

  const num = (name: string, v: string | undefined, dflt: number, min: number): number | string => {
    if (v === undefined) return dflt;
    const n = posInt(v);
    return n === undefined || n < min ? `--${name} takes a whole number >= ${min}, got ${JSON.stringify(v)}` : n;
  };
  const threads = num('threads', o.threads, DEFAULTS.threads, 1);
  const length = num('length', o.length, DEFAULTS.maxChoices, 1);
  const workersN = num('workers', o.workers, 1, 0);
  for (const x of [threads, length, workersN]) if (typeof x === 'string') return fail(x);
  let seed: number;
  if (o.seed !== undefined) {
    if (!/^-?[0-9]+$/.test(o.seed)) return fail(`--seed takes an integer, got ${JSON.stringify(o.seed)}`);
    seed = Number(BigInt.asIntN(32, BigInt(o.seed)));
  } else seed = (Date.now() ^ (process.pid << 16)) | 0;
  if (o.runs !== undefined && o.time !== undefined) return fail('give --runs or --time, not both');
  let runs: number | undefined, timeSec: number | undefined;
  if (o.time !== undefined) {
    if (!/^[0-9]+(\.[0-9]+)?$/.test(o.time) || Number(o.time) <= 0) return fail(`--time takes a positive number of seconds, got ${JSON.stringify(o.time)}`);
    timeSec = Number(o.time);
  } else {
    const r = num('runs', o.runs, 1000, 1);
    if (typeof r === 'string') return fail(r);
    runs = r;
  }
  let shard = { index: 0, count: 1 };
  if (o.shard !== undefined) {
    const m = /^([0-9]+)\/([1-9][0-9]*)$/.exec(o.shard);
    if (m === null || Number(m[1]) >= Number(m[2])) return fail(`--shard takes I/N with 0 <= I < N, got ${JSON.stringify(o.shard)}`);
    shard = { index: Number(m[1]), count: Number(m[2]) };
  }
  const mutants = o.mutant ?? [];
  for (const m of mutants) {
    const d = MUTANTS.find((x) => x.name === m);
    if (d === undefined) return fail(`unknown mutant ${JSON.stringify(m)}; iotrail check --list-mutants lists them`);
    if (d.pending !== undefined) return fail(`mutant ${m} is pending: ${d.pending}`);
  }
  const workers = workersN === 0 ? availableParallelism() : (workersN as number);
  const progress = Progress.forStderr(o.json === true);
  let report: CheckReport;
  try {
    report = await runCheck({
      seed, threads: threads as number, maxChoices: length as number, batchRuns: DEFAULTS.batchRuns, mutants,
      ...(o['full-checks'] ? { fullChecks: true } : {}), ...(o['ignore-locks'] ? { ignoreLocks: true } : {}), ...(runs !== undefined ? { runs } : {}), ...(timeSec !== undefined ? { timeSec } : {}),
      shard, workers, outDir: o.out ?? 'logs',
      onProgress: (n, s) => progress.update(`${n} runs, ${s.toFixed(0)} s`, timeSec !== undefined ? Math.min(s, timeSec) : n, timeSec ?? runs ?? 1),
    });
  } finally {
    progress.clear();
    setMutants([]);
  }
  say(o.json ? JSON.stringify(report, null, 2) : formatReport(report));
  return report.failure === undefined ? 0 : 1;
}
