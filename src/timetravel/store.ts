/**
 * The index on disk, and building one from a trace file.
 *
 * File format (written atomically, conventionally `TRACE.ttindex` beside the trace): four lines of JSON, then bytes.
 *
 *   1. `{"format":"iotrail-timetravel-index","version":2,"k","factor","blockSize","count","lines","headerLine","blocks","meta","trace"}`
 *   2. `{"shapes":[[type,[keys],tags]…],"strings":[…]}`   the codec's dictionaries (codec.ts)
 *   3. `{"marks":[[kind,n,line,message]…]}`                divergences, invariant violations, model and trace errors
 *   4. `{"blockBytes":[…],"blockFirstLine":[…],"chunks":[[line,offset]…],"checkpoints":[…]}`
 *   5. the blocks, back to back: `blockSize` log entries each, in the codec's varint encoding
 *
 * The snapshots are not in the file: a State cannot be restored from its view (see index.ts
 * `rebuildCheckpoints`), so loading folds the log once, puts the snapshots where the builder put them, and checks
 * the final state against the sha256 of the view the builder reached. `checkpoints` records the positions.
 * `trace` is the trace's path relative to the index, where labels and notes of trace lines are read from.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, fsyncSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import type { ReplayOptions } from '../replay/engine.js';
import { Dictionaries } from './codec.js';
import { BLOCK, DEFAULT_K, IndexBuilder, WEIGHT_FACTOR, rebuildCheckpoints, StaleIndexError, type IndexData, type LineSource, type Mark, type MarkKind, type TraceIndex } from './index.js';

export const INDEX_FORMAT = 'iotrail-timetravel-index';
export const INDEX_VERSION = 2;
export const INDEX_SUFFIX = '.ttindex';

/** The pieces of the saved form of an index; `trace` is where the trace is, relative to the index file. */
export function* serializeIndex(idx: TraceIndex, trace: string | null = null): Generator<string | Uint8Array, void, void> {
  const log = idx.encodedLog();
  yield `${JSON.stringify({
    format: INDEX_FORMAT, version: INDEX_VERSION, k: idx.k, factor: idx.factor, blockSize: BLOCK, count: idx.count, lines: idx.lines,
    headerLine: idx.headerLine, blocks: log.blocks.length, meta: idx.meta, trace,
  })}\n`;
  yield `${JSON.stringify(log.dict.toJson())}\n`;
  yield `${JSON.stringify({ marks: idx.marks.map((m) => [m.kind, m.n, m.line, m.message]) })}\n`;
  yield `${JSON.stringify({ blockBytes: log.blocks.map((b) => b.length), blockFirstLine: log.blockFirstLine, chunks: idx.chunks, checkpoints: idx.checkpoints.map((c) => c.p) })}\n`;
  for (const b of log.blocks) yield b;
}

/** The saved form in one buffer (tests). */
export const indexBytes = (idx: TraceIndex, trace: string | null = null): Buffer =>
  Buffer.concat([...serializeIndex(idx, trace)].map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));

/**
 * Writes pieces to `path` atomically, as src/cli/atomic.ts does for text: a temporary file beside it, flushed to
 * disk, renamed over it. Returns the size.
 */
function writeAtomicBytes(path: string, pieces: Iterable<string | Uint8Array>): number {
  const tmp = join(dirname(path), `.${basename(path)}.partial-${process.pid}`);
  const fd = openSync(tmp, 'w', 0o644);
  let bytes = 0;
  try {
    let buf: Uint8Array[] = [], len = 0;
    const flush = (): void => {
      const b = Buffer.concat(buf);
      for (let off = 0; off < b.length;) off += writeSync(fd, b, off);
      buf = [];
      len = 0;
    };
    for (const p of pieces) {
      const b = typeof p === 'string' ? Buffer.from(p) : p;
      buf.push(b);
      len += b.length;
      bytes += b.length;
      if (len >= 1 << 20) flush();
    }
    flush();
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
    return bytes;
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Writes the index atomically; returns its size in bytes. `trace`: the trace's path, recorded relative to the index. */
export function saveIndex(idx: TraceIndex, path: string, trace?: string): number {
  return writeAtomicBytes(path, serializeIndex(idx, trace === undefined ? null : relative(dirname(resolve(path)), resolve(trace))));
}

export class BadIndexError extends Error {}

const MARK_KINDS: readonly MarkKind[] = ['divergence', 'invariant', 'internal', 'trace-error'];

function parseObject(line: string | undefined, what: string): Record<string, unknown> {
  if (line === undefined) throw new BadIndexError(`truncated index: no ${what}`);
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new BadIndexError(`malformed index ${what} (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BadIndexError(`malformed index ${what}`);
  return v as Record<string, unknown>;
}

const isNat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const natArray = (v: unknown, what: string): number[] => {
  if (!Array.isArray(v) || !v.every(isNat)) throw new BadIndexError(`malformed index ${what}`);
  return v;
};

/** Splits the four JSON lines off the front of a saved index. */
function splitHead(buf: Uint8Array): { lines: string[]; rest: number } {
  const lines: string[] = [];
  let at = 0;
  for (let i = 0; i < 4; i++) {
    const nl = buf.indexOf(10, at);
    if (nl < 0) throw new BadIndexError(`truncated index: ${i} of its 4 header lines`);
    lines.push(Buffer.from(buf.buffer, buf.byteOffset + at, nl - at).toString('utf8'));
    at = nl + 1;
  }
  return { lines, rest: at };
}

/** Reads the saved form back into index data, and rebuilds the snapshots. */
export function deserializeIndex(buf: Uint8Array): TraceIndex {
  const first = buf.indexOf(10);
  const h = parseObject(Buffer.from(buf.buffer, buf.byteOffset, first < 0 ? buf.length : first).toString('utf8'), 'header');
  if (h.format !== INDEX_FORMAT) throw new BadIndexError('not an iotrail time-travel index');
  if (h.version !== INDEX_VERSION) throw new StaleIndexError(`index format version ${String(h.version)}, this iotrail reads version ${INDEX_VERSION}`);
  if (h.blockSize !== BLOCK) throw new StaleIndexError(`index block size ${String(h.blockSize)}, this iotrail uses ${BLOCK}`);
  const { lines, rest } = splitHead(buf);
  if (!isNat(h.k) || h.k === 0 || typeof h.factor !== 'number' || !(h.factor >= 0) || !isNat(h.count) || !isNat(h.lines) || !isNat(h.blocks) || h.blocks !== Math.ceil(h.count / BLOCK))
    throw new BadIndexError('malformed index header');
  if (h.trace !== null && h.trace !== undefined && typeof h.trace !== 'string') throw new BadIndexError('malformed index header');
  const meta = h.meta as Record<string, unknown> | null;
  if (typeof meta !== 'object' || meta === null || typeof meta.finalViewSha256 !== 'string') throw new BadIndexError('malformed index header');
  const d = parseObject(lines[1], 'dictionaries');
  let dict: Dictionaries;
  try {
    dict = Dictionaries.fromJson(d.shapes, d.strings);
  } catch (e) {
    throw new BadIndexError((e as Error).message);
  }
  const m = parseObject(lines[2], 'marks');
  if (!Array.isArray(m.marks)) throw new BadIndexError('malformed index marks');
  const marks: Mark[] = m.marks.map((x: unknown) => {
    if (!Array.isArray(x) || !MARK_KINDS.includes(x[0] as MarkKind) || typeof x[1] !== 'number' || !isNat(x[2]) || typeof x[3] !== 'string')
      throw new BadIndexError('malformed index mark');
    return { kind: x[0] as MarkKind, n: x[1], line: x[2], message: x[3] };
  });
  const l = parseObject(lines[3], 'block table');
  const blockBytes = natArray(l.blockBytes, 'block table');
  const blockFirstLine = natArray(l.blockFirstLine, 'block table');
  if (!Array.isArray(l.chunks) || !l.chunks.every((c: unknown) => Array.isArray(c) && c.length === 2 && isNat(c[0]) && isNat(c[1])))
    throw new BadIndexError('malformed index chunk table');
  const chunks = l.chunks as [number, number][];
  if (blockBytes.length !== h.blocks || blockFirstLine.length !== h.blocks) throw new BadIndexError('malformed index block table');
  const blocks: Uint8Array[] = [];
  let at = rest;
  for (const n of blockBytes) {
    if (at + n > buf.length) throw new BadIndexError(`truncated index: ${blocks.length} of ${h.blocks} blocks`);
    blocks.push(buf.subarray(at, at + n));
    at += n;
  }
  if (at !== buf.length) throw new BadIndexError('index has bytes after its last block');
  const data: IndexData = {
    k: h.k, factor: h.factor as number, count: h.count, lines: h.lines, headerLine: isNat(h.headerLine) ? h.headerLine : 1, dict, blocks, blockFirstLine, marks, chunks,
    meta: {
      source: typeof meta.source === 'string' ? meta.source : null,
      traceSize: isNat(meta.traceSize) ? meta.traceSize : null,
      traceSha256: typeof meta.traceSha256 === 'string' ? meta.traceSha256 : null,
      finalViewSha256: meta.finalViewSha256,
    },
  };
  try {
    return rebuildCheckpoints(data);
  } catch (e) {
    if (e instanceof StaleIndexError) throw e;
    throw new BadIndexError(`corrupt index: ${(e as Error).message}`);
  }
}

/** The trace path recorded in a saved index's header (relative to the index), or null. */
export function tracePathOf(header: string, indexPath: string): string | null {
  try {
    const h = JSON.parse(header) as { trace?: unknown };
    return typeof h.trace === 'string' ? resolve(dirname(resolve(indexPath)), h.trace) : null;
  } catch {
    return null;
  }
}

/**
 * Loads a saved index. Labels and notes of trace lines come from the trace itself: the one given, or else the one
 * the index records, when it is there and has the size the index was built from.
 */
export async function loadIndex(path: string, trace?: string): Promise<TraceIndex> {
  const buf = await readFile(path);
  const idx = deserializeIndex(buf);
  const nl = buf.indexOf(10);
  const t = trace ?? tracePathOf(buf.subarray(0, nl < 0 ? buf.length : nl).toString('utf8'), path);
  if (t !== null && idx.chunks.length > 0) {
    try {
      if (statSync(t).size === idx.meta.traceSize) idx.lineSource = new FileLineSource(t, idx.chunks);
    } catch {
      // The trace is not there: no labels, everything else works.
    }
  }
  return idx;
}

/** Whether the file starts like a saved index (its first bytes). */
export async function looksLikeIndex(path: string): Promise<boolean> {
  const want = `{"format":"${INDEX_FORMAT}"`;
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(want.length);
    const { bytesRead } = await fh.read(buf, 0, want.length, 0);
    return bytesRead === want.length && buf.toString('utf8') === want;
  } finally {
    await fh.close();
  }
}

/** The size and sha256 of a file, streamed. */
export async function fingerprint(path: string): Promise<{ size: number; sha256: string }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: h.digest('hex') };
}

export interface BuildOptions {
  readonly k?: number | undefined;
  readonly factor?: number | undefined;
  /** Called with the bytes read so far (for progress bars). */
  readonly onProgress?: ((bytes: number, total: number) => void) | undefined;
  /** Replay with invariant checks or under a schedule (such an index depends on them: it is not saved). */
  readonly replay?: ReplayOptions | undefined;
}

/**
 * Lines of a trace file on demand, for labels and notes: the index records where each 1 MiB chunk of the file
 * begins, so a line is found by reading from the chunk it starts in. The chunk read last is kept.
 */
export class FileLineSource implements LineSource {
  private cached: { first: number; lines: string[] } | undefined;
  constructor(readonly path: string, private readonly chunks: readonly (readonly [number, number])[]) {}

  line(lineNo: number): string | undefined {
    const c = this.cached;
    if (c !== undefined && lineNo >= c.first && lineNo < c.first + c.lines.length) return c.lines[lineNo - c.first];
    let lo = 0, hi = this.chunks.length - 1;
    if (hi < 0 || this.chunks[0]![0] > lineNo) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.chunks[mid]![0] <= lineNo) lo = mid;
      else hi = mid - 1;
    }
    const [first, offset] = this.chunks[lo]!;
    const end = this.chunks[lo + 1]?.[1];
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return undefined;
    }
    try {
      // Read the chunk (to where the next one begins) and on until line `lineNo` is complete.
      const parts: Buffer[] = [];
      const want = lineNo - first + 1;
      let pos = offset, seen = 0, eof = false;
      while (pos < (end ?? 0) || seen < want) {
        const size = end !== undefined && pos < end ? end - pos : 1 << 16;
        const buf = Buffer.alloc(size);
        const got = readSync(fd, buf, 0, size, pos);
        if (got <= 0) {
          eof = true;
          break;
        }
        const part = buf.subarray(0, got);
        parts.push(part);
        pos += got;
        for (let i = part.indexOf(10); i >= 0; i = part.indexOf(10, i + 1)) seen++;
      }
      const lines = Buffer.concat(parts).toString('utf8').split('\n');
      // Lines before the last newline are complete; at the end of the file, so is an unterminated last line.
      const complete = lines.slice(0, seen);
      if (eof && lines[seen] !== undefined && lines[seen] !== '') complete.push(lines[seen]!);
      this.cached = { first, lines: complete };
      return complete[lineNo - first];
    } finally {
      closeSync(fd);
    }
  }
}

/** Replays a trace file into an index, hashing it on the way. */
export async function buildIndexFromFile(path: string, opts: BuildOptions = {}): Promise<TraceIndex> {
  const total = statSync(path).size;
  const b = new IndexBuilder(opts.k ?? DEFAULT_K, opts.factor ?? WEIGHT_FACTOR, opts.replay);
  const h = createHash('sha256');
  const chunks: [number, number][] = [];
  let carry: Buffer = Buffer.alloc(0), carryAt = 0, lineNo = 0, size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const buf = chunk as Buffer;
    h.update(buf);
    const at = size;
    size += buf.length;
    // Split at the last newline, on bytes: a newline never sits inside a UTF-8 sequence, and offsets stay exact.
    const nl = buf.lastIndexOf(10);
    if (nl < 0) {
      carry = carry.length ? Buffer.concat([carry, buf]) : buf;
      continue;
    }
    const head = carry.length ? Buffer.concat([carry, buf.subarray(0, nl)]) : buf.subarray(0, nl);
    chunks.push([lineNo + 1, carryAt]);
    for (const l of head.toString('utf8').split('\n')) b.feedLine(l, ++lineNo);
    carry = buf.subarray(nl + 1);
    carryAt = at + nl + 1;
    opts.onProgress?.(size, total);
  }
  if (carry.length > 0) {
    chunks.push([lineNo + 1, carryAt]);
    b.feedLine(carry.toString('utf8'), ++lineNo);
  }
  return b.finish({ size, sha256: h.digest('hex'), chunks }, new FileLineSource(path, chunks));
}

/**
 * The index of `trace`: loaded from `indexPath` when that file exists and was built from this very trace (same
 * size and sha256) by a model that folds its log the same way; otherwise built by replaying the trace, and saved
 * to `indexPath` when one is given. `how` says which happened.
 */
export async function openIndex(trace: string, indexPath: string | undefined, opts: BuildOptions = {}): Promise<{ index: TraceIndex; how: 'loaded' | 'built' | 'rebuilt'; why?: string }> {
  let why: string | undefined;
  if (indexPath !== undefined) {
    let exists = false;
    try {
      exists = statSync(indexPath).isFile();
    } catch {
      exists = false;
    }
    if (exists) {
      try {
        const fp = await fingerprint(trace);
        const idx = await loadIndex(indexPath, trace);
        if (idx.meta.traceSha256 === fp.sha256 && idx.meta.traceSize === fp.size) return { index: idx, how: 'loaded' };
        why = `${indexPath} was built from another version of ${trace}`;
      } catch (e) {
        why = `${indexPath}: ${(e as Error).message}`;
      }
    }
  }
  const index = await buildIndexFromFile(trace, opts);
  if (indexPath !== undefined) saveIndex(index, indexPath, trace);
  return why === undefined ? { index, how: 'built' } : { index, how: 'rebuilt', why };
}
