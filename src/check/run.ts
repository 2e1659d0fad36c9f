/**
 * Running a check: the batches of a shard, in this thread or on a pool of worker threads, until the runs are done,
 * the time is up, or a batch fails. The failure reported is the one of the lowest failing batch: with `--runs`
 * every lower batch has run to its end, so the result does not depend on the worker count.
 */
import { Worker } from 'node:worker_threads';
import { runBatch, type BatchResult, type Counterexample, type ExploreOptions } from './explore.js';
import { failureReport, writeCounterexample, type CheckReport } from './output.js';

export interface RunConfig extends ExploreOptions {
  /** Total runs of this shard; or */
  readonly runs?: number;
  /** a time budget in seconds. */
  readonly timeSec?: number;
  readonly shard: { readonly index: number; readonly count: number };
  readonly workers: number;
  /** Where counterexamples go (undefined: nowhere). */
  readonly outDir: string | undefined;
  readonly onProgress?: (runs: number, elapsedSec: number) => void;
}

/** The batches of a shard, in order, with the runs each makes. */
function* batches(cfg: RunConfig): Generator<{ batch: number; runs: number }> {
  const per = cfg.batchRuns;
  const total = cfg.runs;
  for (let k = 0; ; k++) {
    const runs = total === undefined ? per : Math.min(per, total - k * per);
    if (runs <= 0) return;
    yield { batch: cfg.shard.index + k * cfg.shard.count, runs };
  }
}

interface Found {
  readonly c: Counterexample;
  readonly seconds: number;
}

export async function runCheck(cfg: RunConfig): Promise<CheckReport> {
  const t0 = performance.now();
  const elapsed = (): number => (performance.now() - t0) / 1000;
  const deadline = cfg.timeSec === undefined ? undefined : t0 + cfg.timeSec * 1000;
  const left = (): number | undefined => (deadline === undefined ? undefined : deadline - performance.now());
  let runs = 0;
  const done: number[] = [];
  let found: Found | undefined;
  const opts: ExploreOptions = {
    seed: cfg.seed, threads: cfg.threads, maxChoices: cfg.maxChoices, batchRuns: cfg.batchRuns, mutants: cfg.mutants,
    ...(cfg.fullChecks ? { fullChecks: true } : {}), ...(cfg.ignoreLocks ? { ignoreLocks: true } : {}),
  };
  const take = (r: BatchResult, startedAt: number): void => {
    runs += r.runs;
    done.push(r.batch);
    cfg.onProgress?.(runs, elapsed());
    if (r.counterexample !== undefined && (found === undefined || r.batch < found.c.batch))
      found = { c: r.counterexample, seconds: (startedAt - t0 + r.counterexample.msToFailure) / 1000 };
  };

  const it = batches(cfg);
  if (cfg.workers <= 1) {
    for (const b of it) {
      const l = left();
      if (l !== undefined && l <= 0) break;
      const startedAt = performance.now();
      take(runBatch(opts, b.batch, b.runs, l), startedAt);
      if (found !== undefined) break;
    }
  } else {
    await pool(cfg.workers, opts, it, left, () => found?.c.batch, take);
  }
  const failure = found === undefined ? undefined : failureReport(found.c, found.seconds,
    cfg.outDir === undefined ? undefined : writeCounterexample(cfg.outDir, cfg.seed, cfg.threads, cfg.maxChoices, cfg.mutants, found.c));
  return {
    iotrail_check: 1, seed: cfg.seed, shard: cfg.shard, threads: cfg.threads, maxChoices: cfg.maxChoices, batchRuns: cfg.batchRuns,
    mutants: [...cfg.mutants], ...(cfg.ignoreLocks ? { ignoreLocks: true } : {}), runs, batches: done.sort((a, b) => a - b), seconds: elapsed(), failure,
  };
}

async function pool(
  n: number, opts: ExploreOptions, it: Iterator<{ batch: number; runs: number }>, left: () => number | undefined,
  failedAt: () => number | undefined, take: (r: BatchResult, startedAt: number) => void,
): Promise<void> {
  const url = new URL('./worker.js', import.meta.url);
  const workers = Array.from({ length: n }, () => new Worker(url));
  let exhausted = false;
  try {
    await Promise.all(workers.map((w) => new Promise<void>((resolveP, reject) => {
      let startedAt = 0;
      const send = (): void => {
        const l = left();
        if (exhausted || (l !== undefined && l <= 0)) return resolveP();
        const next = it.next();
        if (next.done === true) {
          exhausted = true;
          return resolveP();
        }
        const f = failedAt();
        if (f !== undefined && next.value.batch > f) {
          exhausted = true;
          return resolveP();
        }
        startedAt = performance.now();
        w.postMessage({ opts, batch: next.value.batch, runs: next.value.runs, timeLimitMs: l });
      };
      w.on('message', (m: { result?: BatchResult; error?: string }) => {
        if (m.error !== undefined) return reject(new Error(m.error));
        const f = failedAt();
        if (f === undefined || m.result!.batch < f) take(m.result!, startedAt);
        send();
      });
      w.on('error', reject);
      send();
    })));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
