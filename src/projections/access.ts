/**
 * The projected state of iommufd accesses (device.c `iommufd_access_*`): which IOAS an access is attached to, the
 * page ranges each of its pin items holds, and the per-area and per-page counts those pins raise.
 */
import type { DomainEvent } from '../events/domain.js';
import type { IommufdCtx, State } from './state.js';

export interface AccessPiece { readonly area: number; readonly pages: number; readonly start: number; readonly last: number }
export interface AccessItem { readonly iova: bigint; readonly length: bigint; readonly pieces: readonly AccessPiece[] }
export interface AccessData {
  ioas: number;
  readonly needsPinPages: boolean;
  readonly items: Map<number, AccessItem>;
  nextItem: number;
}

export type AccessEvent = Extract<DomainEvent, { type: 'AccessInitialized' | 'AccessAttached' | 'AccessDetached' | 'AccessPinned' | 'AccessUnpinned' | 'AreaAccessPrevented' }>;

function ioptOf(c: IommufdCtx, ioas: number) {
  const i = c.objects.get(ioas)?.ioas?.iopt;
  if (i === undefined) throw new Error(`object ${ioas} is not an IOAS`);
  return i;
}

export function accessEvolve(st: State, c: IommufdCtx, ev: AccessEvent): void {
  switch (ev.type) {
    case 'AccessInitialized': {
      const o = c.objects.get(ev.id);
      if (o === undefined) throw new Error(`no object ${ev.id}`);
      o.access = { ioas: 0, needsPinPages: ev.needsPinPages, items: new Map(), nextItem: 0 };
      return;
    }
    case 'AccessAttached':
    case 'AccessDetached': {
      const a = c.objects.get(ev.id)?.access;
      if (a === undefined) throw new Error(`object ${ev.id} is not an access`);
      const i = ioptOf(c, ev.ioas);
      if (ev.type === 'AccessAttached') {
        i.accesses.set(ev.id, ev.alignment);
        a.ioas = ev.ioas;
      } else {
        if (!i.accesses.delete(ev.id)) throw new Error(`access ${ev.id} is not attached to IOAS ${ev.ioas}`);
        if (a.ioas === ev.ioas) a.ioas = 0;
      }
      i.iovaAlignment = ev.iovaAlignment;
      return;
    }
    case 'AccessPinned':
    case 'AccessUnpinned': {
      const a = c.objects.get(ev.id)?.access;
      if (a === undefined) throw new Error(`object ${ev.id} is not an access`);
      const item = ev.type === 'AccessPinned' ? { iova: ev.iova, length: ev.length, pieces: ev.pieces } : a.items.get(ev.item);
      if (item === undefined) throw new Error(`access ${ev.id} has no item ${ev.item}`);
      const d = ev.type === 'AccessPinned' ? 1 : -1;
      const iopt = ioptOf(c, a.ioas);
      for (const p of item.pieces) {
        const area = iopt.areaById.get(p.area)?.value;
        if (area !== undefined) area.numAccesses += d;
        st.pages.get(p.pages)?.accessUsers.add(p.start, p.last, d);
      }
      if (ev.type === 'AccessPinned') {
        a.items.set(ev.item, item);
        if (ev.item >= a.nextItem) a.nextItem = ev.item + 1;
      } else a.items.delete(ev.item);
      return;
    }
    case 'AreaAccessPrevented': {
      const area = ioptOf(c, ev.ioas).areaById.get(ev.area)?.value;
      if (area === undefined) throw new Error(`no area ${ev.area}`);
      area.preventAccess = true;
      return;
    }
  }
}

export const cloneAccess = (a: AccessData): AccessData => ({ ...a, items: new Map(a.items) });
