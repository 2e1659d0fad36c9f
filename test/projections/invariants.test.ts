import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../src/events/domain.js';
import { IommufdWorld, CHECK_HEADER } from '../../src/check/world.js';
import type { TraceLine } from '../../src/check/kernel.js';
import { checkInvariants, INVARIANTS, InvariantMonitor, type InvariantViolation } from '../../src/projections/invariants.js';
import { cloneState, type State } from '../../src/projections/state.js';
import { Replayer } from '../../src/replay/engine.js';

const BUF = 0x7f0000000000n;
const IOVA = 0x1000000n;
const hex = (v: bigint): string => `0x${v.toString(16)}`;
const RW = ['IOMMU_IOAS_MAP_WRITEABLE', 'IOMMU_IOAS_MAP_READABLE'];

/**
 * A state built by real calls: IOAS 1 maps 4 pages at 16 MiB; a mock device (selftest 2, device 3) attaches and gets
 * auto domain HWPT 4 (domain 1), which pins them; access 5 (fd 4) pins the second page; the device reads 512 bytes at
 * 16 MiB (an IOTLB entry); IOAS 6 is empty.
 */
const SCENARIO: TraceLine[] = [
  { op: 'open', path: '/dev/iommu', flags: ['O_RDWR'] },
  { op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_ALLOC', arg: {} },
  { op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_MAP', arg: { flags: ['IOMMU_IOAS_MAP_FIXED_IOVA', ...RW], ioas_id: 1, user_va: hex(BUF), length: 16384, iova: hex(IOVA) } },
  { op: 'ioctl', fd: 3, cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MOCK_DOMAIN', id: 1, mock_domain: {} }, out: { mock_domain: { out_stdev_id: '$stdev2' } } },
  { op: 'ioctl', fd: 3, cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_CREATE_ACCESS', id: 1, create_access: { flags: 1 } } },
  { op: 'ioctl', fd: 3, cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_ACCESS_PAGES', id: 4, access_pages: { iova: hex(IOVA + 4096n), length: 4096 } } },
  { op: 'dma', dev: '$stdev2', iova: hex(IOVA), length: 512, write: false },
  { op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_ALLOC', arg: {} },
];

function build(lines: readonly TraceLine[] = SCENARIO): { st: State; world: IommufdWorld } {
  const world = new IommufdWorld({ replayHeader: CHECK_HEADER });
  lines.forEach((l, i) => {
    const op = world.issueLine(1, l, { kind: 'open', ctx: undefined, ioas: [] }, i + 2);
    while (op.step() === 'more');
  });
  expect(world.failure).toBeUndefined();
  return { st: world.st, world };
}

const names = (vs: readonly InvariantViolation[]): string[] => [...new Set(vs.map((v) => v.name))];
const ioas = (st: State, id = 1) => st.ctxs.get(1)!.objects.get(id)!.ioas!;
const obj = (st: State, id: number) => st.ctxs.get(1)!.objects.get(id)!;
const area = (st: State) => ioas(st).iopt.areas.first()!.value;
const pages = (st: State) => st.pages.get(area(st).pages)!;
const domain = (st: State) => st.domains.get(ioas(st).iopt.domains[0]!)!;

describe('the scenario the invariant tests break', () => {
  it('keeps every invariant', () => {
    const { st } = build();
    expect(checkInvariants(st)).toEqual([]);
    expect(obj(st, 4).hwpt?.auto).toBe(true);
    expect(obj(st, 5).access?.items.size).toBe(1);
    expect(domain(st).iotlb.isEmpty).toBe(false);
  });
});

/** Each case breaks the built state by hand; the named invariant must say so. */
const BROKEN: readonly [string, string, (st: State) => void][] = [
  ['areas-disjoint', 'an area overlapping another', (st) => {
    const i = ioas(st).iopt, a = area(st);
    i.areaById.set(99, i.areas.insert(a.start + 4096n, a.last + 4096n, { ...a, id: 99 }));
  }],
  ['areas-outside-reserved', 'a reserved range over an area', (st) => void ioas(st).iopt.reserved.insert(IOVA, IOVA, '')],
  ['iova-alignment', 'an alignment no domain or access asks for', (st) => { ioas(st).iopt.iovaAlignment = 1n << 20n; }],
  ['domain-owner', 'a domain listed twice', (st) => void ioas(st).iopt.domains.push(ioas(st).iopt.domains[0]!)],
  ['domain-owner', 'a domain in no IOAS', (st) => void ioas(st).iopt.domains.pop()],
  ['hwpt-list-set', 'a HWPT listed twice (B9)', (st) => void ioas(st).hwpts.push(4)],
  ['hwpt-list-set', 'a destroyed HWPT still listed', (st) => void ioas(st, 6).hwpts.push(77)],
  ['access-one-ioas', 'an access left in a second IOAS\'s list (B7)', (st) => void ioas(st, 6).iopt.accesses.set(5, 4096n)],
  ['area-pages-live', 'an area whose iopt_pages were released', (st) => void st.pages.delete(area(st).pages)],
  ['area-pages-live', 'a kref held past its call', (st) => { pages(st).refs++; }],
  ['fill-index', 'a fill count no area explains', (st) => pages(st).fillUsers.add(0, 0, 1)],
  ['access-index', 'an access count no pin item explains', (st) => pages(st).accessUsers.add(2, 2, 1)],
  ['access-index', 'num_accesses off by one', (st) => { area(st).numAccesses++; }],
  ['pin-conservation', 'a used page that is not pinned (B2)', (st) => pages(st).pinned.add(0, 0, -1)],
  ['pin-conservation', 'a frame pinned once too often', (st) => st.mm.pins.add(pages(st).frames.get(0)!, pages(st).frames.get(0)!, 1)],
  ['accounting-balance', 'pinned_vm charged for a page nobody pins', (st) => { st.accounting.pinnedVm++; }],
  ['dma-pte-sound', 'a PTE no area covers', (st) => void domain(st).map.insert(0x8000000n, 0x8000fffn, 0n)],
  ['dma-pte-sound', 'a PTE onto the wrong frame', (st) => {
    const m = domain(st).map, n = m.first()!;
    m.remove(n);
    m.insert(n.start, n.last, n.value + 4096n * 1000n);
  }],
  ['dma-pte-complete', 'a published area missing from the domain', (st) => void domain(st).map.remove(domain(st).map.first()!)],
  ['iotlb-coherent', 'an IOTLB entry its page table does not back', (st) => void domain(st).iotlb.insert(0x9000000n, 0x90007ffn, { phys: 0n, prot: 3 })],
  ['refs-live', 'a reference on a destroyed object', (st) => void obj(st, 5).holds.push(77)],
  ['users-balance', 'a leaked users reference', (st) => { obj(st, 1).users++; }],
  ['auto-domain-in-use', 'an auto domain without a device', (st) => {
    obj(st, 3).idev!.attached.delete(0);
    obj(st, 3).users--;
    obj(st, 4).users--;
    obj(st, 3).holds.splice(obj(st, 3).holds.indexOf(4), 1);
  }],
];

describe('each invariant catches a broken state', () => {
  for (const [name, what, breakIt] of BROKEN)
    it(`${name} catches ${what}`, () => {
      const { st } = build();
      breakIt(st);
      const v = checkInvariants(st);
      expect(names(v)).toContain(name);
      const one = v.find((x) => x.name === name)!;
      expect(one.rule).toMatch(/\.c /);
      expect(one.message.length).toBeGreaterThan(10);
    });

  it('freed-at-one catches an object destroyed while others hold it (B1)', () => {
    const { st } = build();
    const m = new InvariantMonitor(st);
    expect(names(m.before(st, { type: 'ObjectDestroyed', ctx: 1, id: 1 }))).toEqual(['freed-at-one']);
    expect(m.before(st, { type: 'ObjectDestroyed', ctx: 1, id: 6 })).toEqual([]);
  });

  it('unpin-after-unmap catches pages unpinned while a domain still maps them', () => {
    const { st } = build();
    const m = new InvariantMonitor(st);
    const ev: DomainEvent = { type: 'PagesUnpinned', pages: area(st).pages, start: 2, last: 3 };
    expect(names(m.after(st, ev))).toEqual(['unpin-after-unmap']);
  });

  it('unpin-after-unmap catches pages unpinned before the IOTLB flush', () => {
    const { st } = build();
    const d = domain(st);
    for (const n of [...d.map.inOrder()]) d.map.remove(n);
    const m = new InvariantMonitor(st);
    const v = m.after(st, { type: 'PagesUnpinned', pages: area(st).pages, start: 0, last: 0 });
    expect(names(v)).toEqual(['unpin-after-unmap']);
    expect(v[0]!.message).toMatch(/IOTLB/);
  });

  it('unpin-after-unmap catches a frame losing its last pin while an IOTLB entry reaches it', () => {
    const { st } = build();
    const f = pages(st).frames.get(0)!;
    st.mm.pins.add(f, f, -st.mm.pins.get(f));
    const m = new InvariantMonitor(st);
    expect(names(m.after(st, { type: 'FramesUnpinned', frame: f, count: 1 }))).toEqual(['unpin-after-unmap']);
  });

  it('prevent-access-sticky catches prevent_access cleared', () => {
    const { st } = build();
    const prev = cloneState(st);
    ioas(prev).iopt.areas.first()!.value.preventAccess = true;
    expect(names(checkInvariants(st, prev))).toEqual(['prevent-access-sticky']);
  });

  it('documents every invariant with its kernel rule', () => {
    for (const i of INVARIANTS) {
      expect(i.rule).toMatch(/\.(c|ts)[ :]/);
      expect(i.doc.length).toBeGreaterThan(20);
    }
    expect(new Set(INVARIANTS.map((i) => i.name)).size).toBe(INVARIANTS.length);
  });
});

describe('the incremental monitor', () => {
  it('sees what a step touched and nothing else', () => {
    const { st } = build();
    const m = new InvariantMonitor(st);
    expect(m.endStep(st)).toEqual([]);
    // Broken outside what the next step touches: not seen; then touched: seen.
    obj(st, 1).users++;
    expect(m.endStep(st)).toEqual([]);
    m.before(st, { type: 'ObjectRefTaken', ctx: 1, id: 6, by: 0 });
    expect(m.endStep(st)).toEqual([]);
    m.before(st, { type: 'ObjectRefTaken', ctx: 1, id: 1, by: 0 });
    expect(names(m.endStep(st))).toEqual(['users-balance']);
  });

  it('allows temporary references between the steps of an operation in flight', () => {
    const { st } = build();
    obj(st, 1).users++;
    expect(names(checkInvariants(st))).toEqual(['users-balance']);
    expect(checkInvariants(st, undefined, { quiescent: false })).toEqual([]);
  });
});

function walk(d: string): string[] {
  return readdirSync(d).sort().flatMap((n) => {
    const p = join(d, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.jsonl') ? [p] : [];
  });
}

describe('real traces', () => {
  it('keep every invariant, checked in full and incrementally, line by line (the conformance corpus)', () => {
    const files = [...walk(new URL('../../../shared/conformance', import.meta.url).pathname), ...walk(new URL('../../examples', import.meta.url).pathname)];
    expect(files.length).toBeGreaterThan(50);
    const bad: string[] = [];
    for (const f of files) {
      let st: State | undefined;
      let m: InvariantMonitor | undefined;
      let prev: DomainEvent | undefined;
      const seen: InvariantViolation[] = [];
      // The sink sees each event before it is folded, so the previous one has been folded by then.
      const r = new Replayer((e) => {
        if (m !== undefined && prev !== undefined) seen.push(...m.after(st!, prev));
        if (m !== undefined) seen.push(...m.before(st!, e.ev));
        prev = e.ev;
      });
      st = r.st;
      m = new InvariantMonitor(st);
      const lines = readFileSync(f, 'utf8').split('\n');
      for (let i = 0; i < lines.length && seen.length === 0; i++) {
        r.feedLine(lines[i]!, i + 1);
        if (prev !== undefined) seen.push(...m.after(st, prev));
        prev = undefined;
        seen.push(...m.endStep(st));
        // The full O(state) check too, every few lines of the short traces.
        if (seen.length === 0 && lines.length < 2000 && i % 7 === 0) seen.push(...checkInvariants(st));
        if (seen.length > 0) bad.push(`${f}:${i + 1}: ${seen.map((v) => `${v.name}: ${v.message}`).join(' | ')}`);
      }
      if (seen.length === 0) {
        const end = checkInvariants(st);
        if (end.length > 0) bad.push(`${f}: at the end: ${end.map((v) => `${v.name}: ${v.message}`).join(' | ')}`);
      }
    }
    expect(bad).toEqual([]);
  }, 120_000);
});
