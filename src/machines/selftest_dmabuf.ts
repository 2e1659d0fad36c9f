/**
 * The selftest's dma-buf exporter (drivers/iommu/iommufd/selftest.c `iommufd_test_dmabuf_get`): IOMMU_TEST_OP_DMABUF_GET
 * exports `length` (rounded up to PAGE_SIZE, at most 512 pages) bytes of zeroed kernel memory as a dma-buf and
 * returns its fd as the ioctl's value. IOMMU_IOAS_MAP_FILE maps it like device memory: never charged to anyone.
 *
 * Model. One of the two exporters of hw/dmabuf.ts (the other is vfio-pci, machines/vfio_pci_dmabuf.ts): the exported
 * memory is a kernel memfd with no fd of its own (the same device as mmap cookies, hw/mmap_cookie.ts); the dma-buf
 * fd names the buffer. IOMMU_TEST_OP_DMABUF_REVOKE revokes (or restores) the buffer through `dma_buf_move_notify`.
 */
import type { DomainEvent } from '../events/domain.js';
import { moveNotifyEvents, nextDmabufId } from '../hw/dmabuf.js';
import { fail, member, succeed, u32, type Arg, type Call, type Step } from './ioctl.js';
import { pickFd } from './process.js';

const MAX_PAGES = 512;

export function dmabuf_get(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_dmabuf_get';
  const m = member(a, 'dmabuf_get');
  const page = BigInt(c.k.st.pageSize);
  const want = BigInt(m ? u32(m, 'length') : 0);
  const len = ((want + page - 1n) / page) * page;
  if (len === 0n || len > page * BigInt(MAX_PAGES)) return fail('EINVAL', `${fn}: length ${want} rounds to ${len}, outside (0, ${MAX_PAGES} pages]`);
  const memfd = c.k.st.nextMemfd, frame = c.k.st.mm.nextFrame, dmabuf = nextDmabufId(c.k.st);
  const fd = pickFd(c.k.st, undefined);
  const events: DomainEvent[] = [
    { type: 'MemfdCreated', memfd, name: '[iommufd_test dma-buf]' },
    { type: 'MemfdResized', memfd, size: len },
    { type: 'FilePagesAdded', file: memfd, start: 0n, last: len - 1n, frame },
    { type: 'DmabufExported', dmabuf, size: len, memfd, dev: undefined, phys: 0n, nrRanges: 1, revoked: false },
    { type: 'FdInstalled', fd, file: { kind: 'dmabuf', dmabuf, size: len } },
  ];
  return succeed(`${fn}: a ${len}-byte dma-buf, fd ${fd}`, undefined, events, BigInt(fd));
}

/** `iommufd_test_dmabuf_revoke`: dma_buf_get (EBADF, EINVAL for another file), then the exporter check. */
export function dmabuf_revoke(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_dmabuf_revoke';
  const m = member(a, 'dmabuf_revoke');
  const fd = m ? Number(BigInt.asIntN(32, BigInt(u32(m, 'dmabuf_fd')))) : 0;
  const f = c.k.st.fds.get(fd);
  if (f === undefined) return fail('EBADF', `${fn}: dma_buf_get(${fd}): fd is not open`);
  if (f.kind !== 'dmabuf') return fail('EINVAL', `${fn}: dma_buf_get(${fd}): not a dma-buf`);
  if (c.k.st.dmabufs.get(f.dmabuf)?.memfd === undefined) return fail('EOPNOTSUPP', `${fn}: dma-buf fd ${fd} was exported by a VFIO device, not by the selftest`);
  const revoked = (m ? u32(m, 'revoked') : 0) !== 0;
  const events = moveNotifyEvents(c.k.st, f.dmabuf, revoked);
  return succeed(`${fn}: dma-buf fd ${fd} ${revoked ? 'revoked: every IOMMU mapping of it is gone' : 'restored for new mappings'}`, undefined, events);
}
