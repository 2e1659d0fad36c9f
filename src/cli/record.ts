/**
 * `iotrail record [--out FILE] [--path P]... -- COMMAND ARGS...`: runs COMMAND with the LD_PRELOAD
 * recorder (native/recorder.c) and leaves an iotrail trace of its iommufd/VFIO calls in FILE.
 *
 * The library writes the trace into a temporary file beside FILE; it is renamed into place only
 * when the command has ended, so a recording that was cut short never looks like a finished one.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';

export const USAGE = `usage: iotrail record [--out FILE] [--path PATH[=KIND]]... [--all-mmaps] -- COMMAND [ARGS...]

Runs COMMAND and records its calls on /dev/iommu, /dev/vfio/* and the fds they produce into an
iotrail trace (JSON Lines).

  --out, -o FILE     the trace to write (default: iotrail-record.jsonl)
  --path PATH[=KIND] also treat PATH as an IOMMU device file (a trailing / makes it a prefix);
                     KIND is iommufd (default), vfio-container, vfio-group or vfio-device
  --all-mmaps        also record mmap/munmap/madvise calls unrelated to the IOMMU

The exit status is COMMAND's.`;

const KINDS = new Set(['iommufd', 'vfio-container', 'vfio-group', 'vfio-device']);
const LIBRARY = join('native', 'build', 'libiotrail_record.so');

export interface RecordOptions {
  /** The recorder library to preload instead of the package's own build (tests, custom builds). */
  readonly library?: string;
  /** Where iotrail's own messages go (default: process.stderr); COMMAND's output is never touched. */
  readonly stderr?: { write(s: string): unknown };
}

class UsageError extends Error {}

interface Parsed {
  readonly out: string;
  readonly paths: readonly string[];
  readonly allMmaps: boolean;
  readonly command: readonly [string, ...string[]];
}

function parse(argv: readonly string[], cwd: string): Parsed | 'help' {
  let out = 'iotrail-record.jsonl';
  const paths: string[] = [];
  let allMmaps = false;
  let i = 0;
  const value = (name: string, inline: string | undefined): string => {
    if (inline !== undefined) return inline;
    const v = argv[++i];
    if (v === undefined || v === '') throw new UsageError(`${name} needs a value`);
    return v;
  };
  for (; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    const eq = a.indexOf('=');
    const [name, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    if (name === '-h' || name === '--help') return 'help';
    else if (name === '--out' || name === '-o') out = value(name, inline);
    else if (name === '--path') paths.push(devicePath(value(name, inline), cwd));
    else if (name === '--all-mmaps' && inline === undefined) allMmaps = true;
    else throw new UsageError(`unknown option ${JSON.stringify(a)}`);
  }
  const [cmd, ...args] = argv.slice(i);
  if (cmd === undefined || cmd === '') throw new UsageError('no command given');
  return { out: resolve(cwd, out), paths, allMmaps, command: [cmd, ...args] };
}

/** Absolute form of a --path value, keeping its trailing '/' (prefix) and its =KIND. */
function devicePath(spec: string, cwd: string): string {
  const eq = spec.lastIndexOf('=');
  const kind = eq > 0 && KINDS.has(spec.slice(eq + 1)) ? spec.slice(eq + 1) : undefined;
  const p = kind === undefined ? spec : spec.slice(0, eq);
  if (p === '') throw new UsageError(`--path ${JSON.stringify(spec)} names no path`);
  if (p.includes(':')) throw new UsageError(`--path ${JSON.stringify(p)}: paths containing ':' cannot be recorded`);
  const abs = resolve(cwd, p) + (p.endsWith('/') && p !== '/' ? '/' : '');
  return kind === undefined ? abs : `${abs}=${kind}`;
}

/** The directory holding iotrail's package.json, from src/cli (sources) or dist/src/cli (build). */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: unknown }).name === 'iotrail') return dir;
      } catch {
        // not ours: keep walking up
      }
    }
    if (dirname(dir) === dir) throw new Error(`cannot find the iotrail package root above ${from}`);
  }
}

function newestSource(root: string): number {
  const dir = join(root, 'native');
  let newest = 0;
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.c') || f.endsWith('.h')) newest = Math.max(newest, statSync(join(dir, f)).mtimeMs);
  }
  return newest;
}

/** The package's recorder library, built first if it is missing or older than its sources. */
function packageLibrary(say: (s: string) => void): string | { error: string } {
  const root = packageRoot();
  const lib = join(root, LIBRARY);
  const haveSources = existsSync(join(root, 'native', 'recorder.c'));
  const fresh = existsSync(lib) && (!haveSources || statSync(lib).mtimeMs >= newestSource(root));
  if (fresh) return lib;
  const script = join(root, 'scripts', 'build-native.mjs');
  if (!haveSources || !existsSync(script)) {
    return existsSync(lib) ? lib : { error: `${lib} is missing and its sources are not installed` };
  }
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const line = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  if (existsSync(lib) && statSync(lib).mtimeMs >= newestSource(root)) return lib;
  if (existsSync(lib)) {
    say(`iotrail record: warning: could not rebuild the recorder library, using the old one (${line})\n`);
    return lib;
  }
  return { error: `${lib} is missing and could not be built: ${line || 'the build printed nothing'}` };
}

/** Lines in a file, read in chunks: a long recording can be larger than a JS string may be. */
function countLines(fd: number): number {
  const buf = Buffer.alloc(1 << 20);
  let lines = 0;
  for (let pos = 0, n; (n = readSync(fd, buf, 0, buf.length, pos)) > 0; pos += n) {
    for (let i = buf.indexOf(10); i !== -1 && i < n; i = buf.indexOf(10, i + 1)) lines++;
  }
  return lines;
}

/**
 * Cuts a final line that has no newline (a write cut short, e.g. by a full disk): every line of a
 * trace is one JSON object, so a partial one would make the finished file unreadable. Returns
 * whether anything was cut.
 */
function dropPartialLine(fd: number): boolean {
  const size = fstatSync(fd).size;
  const buf = Buffer.alloc(1 << 16);
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - buf.length);
    const n = readSync(fd, buf, 0, end - start, start);
    const nl = buf.subarray(0, n).lastIndexOf(10);
    if (nl !== -1) {
      end = start + nl + 1;
      break;
    }
    end = start;
  }
  if (end === size) return false;
  ftruncateSync(fd, end);
  return true;
}

function quote(arg: string): string {
  return /^[\w/.,:=@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function pageSize(): number | undefined {
  const r = spawnSync('getconf', ['PAGESIZE'], { encoding: 'utf8' });
  const n = Number.parseInt(r.stdout ?? '', 10);
  return r.status === 0 && n > 0 ? n : undefined;
}

function signalNumber(sig: NodeJS.Signals): number {
  return (osConstants.signals as Record<string, number | undefined>)[sig] ?? 0;
}

export async function recordMain(argv: string[], options: RecordOptions = {}): Promise<number> {
  const err = options.stderr ?? process.stderr;
  const say = (s: string): void => void err.write(s);
  let parsed: Parsed | 'help';
  try {
    parsed = parse(argv, process.cwd());
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    say(`iotrail record: ${e.message}\n${USAGE}\n`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const { out, command } = parsed;
  const outDir = dirname(out);
  if (!existsSync(outDir) || !statSync(outDir).isDirectory()) {
    say(`iotrail record: cannot write ${out}: directory ${outDir} does not exist\n`);
    return 2;
  }
  if (existsSync(out) && statSync(out).isDirectory()) {
    say(`iotrail record: --out ${out} is a directory\n`);
    return 2;
  }

  const lib = options.library !== undefined ? resolve(options.library) : packageLibrary(say);
  if (typeof lib !== 'string') {
    say(`iotrail record: ${lib.error}\nInstall a C compiler (cc) and run \`node scripts/build-native.mjs\` in the iotrail package.\n`);
    return 2;
  }
  if (!existsSync(lib)) {
    say(`iotrail record: the recorder library ${lib} does not exist\n`);
    return 2;
  }
  if (/[\s:]/.test(lib)) {
    say(`iotrail record: the recorder library path ${JSON.stringify(lib)} contains a space or ':', which LD_PRELOAD cannot express\n`);
    return 2;
  }

  const partial = join(outDir, `.${basename(out)}.partial-${process.pid}`);
  rmSync(partial, { force: true }); // the library creates it exclusively
  const source = command.map(quote).join(' ');
  const env: NodeJS.ProcessEnv = { ...process.env };
  env.LD_PRELOAD = env.LD_PRELOAD ? `${env.LD_PRELOAD}:${lib}` : lib; // last: nearest to libc
  env.IOTRAIL_RECORD_OUT = partial;
  env.IOTRAIL_RECORD_SOURCE = source;
  const paths = [env.IOTRAIL_RECORD_PATHS, ...parsed.paths].filter((p) => p !== undefined && p !== '');
  if (paths.length > 0) env.IOTRAIL_RECORD_PATHS = paths.join(':');
  else delete env.IOTRAIL_RECORD_PATHS;
  if (parsed.allMmaps) env.IOTRAIL_RECORD_ALL_MMAPS = '1';

  const [cmd, ...args] = command;
  const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null } | { error: NodeJS.ErrnoException }>(
    (done) => {
      const child = spawn(cmd, args, { stdio: 'inherit', env });
      // The terminal delivers ^C to the whole process group; the command decides what it means,
      // and iotrail stays alive to finish the trace. Other termination requests are passed on.
      const forward = (sig: NodeJS.Signals): void => {
        if (sig !== 'SIGINT') child.kill(sig);
      };
      const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
      for (const s of sigs) process.on(s, forward);
      const finish = (r: Parameters<typeof done>[0]): void => {
        for (const s of sigs) process.off(s, forward);
        done(r);
      };
      child.once('error', (error) => finish({ error }));
      child.once('exit', (code, signal) => finish({ code, signal }));
    },
  );
  if ('error' in result) {
    rmSync(partial, { force: true });
    const why = result.error.code === 'ENOENT' ? 'command not found' : result.error.message;
    say(`iotrail record: cannot run ${quote(cmd)}: ${why}\n`);
    return result.error.code === 'ENOENT' ? 127 : 126;
  }

  let lines = 0;
  try {
    if (existsSync(partial)) {
      const fd = openSync(partial, 'r+');
      try {
        if (dropPartialLine(fd)) say(`iotrail record: the trace's last line was cut short (disk full?) and was dropped\n`);
        fsyncSync(fd);
        lines = countLines(fd);
      } finally {
        closeSync(fd);
      }
    }
    if (lines === 0) {
      // Nothing was recorded, so the library never wrote the trace: write the header alone.
      const ps = pageSize();
      const header = {
        iotrail: 1,
        ...(ps === undefined ? {} : { page_size: ps }),
        memory: 'implicit',
        source: `iotrail record: ${source}`,
        note: 'the command made no calls on /dev/iommu, /dev/vfio or the paths given with --path',
      };
      writeFileSync(partial, `${JSON.stringify(header)}\n`, { mode: 0o644 });
    }
    renameSync(partial, out);
  } catch (e) {
    say(`iotrail record: cannot write ${out}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
  const events = Math.max(0, lines - 1);
  if (events === 0) {
    say(`iotrail record: no IOMMU calls were seen (statically linked programs and raw syscalls are invisible to the recorder); wrote ${out}\n`);
  } else {
    say(`iotrail record: wrote ${events} event${events === 1 ? '' : 's'} to ${out}\n`);
  }
  if (result.signal !== null) {
    say(`iotrail record: ${quote(cmd)} was killed by ${result.signal}; the trace ends there\n`);
    return 128 + signalNumber(result.signal);
  }
  return result.code ?? 1;
}
