/**
 * `iotrail replay FILE|DIR... [--json] [--stop] [--log PATH] [--workers N]`
 *
 * Replays each trace (a directory: every *.jsonl below it, in name order) and prints one verdict line per trace,
 * the divergences and trace errors under it, and a closing `N passed, N failed`. Exit 0 when every trace passes,
 * 1 when any diverges, 2 when any has a trace error (or cannot be read).
 */
import { availableParallelism } from 'node:os';
import { readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { formatTraceError } from '../events/trace.js';
import { Progress } from './progress.js';
import { replayFile, type TraceReport } from './replay_file.js';
import { applyReplayFlags, ScheduleReadError } from './schedule_file.js';

export const REPLAY_USAGE = `usage: iotrail replay FILE|DIR... [--json] [--stop] [--log PATH] [--workers N] [--max-divergences N]
  --json       print a machine-readable report on stdout (every divergence)
  --stop       stop at the first divergence
  --max-divergences N  print at most N divergences per trace (default 20; 0 for all)
  --explain    also print, for every call that failed, the check that decided it
  --explain-all        the same for every call
  --log PATH   write the model's event log (JSONL); with several traces PATH is a directory
  --invariants check the invariant library after every atomic step (iotrail check --list-invariants); a broken one fails the trace
  --schedule F replay one trace under the interleaving F (iotrail check's .schedule.json; implies --invariants); the trace
               defaults to the one F names, F's mutants are switched on
  --mutant M   switch a seeded bug on (iotrail check --list-mutants); repeatable
  --workers N  replay up to N traces at once (default: the number of cores, for more than one trace)
  --vfio-container type1|iommufd  serve /dev/vfio/vfio by the legacy type1 driver or by iommufd's emulation,
               whatever the trace header says (to see where the two backends answer differently)`;

function collect(paths: readonly string[]): { files: string[]; missing: string[] } {
  const files: string[] = [];
  const missing: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.jsonl')) files.push(p);
    }
  };
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      missing.push(p);
      continue;
    }
    if (st.isDirectory()) walk(p);
    else files.push(p);
  }
  return { files, missing };
}

function printReport(r: TraceReport, out: (s: string) => void, max: number): void {
  if (r.ioError !== undefined) {
    out(`ERROR ${r.file}: ${r.ioError}`);
    return;
  }
  const bad = r.errors.length + r.internal.length;
  const verdict = r.passed ? 'PASS' : bad > 0 ? 'ERROR' : 'FAIL';
  const parts = [`${r.events} events`];
  if (r.divergences.length) parts.push(`${r.divergences.length} divergence${r.divergences.length === 1 ? '' : 's'}`);
  if (r.errors.length) parts.push(`${r.errors.length} trace error${r.errors.length === 1 ? '' : 's'}`);
  if (r.violations.length) parts.push(`${r.violations.length} invariant${r.violations.length === 1 ? '' : 's'} broken`);
  if (r.internal.length) parts.push(`${r.internal.length} internal error${r.internal.length === 1 ? '' : 's'}`);
  if (r.warnings.length) parts.push(`${r.warnings.length} warning${r.warnings.length === 1 ? '' : 's'}`);
  out(`${verdict} ${r.file} (${parts.join(', ')})`);
  for (const e of r.errors) out(`  ${formatTraceError(e)}`);
  for (const e of r.internal) out(`  ${formatTraceError(e)}`);
  for (const v of r.violations) out(`  line ${v.line}: invariant ${v.name} broken (log entry ${v.n}): ${v.message}\n    rule: ${v.rule}`);
  for (const w of r.warnings) out(`  line ${w.line}: warning ${w.kind}: ${w.message}`);
  const shown = max > 0 ? r.divergences.slice(0, max) : r.divergences;
  for (const d of shown)
    out(`  line ${d.line}: ${d.field}: observed ${d.observed}, predicted ${d.predicted}\n    why: ${d.why}`);
  if (shown.length < r.divergences.length) out(`  ... ${r.divergences.length - shown.length} more divergences (--max-divergences 0 prints all)`);
  for (const x of r.explanations) out(`  line ${x.line}: ${x.call} -> ${x.result}\n    because: ${x.why}`);
}

const exitCodeOf = (r: TraceReport): number => (r.ioError !== undefined || r.errors.length || r.internal.length ? 2 : r.passed ? 0 : 1);

async function runPool(files: readonly string[], workers: number, logFor: (f: string) => string | undefined, stop: boolean, explain: 'none' | 'errors' | 'all', invariants: boolean,
  vfioContainer: 'iommufd' | 'type1' | undefined, onDone: (i: number, r: TraceReport) => void): Promise<void> {
  const url = new URL('./replay_worker.js', import.meta.url);
  let next = 0;
  const pool = Array.from({ length: workers }, () => new Worker(url));
  try {
    await Promise.all(pool.map((w) => new Promise<void>((resolveP, reject) => {
      const send = (): void => {
        if (next >= files.length) {
          resolveP();
          return;
        }
        const index = next++;
        w.postMessage({ index, file: files[index], log: logFor(files[index]!), stop, explain, invariants, vfioContainer });
      };
      w.on('message', (m: { index: number; report: TraceReport }) => {
        onDone(m.index, m.report);
        send();
      });
      w.on('error', reject);
      send();
    })));
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
}

export async function replayMain(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true,
      options: { json: { type: 'boolean' }, stop: { type: 'boolean' }, log: { type: 'string' }, workers: { type: 'string' }, 'max-divergences': { type: 'string' }, explain: { type: 'boolean' }, 'explain-all': { type: 'boolean' }, invariants: { type: 'boolean' }, schedule: { type: 'string' }, mutant: { type: 'string', multiple: true }, 'vfio-container': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (e) {
    process.stderr.write(`iotrail replay: ${(e as Error).message}\n${REPLAY_USAGE}\n`);
    return 2;
  }
  const { values: o, positionals } = parsed;
  if (o.help) {
    process.stdout.write(`${REPLAY_USAGE}\n`);
    return 0;
  }
  let flags: ReturnType<typeof applyReplayFlags>;
  try {
    flags = applyReplayFlags(o);
  } catch (e) {
    process.stderr.write(`iotrail replay: ${e instanceof ScheduleReadError ? `--schedule ${e.path}: ` : ''}${(e as Error).message}\n`);
    return 2;
  }
  const { schedule, mutants, invariants } = flags;
  if (schedule !== undefined) {
    if (positionals.length === 0 && flags.trace !== undefined) positionals.push(flags.trace);
    if (positionals.length !== 1) {
      process.stderr.write(`iotrail replay: --schedule replays exactly one trace\n${REPLAY_USAGE}\n`);
      return 2;
    }
  }
  if (positionals.length === 0) {
    process.stderr.write(`iotrail replay: no trace given\n${REPLAY_USAGE}\n`);
    return 2;
  }
  const { files, missing } = collect(positionals);
  for (const m of missing) process.stderr.write(`iotrail replay: ${m}: no such file or directory\n`);
  if (files.length === 0 && missing.length === 0) process.stderr.write('iotrail replay: no *.jsonl trace found\n');
  let workers = files.length > 1 && mutants.length === 0 ? Math.min(files.length, availableParallelism()) : 1;
  if (o.workers !== undefined) {
    if (!/^[1-9][0-9]*$/.test(o.workers)) {
      process.stderr.write(`iotrail replay: --workers takes a positive whole number, got ${JSON.stringify(o.workers)}\n`);
      return 2;
    }
    workers = Math.min(Number(o.workers), Math.max(files.length, 1));
  }
  const explain = o['explain-all'] ? 'all' : o.explain ? 'errors' : 'none';
  const vc = o['vfio-container'];
  if (vc !== undefined && vc !== 'type1' && vc !== 'iommufd') {
    process.stderr.write(`iotrail replay: --vfio-container takes type1 or iommufd, got ${JSON.stringify(vc)}\n`);
    return 2;
  }
  const vfioContainer: 'type1' | 'iommufd' | undefined = vc;
  let maxDiv = 20;
  if (o['max-divergences'] !== undefined) {
    if (!/^[0-9]+$/.test(o['max-divergences'])) {
      process.stderr.write(`iotrail replay: --max-divergences takes a whole number, got ${JSON.stringify(o['max-divergences'])}\n`);
      return 2;
    }
    maxDiv = Number(o['max-divergences']);
  }
  const logFor = (f: string): string | undefined =>
    o.log === undefined ? undefined : files.length > 1 ? join(o.log, `${basename(f, '.jsonl')}.log.jsonl`) : o.log;
  if (o.log !== undefined && files.length > 1) {
    try {
      if (!statSync(o.log).isDirectory()) throw new Error('not a directory');
    } catch {
      process.stderr.write(`iotrail replay: with several traces --log must name an existing directory (${o.log})\n`);
      return 2;
    }
  }

  const progress = Progress.forStderr(o.json === true);
  const reports: (TraceReport | undefined)[] = new Array(files.length);
  let printed = 0;
  let done = 0;
  const lines: string[] = [];
  const out = (s: string): void => {
    if (o.json) lines.push(s);
    else {
      progress.clear();
      process.stdout.write(`${s}\n`);
    }
  };
  const flushInOrder = (): void => {
    while (printed < files.length && reports[printed] !== undefined) printReport(reports[printed++]!, out, maxDiv);
  };
  let stopAll = false;
  const onDone = (i: number, r: TraceReport): void => {
    reports[i] = r;
    done++;
    flushInOrder();
    progress.update(`${done}/${files.length} traces`, done, files.length);
  };
  if (workers <= 1) {
    for (let i = 0; i < files.length && !stopAll; i++) {
      const f = files[i]!;
      const r = await replayFile(f, {
        log: logFor(f), stop: o.stop, explain, invariants, schedule, vfioContainer,
        onProgress: (b, t) => progress.update(`${basename(f)} (${i + 1}/${files.length})`, b, t),
      });
      onDone(i, r);
      if (o.stop && !r.passed) stopAll = true;
    }
  } else {
    await runPool(files, workers, logFor, o.stop === true, explain, invariants, vfioContainer, onDone);
  }
  progress.clear();
  const got = reports.filter((r): r is TraceReport => r !== undefined);
  const passed = got.filter((r) => r.passed).length;
  const failed = got.length - passed + missing.length;
  const code = Math.max(missing.length ? 2 : 0, ...got.map(exitCodeOf));
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ passed, failed, exitCode: code, traces: got.map((r) => ({ ...r, file: resolve(r.file) })), missing }, null, 2)}\n`);
  } else {
    process.stdout.write(`${passed} passed, ${failed} failed\n`);
  }
  return code;
}
