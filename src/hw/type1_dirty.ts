/**
 * Type1's dirty bitmaps (drivers/vfio/vfio_iommu_type1.c `vfio_dma_bitmap_alloc`, `verify_bitmap_size`,
 * `update_user_bitmap`, `vfio_iova_dirty_bitmap`), and the user bitmap they are copied to.
 *
 * Theory of operation. While dirty tracking is on, every vfio_dma has a kernel bitmap of `size >> pgshift` bits plus
 * one spare u64 (`DIRTY_BITMAP_BYTES(npages) + sizeof(u64)`). A report (`update_user_bitmap`) first sets all of the
 * dma's bits when a group without pinned-page dirty scope is attached and the dma is IOMMU mapped
 * (`num_non_pinned_groups && dma->iommu_mapped`: a vfio-pci device may have written anywhere); otherwise the bits
 * are what external pins and `vfio_dma_rw` writes set (`bits`). The dma's bits land at bit
 * `(dma->iova - base_iova) >> pgshift` of the user's u64 words: when that is not a word boundary, the kernel bitmap is
 * shifted left in place (`bitmap_shift_left` over `BITS_TO_LONGS(nbits + shift)` words), the user's first word is
 * read and OR-ed in whole (`bitmap_or` of `shift` bits works on whole longs), and whole words are copied out
 * (`DIRTY_BITMAP_BYTES(nbits + shift)`), overwriting the user's bits past the dma in its last word. Then only the
 * dma's first nbits bits are cleared (`bitmap_clear(dma->bitmap, 0, dma->size >> pgshift)`) and re-seeded with the
 * external pins: what the shift and the OR put past nbits stays, and the next report shifts it again and
 * copies it out. So two dmas reported unaligned in one bitmap report bits for pages past the second one, one more per
 * report. That tail is the state this file keeps per dma (`VfioDma.bitmapTail`); the first nbits bits are derived.
 *
 * User memory: copy_from_user / copy_to_user at `data + 8 * word`, through the mm model. The words one call wrote are
 * read back by its later reads (a second dma's leftover word is the first one's output), so the writes go through one
 * `MmDraft` and are remembered by word.
 */
import type { DomainEvent } from '../events/domain.js';
import { isMmFault, memRead, memWriteEvents, mmDraft, type MmDraft } from './mm.js';
import type { VfioDma } from './vfio_dma.js';
import type { State } from '../projections/state.js';

/** DIRTY_BITMAP_PAGES_MAX: bitmap_set() takes an int number of bits. */
export const DIRTY_BITMAP_PAGES_MAX = 0x7fff_ffffn;
/** `DIRTY_BITMAP_BYTES(n)`: whole u64 words. */
export const dirtyBitmapBytes = (nbits: bigint): bigint => ((nbits + 63n) / 64n) * 8n;
/** DIRTY_BITMAP_SIZE_MAX = DIRTY_BITMAP_BYTES(INT_MAX) = 256 MiB. */
export const DIRTY_BITMAP_SIZE_MAX = dirtyBitmapBytes(DIRTY_BITMAP_PAGES_MAX);
/** The largest bitmap one report builds in the model (a 2 TiB dma with 4 KiB pages); beyond it: not modelled. */
const MAX_MODELLED_BYTES = 64n << 20n;
/** x86-64 TASK_SIZE_MAX with 4-level page tables: `access_ok` refuses user ranges reaching past it. */
const TASK_SIZE_MAX = (1n << 47n) - 4096n;

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** `__ffs` of a non-zero value. */
export function ffs(x: bigint): bigint {
  let n = 0n;
  while (((x >> n) & 1n) === 0n) n++;
  return n;
}

/** `verify_bitmap_size(npages, bitmap_size)`: why it is EINVAL, or undefined. */
export function verifyBitmapSize(npages: bigint, size: bigint): string | undefined {
  if (npages === 0n) return 'verify_bitmap_size: the range has 0 pages of bitmap.pgsize';
  if (size === 0n) return 'verify_bitmap_size: bitmap.size is 0';
  if (size > DIRTY_BITMAP_SIZE_MAX) return `verify_bitmap_size: bitmap.size ${hex(size)} > DIRTY_BITMAP_SIZE_MAX ${hex(DIRTY_BITMAP_SIZE_MAX)}`;
  if (size < dirtyBitmapBytes(npages)) return `verify_bitmap_size: bitmap.size ${hex(size)} < DIRTY_BITMAP_BYTES(${npages} pages) = ${hex(dirtyBitmapBytes(npages))}`;
  return undefined;
}

/** `access_ok(ptr, size)` (x86-64 `__access_ok`): why it fails, or undefined. Inline data names no address. */
export function accessOk(ptr: bigint | Uint8Array, size: bigint): string | undefined {
  if (ptr instanceof Uint8Array) return undefined;
  if (size > TASK_SIZE_MAX || ptr > TASK_SIZE_MAX - size) return `access_ok: [${hex(ptr)}, +${hex(size)}) reaches past TASK_SIZE_MAX ${hex(TASK_SIZE_MAX)}`;
  return undefined;
}

/** The user's bitmap: a pointer into the mm model, or inline bytes (whose result the call returns as `out`). */
export class UserBitmap {
  private readonly written = new Map<bigint, Uint8Array>();
  private readonly draft: MmDraft | undefined;
  readonly events: DomainEvent[] = [];
  readonly inline: Uint8Array | undefined;

  constructor(private readonly st: State, private readonly data: bigint | Uint8Array) {
    this.inline = data instanceof Uint8Array ? data.slice() : undefined;
    this.draft = data instanceof Uint8Array ? undefined : mmDraft(st.mm, st.pageSize);
  }

  private where(word: bigint): string {
    return this.inline !== undefined ? `word ${word} of the inline bitmap (${this.inline.length} bytes)` : hex((this.data as bigint) + 8n * word);
  }

  /** copy_from_user of u64 word `word`: its bytes, or why it is EFAULT. */
  readWord(word: bigint): Uint8Array | string {
    const w = this.written.get(word);
    if (w !== undefined) return w;
    if (this.inline !== undefined) {
      const at = Number(8n * word);
      return at + 8 <= this.inline.length ? this.inline.slice(at, at + 8) : `copy_from_user of ${this.where(word)}: past the inline bitmap`;
    }
    const r = memRead(this.st.mm, this.st.memory, this.st.pageSize, (this.data as bigint) + 8n * word, 8);
    return r instanceof Uint8Array ? r : `copy_from_user at ${this.where(word)}: ${r.why}`;
  }

  /** copy_to_user of `bytes` (whole words) from word `word`: why it is EFAULT, or undefined. The bytes before a fault land. */
  writeWords(word: bigint, bytes: Uint8Array): string | undefined {
    if (this.inline !== undefined) {
      const at = Number(8n * word);
      const fit = Math.max(0, Math.min(bytes.length, this.inline.length - at));
      this.inline.set(bytes.subarray(0, fit), at);
      this.remember(word, bytes.subarray(0, fit));
      return fit < bytes.length ? `copy_to_user of ${bytes.length} bytes at ${this.where(word)}: past the inline bitmap` : undefined;
    }
    const r = memWriteEvents(this.draft!, this.st.memory, this.st.pageSize, (this.data as bigint) + 8n * word, bytes);
    this.events.push(...r.events);
    if (isMmFault(r)) return `copy_to_user at ${this.where(word)}: ${r.why}`;
    this.remember(word, bytes);
    return undefined;
  }

  private remember(word: bigint, bytes: Uint8Array): void {
    for (let i = 0; i + 8 <= bytes.length; i += 8) this.written.set(word + BigInt(i / 8), bytes.slice(i, i + 8));
  }
}

/** What one `update_user_bitmap` did: the dma's tail after it, and the error that stopped it. */
export interface DmaReport {
  readonly tail: bigint;
  readonly fault: string | undefined;
}

/** Bit `b` of a little-endian byte array. */
const bit = (b: Uint8Array, i: number): number => (b[i >> 3]! >> (i & 7)) & 1;

/**
 * `update_user_bitmap(bitmap, iommu, dma, base_iova, pgsize)` with `full` = every bit of the dma dirty. Undefined
 * when the bitmap is too large for the model.
 */
export function updateUserBitmap(user: UserBitmap, dma: VfioDma, base: bigint, pgshift: bigint, full: boolean, bits: readonly bigint[] = []): DmaReport | undefined {
  const nbits = dma.size >> pgshift;
  const bitOffset = (dma.iova - base) >> pgshift;
  const copyOffset = bitOffset / 64n, shift = Number(bitOffset % 64n);
  const allocBytes = dirtyBitmapBytes(nbits) + 8n;
  if (allocBytes > MAX_MODELLED_BYTES) return undefined;
  const n = Number(nbits), lim = Number((nbits + BigInt(shift) + 63n) / 64n);
  // The kernel's bitmap: the dma's bits (all set when `full`, else those of `bits`), then its tail.
  const src = new Uint8Array(Number(allocBytes));
  if (full) {
    src.fill(0xff, 0, n >> 3);
    if ((n & 7) !== 0) src[n >> 3] = (1 << (n & 7)) - 1;
  }
  for (const b of bits) if (b < nbits) src[Number(b >> 3n)]! |= 1 << Number(b & 7n);
  for (let t = dma.bitmapTail, i = n; t !== 0n; t >>= 1n, i++) if ((t & 1n) !== 0n && i < src.length * 8) src[i >> 3]! |= 1 << (i & 7);
  // bitmap_shift_left(bitmap, bitmap, shift, nbits + shift): the first `lim` words shift, the words past them stay.
  const k = src.slice();
  if (shift !== 0) {
    const q = shift >> 3, r = shift & 7;
    for (let j = 0; j < lim * 8; j++) {
      const hi = j - q >= 0 ? (src[j - q]! << r) & 0xff : 0;
      const lo = r !== 0 && j - q - 1 >= 0 ? src[j - q - 1]! >> (8 - r) : 0;
      k[j] = hi | lo;
    }
  }
  const tailOf = (b: Uint8Array): bigint => {
    let t = 0n;
    for (let i = b.length * 8 - 1; i >= n; i--) t = (t << 1n) | BigInt(bit(b, i));
    return t;
  };
  if (shift !== 0) {
    const left = user.readWord(copyOffset);
    if (typeof left === 'string') return { tail: tailOf(k), fault: left };
    for (let j = 0; j < 8; j++) k[j]! |= left[j]!;
  }
  const fault = user.writeWords(copyOffset, k.subarray(0, lim * 8));
  return { tail: tailOf(k), fault };
}
