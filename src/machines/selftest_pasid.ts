/**
 * The selftest's PASID ops (drivers/iommu/iommufd/selftest.c `iommufd_test_pasid_attach`, `_replace`, `_detach`,
 * `_check_hwpt`): a mock device attached, replaced and detached at a PASID through the same core paths a VFIO
 * device uses (device.c `iommufd_device_attach`/`_replace`/`_detach`), and a query of what a PASID is attached to.
 */
import type { DomainEvent } from '../events/domain.js';
import { isFailure } from '../hw/iopt_ops.js';
import type { KObject } from '../projections/state.js';
import { fail, member, respond, succeed, u32, unmodelled, type Arg, type Call, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';
import { attachPt, detachEvents, replacePt } from './device.js';

const IOMMU_TEST_PASID_RESERVED = 1024;

/** `iommufd_test_get_selftest_obj`: ENOENT for no object, EINVAL for an object of another kind. */
function selftestIdev(c: Call, a: Arg, fn: string): KObject | Step {
  const id = u32(a, 'id');
  const o = getObject(c.ctx, id, 'ANY');
  if (o === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, id, 'SELFTEST')}`);
  if (o.kind !== 'SELFTEST') return fail('EINVAL', `${fn}: object ${id} is a ${o.kind}, not a selftest object`);
  return c.ctx.objects.get(o.stdev!.idev)!;
}

function changePt(c: Call, a: Arg, mode: 'attach' | 'replace'): Step {
  const fn = `selftest.c iommufd_test_pasid_${mode}`;
  const idev = selftestIdev(c, a, fn);
  if (!('id' in idev)) return idev;
  const name = mode === 'attach' ? 'pasid_attach' : 'pasid_replace';
  const m = member(a, name);
  const pasid = m ? u32(m, 'pasid') : 0, ptId = m ? u32(m, 'pt_id') : 0;
  const r = (mode === 'attach' ? attachPt : replacePt)(c.k.st, c.k.header, c.ctx, idev, pasid, ptId, c.ctx.ids.clone());
  if ('unmodelled' in r) return unmodelled(r.unmodelled);
  if (isFailure(r)) return fail(r.errno, r.why);
  const events = [...r.events];
  if (pasid === IOMMU_TEST_PASID_RESERVED && events.some((e) => e.type === 'DeviceAttached')) {
    // mock_domain_set_dev_pasid_nop fails every second non-blocking set at PASID 1024, and the core rolls back.
    const armed = c.ctx.v.pasidFakeError.has(idev.id);
    const flip: DomainEvent = { type: 'MockPasidFakeErrorSet', ctx: c.ctx.id, idev: idev.id, armed: !armed };
    if (armed) return fail('ENOMEM', 'selftest.c mock_domain_set_dev_pasid_nop: the second set_dev_pasid at pasid 1024 fakes a failure', [flip]);
    events.push(flip);
  }
  return succeed(`${fn}: device ${idev.id} at pasid ${pasid} uses HWPT ${r.hwpt}`, respond(a, { [name]: { pasid: BigInt(pasid), pt_id: BigInt(r.hwpt) } }), events);
}

export const pasid_attach = (c: Call, a: Arg): Step => changePt(c, a, 'attach');
export const pasid_replace = (c: Call, a: Arg): Step => changePt(c, a, 'replace');

/** `iommufd_test_pasid_detach`: detaching a PASID that is not attached is a no-op that succeeds. */
export function pasid_detach(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_pasid_detach';
  const idev = selftestIdev(c, a, fn);
  if (!('id' in idev)) return idev;
  const m = member(a, 'pasid_detach');
  const pasid = m ? u32(m, 'pasid') : 0;
  const events = detachEvents(c.k.st, c.ctx, idev, pasid);
  // The blocked domain's set_dev_pasid clears the mock's fake-error flag.
  if (pasid === IOMMU_TEST_PASID_RESERVED && events.length > 0 && c.ctx.v.pasidFakeError.has(idev.id))
    events.push({ type: 'MockPasidFakeErrorSet', ctx: c.ctx.id, idev: idev.id, armed: false });
  return succeed(`${fn}: device ${idev.id} detached at pasid ${pasid}`, undefined, events);
}

/** `iommufd_test_pasid_check_hwpt`: hwpt_id 0 asks that nothing is attached; else that exactly that HWPT's domain is. */
export function pasid_check_hwpt(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_pasid_check_hwpt';
  const idev = selftestIdev(c, a, fn);
  if (!('id' in idev)) return idev;
  const m = member(a, 'pasid_check');
  const pasid = m ? u32(m, 'pasid') : 0, hwptId = m ? u32(m, 'hwpt_id') : 0;
  const at = idev.idev!.attached.get(pasid);
  const domain = at === undefined ? undefined : c.ctx.objects.get(at)?.hwpt?.domain;
  if (hwptId === 0) {
    if (domain !== undefined) return fail('EINVAL', `${fn}: pasid ${pasid} is attached to HWPT ${at}`);
    return succeed(`${fn}: nothing is attached at pasid ${pasid}`);
  }
  const h = getObject(c.ctx, hwptId, ['HWPT_PAGING', 'HWPT_NESTED']);
  if (h === undefined) return fail('ENOENT', `${fn}: iommufd_get_hwpt: ${lookupWhy(c.ctx, hwptId, ['HWPT_PAGING', 'HWPT_NESTED'])}`);
  if (domain !== h.hwpt!.domain) return fail('EINVAL', `${fn}: pasid ${pasid} has ${at === undefined ? 'no domain' : `HWPT ${at}'s domain`}, not HWPT ${hwptId}'s`);
  return succeed(`${fn}: pasid ${pasid} uses HWPT ${hwptId}'s domain`);
}
