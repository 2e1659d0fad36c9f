/** A worker thread of `iotrail replay --workers N`: replays the files it is sent, one at a time. */
import { parentPort } from 'node:worker_threads';
import { replayFile } from './replay_file.js';

parentPort?.on('message', (m: { index: number; file: string; log?: string; stop?: boolean; explain?: 'none' | 'errors' | 'all'; invariants?: boolean; vfioContainer?: 'iommufd' | 'type1' }) => {
  void replayFile(m.file, { log: m.log, stop: m.stop, explain: m.explain, invariants: m.invariants, vfioContainer: m.vfioContainer }).then((report) => parentPort?.postMessage({ index: m.index, report }));
});
