// The importer's pending events ("slots") and how they become trace events. A slot stays open while a QEMU
// message may still supply its errno; memory-listener slots wait until the VFIO backend is known, because
// they are ioctls only with the legacy container.

import type { Ioctl, ListenerOp, Outcome } from './qemu-events.js';
import { FLAG_SETS } from '../events/flags.js';
import { jsonInt, U64_MAX } from '../events/values.js';
import { flagsJson, jsonHex } from './values.js';
import type { JsonObject } from './values.js';

/** The legacy container's fd is never printed: a variable bound by its synthesized open stands for it. */
export const CONTAINER = '$container';

export interface Where { readonly line: number; readonly text: string; readonly tid?: number; readonly ts?: bigint }
export interface Resolvable { outcome: Outcome; notes: string[]; resolvedBy: Where[] }
export interface EventSlot extends Resolvable { readonly kind: 'event'; readonly at: Where; readonly head: JsonObject; readonly out?: JsonObject; readonly synthesized?: string; readonly io?: Ioctl }
export interface ListenerSlot extends Resolvable { readonly kind: 'listener'; readonly at: Where; readonly op: Exclude<ListenerOp, { op: 'skip-map' }>; skippedBy?: number }
export type Slot = EventSlot | ListenerSlot;

/** The legacy container ioctl QEMU made for a listener line, or why none can be written. */
export function legacyEvent(s: ListenerSlot): EventSlot | string {
  const op = s.op;
  const base = { kind: 'event' as const, at: s.at, outcome: s.outcome, notes: s.notes, resolvedBy: s.resolvedBy };
  if (op.op === 'close-container') return { ...base, head: { op: 'close', fd: CONTAINER }, notes: [`QEMU printed container fd ${op.fd}`, ...s.notes] };
  const size = op.last - op.iova + 1n;
  if (size > U64_MAX) return 'a full 64-bit range: QEMU splits such an unmap in a version-dependent way';
  const range = { iova: jsonHex(op.iova), size: jsonHex(size) };
  if (op.op === 'map') {
    return {
      ...base, head: { op: 'ioctl', fd: CONTAINER, cmd: 'VFIO_IOMMU_MAP_DMA', arg: { flags: flagsJson(3n, FLAG_SETS.vfio_dma_map), vaddr: jsonHex(op.vaddr), ...range } },
      notes: ['read-only is not in the listener trace: READ|WRITE assumed', ...s.notes],
    };
  }
  if (op.op === 'notify' && op.what !== 'unmap') return 'vIOMMU map on the legacy container: the trace does not print the host address';
  return { ...base, head: { op: 'ioctl', fd: CONTAINER, cmd: 'VFIO_IOMMU_UNMAP_DMA', arg: { flags: 0, ...range } } };
}

/** Key order: what the call is, its outcome, then thread/time and the note (as the conformance corpus writes). */
export function materialize(s: EventSlot, bind?: string): JsonObject {
  const ev: JsonObject = { ...s.head };
  const notes = [...s.notes];
  const o = s.outcome;
  // A `$name` ret binds the fd the model picks, for fds QEMU never prints (trace-format.md "Variables").
  if (bind !== undefined) ev.ret = bind;
  else if (o.kind === 'ret') ev.ret = o.ret;
  else if (o.kind === 'errno') ev.errno = o.errno;
  else if (o.kind === 'failed') {
    ev.ret = -1;
    notes.push(o.why);
  }
  if (s.out !== undefined) ev.out = s.out;
  if (s.at.tid !== undefined) ev.tid = s.at.tid;
  if (s.at.ts !== undefined && s.synthesized === undefined) ev.ts = jsonInt(s.at.ts);
  const source = `line ${s.at.line}: ${s.at.text}`;
  ev.note = s.synthesized !== undefined ? `synthesized (${s.synthesized}); at ${source}` : [source, ...notes].join('; ');
  return ev;
}
