/**
 * A mediated device's driver calling into the legacy container (drivers/vfio/vfio_main.c `vfio_pin_pages`,
 * `vfio_unpin_pages`, `vfio_dma_rw`; drivers/vfio/container.c `vfio_device_container_pin_pages`,
 * `vfio_device_container_unpin_pages`, `vfio_device_container_dma_rw`; drivers/vfio/vfio_iommu_type1.c
 * `vfio_iommu_type1_pin_pages`, `vfio_iommu_type1_unpin_pages`, `vfio_iommu_type1_dma_rw`, `vfio_notify_dma_unmap`).
 * Spec: vfio-type1-spec.md §3.4, §2.5. The trace ops are docs/trace-format-type1.md's `mdev_pin`, `mdev_unpin`,
 * `mdev_dma_rw`.
 *
 * Theory of operation. The calls are the kernel's, made by the driver of an mdev device (header `mdev`) whose fd is
 * open through its group on a legacy container; the checks run in the kernel's order (vfio_main.c, then container.c,
 * then type1). The model also keeps the driver's own record of what it pinned (`State.mdevPins`), because the kernel
 * relies on the driver's reply: DMA_UNMAP of a dma that has vpfns calls every registered driver's `dma_unmap(iova,
 * size)` with the lock dropped, and the driver MUST unpin what it pinned there; type1 then retries, and BUG()s after
 * ten retries that still find vpfns. The model's driver does what real ones do (vfio-ccw, vfio-ap, gvt): it unpins,
 * one `vfio_unpin_pages(iova, 1)` per page it holds in the range, and forgets them; the same at its `close_device`,
 * when its device's last fd closes. The driver records a pin only when `vfio_pin_pages` returned `npage`.
 */
import type { DomainEvent } from '../events/domain.js';
import type { HeaderDevice } from '../events/header.js';
import { ExtDraft } from '../hw/type1_external.js';
import { IOMMU_READ, IOMMU_WRITE } from '../hw/io_pagetable.js';
import { isMmFault, memRead, memWriteEvents } from '../hw/mm.js';
import { pgshiftOf } from '../hw/type1_vpfn.js';
import { U64_MAX } from '../hw/u64.js';
import { containerOf, dmaLast, vaddrInvalidCount, vfio_find_dma, type Type1Iommu, type VfioContainer, type VfioDma } from '../hw/vfio_dma.js';
import { fail, succeed, unmodelled, type Done, type Kernel, type Step } from './ioctl.js';

/** VFIO_PIN_PAGES_MAX_ENTRIES: PAGE_SIZE / sizeof(unsigned long). */
const PIN_MAX = (pageSize: number): number => pageSize / 8;
const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** The open mdev devices a container's type1 instance notifies (`iommu->device_list`: registered with `dma_unmap`). */
export function registeredDevices(k: Kernel, c: VfioContainer): HeaderDevice[] {
  return k.header.devices.filter((d) => d.mdev?.dmaUnmap === true && d.group !== undefined && c.groups.includes(d.group) &&
    [...k.st.fds.values()].some((f) => f.kind === 'vfio_device' && f.path === d.path));
}

/** `user_iova + PAGE_SIZE * i` in dma_addr_t arithmetic (wrapping). */
const pageAt = (iova: bigint, n: number, pageSize: number): bigint => BigInt.asUintN(64, iova + BigInt(n * pageSize));
/**
 * `vfio_find_dma(iommu, iova, PAGE_SIZE)`: a dma overlapping [iova, iova + PAGE_SIZE - 1]. For an unaligned IOVA in
 * the top page that end passes 2^64 - 1; the model ends the range there (which dma the kernel's wrapped arithmetic
 * finds is not modelled).
 */
const findPageDma = (i: Type1Iommu, at: bigint, pageSize: number): VfioDma | undefined =>
  vfio_find_dma(i, at, at + BigInt(pageSize) - 1n > U64_MAX ? U64_MAX : at + BigInt(pageSize) - 1n);

type Target = { dev: HeaderDevice; c: VfioContainer; i: Type1Iommu } | { done: Done };

/**
 * The device and its container, after `vfio_assert_device_open`, (for pins) the `dma_unmap` check, and
 * `vfio_device_has_container`.
 */
function target(k: Kernel, path: string, fn: string, needDmaUnmap: boolean): Target {
  const dev = k.header.devices.find((d) => d.path === path);
  if (dev === undefined) return { done: fail('EINVAL', `${fn}: the trace header declares no device ${path}`) };
  if (![...k.st.fds.values()].some((f) => f.kind === 'vfio_device' && f.path === path))
    return { done: fail('EINVAL', `${fn}: WARN_ON(!vfio_assert_device_open): ${path} has no open fd`) };
  if (needDmaUnmap && dev.mdev?.dmaUnmap !== true)
    return { done: fail('EINVAL', `${fn}: ${path}'s driver has no dma_unmap callback (only an emulated IOMMU device's driver may pin)`) };
  const c = dev.group === undefined ? undefined : containerOf(k.st.containers, dev.group);
  if (c === undefined) return { done: unmodelled(`${fn} of a device on an iommufd (iommufd_access_pin_pages / iommufd_access_rw)`) };
  if (c.iommu === undefined) return { done: fail('ENOTTY', `container.c: container ${c.id} has no IOMMU driver`) };
  return { dev, c, i: c.iommu };
}

/** `vfio_iommu_type1_unpin_pages` of pages [iova, +npage) into `d` (the caller checked npage and v2). */
function unpinRange(d: ExtDraft, c: VfioContainer, i: Type1Iommu, iova: bigint, npage: number): string[] {
  const doAccounting = i.domain === undefined;
  const out: string[] = [];
  for (let n = 0; n < npage; n++) {
    const at = pageAt(iova, n, d.st.pageSize);
    const dma = findPageDma(i, at, d.st.pageSize);
    if (dma === undefined) {
      out.push(`no vfio_dma at ${hex(at)}: the loop stops (WARN_ON(i != npage))`);
      break;
    }
    out.push(d.unpinPage(c.id, dma, at, doAccounting));
  }
  return out;
}

/** `vfio_pin_pages(device, iova, npage, prot, pages)`: the number of pages pinned, or the errno. */
export function vfio_pin_pages(k: Kernel, path: string, iova: bigint, npage64: bigint, prot: number): Step {
  const fn = 'vfio_main.c vfio_pin_pages';
  const npage = Number(BigInt.asIntN(32, npage64));
  if (npage === 0) return fail('EINVAL', `${fn}: npage 0`);
  const t = target(k, path, fn, true);
  if ('done' in t) return t.done;
  const { dev, c, i } = t;
  if (npage > PIN_MAX(k.st.pageSize)) return fail('E2BIG', `container.c vfio_device_container_pin_pages: npage ${npage} > VFIO_PIN_PAGES_MAX_ENTRIES ${PIN_MAX(k.st.pageSize)}`);
  const tfn = 'vfio_iommu_type1.c vfio_iommu_type1_pin_pages';
  if (!i.v2) return fail('EACCES', `${tfn}: the container is type1 v1 (external pins are v2 only)`);
  const invalid = vaddrInvalidCount(i);
  if (invalid > 0) return fail('EBUSY', `${tfn}: WARN_ONCE: ${invalid} vfio_dma(s) have an invalid vaddr (vfio_pin_pages not allowed with VFIO_UPDATE_VADDR)`);
  if (registeredDevices(k, c).length === 0) return fail('EINVAL', `${tfn}: no device with a dma_unmap notifier is registered`);
  const doAccounting = i.domain === undefined;
  const d = new ExtDraft(k.st, k.header);
  const done: string[] = [];
  for (let n = 0; n < npage; n++) {
    const at = pageAt(iova, n, k.st.pageSize);
    const dma = findPageDma(i, at, k.st.pageSize);
    // pin_unwind: the pages pinned before are unpinned, their charges undone; the model emits none of it.
    if (dma === undefined) return fail('EINVAL', `${tfn}: page ${n} (iova ${hex(at)}) is in no vfio_dma; the ${n} page(s) before it are unpinned`);
    if ((dma.prot & prot) !== prot) return fail('EPERM', `${tfn}: page ${n} (iova ${hex(at)}): prot ${prot} is not covered by the vfio_dma's prot ${dma.prot}; the ${n} page(s) before it are unpinned`);
    const r = d.pinPage(c.id, dma, at, doAccounting);
    if ('errno' in r) return fail(r.errno, `${r.why}; page ${n} (iova ${hex(at)}), the ${n} page(s) before it are unpinned`);
    if ('leaked' in r) {
      // The mutant's pin_unwind: the earlier pages are unpinned, the leaked pin stays, and 1 is returned.
      const u = new ExtDraft(k.st, k.header, d.mm);
      unpinRange(u, c, i, iova, n);
      return succeed(`${r.leaked}; pin_unwind, ret 1`, undefined, [...d.events.filter((e) => e.type.startsWith('Frames') || e.type === 'PagesFaulted'), ...u.events, ...driverPins(k, dev, c, iova, npage, 1)], 1n);
    }
    done.push(r.ok);
  }
  return succeed(`${tfn}: ${npage} page(s) from ${hex(iova)}: ${done.join('; ')}`, undefined, [...d.events, ...driverPins(k, dev, c, iova, npage, npage)], BigInt(npage));
}

/** The driver's record of a `vfio_pin_pages` that returned `ret` (it keeps the pins only when all `npage` are). */
const driverPins = (k: Kernel, dev: HeaderDevice, c: VfioContainer, iova: bigint, npage: number, ret: number): DomainEvent[] =>
  ret === npage && npage > 0 ? [{ type: 'MdevDriverPins', dev: dev.path, container: c.id, iova, npage, delta: 1 }] : [];

/** What the driver forgets when it unpins [iova, +npage): the pages it holds there, once each. */
function driverUnpins(k: Kernel, dev: HeaderDevice, c: VfioContainer, iova: bigint, npage: number): DomainEvent[] {
  const held = k.st.mdevPins.get(dev.path)?.pins;
  const out: DomainEvent[] = [];
  for (let n = 0; n < npage; n++) {
    const at = pageAt(iova, n, k.st.pageSize);
    if ((held?.get(at) ?? 0) > 0) out.push({ type: 'MdevDriverPins', dev: dev.path, container: c.id, iova: at, npage: 1, delta: -1 });
  }
  return out;
}

/** `vfio_unpin_pages(device, iova, npage)`: void; its WARN_ONs say why nothing happened. */
export function vfio_unpin_pages(k: Kernel, path: string, iova: bigint, npage64: bigint): Step {
  const fn = 'vfio_main.c vfio_unpin_pages';
  const t = target(k, path, fn, true);
  if ('done' in t) return t.done.outcome.kind === 'err' ? succeed(`WARN_ON: ${t.done.outcome.why}: nothing unpinned (void)`) : t.done;
  const { dev, c, i } = t;
  const npage = Number(BigInt.asIntN(32, npage64));
  if (npage <= 0 || npage > PIN_MAX(k.st.pageSize)) return succeed(`container.c vfio_device_container_unpin_pages: WARN_ON(npage ${npage} <= 0 || > ${PIN_MAX(k.st.pageSize)}): nothing unpinned`);
  if (!i.v2) return succeed('vfio_iommu_type1.c vfio_iommu_type1_unpin_pages: WARN_ON(!iommu->v2): nothing unpinned');
  const d = new ExtDraft(k.st, k.header);
  const what = unpinRange(d, c, i, iova, npage);
  return succeed(`vfio_iommu_type1.c vfio_iommu_type1_unpin_pages: ${what.join('; ')}`, undefined, [...d.events, ...driverUnpins(k, dev, c, iova, npage)]);
}

/** The driver gives back its `count` pins of the page at `at`: one `vfio_unpin_pages(at, 1)` each. */
function unpinHeld(d: ExtDraft, dev: string, c: VfioContainer, i: Type1Iommu, at: bigint, count: number): void {
  for (let n = 0; n < count; n++) {
    unpinRange(d, c, i, at, 1);
    d.events.push({ type: 'MdevDriverPins', dev, container: c.id, iova: at, npage: 1, delta: -1 });
  }
}

/**
 * `vfio_notify_dma_unmap` for `dma`: each registered driver's `dma_unmap(dma->iova, dma->size)`, which unpins the
 * pages it holds in the range (into `d`); what they did.
 */
export function notifyDmaUnmap(k: Kernel, c: VfioContainer, i: Type1Iommu, dma: VfioDma, d: ExtDraft): string {
  const said: string[] = [];
  for (const dev of registeredDevices(k, c)) {
    // A pin covers the page from its IOVA: the driver unpins each pin that overlaps the notified range.
    const ps = BigInt(k.st.pageSize);
    const held = [...(k.st.mdevPins.get(dev.path)?.pins ?? new Map<bigint, number>())].filter(([at]) => at + ps - 1n >= dma.iova && at <= dmaLast(dma)).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (const [at, count] of held) unpinHeld(d, dev.path, c, i, at, count);
    said.push(`${dev.name}'s dma_unmap unpins ${held.reduce((a, [, n]) => a + n, 0)} page pin(s)`);
  }
  return `vfio_notify_dma_unmap of [${hex(dma.iova)}, ${hex(dmaLast(dma))}] (the lock dropped): ${said.join(', ')}`;
}

/** The driver's `close_device` when `path`'s last fd (`closing`) goes: it unpins everything it still holds. */
export function mdevCloseEvents(k: Kernel, path: string, closing: number): DomainEvent[] {
  const dev = k.header.devices.find((d) => d.path === path);
  const held = k.st.mdevPins.get(path)?.pins;
  if (dev?.mdev === undefined || held === undefined || [...k.st.fds].some(([fd, f]) => fd !== closing && f.kind === 'vfio_device' && f.path === path)) return [];
  const c = dev.group === undefined ? undefined : containerOf(k.st.containers, dev.group);
  if (c?.iommu === undefined) return [];
  const d = new ExtDraft(k.st, k.header);
  for (const [at, count] of [...held].sort((a, b) => (a[0] < b[0] ? -1 : 1))) unpinHeld(d, path, c, c.iommu, at, count);
  return d.events;
}

/** `vfio_dma_rw(device, iova, data, len, write)`: 0 (a read's bytes as `out.data`), or the errno. */
export function vfio_dma_rw(k: Kernel, path: string, iova: bigint, length: bigint, write: boolean, data: Uint8Array | undefined): Step {
  const fn = 'vfio_main.c vfio_dma_rw';
  if (length === 0n) return fail('EINVAL', `${fn}: len 0`);
  if (length > 1n << 24n) return unmodelled(`vfio_dma_rw of ${length} bytes`);
  if (write && (data === undefined || BigInt(data.length) !== length)) return unmodelled('a vfio_dma_rw write whose data the trace does not give in full');
  const t = target(k, path, fn, false);
  if ('done' in t) return t.done;
  const { c, i } = t;
  const tfn = 'vfio_iommu_type1.c vfio_iommu_type1_dma_rw';
  const invalid = vaddrInvalidCount(i);
  if (invalid > 0) return fail('EBUSY', `${tfn}: WARN_ONCE: ${invalid} vfio_dma(s) have an invalid vaddr (vfio_dma_rw not allowed with VFIO_UPDATE_VADDR)`);
  const events: DomainEvent[] = [];
  const out = new Uint8Array(Number(length));
  const d = new ExtDraft(k.st, k.header);
  let at = iova, done = 0n;
  const cfn = 'vfio_iommu_type1.c vfio_iommu_type1_dma_rw_chunk';
  while (done < length) {
    const dma = vfio_find_dma(i, at, at);
    if (dma === undefined) return fail('EINVAL', `${cfn}: iova ${hex(at)} is in no vfio_dma (${done} byte(s) copied before it)`, events);
    if ((write && (dma.prot & IOMMU_WRITE) === 0) || (dma.prot & IOMMU_READ) === 0)
      return fail('EPERM', `${cfn}: the vfio_dma at ${hex(dma.iova)} has prot ${dma.prot}, a ${write ? 'write' : 'read'} needs ${write ? 'READ|WRITE' : 'READ'}`, events);
    if (dma.mm !== k.st.mmId) return fail('EPERM', `${cfn}: mmget_not_zero(dma->mm) fails: the dma's mm ${dma.mm} is gone (exec)`, events);
    const off = at - dma.iova;
    const count = length - done < dma.size - off ? length - done : dma.size - off;
    const va = dma.vaddr + off;
    if (write) {
      const r = memWriteEvents(d.mm, k.st.memory, k.st.pageSize, va, data!.subarray(Number(done), Number(done + count)));
      events.push(...r.events);
      if (isMmFault(r)) return fail('EFAULT', `${cfn}: copy_to_user at ${hex(va)}: ${r.why}`, events);
      const sh = pgshiftOf(i);
      if (i.dirtyTracking) events.push({ type: 'VfioDmaDirtied', container: c.id, iova: dma.iova, first: off >> sh, last: (off + count - 1n) >> sh });
    } else {
      const r = memRead(k.st.mm, k.st.memory, k.st.pageSize, va, Number(count));
      if (isMmFault(r)) return fail('EFAULT', `${cfn}: copy_from_user at ${hex(va)}: ${r.why}`, events);
      out.set(r, Number(done));
    }
    done += count;
    at = BigInt.asUintN(64, at + count);
  }
  return succeed(`${tfn}: ${length} byte(s) ${write ? 'written to' : 'read from'} [${hex(iova)}, ${hex(iova + length - 1n)}]`, write ? undefined : { data: out }, events);
}
