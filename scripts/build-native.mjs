#!/usr/bin/env node
// Builds native/build/libiotrail_record.so, the LD_PRELOAD library behind `iotrail record`.
//
// Run by the package's postinstall step and, on demand, by `iotrail record`. It prints exactly
// one line and always exits 0: only `iotrail record` needs the library, so a machine without a
// C compiler must still be able to install and use the rest of iotrail.
//
// Environment: CC (compiler command, default "cc"; may carry flags, e.g. "clang -m64").
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'native', 'recorder.c');
const outDir = join(root, 'native', 'build');
const library = join(outDir, 'libiotrail_record.so');

function build() {
  if (process.platform !== 'linux') {
    return `iotrail: warning: \`iotrail record\` needs Linux (LD_PRELOAD); skipped building its native library on ${process.platform}`;
  }
  const [cc, ...ccFlags] = (process.env.CC || 'cc').trim().split(/\s+/);
  // Built under a temporary name and renamed, so a concurrent `iotrail record` never preloads a
  // half-written library.
  const partial = `${library}.${process.pid}.partial`;
  mkdirSync(outDir, { recursive: true });
  const args = [...ccFlags, '-std=gnu11', '-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-o', partial, source, '-ldl', '-lpthread'];
  const r = spawnSync(cc, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) {
    const why = r.error.code === 'ENOENT' ? `no C compiler found (${cc})` : `cannot run ${cc}: ${r.error.message}`;
    return `iotrail: warning: ${why}; \`iotrail record\` is unavailable until \`node scripts/build-native.mjs\` succeeds (everything else works)`;
  }
  if (r.status !== 0) {
    rmSync(partial, { force: true });
    const first = (r.stderr || '').split('\n').find((l) => /error/i.test(l)) || (r.stderr || '').trim().split('\n')[0] || `exit status ${r.status}`;
    return `iotrail: warning: building the \`iotrail record\` library failed (${cc}): ${first.trim()}`;
  }
  renameSync(partial, library);
  return `iotrail: built ${relative(root, library)} for \`iotrail record\``;
}

let line;
try {
  line = build();
} catch (err) {
  line = `iotrail: warning: building the \`iotrail record\` library failed: ${err instanceof Error ? err.message : String(err)}`;
}
console.log(line);
process.exitCode = 0;
