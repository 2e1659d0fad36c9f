import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkInvariants } from '../../src/projections/invariants.js';
import type { State } from '../../src/projections/state.js';
import { Replayer } from '../../src/replay/engine.js';

/** The state after the first `upTo` lines of an example (which replays with no divergence). */
function stateAfter(example: string, upTo: number): State {
  const r = new Replayer();
  readFileSync(join('examples', example), 'utf8').split('\n').slice(0, upTo).forEach((l, i) => r.feedLine(l, i + 1));
  expect(r.divergences).toEqual([]);
  return r.st;
}
const names = (st: State): string[] => [...new Set(checkInvariants(st).map((v) => v.name))];

describe('revoked-unreachable', () => {
  // dmabuf-revoke.jsonl: line 10 revokes the dma-buf mapped at IOVA 0x8000000 of IOAS 1 (domain 1).
  const revoked = (): State => stateAfter('dmabuf-revoke.jsonl', 11);
  const dom = (st: State) => st.domains.get(1)!;

  it('holds once the revocation has unmapped and flushed the dead area', () => {
    const st = revoked();
    expect([...st.dmabufs.values()].some((d) => d.revoked && d.deadPages.size > 0)).toBe(true);
    expect(names(st)).toEqual([]);
  });

  it('catches a PTE left in the dead area (a revocation that does not unmap the domain, B14)', () => {
    const st = revoked();
    dom(st).map.insert(0x8000000n, 0x8000fffn, 0n);
    expect(names(st)).toContain('revoked-unreachable');
  });

  it('catches an IOTLB entry left in the dead area (unmapped but not flushed)', () => {
    const st = revoked();
    dom(st).iotlb.insert(0x8000000n, 0x80007ffn, { phys: 0n, prot: 3 });
    expect(names(st)).toContain('revoked-unreachable');
  });
});

describe('cookie-owner-live', () => {
  // viommu-hw-queue-cookie.jsonl: line 8 mmaps the vIOMMU's cookie; line 16 munmaps it, line 17 destroys the vIOMMU.
  const mapped = (): State => stateAfter('viommu-hw-queue-cookie.jsonl', 15);
  const ctx = (st: State) => st.ctxs.get(1)!;

  it('holds while the owner lives and its cookie is mapped', () => {
    const st = mapped();
    expect(ctx(st).v.vmas.size).toBe(1);
    expect(names(st)).toEqual([]);
  });

  it('catches a VMA whose owner was destroyed while mapped (its cookie gone with it)', () => {
    const st = mapped();
    const vma = [...ctx(st).v.vmas.values()][0]!;
    ctx(st).v.cookies.delete(vma.cookie);
    expect(names(st)).toContain('cookie-owner-live');
  });

  it('catches a cookie that outlives its owner', () => {
    const st = mapped();
    const c = [...ctx(st).v.cookies.values()][0]!;
    ctx(st).v.vmas.clear();
    ctx(st).objects.delete(c.owner);
    expect(names(st)).toContain('cookie-owner-live');
  });
});
