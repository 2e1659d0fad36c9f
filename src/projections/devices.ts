/**
 * The projected state of devices, HW page tables and selftest objects (device.c, hw_pagetable.c, selftest.c) and
 * the folding of their events. A group's attachment (`igroup->pasid_attach`) is not stored: it is read off the
 * attachments of the group's devices, which are the single record of who is attached where.
 */
import type { DomainEvent } from '../events/domain.js';
import type { IommufdCtx, KObject } from './state.js';

export interface HwptData {
  readonly ioas: number;
  readonly domain: number;
  readonly auto: boolean;
  readonly nestParent: boolean;
  readonly pasidCompat: boolean;
}
export interface IdevData {
  readonly dev: string;
  readonly group: string;
  readonly mock: boolean;
  readonly dirtyCapable: boolean;
  readonly pasidBits: number;
  /** pasid → HWPT id. */
  readonly attached: Map<number, number>;
  /** The mock device's cache words (IOMMU_TEST_DEV_CACHE_DEFAULT until a vIOMMU invalidates them). */
  readonly cache: number[];
  /** A platform device's IOMMU: what its paging domains look like, and its reserved regions. */
  readonly pgsizeBitmap: bigint;
  readonly apertureStart: bigint;
  readonly apertureLast: bigint;
  readonly resv: readonly { readonly start: bigint; readonly last: bigint }[];
}
export const IOMMU_TEST_DEV_CACHE_DEFAULT = 0xbaddad;
export interface StdevData {
  readonly idev: number;
  readonly mockDev: number;
}

export type DeviceEvent = Extract<DomainEvent, { type: 'HwptInitialized' | 'DeviceBound' | 'SelftestInitialized' | 'DeviceAttached' | 'DeviceDetached' }>;

function obj(c: IommufdCtx, id: number): KObject {
  const o = c.objects.get(id);
  if (o === undefined) throw new Error(`no object ${id} in context ${c.id}`);
  return o;
}

export function devicesEvolve(c: IommufdCtx, ev: DeviceEvent): void {
  switch (ev.type) {
    case 'HwptInitialized': {
      obj(c, ev.id).hwpt = { ioas: ev.ioas, domain: ev.domain, auto: ev.auto, nestParent: ev.nestParent, pasidCompat: ev.pasidCompat };
      const ioas = obj(c, ev.ioas).ioas;
      if (ioas === undefined) throw new Error(`object ${ev.ioas} is not an IOAS`);
      ioas.hwpts.push(ev.id);
      return;
    }
    case 'DeviceBound':
      obj(c, ev.id).idev = {
        dev: ev.dev, group: ev.group, mock: ev.mock, dirtyCapable: ev.dirtyCapable, pasidBits: ev.pasidBits, attached: new Map(),
        cache: ev.mock ? [IOMMU_TEST_DEV_CACHE_DEFAULT, IOMMU_TEST_DEV_CACHE_DEFAULT, IOMMU_TEST_DEV_CACHE_DEFAULT, IOMMU_TEST_DEV_CACHE_DEFAULT] : [],
        pgsizeBitmap: ev.pgsizeBitmap, apertureStart: ev.apertureStart, apertureLast: ev.apertureLast, resv: ev.resv,
      };
      return;
    case 'SelftestInitialized':
      obj(c, ev.id).stdev = { idev: ev.idev, mockDev: ev.mockDev };
      return;
    case 'DeviceAttached': {
      const d = obj(c, ev.idev).idev;
      if (d === undefined || d.attached.has(ev.pasid)) throw new Error(`device ${ev.idev} cannot attach at pasid ${ev.pasid}`);
      d.attached.set(ev.pasid, ev.hwpt);
      return;
    }
    case 'DeviceDetached': {
      const d = obj(c, ev.idev).idev;
      if (d === undefined || !d.attached.delete(ev.pasid)) throw new Error(`device ${ev.idev} is not attached at pasid ${ev.pasid}`);
      return;
    }
  }
}

/** When a HWPT leaves the table it leaves its IOAS's hwpt_list too. */
export function forgetHwpt(c: IommufdCtx, o: KObject): void {
  if (o.hwpt === undefined) return;
  const ioas = c.objects.get(o.hwpt.ioas)?.ioas;
  const at = ioas?.hwpts.indexOf(o.id) ?? -1;
  if (at >= 0) ioas!.hwpts.splice(at, 1);
}

/** The devices of `group` in this context and the HWPT the group has at `pasid`, if any. */
export function groupAttachment(c: IommufdCtx, group: string, pasid: number): { hwpt: number | undefined; devices: number[] } {
  let hwpt: number | undefined;
  const devices: number[] = [];
  for (const o of c.objects.values()) {
    const h = o.idev?.attached.get(pasid);
    if (o.idev?.group === group && h !== undefined) {
      hwpt = h;
      devices.push(o.id);
    }
  }
  return { hwpt, devices: devices.sort((a, b) => a - b) };
}
