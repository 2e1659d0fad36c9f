/** The checker's page size and the user buffers every run starts with (header `vmas`), shared by the command files. */
export const PAGE = 4096n;
export const U64_MAX = (1n << 64n) - 1n;

/** MAP_SHARED|MAP_ANONYMOUS, read-write. */
export const BUFFERS: readonly { readonly start: bigint; readonly pages: number }[] = [
  { start: 0x7f0000000000n, pages: 64 },
  { start: 0x7f0000210000n, pages: 48 },
];
