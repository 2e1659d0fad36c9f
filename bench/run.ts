/**
 * `npm run bench`: replay throughput against the floor of merely parsing the same file, measured in the same run
 * on the same machine, so the printed ratio means something anywhere. Each figure is the best of several runs.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readLineBatches } from '../src/events/reader.js';
import { replayFile } from '../src/cli/replay_file.js';
import { writeMapChurn, writeObjectChurn } from './gen.js';
import { benchTimeTravel } from './timetravel.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);

async function parseOnly(path: string): Promise<number> {
  let n = 0;
  for await (const batch of readLineBatches(path)) for (const l of batch) if (l.length) { JSON.parse(l); n++; }
  return n;
}

async function best<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  let ms = Infinity;
  let value: T | undefined;
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    value = await f();
    ms = Math.min(ms, performance.now() - t0);
  }
  return { ms, value: value as T };
}

const rate = (n: number, ms: number): string => `${Math.round(n / (ms / 1000)).toLocaleString('en-US')}/s`;

async function benchTrace(name: string, path: string, target: number): Promise<boolean> {
  const size = statSync(path).size;
  const parse = await best(() => parseOnly(path));
  const replay = await best(() => replayFile(path));
  const rep = replay.value;
  const ratio = replay.ms / parse.ms;
  console.log(`${name}: ${parse.value.toLocaleString('en-US')} lines, ${(size / 2 ** 20).toFixed(1)} MiB, ${rep.events.toLocaleString('en-US')} model events`);
  console.log(`  JSON.parse floor : ${parse.ms.toFixed(0).padStart(6)} ms  ${rate(parse.value, parse.ms)} lines`);
  console.log(`  iotrail replay   : ${replay.ms.toFixed(0).padStart(6)} ms  ${rate(parse.value, replay.ms)} lines, ${rate(rep.events, replay.ms)} events`);
  console.log(`  ratio replay/parse: ${ratio.toFixed(2)}x (target <= ${target}x) ${ratio <= target ? 'OK' : 'OVER TARGET'}`);
  const faithful = rep.passed;
  if (!faithful) console.log(`  the replay diverged (${rep.divergences.length} divergences, ${rep.errors.length} errors): the figure is void`);
  return faithful;
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'iotrail-bench-'));
  try {
    const churn = join(dir, 'object-churn.jsonl');
    await writeObjectChurn(churn, Number(process.env.BENCH_EVENTS ?? 1_000_000));

    const events = Number(process.env.BENCH_EVENTS ?? 1_000_000);
    const ok1 = await benchTrace('object churn (IOAS alloc/destroy, options, ranges)', churn, 1.5);
    const maps = join(dir, 'map-churn.jsonl');
    // Map churn costs ~50x more per line than parsing, so fewer lines keep `npm run bench` to minutes; the live-area
    // count (what makes a linear structure quadratic) stays at 100,000.
    await writeMapChurn(maps, Number(process.env.BENCH_MAP_EVENTS ?? 300_000), Number(process.env.BENCH_LIVE ?? 100_000));
    const ok2 = await benchTrace('map/unmap churn (auto IOVA, mock domain, up to 100,000 live areas)', maps, 2);
    // BENCH_TT_SWEEP='[[4096,2],[4096,8]]': other snapshot spacings [K, weight factor] measured beside the default.
    const sweep = process.env.BENCH_TT_SWEEP ? (JSON.parse(process.env.BENCH_TT_SWEEP) as [number, number][]) : [];
    const ok3 = await benchTimeTravel(churn, { sweep });
    return ok1 && ok2 && ok3 ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
