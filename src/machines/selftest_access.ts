/**
 * The selftest's access ops (selftest.c `iommufd_test_create_access`, `_access_pages`, `_access_rw`,
 * `_access_replace_ioas`, `_destroy_access_pages`): an emulated device driver in the test module, reached through an
 * anonymous file whose fd the caller passes as `id`.
 */
import type { DomainEvent } from '../events/domain.js';
import { isFailure } from '../hw/iopt_ops.js';
import { frameOf } from '../hw/pages.js';
import { StepScratch } from '../hw/iopt_domains.js';
import { mmDraft } from '../hw/mm.js';
import { copyFromUser, copyToUser, fail, member, respond, succeed, u32, u64, unmodelled, type Arg, type Call, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';
import { accessAttachEvents, accessRwEvents, accessDetachEvents, accessPinEvents, accessUnpinEvents, testAccessUnmapEvents } from './access.js';
import { pickFd } from './process.js';
import type { IommufdCtx, KObject } from '../projections/state.js';
import { U64_MAX } from '../hw/u64.js';
import { isMutant } from '../check/mutants.js';
import type { Iopt } from '../hw/io_pagetable.js';

const MOCK_FLAGS_ACCESS_WRITE = 1, MOCK_ACCESS_RW_SLOW_PATH = 4;
export const MOCK_FLAGS_ACCESS_SYZ = 1 << 16;
const MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES = 1;

/** `iommufd_test_create_access`: the fd is reserved and reported, the access created and attached, the fd installed. */
export function create_access(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_create_access';
  const m = member(a, 'create_access');
  const flags = m ? u32(m, 'flags') : 0;
  if ((flags & ~MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) !== 0) return fail('EOPNOTSUPP', `${fn}: flags 0x${flags.toString(16)} outside NEEDS_PIN_PAGES`);
  const fd = pickFd(c.k.st, undefined);
  const id = c.ctx.ids.lowestFree();
  if (id === undefined) return fail('EBUSY', 'main.c _iommufd_object_alloc: no free id');
  const ioasId = u32(a, 'id');
  const ioas = getObject(c.ctx, ioasId, 'IOAS');
  if (ioas === undefined) return fail('ENOENT', `device.c iommufd_access_attach: ${lookupWhy(c.ctx, ioasId, 'IOAS')}`);
  const ctx = c.ctx.id;
  const needsPinPages = (flags & MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) !== 0;
  const obj: KObject = { id, kind: 'ACCESS', life: 1, users: 2, holds: [], ioas: undefined, access: { ioas: 0, needsPinPages, items: new Map(), nextItem: 0 } };
  const att = accessAttachEvents(c.k.st, c.ctx, obj, ioas);
  if (isFailure(att)) return fail(att.errno, att.why);
  const events: DomainEvent[] = [
    { type: 'ObjectAllocated', ctx, id, kind: 'ACCESS' },
    { type: 'AccessInitialized', ctx, id, needsPinPages },
    { type: 'ObjectRefTaken', ctx, id, by: 0 },
    { type: 'ObjectFinalized', ctx, id },
    { type: 'CtxRefTaken', ctx },
    ...att,
    { type: 'FdInstalled', fd, file: { kind: 'access', ctx, access: id } },
  ];
  return succeed(`${fn}: access ${id} on IOAS ${ioasId}, fd ${fd}`, respond(a, { create_access: { out_access_fd: BigInt(fd), flags: BigInt(flags) } }), events);
}

/** `iommufd_access_get`: the access behind an fd, or EBADF (not open) / EBADFD (not a test access file). */
function accessOf(c: Call, fd: number): KObject | { errno: 'EBADFD'; why: string } {
  const f = c.k.st.fds.get(fd);
  // iommufd_access_get answers EBADFD for both: `if (!file) return ERR_PTR(-EBADFD);`.
  if (f === undefined) return { errno: 'EBADFD', why: `selftest.c iommufd_access_get: fd ${fd} is not open` };
  if (f.kind !== 'access') return { errno: 'EBADFD', why: `selftest.c iommufd_access_get: fd ${fd} is not a selftest access` };
  return c.k.st.ctxs.get(f.ctx)!.objects.get(f.access)!;
}

/**
 * `__iommufd_test_syz_conv_iova`: syzkaller cannot know IOVAs, so under MOCK_FLAGS_ACCESS_SYZ an IOVA is read as
 * {u32 nth_area, u32 offset} (little endian) and becomes the start of the nth area (ascending) plus the offset;
 * 0 when there are fewer areas.
 */
export function syzConvIova(i: Iopt, iova: bigint): bigint {
  let nth = Number(iova & 0xffffffffn);
  const offset = iova >> 32n;
  for (let n = i.areas.iterFirst(0n, U64_MAX); n !== undefined; n = i.areas.iterNext(n, 0n, U64_MAX)) {
    if (nth === 0) return n.start + offset;
    nth--;
  }
  return 0n;
}

/**
 * `iommufd_test_syz_conv_iova(access, iova)`: under `access->ioas_lock`, an access attached to no IOAS converts to 0
 * (linux@cf7c2789822d, CVE-2024-26785: the converter used to read `access->ioas` without the lock).
 */
function syzConvAccess(ctx: IommufdCtx, ioas: number, iova: bigint): bigint {
  // MUTANT access-rw-during-change (B8): the converter reads access->ioas without ioas_lock and does not check it.
  if (ioas === 0 && !isMutant('access-rw-during-change')) return 0n;
  return syzConvIova(ctx.objects.get(ioas)!.ioas!.iopt, iova);
}

/** `iommufd_test_access_pages`: pin [iova, +length) through the access; with `uptr`, the pages must be the user's. */
export function access_pages(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_access_pages';
  const m = member(a, 'access_pages');
  const flags = m ? u32(m, 'flags') : 0, iova = m ? u64(m, 'iova') : 0n, length = m ? u64(m, 'length') : 0n, uptr = m ? u64(m, 'uptr') : 0n;
  if (length > 16n * 1024n * 1024n) return fail('ENOMEM', `${fn}: length above 16 MiB`);
  if ((flags & ~(MOCK_FLAGS_ACCESS_WRITE | MOCK_FLAGS_ACCESS_SYZ)) !== 0) return fail('EOPNOTSUPP', `${fn}: flags 0x${flags.toString(16)} outside WRITE|SYZ`);
  const acc = accessOf(c, u32(a, 'id'));
  if ('errno' in acc) return fail(acc.errno, acc.why);
  if (!acc.access!.needsPinPages) return fail('EOPNOTSUPP', `${fn}: the access was created without NEEDS_PIN_PAGES`);
  const ctx = c.k.st.ctxs.get((c.k.st.fds.get(u32(a, 'id')) as { ctx: number }).ctx)!;
  // iommufd_test_syz_conv_iova(access, ...): the converted IOVA is used, the command keeps the one given.
  const at = (flags & MOCK_FLAGS_ACCESS_SYZ) === 0 ? iova : syzConvAccess(ctx, acc.access!.ioas, iova);
  const scratch = new StepScratch();
  const ev = accessPinEvents(c.k.st, c.k.header, ctx, acc, at, length, flags & MOCK_FLAGS_ACCESS_WRITE, scratch);
  if (isFailure(ev)) return fail(ev.errno, ev.why);
  if (uptr !== 0n) {
    // iommufd_test_check_pages: get_user_pages_fast(uptr) page by page (faulting the user's pages in, which stays)
    // must give the very pages pinned; on a mismatch the pin is undone (out_unaccess), so nothing but the faults stays.
    const page = BigInt(c.k.st.pageSize);
    const pinned = ev.find((e) => e.type === 'AccessPinned');
    const v0 = Number((uptr - (at % page)) / page);
    const d = scratch.mm(c.k.st);
    const before = d.events.length;
    // What the mm did stays even when the check fails and the pin is undone (out_unaccess): faults and page-cache
    // pages stay, the step's pins go.
    const mmSoFar = (): DomainEvent[] => d.events.filter((e) => e.type !== 'FramesPinned') as DomainEvent[];
    const fresh = ev.flatMap((e) => (e.type === 'PagesPinned' ? [e] : []));
    const frameIn = (pages: number, idx: number): number | undefined => {
      const e = fresh.find((x) => x.pages === pages && x.start <= idx && idx <= x.last);
      return e !== undefined ? e.frame + (idx - e.start) : frameOf(c.k.st.pages.get(pages)!, idx);
    };
    let k = 0;
    for (const piece of pinned?.type === 'AccessPinned' ? pinned.pieces : []) {
      for (let idx = piece.start; idx <= piece.last; idx++, k++) {
        d.begin('touch');
        const got = d.fault(c.k.header.memory, v0 + k, v0 + k, 'pin-read');
        if (got.stop !== undefined) return fail(got.stop.errno, `${fn}: get_user_pages_fast of user page ${k}: ${got.stop.why}`, mmSoFar());
        if (got.runs[0]?.frame !== frameIn(piece.pages, idx))
          return fail('EBADE', `${fn}: pinned page ${k} is not the user page at 0x${(BigInt(v0 + k) * page).toString(16)}`, mmSoFar());
      }
    }
    ev.push(...(d.events.slice(before) as DomainEvent[]));
  }
  const item = acc.access!.nextItem;
  return succeed(`${fn}: item ${item} pins [0x${iova.toString(16)}, +0x${length.toString(16)})`, respond(a, { access_pages: { out_access_pages_id: BigInt(item), flags: BigInt(flags), iova, length, uptr } }), ev);
}

/** `iommufd_test_access_item_destroy`: unpin one item. */
export function destroy_access_pages(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_access_item_destroy';
  const acc = accessOf(c, u32(a, 'id'));
  if ('errno' in acc) return fail(acc.errno, acc.why);
  const m = member(a, 'destroy_access_pages');
  const item = m ? u32(m, 'access_pages_id') : 0;
  if (!acc.access!.items.has(item)) return fail('ENOENT', `${fn}: access ${acc.id} has no item ${item} (never pinned, or unpinned by an unmap)`);
  const ctx = c.k.st.ctxs.get((c.k.st.fds.get(u32(a, 'id')) as { ctx: number }).ctx)!;
  return succeed(`${fn}: item ${item} unpinned`, undefined, accessUnpinEvents(c.k.st, ctx, acc, item));
}

/** `iommufd_access_replace`: attach to the new IOAS, have the driver drop every pin, leave the old one. */
export function access_replace_ioas(c: Call, a: Arg): Step {
  const fn = 'device.c iommufd_access_replace';
  const acc = accessOf(c, u32(a, 'id'));
  if ('errno' in acc) return fail(acc.errno, acc.why);
  const m = member(a, 'access_replace_ioas');
  const ioasId = m ? u32(m, 'ioas_id') : 0;
  const ctx = c.k.st.ctxs.get((c.k.st.fds.get(u32(a, 'id')) as { ctx: number }).ctx)!;
  const cur = acc.access!.ioas;
  if (cur === 0) return fail('ENOENT', `${fn}: access ${acc.id} is not attached`);
  if (cur === ioasId) return succeed(`${fn}: already on IOAS ${ioasId}`);
  const ioas = getObject(ctx, ioasId, 'IOAS');
  if (ioas === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(ctx, ioasId, 'IOAS')}`);
  const att = accessAttachEvents(c.k.st, ctx, { ...acc, access: { ...acc.access!, ioas: 0 } }, ioas);
  if (isFailure(att)) return fail(att.errno, att.why);
  const unpin = testAccessUnmapEvents(c.k.st, ctx, acc, 0n, U64_MAX);
  // MUTANT access-replace-stale (B7, linux@f1fb745ee0a6): the old IOAS's access_list entry is never erased.
  const detach = accessDetachEvents(c.k.st, ctx, acc).filter((e) => !(isMutant('access-replace-stale') && e.type === 'AccessDetached'));
  const done = succeed(`${fn}: access ${acc.id} moved from IOAS ${cur} to ${ioasId}`, undefined, [...unpin, ...detach, ...att]);
  // MUTANT access-rw-during-change (B8): the change drops access->ioas_lock between leaving the old IOAS and joining
  // the new one, so a reader that does not take the lock sees the access attached to nothing.
  if (isMutant('access-rw-during-change')) return (function* () { yield [...unpin, ...detach]; return { ...done, events: att }; })();
  return done;
}

/**
 * `iommufd_test_access_rw`: stage the bytes in a kernel buffer (copy_from_user first for a write), run
 * `iommufd_access_rw`, and copy_to_user the buffer for a read. A failed copy leaves the user buffer untouched.
 */
export function access_rw(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_access_rw';
  const m = member(a, 'access_rw');
  const flags = m ? u32(m, 'flags') : 0, length = m ? u64(m, 'length') : 0n, iova = m ? u64(m, 'iova') : 0n, uptr = m ? u64(m, 'uptr') : 0n;
  if (length > 16n * 1024n * 1024n) return fail('ENOMEM', `${fn}: length above 16 MiB`);
  if ((flags & ~(MOCK_FLAGS_ACCESS_WRITE | MOCK_ACCESS_RW_SLOW_PATH | MOCK_FLAGS_ACCESS_SYZ)) !== 0) return fail('EOPNOTSUPP', `${fn}: flags 0x${flags.toString(16)} outside WRITE|SLOW_PATH|SYZ`);
  const acc = accessOf(c, u32(a, 'id'));
  if ('errno' in acc) return fail(acc.errno, acc.why);
  const write = (flags & MOCK_FLAGS_ACCESS_WRITE) !== 0;
  let data: Uint8Array = new Uint8Array(Number(length));
  if (write && length > 0n) {
    const r = copyFromUser(c, uptr, Number(length));
    if (!(r instanceof Uint8Array)) return fail(r.errno, `${fn}: ${r.why}`);
    data = r;
  }
  const ctx = c.k.st.ctxs.get((c.k.st.fds.get(u32(a, 'id')) as { ctx: number }).ctx)!;
  // iommufd_test_syz_conv_iova(access, ...): the converted IOVA is used, the command keeps the one given.
  const at = (flags & MOCK_FLAGS_ACCESS_SYZ) === 0 ? iova : syzConvAccess(ctx, acc.access!.ioas, iova);
  const d = mmDraft(c.k.st.mm, c.k.st.pageSize);
  const r = accessRwEvents(c.k.st, ctx, acc, at, { data, write, slowPath: (flags & MOCK_ACCESS_RW_SLOW_PATH) !== 0 }, d);
  if (!Array.isArray(r)) return fail(r.errno, r.why, r.events);
  const how = `${write ? 'wrote' : 'read'} ${length} byte(s) at IOVA 0x${iova.toString(16)}`;
  if (write) return succeed(`${fn}: ${how}`, undefined, r);
  const out = copyToUser(c, uptr, data, d);
  if (out.fault !== undefined) return fail('EFAULT', `${fn}: ${out.fault}`, [...r, ...out.events]);
  return succeed(`${fn}: ${how} into 0x${uptr.toString(16)}`, undefined, [...r, ...out.events]);
}
