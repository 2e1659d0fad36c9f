/**
 * Time-travel bench (issue #7), for `npm run bench`: on a generated trace (bench/gen.ts),
 *   - index build time against a plain replay of the same file (target ≤ 1.5×),
 *   - `stateAt(N)` latency, p50 and p99, for random N (seeded: the same N every run) after loading the saved index
 *     (target p99 ≤ 20 ms),
 *   - index size on disk against the size of the model's JSONL event log (`replay --log`) (target ≤ 2×),
 * and the snapshot spacing (index.ts DEFAULT_K and WEIGHT_FACTOR) next to the alternatives measured on the same trace.
 * Wall-clock time is read here, in the bench, never in the library.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { replayFile } from '../src/cli/replay_file.js';
import { DEFAULT_K, WEIGHT_FACTOR, type TraceIndex } from '../src/timetravel/index.js';
import { stateAt } from '../src/timetravel/queries.js';
import { buildIndexFromFile, loadIndex, saveIndex } from '../src/timetravel/store.js';
import { rng } from './gen.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SAMPLES = Number(process.env.BENCH_TT_SAMPLES ?? 300);

/** Best time of `runs` runs; the previous run's result is dropped before the next starts (it would tax its GC). */
async function best<T>(runs: number, f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  let ms = Infinity;
  let value: T | undefined;
  for (let i = 0; i < runs; i++) {
    value = undefined;
    const t0 = performance.now();
    const v = await f();
    ms = Math.min(ms, performance.now() - t0);
    value = v;
  }
  return { ms, value: value as T };
}

const pct = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** Latencies of `stateAt` for `samples` seeded random entries, after one warm-up query. */
function latencies(idx: TraceIndex, samples: number, seed: number): number[] {
  const r = rng(seed);
  stateAt(idx, idx.count - 1);
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const n = Math.floor(r() * idx.count);
    const t0 = performance.now();
    stateAt(idx, n);
    out.push(performance.now() - t0);
  }
  return out.sort((a, b) => a - b);
}

/** Prints the time-travel figures for the trace at `path`; true when every target is met. */
/**
 * `sweep`: other snapshot spacings to measure beside the default, as [K, weight factor] (index.ts), e.g.
 * [[4096, 0], [16384, 0], [4096, 4]]: each is built once and queried 200 times.
 */
export async function benchTimeTravel(path: string, opts: { sweep?: readonly (readonly [number, number])[] } = {}): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), 'iotrail-bench-tt-'));
  try {
    const logPath = join(dir, 'model.log.jsonl');
    // Plain replay and index build alternate, so both see the same machine; wall and CPU time (all threads: the
    // garbage collector's included) are both kept, each the best of RUNS.
    let plainWall = Infinity, plainCpu = Infinity, buildWall = Infinity, buildCpu = Infinity;
    let plainReport: Awaited<ReturnType<typeof replayFile>> | undefined;
    let built: Awaited<ReturnType<typeof buildIndexFromFile>> | undefined;
    for (let i = 0; i < RUNS; i++) {
      built = undefined;
      let c0 = process.cpuUsage(), t0 = performance.now();
      plainReport = await replayFile(path);
      let c = process.cpuUsage(c0);
      plainWall = Math.min(plainWall, performance.now() - t0);
      plainCpu = Math.min(plainCpu, (c.user + c.system) / 1000);
      c0 = process.cpuUsage();
      t0 = performance.now();
      built = await buildIndexFromFile(path);
      c = process.cpuUsage(c0);
      buildWall = Math.min(buildWall, performance.now() - t0);
      buildCpu = Math.min(buildCpu, (c.user + c.system) / 1000);
    }
    const plain = { ms: plainWall, value: plainReport! };
    const withLog = await replayFile(path, { log: logPath });
    const logSize = statSync(logPath).size;
    rmSync(logPath);
    const idxPath = join(dir, 'trace.ttindex');
    const t0 = performance.now();
    const size = saveIndex(built!, idxPath);
    const saveMs = performance.now() - t0;
    const { count, k, factor } = built!, snapshots = built!.checkpoints.length;
    built = undefined;
    // Other spacings, each index dropped before the next is built.
    const sweep: string[] = [];
    for (const [k, factor] of opts.sweep ?? []) {
      let b: { ms: number; value: TraceIndex } | undefined = await best(1, () => buildIndexFromFile(path, { k, factor }));
      const l = latencies(b.value, Math.min(SAMPLES, 200), 7);
      sweep.push(`  K = ${String(k).padStart(6)}, factor ${factor}: build ${(b.ms / plain.ms).toFixed(2)}x (one run), ${b.value.checkpoints.length} snapshots, stateAt p50 ${pct(l, 0.5).toFixed(2)} ms p99 ${pct(l, 0.99).toFixed(2)} ms`);
      b = undefined;
    }
    console.log(`time travel: ${plain.value.lines.toLocaleString('en-US')} trace lines, ${count.toLocaleString('en-US')} log entries, ${snapshots} snapshots (K = ${k}, weight factor ${factor})`);
    if (!plain.value.passed || !withLog.passed) console.log('  the replay diverged: the figures are void');
    // Latency tails are garbage-collector pauses, which a loaded machine lengthens: say what the machine was doing.
    console.log(`  machine           : ${availableParallelism()} cores, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    const ratio = buildWall / plainWall, cpuRatio = buildCpu / plainCpu;
    console.log(`  plain replay      : ${plainWall.toFixed(0).padStart(6)} ms  (CPU ${plainCpu.toFixed(0)} ms)`);
    console.log(`  index build       : ${buildWall.toFixed(0).padStart(6)} ms  (CPU ${buildCpu.toFixed(0)} ms)  ratio ${ratio.toFixed(2)}x, CPU ${cpuRatio.toFixed(2)}x (target <= 1.5x) ${ratio <= 1.5 ? 'OK' : 'OVER TARGET'}`);
    console.log(`  index save        : ${saveMs.toFixed(0).padStart(6)} ms`);
    const load = await best(1, () => loadIndex(idxPath));
    console.log(`  index load        : ${load.ms.toFixed(0).padStart(6)} ms  (one fold of the log: snapshots are rebuilt, see index.ts)`);
    const lat = latencies(load.value, SAMPLES, 7);
    const p50 = pct(lat, 0.5), p99 = pct(lat, 0.99);
    console.log(`  stateAt(N), ${SAMPLES} random N: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${lat[lat.length - 1]!.toFixed(2)} ms (target p99 <= 20 ms) ${p99 <= 20 ? 'OK' : 'OVER TARGET'}`);
    const sizeRatio = size / logSize;
    console.log(`  index on disk     : ${mib(size)} vs event log (JSONL) ${mib(logSize)}: ${sizeRatio.toFixed(2)}x (target <= 2x) ${sizeRatio <= 2 ? 'OK' : 'OVER TARGET'}`);
    for (const line of sweep) console.log(line);
    return ratio <= 1.5 && p99 <= 20 && sizeRatio <= 2 && plain.value.passed;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export { DEFAULT_K, WEIGHT_FACTOR };
