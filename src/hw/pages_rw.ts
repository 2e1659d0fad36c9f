/**
 * Copies to and from the memory behind an `iopt_pages` without keeping a pin: `iopt_pages_rw_access`
 * (drivers/iommu/iommufd/pages.c), which `iommufd_access_rw` calls for each area piece.
 *
 * The kernel picks one of three paths, and they can see different memory, which is why the model keeps them apart:
 * - the fast path (same mm, and no `__IOMMUFD_ACCESS_RW_SLOW_PATH`): `copy_to_user`/`copy_from_user` at
 *   `pages->uptr + start_byte`, i.e. through the process's *current* page table — "ignore any pinning
 *   inconsistencies, unlike a real DMA path";
 * - `iopt_pages_rw_page` (slow path, one page): `pin_user_pages_remote` of that page through the page table, copy,
 *   unpin;
 * - `iopt_pages_rw_slow` (slow path over several pages, and always for file pages): a `pfn_reader` that takes the
 *   pages already pinned (xarray or domain) and pins the others for the copy only (user pages through the page
 *   table, FOLL_WRITE when the pages are writable; file pages through the page cache, allocating missing ones).
 * Whatever the path, the faults and page-cache allocations stay, and no pin or charge is left behind. A dma-buf's
 * pages (hw/dmabuf.ts) have no CPU path at all: EINVAL.
 *
 * The physical copy itself (`copy_data_page`) is `frameBytes` / `frameWriteEvents`, which device DMA shares.
 */
import type { DomainEvent } from '../events/domain.js';
import type { Errno } from '../events/errno.js';
import type { State } from '../projections/state.js';
import { isMmFault, memRead, memWriteEvents, type MmDraft } from './mm.js';
import type { IoptPages } from './pages.js';
import { frameOf } from './pages.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** The bytes of physical memory at `phys` (a frame never written reads as zeros). */
export function frameBytes(st: State, phys: bigint, length: number): Uint8Array {
  const ps = BigInt(st.pageSize);
  const out = new Uint8Array(length);
  for (let done = 0; done < length;) {
    const at = phys + BigInt(done);
    const frame = Number(at / ps), off = Number(at % ps);
    const n = Math.min(st.pageSize - off, length - done);
    const page = st.mm.data.get(frame);
    if (page !== undefined) out.set(page.subarray(off, off + n), done);
    done += n;
  }
  return out;
}

/** The stores of `data` at `phys`, one event per frame, into frames that still exist (a freed frame is gone). */
export function frameWriteEvents(st: State, phys: bigint, data: Uint8Array): DomainEvent[] {
  const ps = BigInt(st.pageSize);
  const out: DomainEvent[] = [];
  for (let done = 0; done < data.length;) {
    const at = phys + BigInt(done);
    const frame = Number(at / ps), off = Number(at % ps);
    const n = Math.min(st.pageSize - off, data.length - done);
    if (st.mm.frames.get(frame) !== undefined)
      out.push({ type: 'MemWritten', frame, offset: off, data: Buffer.from(data.subarray(done, done + n)).toString('hex') });
    done += n;
  }
  return out;
}

export interface PagesRw {
  /** For a write, the bytes to store; for a read, the buffer the bytes are copied into. */
  readonly data: Uint8Array;
  readonly write: boolean;
  /** `__IOMMUFD_ACCESS_RW_SLOW_PATH` (selftest), or an access from another mm. */
  readonly slowPath: boolean;
}

export type RwResult = { readonly events: DomainEvent[] } | { readonly errno: Errno; readonly why: string; readonly events: DomainEvent[] };

/** `iopt_pages_rw_access(pages, start_byte, data, length, flags)` on the step's mm draft. */
export function iopt_pages_rw_access(st: State, p: IoptPages, startByte: bigint, rw: PagesRw, d: MmDraft, pinnedFrame = (i: number) => frameOf(p, i)): RwResult {
  const fn = 'pages.c iopt_pages_rw_access';
  const length = rw.data.length;
  if (rw.write && !p.writable) return { errno: 'EPERM', why: `${fn}: a write to read-only pages`, events: [] };
  if (p.kind === 'dmabuf') return { errno: 'EINVAL', why: `${fn}: the pages are a dma-buf's (iopt_is_dmabuf): no CPU access through an access`, events: [] };
  const ps = BigInt(st.pageSize);
  const first = Number(startByte / ps), last = Number((startByte + BigInt(length) - 1n) / ps);
  if (p.kind === 'user' && !rw.slowPath) {
    const va = p.uptr + startByte;
    if (rw.write) {
      const r = memWriteEvents(d, st.memory, st.pageSize, va, rw.data);
      if (isMmFault(r)) return { errno: 'EFAULT', why: `${fn}: copy_to_user at ${hex(va)}: ${r.why}`, events: [...r.events] };
      return { events: [...r.events] };
    }
    const r = memRead(st.mm, st.memory, st.pageSize, va, length);
    if (!(r instanceof Uint8Array)) return { errno: 'EFAULT', why: `${fn}: copy_from_user at ${hex(va)}: ${r.why}`, events: [] };
    rw.data.set(r);
    return { events: [] };
  }
  const events: DomainEvent[] = [];
  const oneUserPage = p.kind === 'user' && first === last;
  for (let i = first, done = 0; i <= last; i++) {
    const off = i === first ? Number(startByte % ps) : 0;
    const n = Math.min(st.pageSize - off, length - done);
    let frame = oneUserPage ? undefined : pinnedFrame(i);
    if (frame === undefined) {
      const from = d.begin('touch');
      if (p.kind === 'user') {
        // iopt_pages_rw_page pins with FOLL_WRITE only for a write; the pfn_reader pins as the pages allow.
        const w = oneUserPage ? rw.write : p.writable;
        const v = Number(p.uptr / ps) + i;
        const got = d.fault(st.memory, v, v, w ? 'pin-write' : 'pin-read');
        events.push(...(d.events.slice(from) as DomainEvent[]));
        if (got.stop !== undefined) return { errno: got.stop.errno, why: `${fn}: pinning page ${i} at ${hex(BigInt(v) * ps)}: ${got.stop.why}`, events };
        frame = got.runs[0]!.frame;
      } else {
        const pg = Number(p.fileStart / ps) + i;
        // memfd_pin_folios: a page past EOF (the memfd shrank after the map) is EINVAL.
        if (BigInt(pg) * ps >= (d.m.memfds.get(p.memfd!)?.size ?? 0n))
          return { errno: 'EINVAL', why: `${fn}: page ${i} is past the end of memfd ${p.memfd}`, events };
        frame = d.fileFrames(p.memfd!, pg, pg)[0]!.frame;
        events.push(...(d.events.slice(from) as DomainEvent[]));
      }
    }
    const phys = BigInt(frame) * ps + BigInt(off);
    if (rw.write) events.push(...frameWriteEvents(st, phys, rw.data.subarray(done, done + n)));
    else rw.data.set(frameBytes(st, phys, n), done);
    done += n;
  }
  return { events };
}
