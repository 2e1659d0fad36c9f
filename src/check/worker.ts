/** A worker thread of `iotrail check --workers N`: runs the batches it is sent, one at a time. */
import { parentPort } from 'node:worker_threads';
import { runBatch, type ExploreOptions } from './explore.js';

parentPort?.on('message', (m: { opts: ExploreOptions; batch: number; runs: number; timeLimitMs?: number }) => {
  try {
    parentPort?.postMessage({ result: runBatch(m.opts, m.batch, m.runs, m.timeLimitMs) });
  } catch (e) {
    parentPort?.postMessage({ error: (e as Error).stack ?? String(e) });
  }
});
