/**
 * The choices a checker command names instead of ids, IOVAs and fds ("the 3rd IOAS", "the 2nd area + 1 page",
 * syzkaller's trick), and how they resolve against the live state; shared by every command family (commands.ts,
 * commands_type1.ts, commands_dev.ts).
 */
import fc from 'fast-check';
import type { Area } from '../hw/io_pagetable.js';
import { S_FINALIZED } from '../machines/lifecycle.js';
import type { IommufdCtx, KObject, State } from '../projections/state.js';
import { PAGE, U64_MAX } from './buffers.js';
import type { TraceLine } from './kernel.js';

/** IOVAs worth trying: page 0, the mock aperture's edges, 4 GiB, the top of the address space. */
export const IOVA_CONSTS: readonly bigint[] = [
  1n << 24n, 0n, (1n << 24n) + (1n << 20n), PAGE, 1n << 28n, (1n << 31n) - 16n * PAGE, 1n << 32n, 1n << 25n, 1n << 40n, 1n << 63n,
  U64_MAX - (2n << 20n) + 1n, U64_MAX - 16n * PAGE + 1n, U64_MAX - 4n * PAGE + 1n, 0x10000n,
];

/** Where an IOVA comes from: the `n`th area of the IOAS plus `off` pages, the byte after it, or a constant. */
export type IovaPick =
  | { readonly k: 'area'; readonly n: number; readonly off: number }
  | { readonly k: 'end'; readonly n: number }
  | { readonly k: 'const'; readonly i: number };

export const sel = fc.nat({ max: 15 });
export const iovaPick: fc.Arbitrary<IovaPick> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant('area' as const), n: sel, off: fc.nat({ max: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('end' as const), n: sel }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('const' as const), i: fc.nat({ max: IOVA_CONSTS.length - 1 }) }) },
);

export const hex = (v: bigint): string => `0x${v.toString(16)}`;
export const finalized = (c: IommufdCtx, pred: (o: KObject) => boolean): KObject[] =>
  [...c.objects.values()].filter((o) => o.life === S_FINALIZED && pred(o)).sort((a, b) => a.id - b.id);
export const pick = <T>(xs: readonly T[], n: number): T | undefined => (xs.length === 0 ? undefined : xs[n % xs.length]);
/** The id of the `n`th live object, or a small id that is probably not one (ENOENT paths) when there is none. */
export const idOf = (xs: readonly KObject[], n: number): number => pick(xs, n)?.id ?? 1 + (n % 4);

export function areasOf(c: IommufdCtx | undefined, ioas: number): Area[] {
  const i = c?.objects.get(ioas)?.ioas?.iopt;
  return i === undefined ? [] : [...i.areas.inOrder()].map((n) => n.value);
}

/** Pages into an area an `area` pick lands: inside it for small offsets, possibly past its end for large ones. */
const offPages = (a: Area, off: number): bigint => {
  const n = (a.last - a.start) / PAGE + 1n;
  return off < 6 ? BigInt(off) % n : BigInt(off);
};

export function resolveIova(p: IovaPick, areas: readonly Area[]): bigint {
  switch (p.k) {
    case 'area': {
      const a = pick(areas, p.n);
      return a === undefined ? IOVA_CONSTS[p.n % IOVA_CONSTS.length]! : (a.start + offPages(a, p.off) * PAGE) & U64_MAX;
    }
    case 'end': {
      const a = pick(areas, p.n);
      return a === undefined ? IOVA_CONSTS[p.n % IOVA_CONSTS.length]! : a.last + 1n > U64_MAX ? a.start : a.last + 1n;
    }
    case 'const':
      return IOVA_CONSTS[p.i % IOVA_CONSTS.length]!;
  }
}

/**
 * A length of `pages` pages from an IOVA picked inside an area, cut to what is left of the area most of the time
 * (a walk past the area is ENOENT unless the next area is adjacent, which is worth trying too: odd page counts).
 */
export function fitLength(p: IovaPick, areas: readonly Area[], pages: number): bigint {
  const want = BigInt(pages) * PAGE;
  if (p.k !== 'area' || pages % 2 === 1) return want;
  const a = pick(areas, p.n);
  if (a === undefined) return want;
  const from = (a.start + offPages(a, p.off) * PAGE) & U64_MAX;
  if (from > a.last) return want;
  const left = a.last - from + 1n;
  return left < want ? left : want;
}

export const ioctl = (fd: number, cmd: string, arg: Record<string, unknown>): TraceLine => ({ op: 'ioctl', fd, cmd, arg });
/** The open iommufd fds, lowest first. */
export function iommufdFds(st: State): { fd: number; ctx: IommufdCtx }[] {
  const out: { fd: number; ctx: IommufdCtx }[] = [];
  for (const [fd, f] of [...st.fds].sort((a, b) => a[0] - b[0]))
    if (f.kind === 'iommufd') {
      const ctx = st.ctxs.get(f.ctx);
      if (ctx !== undefined) out.push({ fd, ctx });
    }
  return out;
}
