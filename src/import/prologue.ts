// A capture that starts after QEMU set up its devices (the usual case: tracing was switched on late, or the log was
// cut to the interesting lines) uses IOASes it never created. When the header declares a VFIO device, the importer
// recreates the setup QEMU's iommufd backend does first — open the device cdev, VFIO_DEVICE_BIND_IOMMUFD,
// IOMMU_IOAS_ALLOC, VFIO_DEVICE_ATTACH_IOMMUFD_PT — so replay has the device's domain, aperture and reserved
// regions, and can explain what the captured calls met. Every synthesized event says so in its note, and each
// IOAS id the capture names becomes a `$qemu_ioas_N` variable bound by the synthesized IOMMU_IOAS_ALLOC, so the
// trace does not depend on the model handing out the same ids as the kernel did.
import type { JsonObject } from './values.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const IOAS_FIELDS = ['ioas_id', 'src_ioas_id', 'dst_ioas_id'];

/** The events with a setup prologue for the IOASes the capture uses but never allocates; unchanged if none. */
export function withPrologue(events: readonly string[], devices: readonly JsonObject[]): { events: string[]; added: number } {
  const parsed = events.map((t) => JSON.parse(t) as Obj);
  const allocated = new Set<number>();
  const used = new Set<number>();
  for (const e of parsed) {
    if (e.op !== 'ioctl' || !isObj(e.arg)) continue;
    const out = e.out;
    if (e.cmd === 'IOMMU_IOAS_ALLOC' && isObj(out) && typeof out.out_ioas_id === 'number') allocated.add(out.out_ioas_id);
    for (const f of IOAS_FIELDS) {
      const v = e.arg[f];
      if (typeof v === 'number' && !allocated.has(v)) used.add(v);
    }
  }
  const openAt = parsed.findIndex((e) => e.op === 'open' && e.path === '/dev/iommu' && typeof e.ret === 'number');
  const dev = devices.find((d) => typeof d.path === 'string' && !parsed.some((e) => e.op === 'open' && e.path === d.path));
  if (used.size === 0 || openAt < 0 || dev === undefined) return { events: [...events], added: 0 };
  const iommufd = parsed[openAt]!.ret as number;
  // Every event names the capture line it stands for: the recreated setup stands before the first use.
  const firstUse = parsed.find((e) => e.op === 'ioctl' && isObj(e.arg) && IOAS_FIELDS.some((f) => typeof (e.arg as Obj)[f] === 'number' && used.has((e.arg as Obj)[f] as number)));
  const at = /line (\d+): /.exec(String(firstUse?.note ?? ''))?.[1] ?? '1';
  const why = `synthesized before line ${at}: the capture uses IOASes whose setup it does not show; recreated as QEMU's iommufd backend does it`;
  const prologue: Obj[] = [{ op: 'open', path: dev.path, flags: ['O_RDWR', 'O_CLOEXEC'], ret: '$qemu_devfd', note: `${why} (the device cdev)` },
    { op: 'ioctl', fd: '$qemu_devfd', cmd: 'VFIO_DEVICE_BIND_IOMMUFD', arg: { argsz: 16, flags: 0, iommufd }, ret: 0, note: why }];
  for (const id of [...used].sort((a, b) => a - b)) {
    prologue.push(
      { op: 'ioctl', fd: iommufd, cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: `$qemu_ioas_${id}` }, note: `${why} (IOAS ${id} of the capture)` },
      { op: 'ioctl', fd: '$qemu_devfd', cmd: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', arg: { argsz: 12, flags: 0, pt_id: `$qemu_ioas_${id}` }, ret: 0, note: `${why} (the device attached to IOAS ${id})` },
    );
  }
  const rewritten = parsed.map((e) => {
    if (e.op !== 'ioctl' || !isObj(e.arg)) return e;
    const arg: Obj = { ...e.arg };
    for (const f of IOAS_FIELDS) if (typeof arg[f] === 'number' && used.has(arg[f] as number)) arg[f] = `$qemu_ioas_${arg[f] as number}`;
    return { ...e, arg };
  });
  const out = [...rewritten.slice(0, openAt + 1), ...prologue, ...rewritten.slice(openAt + 1)].map((e) => JSON.stringify(e));
  return { events: out, added: prologue.length };
}
