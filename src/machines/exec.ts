/**
 * The process execs (fs/exec.c `begin_new_exec`: `exec_mmap`, then `do_close_on_exec`), the trace op `exec`
 * (docs/trace-format-type1.md). Spec: vfio-type1-spec.md §2.8, §3.3, §8.
 *
 * Theory of operation. The process gets a new mm: `mmId` moves on, and the new mm's `locked_vm` starts at 0. The old
 * mm is torn down (`exit_mmap`: every VMA unmapped, with the mmu_notifier invalidations and BAR-file releases of an
 * munmap); a page something still pins survives it, as after munmap. What type1 charged stays charged to the old mm,
 * which nothing can un-charge any more (`vfio_lock_acct` on it finds `mmget_not_zero` false): a vfio_dma keeps
 * `dma->mm` until the new program gives it its new vaddr with MAP_DMA VADDR (`vfio_change_dma_owner` charges the new
 * mm). Then the fds that had FD_CLOEXEC are closed, in order: the trace lists them (`cloexec`), since which fds a
 * process marked close-on-exec (O_CLOEXEC, fcntl) is not otherwise in a trace.
 *
 * Not modelled (answered `not modelled yet`): an exec while iommufd `iopt_pages` exist (their `source_mm` accounting,
 * `pinned_vm`, and IOMMU_IOAS_CHANGE_PROCESS) or while an iommufd mmap cookie VMA is mapped.
 */
import type { DomainEvent } from '../events/domain.js';
import { U64_MAX } from '../events/values.js';
import { munmapEvents } from '../hw/mm.js';
import { cookieVmaUnmapEvents } from '../hw/mmap_cookie.js';
import { cloneState, evolve } from '../projections/state.js';
import { isDone, succeed, unmodelled, type Kernel, type Step } from './ioctl.js';
import { sys_close } from './process.js';
import { deviceReleaseEvents } from './vfio_pci_bar.js';

export function sys_exec(k: Kernel, cloexec: readonly number[]): Step {
  const st = k.st;
  if (st.pages.size > 0) return unmodelled(`exec while iommufd holds ${st.pages.size} iopt_pages charged to the old mm (source_mm accounting, IOMMU_IOAS_CHANGE_PROCESS)`);
  const cookies = cookieVmaUnmapEvents(st, 0n, U64_MAX);
  if (cookies.events.length > 0 || cookies.lastRef !== undefined) return unmodelled('exec with iommufd mmap cookie VMAs mapped');
  const mm = st.mmId + 1;
  // exec_mmap → mmput(old mm) → exit_mmap: the whole address space goes, as an munmap of it would take it.
  const bars = new Set(st.mm.vmas.flatMap((v) => (v.pfnmap === undefined ? [] : [v.pfnmap])));
  const events: DomainEvent[] = [
    ...munmapEvents(st.mm, st.memory, st.pageSize, 0n, U64_MAX + 1n),
    ...[...bars].flatMap((p) => deviceReleaseEvents(k, p, { start: 0n, last: U64_MAX })),
    { type: 'ProcessExeced', mm },
  ];
  const closed: string[] = [];
  if (cloexec.length > 0) {
    // do_close_on_exec: each close decided on the state the previous ones left.
    const scratch = cloneState(st);
    for (const e of events) evolve(scratch, e);
    for (const fd of cloexec) {
      const r = sys_close({ ...k, st: scratch }, fd);
      if (!isDone(r)) return unmodelled(`exec closing fd ${fd}, whose release is not one atomic step`);
      if (r.outcome.kind === 'unmodelled') return unmodelled(`exec closing fd ${fd}: ${r.outcome.what}`);
      if (r.outcome.kind === 'err') return unmodelled(`exec closing fd ${fd}, which is not open (${r.outcome.why})`);
      // One event at a time: a close that releases a container may bring 65535 dmas' worth.
      for (const e of r.events) {
        evolve(scratch, e);
        events.push(e);
      }
      closed.push(`${fd}`);
    }
  }
  return succeed(`fs/exec.c begin_new_exec: mm ${st.mmId} -> ${mm} (locked_vm 0; the old mm's charges stay with it)${closed.length ? `; do_close_on_exec closes fd ${closed.join(', ')}` : ''}`, undefined, events);
}
