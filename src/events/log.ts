/**
 * The event log on disk: JSON Lines, one `LogEntry` per line, its event's fields flattened beside `n`, `line` and
 * `tid`. u64 values are written as hex strings (JSON numbers would round them) and revived by the event type's
 * list of bigint fields, so decoding a written log gives back entries equal to the ones written.
 */
import { MM_EVENT_TYPES } from '../hw/mm.js';
import { V_OBJECT_EVENT_TYPES } from '../projections/viommu.js';
import { BIGINT_FIELDS, RANGE_LIST_FIELDS, type DomainEvent, type LogEntry } from './domain.js';
import { bad, ok, show, type Decoded } from './values.js';

const replacer = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v);

export function encodeEntry(e: LogEntry): string {
  return JSON.stringify({ n: e.n, line: e.line, tid: e.tid, ...e.ev }, replacer);
}

const TYPES = new Set<string>([
  ...MM_EVENT_TYPES,
  'TraceStarted', 'FdInstalled', 'FdClosed', 'IommufdOpened', 'IommufdReleased', 'ObjectAllocated', 'ObjectFinalized',
  'ObjectAborted', 'ObjectDestroyed', 'ObjectRefTaken', 'ObjectRefDropped', 'AccountModeSet', 'IoasLargePagesSet', 'VfioIoasSet', 'VmaMapped', 'VmaUnmapped',
  'MemfdCreated', 'MemfdResized', 'CallCompleted', 'Diverged', 'InvariantViolated', 'PagesCreated', 'PagesReleased', 'PagesRefTaken', 'PagesRefDropped', 'AreaFilled', 'AreaUnfilled', 'PagesPinned',
  'PagesUnpinned', 'AccountingCharged', 'AccountingUncharged', 'AreaReserved', 'AreaPublished', 'AreaSplit',
  'AreaUnpublished', 'AreaRemoved', 'AllowedIovasSet', 'ReservedAdded', 'ReservedRemoved', 'TestMemoryLimitSet', 'DomainAllocated', 'DomainFreed', 'DomainMapped', 'DomainUnmapped', 'DomainDirtyTrackingSet', 'DomainDirtied', 'DomainDirtyCleared', 'IotlbFilled', 'IotlbFlushed', 'DmaCompleted', 'IoPageFault',
  'IoptDomainAdded', 'IoptDomainRemoved', 'HwptInitialized', 'DeviceBound', 'CtxRefTaken', 'CtxRefDropped', 'VfioDeviceBound', 'VfioDeviceUnbound', 'VfioGroupContainerSet', 'VfioGroupContainerUnset', 'AccessInitialized', 'AccessAttached', 'AccessDetached',
  'AccessPinned', 'AccessUnpinned', 'AreaAccessPrevented', 'SelftestInitialized', 'DeviceAttached', 'DeviceDetached',
  ...V_OBJECT_EVENT_TYPES, 'DmabufExported', 'Revoke', 'P2pUnmap',
  'VfioContainerOpened', 'VfioContainerGroupAdded', 'VfioContainerGroupRemoved', 'Type1IommuOpened', 'Type1IommuReleased',
  'Type1DomainAttached', 'Type1DomainDetached', 'VfioDmaLinked', 'VfioDmaRemoved', 'LockedVmAccounted', 'StaleDeviceMapping',
  'VfioDmaVaddrInvalidated', 'VfioDmaVaddrUpdated', 'VfioPciMemoryDecodeSet',
  'Type1DirtyTrackingSet', 'VfioDmaBitmapReported', 'Type1EmulatedGroupAdded', 'Type1EmulatedGroupRemoved', 'VfioPfnPinned',
  'VfioPfnRefChanged', 'VfioPfnUnpinned', 'VfioDmaOwnerChanged', 'VfioDmaPinsSet', 'VfioDmaDirtied', 'MdevDriverPins', 'ProcessExeced',
] satisfies DomainEvent['type'][]);

/** Decodes one log line; errors are values with the JSON path, like trace errors. */
export function decodeEntry(text: string): Decoded<LogEntry> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return bad('', `malformed JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('', `expected a log entry object, got ${show(raw)}`);
  const { n, line, tid, ...ev } = raw as Record<string, unknown>;
  for (const [k, v] of [['n', n], ['line', line], ['tid', tid]] as const)
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return bad(k, `expected a non-negative integer, got ${show(v)}`);
  const type = ev.type;
  if (typeof type !== 'string' || !TYPES.has(type as DomainEvent['type'])) return bad('type', `unknown event type ${show(type)}`);
  for (const f of BIGINT_FIELDS[type as DomainEvent['type']] ?? []) {
    const v = ev[f];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !/^0x[0-9a-f]+$/.test(v)) return bad(f, `expected a hex u64, got ${show(v)}`);
    ev[f] = BigInt(v);
  }
  for (const f of RANGE_LIST_FIELDS[type as DomainEvent['type']] ?? []) {
    const v = ev[f];
    if (!Array.isArray(v)) return bad(f, `expected an array of ranges, got ${show(v)}`);
    const out: { start: bigint; last: bigint }[] = [];
    for (let i = 0; i < v.length; i++) {
      const r: unknown = v[i];
      const s = (r as { start?: unknown } | null)?.start, l = (r as { last?: unknown } | null)?.last;
      if (typeof s !== 'string' || typeof l !== 'string' || !/^0x[0-9a-f]+$/.test(s) || !/^0x[0-9a-f]+$/.test(l))
        return bad(`${f}[${i}]`, `expected {"start","last"} hex u64s, got ${show(r)}`);
      out.push({ start: BigInt(s), last: BigInt(l) });
    }
    ev[f] = out;
  }
  return ok({ n: n as number, line: line as number, tid: tid as number, ev: ev as unknown as DomainEvent });
}
