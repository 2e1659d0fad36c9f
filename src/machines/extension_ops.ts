/**
 * The trace ops this repository adds to the format (docs/trace-format-type1.md): `exec`, and an mdev driver's
 * `mdev_pin`, `mdev_unpin` and `mdev_dma_rw`, resolved and dispatched the same way by replay (src/replay/engine.ts)
 * and by the checker (src/check/kernel.ts).
 */
import type { RawInt } from '../events/struct_codec.js';
import type { EventOf } from '../events/trace.js';
import { sys_exec } from './exec.js';
import type { Kernel, Step } from './ioctl.js';
import { vfio_dma_rw, vfio_pin_pages, vfio_unpin_pages } from './vfio_type1_mdev.js';

/** The operation of an extension op; undefined when `use` could not resolve a value (it reported why). */
export function extensionOp(k: Kernel, ev: EventOf<'exec' | 'mdev_pin' | 'mdev_unpin' | 'mdev_dma_rw'>, use: (v: RawInt, path: string) => bigint | undefined): Step | undefined {
  const all = (vs: readonly [RawInt, string][]): bigint[] | undefined => {
    const out: bigint[] = [];
    for (const [v, p] of vs) {
      const x = use(v, p);
      if (x === undefined) return undefined;
      out.push(x);
    }
    return out;
  };
  switch (ev.op) {
    case 'exec': {
      const fds = all(ev.cloexec.map((v, i): [RawInt, string] => [v, `cloexec[${i}]`]));
      return fds && sys_exec(k, fds.map(Number));
    }
    case 'mdev_pin': {
      const r = all([[ev.iova, 'iova'], [ev.npage, 'npage']]);
      return r && vfio_pin_pages(k, ev.dev, r[0]!, r[1]!, Number(ev.prot));
    }
    case 'mdev_unpin': {
      const r = all([[ev.iova, 'iova'], [ev.npage, 'npage']]);
      return r && vfio_unpin_pages(k, ev.dev, r[0]!, r[1]!);
    }
    case 'mdev_dma_rw': {
      const r = all([[ev.iova, 'iova'], [ev.length, 'length']]);
      return r && vfio_dma_rw(k, ev.dev, r[0]!, r[1]!, ev.write, ev.data);
    }
  }
}
