/**
 * The selftest's dma-buf exporter (drivers/iommu/iommufd/selftest.c `iommufd_test_dmabuf_get`): IOMMU_TEST_OP_DMABUF_GET
 * exports `length` (rounded up to PAGE_SIZE, at most 512 pages) bytes of zeroed kernel memory as a dma-buf and
 * returns its fd as the ioctl's value. IOMMU_IOAS_MAP_FILE maps it like device memory: never charged to anyone.
 *
 * Model. The exported memory is a kernel memfd with no fd of its own (the same device as mmap cookies,
 * hw/mmap_cookie.ts); the dma-buf fd names it. Differences from the kernel, not observable through any ioctl
 * modelled here: the kernel maps the exporter's physical ranges without FOLL_PIN, the model pins the memfd's frames.
 * IOMMU_TEST_OP_DMABUF_REVOKE revokes (or restores) the buffer through `dma_buf_move_notify` (hw/dmabuf.ts).
 */
import type { DomainEvent } from '../events/domain.js';
import { revokeEvents } from '../hw/dmabuf.js';
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
  const memfd = c.k.st.nextMemfd, frame = c.k.st.mm.nextFrame;
  const fd = pickFd(c.k.st, undefined);
  const events: DomainEvent[] = [
    { type: 'MemfdCreated', memfd, name: '[iommufd_test dma-buf]' },
    { type: 'MemfdResized', memfd, size: len },
    { type: 'FilePagesAdded', file: memfd, start: 0n, last: len - 1n, frame },
    { type: 'DmabufExported', memfd, size: len },
    { type: 'FdInstalled', fd, file: { kind: 'dmabuf', memfd, size: len } },
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
  const revoked = (m ? u32(m, 'revoked') : 0) !== 0;
  const events = revoked ? revokeEvents(c.k.st, f.memfd) : [{ type: 'Revoke' as const, memfd: f.memfd, revoked: false }];
  return succeed(`${fn}: dma-buf fd ${fd} ${revoked ? 'revoked: every IOMMU mapping of it is gone' : 'restored for new mappings'}`, undefined, events);
}
