/**
 * /dev/iommu's ioctl entry (drivers/iommu/iommufd/main.c `iommufd_fops_ioctl`, `iommufd_destroy`,
 * `iommufd_option`) and the dispatch table (`iommufd_ioctl_ops[]`, built with IOCTL_OP).
 *
 * Theory of operation. Every iommufd command is `_IO(';', nr)`; the table is indexed by `nr - 0x80`. The order
 * of the checks is the kernel's and is observable: a number outside the table goes to the VFIO compat switch
 * (which answers ENOTTY for anything it does not know), then the leading u32 `size` is read (a NULL arg is
 * EFAULT even for a command the table does not have), then a hole or a mismatching full command value is ENOTTY,
 * then `size < min_size` is EINVAL, then non-zero bytes past the kernel struct are E2BIG
 * (`copy_struct_from_user`), and only then does the handler run.
 */
import type { CommandDef } from '../events/uapi.js';
import { COMMAND_BY_NAME, IOMMUFD_CMD_BASE } from '../events/uapi.js';
import { fail, succeed, u32, u64, unmodelled, type Arg, type Call, type Done, type Handler, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';
import { destroyObjectEvents } from './destroy.js';
import { isMutant } from '../check/mutants.js';
import { destroyUnlockedRef } from '../check/mutant_ops.js';
import { iommufd_ioas_alloc_ioctl, iommufd_ioas_option, IOAS_HANDLERS } from './ioas.js';
import { DEVICE_HANDLERS } from './device.js';
import { HWPT_HANDLERS } from './hw_pagetable.js';
import { VIOMMU_HANDLERS } from './viommu.js';
import { iommufd_test } from './selftest.js';
import { iommufd_vfio_ioctl } from './vfio_compat.js';

/** `iommufd_destroy` → `iommufd_object_remove(ictx, NULL, id, 0)`: no type check, no waiting. */
export function iommufd_destroy(c: Call, a: Arg): Step {
  const id = u32(a, 'id');
  const o = c.ctx.objects.get(id);
  if (o === undefined || getObject(c.ctx, id, 'ANY') === undefined)
    return fail('ENOENT', `main.c iommufd_object_remove: ${lookupWhy(c.ctx, id, 'ANY')}`);
  if (isMutant('destroy-unlocked-ref')) return destroyUnlockedRef(c, id); // MUTANT (B1, CVE-2023-53795)
  if (o.users !== 1)
    return fail('EBUSY', `main.c iommufd_object_remove: ${o.kind} ${id} has users=${o.users} (refcount_dec_if_one fails: something else holds it)`);
  return succeed(`main.c iommufd_object_remove: ${o.kind} ${id} destroyed`, undefined, destroyObjectEvents(c.k.st, c.ctx, id));
}

/** `iommufd_option_rlimit_mode` (main.c). */
function iommufd_option_rlimit_mode(c: Call, a: Arg): Step {
  const op = u32(a, 'op');
  const val64 = u64(a, 'val64');
  if (u32(a, 'object_id') !== 0) return fail('EOPNOTSUPP', 'main.c iommufd_option_rlimit_mode: object_id != 0');
  if (op === 1) {
    const mm = BigInt(c.ctx.accountMode);
    return succeed(`main.c iommufd_option_rlimit_mode: account_mode is ${c.ctx.accountMode ? 'MM' : 'USER'}`, { val64: mm });
  }
  if (op === 0) {
    if (!c.k.header.limits.cap_sys_resource)
      return fail('EPERM', 'main.c iommufd_option_rlimit_mode: the process lacks CAP_SYS_RESOURCE (header limits.cap_sys_resource)');
    if (c.ctx.objects.size !== 0)
      return fail('EBUSY', `main.c iommufd_option_rlimit_mode: the object table is not empty (${c.ctx.objects.size} ids in use, e.g. ${[...c.ctx.objects.keys()].slice(0, 3).join(', ')})`);
    if (val64 !== 0n && val64 !== 1n) return fail('EINVAL', `main.c iommufd_option_rlimit_mode: val64 ${val64} is neither 0 (user) nor 1 (mm)`);
    const mode = val64 === 1n ? 1 : 0;
    return succeed(`main.c iommufd_option_rlimit_mode: account_mode set to ${mode ? 'MM' : 'USER'}`, { val64 },
      [{ type: 'AccountModeSet', ctx: c.ctx.id, mode }]);
  }
  return fail('EOPNOTSUPP', `main.c iommufd_option_rlimit_mode: op ${op} is neither SET nor GET`);
}

/** `iommufd_option`: only `val64` is copied back, and only on success. */
export function iommufd_option(c: Call, a: Arg): Step {
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', 'main.c iommufd_option: __reserved != 0');
  const id = u32(a, 'option_id');
  if (id === 0) return iommufd_option_rlimit_mode(c, a);
  if (id === 1) return iommufd_ioas_option(c, a);
  return fail('EOPNOTSUPP', `main.c iommufd_option: unknown option_id ${id}`);
}

const notModelled = (name: string): Handler => () => unmodelled(name);

/** `iommufd_ioctl_ops[]`: nr → handler. The IOMMU_TEST_CMD slot exists only with CONFIG_IOMMUFD_TEST. */
const HANDLERS: Readonly<Record<string, Handler>> = {
  IOMMU_DESTROY: iommufd_destroy,
  IOMMU_IOAS_ALLOC: iommufd_ioas_alloc_ioctl,
  IOMMU_OPTION: iommufd_option,
  ...IOAS_HANDLERS,
  ...DEVICE_HANDLERS,
  ...HWPT_HANDLERS,
  ...VIOMMU_HANDLERS,
  IOMMU_TEST_CMD: iommufd_test,
};

interface Slot { readonly def: CommandDef; readonly handler: Handler }
function buildTable(withTest: boolean): readonly (Slot | undefined)[] {
  const slots: (Slot | undefined)[] = [];
  for (const [name, handler] of Object.entries(HANDLERS)) {
    if (name === 'IOMMU_TEST_CMD' && !withTest) continue;
    const def = COMMAND_BY_NAME.get(name)!;
    slots[(def.value & 0xff) - IOMMUFD_CMD_BASE] = { def, handler };
  }
  for (const [name] of COMMAND_BY_NAME) {
    const def = COMMAND_BY_NAME.get(name)!;
    const idx = (def.value & 0xff) - IOMMUFD_CMD_BASE;
    if (def.families.includes('iommufd') && idx >= 0 && slots[idx] === undefined && (name !== 'IOMMU_TEST_CMD' || withTest))
      slots[idx] = { def, handler: notModelled(name) };
  }
  return slots;
}
const TABLE_WITH_TEST = buildTable(true);
const TABLE_NO_TEST = buildTable(false);

/** What the caller handed the ioctl: NULL, a struct, or (for VFIO compat commands) an integer or string. */
export type IoctlInput =
  | { readonly k: 'null' }
  | { readonly k: 'struct'; readonly a: Arg }
  | { readonly k: 'int'; readonly v: bigint }
  | { readonly k: 'string'; readonly v: string }
  | { readonly k: 'raw' };

/** `iommufd_fops_ioctl`. `cmd` is the full command value. */
export function iommufd_fops_ioctl(c: Call, cmd: number, input: IoctlInput): Step {
  const table = c.k.header.iommufd_test ? TABLE_WITH_TEST : TABLE_NO_TEST;
  const nr = cmd & 0xff;
  if (nr < IOMMUFD_CMD_BASE || nr - IOMMUFD_CMD_BASE >= table.length) return iommufd_vfio_ioctl(c, cmd, input);
  if (input.k === 'null') return fail('EFAULT', 'main.c iommufd_fops_ioctl: get_user(size) from a NULL arg faults');
  const slot = table[nr - IOMMUFD_CMD_BASE];
  if (slot === undefined || slot.def.value !== cmd)
    return fail('ENOTTY', `main.c iommufd_fops_ioctl: 0x${cmd.toString(16)} is not in the dispatch table${slot ? ` (slot ${nr.toString(16)} is ${slot.def.name}, 0x${slot.def.value.toString(16)})` : ''}`);
  if (input.k !== 'struct') return unmodelled(`${slot.def.name} with an argument that is not a struct`);
  const a = input.a;
  const sd = slot.def.arg.k === 'struct' ? slot.def.arg.def : undefined;
  if (sd === undefined || a.def !== sd) return unmodelled(`${slot.def.name} decoded as another struct`);
  if (a.size < sd.minSize)
    return fail('EINVAL', `main.c iommufd_fops_ioctl: size ${a.size} < min_size ${sd.minSize} of struct ${sd.name}`);
  if (a.size > sd.size && a.tail !== undefined && a.tail.some((b) => b !== 0))
    return fail('E2BIG', `copy_struct_from_user: non-zero byte past the ${sd.size}-byte struct ${sd.name} (size ${a.size})`);
  return slot.handler(c, a);
}
