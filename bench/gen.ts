/**
 * Deterministic generators of large traces for `npm run bench`. A tiny shadow of the kernel rules (lowest-free
 * ids, ENOENT for dead ids) writes the observed outcomes, so a correct model replays the trace with no divergence:
 * the bench checks that too, so a fast but wrong replay cannot pass for a fast one.
 */
import { createWriteStream } from 'node:fs';

/** xorshift32: a seeded generator, so the same bench input every run (no Math.random anywhere). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

/** A trace of `events` calls to the ioctls issue #2 models: IOAS alloc/destroy churn, options, ranges, compat IOAS. */
export async function writeObjectChurn(path: string, events: number, seed = 1): Promise<void> {
  const out = createWriteStream(path);
  const write = (o: object): void => { if (!out.write(`${JSON.stringify(o)}\n`)) pending = true; };
  let pending = false;
  const r = rng(seed);
  write({ iotrail: 1, page_size: 4096, iommufd_test: true, memory: 'implicit', source: `bench: object churn, ${events} events, seed ${seed}` });
  write({ op: 'open', path: '/dev/iommu', flags: ['O_RDWR'], ret: 3 });
  const live: number[] = [];
  const free: number[] = [];
  let next = 1;
  const lowest = (): number => (free.length ? free.reduce((a, b) => Math.min(a, b)) : next);
  for (let i = 1; i < events; i++) {
    const p = r();
    if (p < 0.35 && live.length < 2000) {
      const id = lowest();
      if (id === next) next++; else free.splice(free.indexOf(id), 1);
      live.push(id);
      write({ op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: id } });
    } else if (p < 0.6 && live.length > 0) {
      const k = Math.floor(r() * live.length);
      const id = live[k]!;
      live[k] = live[live.length - 1]!;
      live.pop();
      free.push(id);
      write({ op: 'ioctl', fd: 3, cmd: 'IOMMU_DESTROY', arg: { id }, ret: 0 });
    } else if (p < 0.7) {
      write({ op: 'ioctl', fd: 3, cmd: 'IOMMU_DESTROY', arg: { id: next + 7 }, errno: 'ENOENT' });
    } else if (p < 0.8 && live.length > 0) {
      const id = live[Math.floor(r() * live.length)]!;
      write({ op: 'ioctl', fd: 3, cmd: 'IOMMU_OPTION', arg: { option_id: 'IOMMU_OPTION_HUGE_PAGES', op: 'IOMMU_OPTION_OP_GET', object_id: id }, ret: 0, out: { val64: 1 } });
    } else if (p < 0.9 && live.length > 0) {
      const id = live[Math.floor(r() * live.length)]!;
      write({ op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_IOVA_RANGES', arg: { ioas_id: id, num_iovas: 1, allowed_iovas: '0x7f0000000000' }, ret: 0, out: { num_iovas: 1, out_iova_alignment: 1 } });
    } else {
      write({ op: 'ioctl', fd: 3, cmd: 'IOMMU_OPTION', arg: { option_id: 'IOMMU_OPTION_RLIMIT_MODE', op: 'IOMMU_OPTION_OP_GET' }, ret: 0, out: { val64: 0 } });
    }
    if (pending) {
      pending = false;
      await new Promise<void>((res) => out.once('drain', () => res()));
    }
  }
  await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
}

/**
 * A map/unmap churn of `events` calls on one IOAS with a mock domain attached (so every map pins and maps into the
 * domain), growing to `live` areas and then holding there: automatic IOVAs, bound to `$variables` so the trace does
 * not depend on the allocator, unmapped in random order.
 */
export async function writeMapChurn(path: string, events: number, live: number, seed = 2): Promise<void> {
  const out = createWriteStream(path);
  let pending = false;
  const write = (o: object): void => { if (!out.write(`${JSON.stringify(o)}\n`)) pending = true; };
  const r = rng(seed);
  write({ iotrail: 1, page_size: 4096, iommufd_test: true, memory: 'implicit', source: `bench: map/unmap churn, ${events} events, ${live} live areas, seed ${seed}` });
  write({ op: 'open', path: '/dev/iommu', ret: 3 });
  write({ op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: 1 } });
  write({ op: 'ioctl', fd: 3, cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MOCK_DOMAIN', id: 1, mock_domain: {} }, ret: 0 });
  const alive: number[] = [];
  let n = 0;
  for (let i = 3; i < events; i++) {
    const grow = alive.length < live && (alive.length === 0 || r() < 0.6);
    if (grow) {
      const va = 0x7f0000000000 + Math.floor(r() * 16384) * 4096;
      write({ op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_MAP', arg: { flags: 6, ioas_id: 1, user_va: `0x${va.toString(16)}`, length: 4096 }, ret: 0, out: { iova: `$a${n}` } });
      alive.push(n++);
    } else {
      const k = Math.floor(r() * alive.length);
      const id = alive[k]!;
      alive[k] = alive[alive.length - 1]!;
      alive.pop();
      write({ op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_UNMAP', arg: { ioas_id: 1, iova: `$a${id}`, length: 4096 }, ret: 0, out: { length: 4096 } });
    }
    if (pending) {
      pending = false;
      await new Promise<void>((res) => out.once('drain', () => res()));
    }
  }
  await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
}
