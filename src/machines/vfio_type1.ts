/**
 * The legacy VFIO container fd and the type1 backend's container ioctls (drivers/vfio/container.c
 * `vfio_fops_unl_ioctl`, `vfio_container_ioctl_check_extension`, `vfio_ioctl_set_iommu`;
 * drivers/vfio/vfio_iommu_type1.c `vfio_iommu_type1_ioctl`, `vfio_iommu_type1_check_extension`,
 * `vfio_iommu_type1_get_info`, `vfio_iommu_type1_map_dma` → `vfio_dma_do_map`, `vfio_iommu_type1_unmap_dma` →
 * `vfio_dma_do_unmap`). Spec: vfio-type1-spec.md §1.2, §2.3–§2.6.
 *
 * Theory of operation. Until SET_IOMMU the container has no driver and every command but GET_API_VERSION,
 * CHECK_EXTENSION and SET_IOMMU is EINVAL (`vfio_fops_unl_ioctl`'s initial `ret = -EINVAL`). SET_IOMMU needs a
 * group and no driver (EINVAL), a type the type1 driver claims (ENODEV otherwise; a claimed type its `open`
 * rejects, UNMAP_ALL, is EINVAL), and attaches every group, most recently added first; a failing attach undoes
 * the whole call. MAP_DMA checks in the kernel's order (flags, size, overflow → EOVERFLOW, prot, alignment to the
 * smallest IOMMU page, overlap → EEXIST, `dma_avail` → ENOSPC, iova_list → EINVAL) and then pins, maps and charges
 * all or nothing (hw/type1_pins.ts). UNMAP_DMA follows the v1/v2 rules: v2 refuses to bisect a mapping (EINVAL
 * before anything is removed), v1 stops its walk at a mapping that starts below the range (success, size 0), and
 * both remove whole mappings only; the struct is copied back on success only.
 *
 * The VADDR flags (live update, §2.8): UNMAP(VADDR) marks the dmas' user VAs invalid and keeps mapping, pins and
 * charge (EBUSY with an emulated group); MAP(VADDR) gives exactly one invalid dma its new VA and, from the mm of a
 * new program (the trace's `exec`), moves the dma's charge to it (`vfio_change_dma_owner`, hw/type1_pins.ts).
 *
 * Emulated (mdev) groups (§3.4): attached without a domain; with only those, MAP_DMA links the dma and pins nothing
 * (the mdev driver pins through `vfio_pin_pages`, machines/vfio_type1_mdev.ts), and UNMAP_DMA of a dma with external
 * pins first has the drivers unpin them (`vfio_notify_dma_unmap`).
 *
 * Version delta (header `kernel`): before the 2025 overflow series (≈v6.18) a wrapping MAP or UNMAP range is
 * EINVAL (MAP: after the alignment check) instead of EOVERFLOW (spec §8).
 *
 * Dirty tracking (VFIO_IOMMU_DIRTY_PAGES, UNMAP_DMA's GET_DIRTY_BITMAP) is vfio_type1_dirty.ts: every page of every
 * dma reported dirty, into the user's bitmap, with the kernel's bitmap layout. `dma_entry_limit` is the header's
 * `limits.dma_entry_limit` when given (docs/trace-format-type1.md).
 *
 * Not modelled: `vfio_iommu_replay` pinning the dmas of an emulated-only container when a hardware group joins it
 * (not modelled yet), an exec while iommufd holds pages (machines/exec.ts), several processes sharing a container
 * (one traced process: its mm and its successors after exec), the kernel BUG() of an UNMAP whose drivers leave pins
 * (only a seeded bug reaches it), and nesting (type 6 is never claimed).
 */
import type { DomainEvent } from '../events/domain.js';
import { isMutant } from '../check/mutants.js';
import { COMMAND_BY_NAME } from '../events/uapi.js';
import { IOMMU_READ, IOMMU_WRITE } from '../hw/io_pagetable.js';
import { DIRTY_BITMAP_PAGES_MAX, UserBitmap } from '../hw/type1_dirty.js';
import { changeDmaOwner, vfio_pin_map_dma, vfio_remove_dma } from '../hw/type1_pins.js';
import { ExtDraft } from '../hw/type1_external.js';
import { notifyDmaUnmap } from './vfio_type1_mdev.js';
import { bisectWhy, dmaLast, dmasIn, type1PageSize, vfio_find_dma, type Type1Iommu, type VfioContainer } from '../hw/vfio_dma.js';
import { U64_MAX } from '../hw/u64.js';
import { cloneState, evolve } from '../projections/state.js';
import { fail, respond, succeed, unmodelled, type Kernel, type Step } from './ioctl.js';
import type { IoctlInput } from './main.js';
import { inlineOut, reportDma, unmapDirtyArgs, vfio_iommu_type1_dirty_pages, type BitmapArg } from './vfio_type1_dirty.js';
import { type1AttachGroupEvents } from './vfio_type1_group.js';
import { kernelAtLeast } from './version.js';

const V = (name: string): number => COMMAND_BY_NAME.get(name)!.value;
const GET_API_VERSION = V('VFIO_GET_API_VERSION'), CHECK_EXTENSION = V('VFIO_CHECK_EXTENSION'), SET_IOMMU = V('VFIO_SET_IOMMU');
const GET_INFO = V('VFIO_IOMMU_GET_INFO'), MAP_DMA = V('VFIO_IOMMU_MAP_DMA'), UNMAP_DMA = V('VFIO_IOMMU_UNMAP_DMA');
const DIRTY_PAGES = V('VFIO_IOMMU_DIRTY_PAGES');

/** vfio.h extension / IOMMU type numbers. */
const TYPE1 = 1n, TYPE1v2 = 3n, DMA_CC = 4n, UNMAP_ALL_EXT = 9n, UPDATE_VADDR = 10n;
const MAP_READ = 1n, MAP_WRITE = 2n, MAP_VADDR = 4n;
const UNMAP_DIRTY = 1n, UNMAP_ALL = 2n, UNMAP_VADDR = 4n;
/** `dma_entry_limit`, the module parameter's default (U16_MAX). */
export const DMA_ENTRY_LIMIT = 65535;
/** The module parameter as the trace header sets it (`limits.dma_entry_limit`), read by `vfio_iommu_type1_open`. */
const dmaEntryLimit = (k: Kernel): number => k.header.limits.dma_entry_limit ?? DMA_ENTRY_LIMIT;
const INFO_PGSIZES = 1n, INFO_CAPS = 2n, INFO_SIZE = 24;
/** DIRTY_BITMAP_BYTES(INT_MAX): the migration cap's max_dirty_bitmap_size. */
const MAX_DIRTY_BITMAP_SIZE = 268435456n;

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** `1 << __ffs(pgsize_bitmap)`: the alignment every MAP/UNMAP argument needs. */
export const minPageSize = type1PageSize;

/** `vfio_iommu_type1_check_extension` (with `iommu` undefined before SET_IOMMU); never an errno. */
function checkExtension(c: VfioContainer, ext: bigint): Step {
  const fn = 'vfio_iommu_type1.c vfio_iommu_type1_check_extension';
  if (ext === TYPE1 || ext === TYPE1v2 || ext === UNMAP_ALL_EXT) return succeed(`${fn}: ${ext} is supported`, undefined, [], 1n);
  if (ext === UPDATE_VADDR && (c.iommu?.emulatedGroups.length ?? 0) > 0)
    return succeed(`${fn}: UPDATE_VADDR is 0: the container has an emulated (mdev) group, which cannot pin, unpin or rw while vaddrs are updated`, undefined, [], 0n);
  if (ext === UPDATE_VADDR || ext === DMA_CC) {
    const on = c.iommu !== undefined;
    return succeed(`${fn}: ${ext === DMA_CC ? 'DMA_CC_IOMMU (every domain enforces cache coherency)' : 'UPDATE_VADDR (no emulated group)'} is ${on ? '1 with the type1 IOMMU set' : '0 before SET_IOMMU'}`, undefined, [], on ? 1n : 0n);
  }
  return succeed(`container.c vfio_container_ioctl_check_extension: no registered driver claims extension ${ext} (the last answer, 0)`, undefined, [], 0n);
}

/** `vfio_ioctl_set_iommu`. */
function setIommu(k: Kernel, c: VfioContainer, arg: bigint): Step {
  const fn = 'container.c vfio_ioctl_set_iommu';
  if (c.groups.length === 0) return fail('EINVAL', `${fn}: container ${c.id} has no group`);
  if (c.iommu !== undefined) return fail('EINVAL', `${fn}: container ${c.id} already has an IOMMU driver`);
  if (arg !== TYPE1 && arg !== TYPE1v2 && arg !== UNMAP_ALL_EXT) return fail('ENODEV', `${fn}: no registered driver's CHECK_EXTENSION claims type ${arg}`);
  if (arg === UNMAP_ALL_EXT) return fail('EINVAL', `${fn}: vfio_iommu_type1_open rejects type ${arg} (only TYPE1 and TYPE1v2 open)`);
  const v2 = arg === TYPE1v2;
  const limit = dmaEntryLimit(k);
  const events: DomainEvent[] = [{ type: 'Type1IommuOpened', container: c.id, v2, dmaAvail: limit }];
  const scratch = cloneState(k.st);
  for (const e of events) evolve(scratch, e);
  // __vfio_container_attach_groups: list order, each attach seeing the ones before it.
  for (const g of c.groups) {
    const sc = scratch.containers.get(c.id)!;
    const r = type1AttachGroupEvents({ ...k, st: scratch }, sc, sc.iommu!, g, undefined);
    if ('unmodelled' in r) return unmodelled(r.unmodelled);
    if ('errno' in r) return fail(r.errno, `${fn}: attaching group ${g} failed, the driver is released: ${r.why}`);
    for (const e of r) evolve(scratch, e);
    events.push(...r);
  }
  return succeed(`${fn}: type1 ${v2 ? 'v2' : 'v1'} opened (dma_avail ${limit}), group(s) ${c.groups.join(', ')} attached`, undefined, events);
}

/** The GET_INFO capability chain (`vfio_iommu_migration_build_caps`, `vfio_iommu_dma_avail_build_caps`, `vfio_iommu_iova_build_caps`), offsets relative to the struct. */
function capChain(i: Type1Iommu): Uint8Array {
  const n = i.iovaList.length;
  const size = 32 + 16 + (n > 0 ? 16 + 16 * n : 0);
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  const hdr = (at: number, id: number, next: number): void => { dv.setUint16(at, id, true); dv.setUint16(at + 2, 1, true); dv.setUint32(at + 4, next === 0 ? 0 : INFO_SIZE + next, true); };
  hdr(0, 2, 32);
  dv.setBigUint64(16, minPageSize(i), true);
  dv.setBigUint64(24, MAX_DIRTY_BITMAP_SIZE, true);
  hdr(32, 3, n > 0 ? 48 : 0);
  dv.setUint32(40, i.dmaAvail, true);
  if (n > 0) {
    hdr(48, 1, 0);
    dv.setUint32(56, n, true);
    i.iovaList.forEach((r, j) => { dv.setBigUint64(64 + 16 * j, r.start, true); dv.setBigUint64(72 + 16 * j, r.last, true); });
  }
  return b;
}

/** `vfio_iommu_type1_get_info`: the chain is copied only when all of it fits; min(argsz, 24) header bytes go back. */
function getInfo(i: Type1Iommu, input: IoctlInput): Step {
  const fn = 'vfio_iommu_type1.c vfio_iommu_type1_get_info';
  if (input.k === 'null') return fail('EFAULT', `${fn}: copy_from_user of 16 bytes from a NULL arg`);
  if (input.k !== 'struct') return unmodelled('VFIO_IOMMU_GET_INFO with a raw pointer argument');
  const a = input.a;
  if (a.size < 16) return fail('EINVAL', `${fn}: argsz ${a.size} < 16 (offsetofend iova_pgsizes)`);
  const chain = capChain(i);
  const total = INFO_SIZE + chain.length;
  const base = { flags: INFO_PGSIZES | INFO_CAPS, iova_pgsizes: i.pgsizeBitmap, pad: 0n };
  if (a.size < total)
    return succeed(`${fn}: argsz ${a.size} < ${total}: argsz := ${total}, cap_offset 0, the chain is not copied`, respond(a, { ...base, argsz: BigInt(total), cap_offset: 0n }));
  const tail = new Uint8Array(Math.max(chain.length, Math.min(a.tail?.length ?? 0, a.size - INFO_SIZE)));
  if (a.tail !== undefined) tail.set(a.tail.subarray(0, tail.length));
  tail.set(chain);
  return succeed(`${fn}: MIGRATION, DMA_AVAIL (${i.dmaAvail})${i.iovaList.length ? `, IOVA_RANGE (${i.iovaList.length} range(s))` : ''} copied at offset 24`,
    { ...respond(a, { ...base, argsz: BigInt(a.size), cap_offset: BigInt(INFO_SIZE) }), tail });
}

/** `vfio_iommu_type1_map_dma` → `vfio_dma_do_map`. Nothing is copied back. */
function mapDma(k: Kernel, c: VfioContainer, i: Type1Iommu, input: IoctlInput): Step {
  const fn = 'vfio_iommu_type1.c vfio_dma_do_map';
  if (input.k === 'null') return fail('EFAULT', 'vfio_iommu_type1.c vfio_iommu_type1_map_dma: copy_from_user of 32 bytes from a NULL arg');
  if (input.k !== 'struct') return unmodelled('VFIO_IOMMU_MAP_DMA with a raw pointer argument');
  const a = input.a;
  const flags = a.v['flags'] as bigint | undefined ?? 0n, vaddr = a.v['vaddr'] as bigint | undefined ?? 0n;
  const iova = a.v['iova'] as bigint | undefined ?? 0n, size = a.v['size'] as bigint | undefined ?? 0n;
  if (a.size < 32) return fail('EINVAL', `vfio_iommu_type1.c vfio_iommu_type1_map_dma: argsz ${a.size} < 32`);
  if ((flags & ~(MAP_READ | MAP_WRITE | MAP_VADDR)) !== 0n) return fail('EINVAL', `vfio_iommu_type1.c vfio_iommu_type1_map_dma: unknown flags ${hex(flags)}`);
  if (size === 0n) return fail('EINVAL', `${fn}: size 0`);
  // The 2025 overflow series (≈v6.18) made a wrapping range EOVERFLOW, checked before prot; before it, EINVAL after the alignment check.
  const overflows = iova + size - 1n > U64_MAX || vaddr + size - 1n > U64_MAX;
  const newOverflow = kernelAtLeast(k.header, 6, 18);
  if (overflows && newOverflow) return fail('EOVERFLOW', `${fn}: iova or vaddr + size - 1 overflows (check_add_overflow)`);
  const prot = ((flags & MAP_READ) !== 0n ? IOMMU_READ : 0) | ((flags & MAP_WRITE) !== 0n ? IOMMU_WRITE : 0);
  const vflag = (flags & MAP_VADDR) !== 0n;
  if ((prot !== 0 && vflag) || (prot === 0 && !vflag)) return fail('EINVAL', `${fn}: ${vflag ? 'VADDR with READ/WRITE' : 'neither READ nor WRITE nor VADDR'}`);
  const pg = minPageSize(i);
  if (((size | iova | vaddr) & (pg - 1n)) !== 0n) return fail('EINVAL', `${fn}: size ${hex(size)}, iova ${hex(iova)} or vaddr ${hex(vaddr)} is not aligned to the minimum IOMMU page ${hex(pg)}`);
  if (overflows) return fail('EINVAL', `${fn}: iova or vaddr + size - 1 wraps (kernel ${k.header.kernel ?? ''} predates the EOVERFLOW checks)`);
  const last = iova + size - 1n;
  // Mutant type1-top-wrap (S15): the pre-2025 exclusive end `iova + size` wraps to 0 for a range ending at 2^64 - 1,
  // and vfio_find_dma's `start + size <= dma->iova` then always walks left: no overlap is ever found.
  const hit = isMutant('type1-top-wrap') && last === U64_MAX ? undefined : vfio_find_dma(i, iova, last);
  if (vflag) {
    // vfio_dma_do_map, VADDR: the new VA of an invalidated dma; nothing is re-pinned, and the new VA is not checked
    // to hold the same pages.
    if (hit === undefined) return fail('ENOENT', `${fn}: VADDR: no vfio_dma overlaps [${hex(iova)}, ${hex(last)}]`);
    if (!hit.vaddrInvalid || hit.iova !== iova || hit.size !== size)
      return fail('EINVAL', `${fn}: VADDR: the vfio_dma [${hex(hit.iova)}, ${hex(dmaLast(hit))}] ${hit.vaddrInvalid ? 'is not exactly the range' : 'has a valid vaddr'}`);
    const own = changeDmaOwner(k, c, hit);
    if ('errno' in own) return fail(own.errno, own.why);
    return succeed(`${fn}: VADDR: vfio_dma [${hex(iova)}, ${hex(last)}] now at vaddr ${hex(vaddr)}${own.why}`, undefined,
      [...own.events, { type: 'VfioDmaVaddrUpdated', container: c.id, iova, vaddr }]);
  }
  if (hit !== undefined) return fail('EEXIST', `${fn}: [${hex(iova)}, ${hex(last)}] overlaps the vfio_dma [${hex(hit.iova)}, ${hex(dmaLast(hit))}]`);
  // Mutant type1-no-dma-limit (S1, CVE-2019-3882): before 492855939bdb nothing bounded the number of vfio_dmas.
  if (i.dmaAvail === 0 && !isMutant('type1-no-dma-limit')) return fail('ENOSPC', `${fn}: dma_avail is 0 (${i.dmas.size} vfio_dma entries = dma_entry_limit ${i.dmaLimit})`);
  if (i.iovaList.length > 0 && !i.iovaList.some((r) => r.start <= iova && last <= r.last))
    return fail('EINVAL', `${fn}: vfio_iommu_iova_dma_valid: [${hex(iova)}, ${hex(last)}] is not inside one valid IOVA range (${i.iovaList.map((r) => `[${hex(r.start)}, ${hex(r.last)}]`).join(', ')})`);
  const lockCap = k.header.limits.cap_ipc_lock;
  if (i.domain === undefined) {
    // Emulated groups only: the dma gets its size and nothing is pinned, mapped or charged (mdevs pin through
    // vfio_pin_pages); the vaddr is not even looked at.
    if (i.dirtyTracking && size / pg > DIRTY_BITMAP_PAGES_MAX) return fail('EINVAL', `${fn}: dirty tracking is on and vfio_dma_bitmap_alloc refuses ${size / pg} pages; the dma is removed`);
    return succeed(`${fn}: [${hex(iova)}, ${hex(last)}] linked without a hardware domain (emulated groups only): nothing pinned, mapped or charged; dma_avail ${i.dmaAvail - 1}`, undefined, [
      { type: 'VfioDmaLinked', container: c.id, iova, size, vaddr, prot, lockCap, pinned: [], lockedVm: 0, hasRsvd: false, mm: k.st.mmId, mapped: false },
    ]);
  }
  const r = vfio_pin_map_dma(k.st, k.header, i.domain, iova, vaddr, size, prot, lockCap);
  if ('errno' in r) return fail(r.errno, r.why);
  if (i.dirtyTracking && size / pg > DIRTY_BITMAP_PAGES_MAX)
    return fail('EINVAL', `${fn}: dirty tracking is on and vfio_dma_bitmap_alloc refuses ${size / pg} pages > DIRTY_BITMAP_PAGES_MAX: the dma is removed (unmapped, unpinned, un-charged)`);
  return succeed(`${fn}: [${hex(iova)}, ${hex(last)}] mapped; ${r.why}; dma_avail ${i.dmaAvail - 1}`, undefined, [
    ...r.events,
    { type: 'VfioDmaLinked', container: c.id, iova, size, vaddr, prot, lockCap, pinned: r.pinned, lockedVm: r.lockedVm, hasRsvd: r.hasRsvd, mm: k.st.mmId, mapped: true },
  ]);
}

/** `vfio_iommu_type1_unmap_dma` → `vfio_dma_do_unmap`. */
function unmapDma(k: Kernel, c: VfioContainer, i: Type1Iommu, input: IoctlInput): Step {
  const wfn = 'vfio_iommu_type1.c vfio_iommu_type1_unmap_dma', fn = 'vfio_iommu_type1.c vfio_dma_do_unmap';
  if (input.k === 'null') return fail('EFAULT', `${wfn}: copy_from_user of 24 bytes from a NULL arg`);
  if (input.k !== 'struct') return unmodelled('VFIO_IOMMU_UNMAP_DMA with a raw pointer argument');
  const a = input.a;
  const flags = a.v['flags'] as bigint | undefined ?? 0n, iova = a.v['iova'] as bigint | undefined ?? 0n, size = a.v['size'] as bigint | undefined ?? 0n;
  if (a.size < 24 || (flags & ~(UNMAP_DIRTY | UNMAP_ALL | UNMAP_VADDR)) !== 0n) return fail('EINVAL', `${wfn}: argsz ${a.size} < 24 or unknown flags ${hex(flags)}`);
  let bitmap: BitmapArg | undefined;
  if ((flags & UNMAP_DIRTY) !== 0n) {
    if ((flags & (UNMAP_ALL | UNMAP_VADDR)) !== 0n) return fail('EINVAL', `${wfn}: GET_DIRTY_BITMAP together with ALL or VADDR`);
    const b = unmapDirtyArgs(a, size);
    if ('done' in b) return b.done;
    bitmap = b.bitmap;
  }
  const vflag = (flags & UNMAP_VADDR) !== 0n;
  if (vflag && i.emulatedGroups.length > 0) return fail('EBUSY', `${fn}: VADDR while the container has an emulated (mdev) group ${i.emulatedGroups.join(', ')}`);
  const pg = minPageSize(i);
  if ((iova & (pg - 1n)) !== 0n) return fail('EINVAL', `${fn}: iova ${hex(iova)} is not aligned to ${hex(pg)}`);
  const all = (flags & UNMAP_ALL) !== 0n;
  let end: bigint;
  if (all) {
    if (iova !== 0n || size !== 0n) return fail('EINVAL', `${fn}: UNMAP_ALL with iova ${hex(iova)} or size ${hex(size)} not 0`);
    end = U64_MAX;
  } else {
    if (size === 0n || (size & (pg - 1n)) !== 0n) return fail('EINVAL', `${fn}: size ${hex(size)} is 0 or not aligned to ${hex(pg)}`);
    if (iova + size - 1n > U64_MAX)
      return kernelAtLeast(k.header, 6, 18) ? fail('EOVERFLOW', `${fn}: iova + size - 1 overflows (check_add_overflow)`)
        : fail('EINVAL', `${fn}: iova + size wraps (kernel ${k.header.kernel ?? ''} predates the EOVERFLOW checks)`);
    end = iova + size - 1n;
  }
  if (bitmap !== undefined && (!i.dirtyTracking || bitmap.pgsize !== pg))
    return fail('EINVAL', `${fn}: GET_DIRTY_BITMAP ${!i.dirtyTracking ? 'with dirty tracking off' : `with bitmap.pgsize ${hex(bitmap.pgsize)}, not the smallest IOMMU page ${hex(pg)}`}`);
  if (i.v2 && !all) {
    const b = bisectWhy(i, iova, end);
    if (b !== undefined) return fail('EINVAL', `${fn}: v2 may not bisect a mapping: ${b}; nothing removed, nothing copied back`);
  }
  const draft = new ExtDraft(k.st, k.header);
  const events = draft.events;
  const user = bitmap === undefined ? undefined : new UserBitmap(k.st, bitmap.data);
  const notified: string[] = [];
  let removed = 0n, count = 0;
  let stop = '';
  for (const d of dmasIn(i, iova, end)) {
    if (!i.v2 && d.iova < iova) {
      stop = `; v1: the walk stops at the vfio_dma [${hex(d.iova)}, ${hex(dmaLast(d))}], which starts below iova ${hex(iova)}`;
      break;
    }
    if (vflag) {
      // The invalidations this call made are undone: no event goes out.
      if (d.vaddrInvalid) return fail('EINVAL', `${fn}: VADDR: the vfio_dma [${hex(d.iova)}, ${hex(dmaLast(d))}] already has an invalid vaddr; this call's invalidations are undone`);
      events.push({ type: 'VfioDmaVaddrInvalidated', container: c.id, iova: d.iova });
      removed += d.size;
      count++;
      continue;
    }
    if (draft.vpfnsOf(c.id, d).size > 0) {
      // External pins: the drivers are told to unpin (vfio_notify_dma_unmap), then the walk restarts; one that
      // still finds pins on the same dma 10 more times BUG()s.
      notified.push(notifyDmaUnmap(k, c, i, d, draft));
      if (draft.vpfnsOf(c.id, d).size > 0)
        return unmodelled(`a kernel BUG: vfio_dma_do_unmap: the vfio_dma [${hex(d.iova)}, ${hex(dmaLast(d))}] still has external pins after its drivers' dma_unmap (${[...draft.vpfnsOf(c.id, d).keys()].map(hex).join(', ')}): BUG_ON(++retries > 10)`);
    }
    if (user !== undefined) {
      // update_user_bitmap before the dma goes; a fault stops the walk with what was removed so far removed.
      const r = reportDma(c, i, user, d, iova);
      if ('unmodelled' in r) return unmodelled(r.unmodelled);
      events.push(...r.events);
      if (r.fault !== undefined)
        return fail('EFAULT', `vfio_iommu_type1.c update_user_bitmap: the vfio_dma [${hex(d.iova)}, ${hex(dmaLast(d))}]: ${r.fault}; the ${count} vfio_dma(s) before it stay removed, nothing copied back`, [...user.events, ...events]);
    }
    events.push(...vfio_remove_dma(k.st, c.id, i.domain, draft.dmaAsLeft(c.id, d), draft.mm));
    removed += d.size;
    count++;
  }
  const did = vflag ? 'had its vaddr invalidated (mapping and pins stay)' : user !== undefined ? 'reported dirty (every page) and removed whole' : 'removed whole';
  const inline = user === undefined ? undefined : inlineOut(user, (data) => ({ data: { data } }));
  return succeed(`${fn}: ${notified.map((x) => `${x}; `).join('')}${count} vfio_dma ${did}, ${hex(removed)} bytes${stop}`, respond(a, { size: removed, ...inline }), [...(user?.events ?? []), ...events]);
}

/** `vfio_fops_unl_ioctl` on container `id`. */
export function vfio_container_ioctl(k: Kernel, id: number, cmd: number, input: IoctlInput): Step {
  const c = k.st.containers.get(id)!;
  const int = input.k === 'int' ? input.v : 0n;
  if (cmd === GET_API_VERSION) return succeed('container.c vfio_fops_unl_ioctl: VFIO_API_VERSION is 0', undefined, [], 0n);
  if (cmd === CHECK_EXTENSION) return checkExtension(c, int);
  if (cmd === SET_IOMMU) return setIommu(k, c, int);
  const i = c.iommu;
  if (i === undefined) return fail('EINVAL', `container.c vfio_fops_unl_ioctl: container ${id} has no IOMMU driver (no SET_IOMMU, or its last group left): every other command is EINVAL`);
  if (cmd === GET_INFO) return getInfo(i, input);
  if (cmd === MAP_DMA) return mapDma(k, c, i, input);
  if (cmd === UNMAP_DMA) return unmapDma(k, c, i, input);
  if (cmd === DIRTY_PAGES) return vfio_iommu_type1_dirty_pages(k, c, i, input);
  return fail('ENOTTY', `vfio_iommu_type1.c vfio_iommu_type1_ioctl: 0x${cmd.toString(16)} is not a type1 command`);
}
