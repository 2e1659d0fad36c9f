// `iotrail import qemu LOG [--out FILE] [--device SPEC]... [--header FILE] [--backend iommufd|legacy] [--json]`
//
// Streams LOG line by line into the QEMU importer, writes the trace to FILE atomically (src/cli/atomic.ts: a
// reader never sees half a trace and a failed run leaves FILE as it was) or to stdout, and reports every line
// it could not use. Exit 0 on success, 2 on usage or I/O errors.

import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { parseDeviceSpec, parseHeaderText, userHeader } from '../import/devices.js';
import { QemuImporter, traceLines } from '../import/qemu.js';
import type { Backend, ImportResult, Unused } from '../import/qemu.js';
import type { JsonObject } from '../import/values.js';
import { AtomicWriter } from './atomic.js';

export interface ImportIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const processIO: ImportIO = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
};

export const IMPORT_USAGE = `usage: iotrail import qemu LOG [--out FILE] [--device SPEC]... [--header FILE] [--backend iommufd|legacy] [--json]

Converts QEMU trace-event output (-trace 'iommufd*' -trace 'vfio_*') into an iotrail trace.
  --out FILE       write the trace to FILE (atomically); default: stdout
  --device SPEC    declare a VFIO device and its IOMMU for the header, e.g.
                   path=/dev/vfio/devices/vfio0,name=0000:01:00.0,aw=39,pgsize=0x40201000,reserved=0xfee00000-0xfeefffff:msi
                   keys: path name group aperture=S-L aw=BITS pgsize reserved=S-L[:TYPE] dirty pasids msi_isolated bar=I:SIZE
  --header FILE    a JSON object laid over the generated header
  --backend B      whose memory-listener lines these are: iommufd or legacy (default: detected)
  --json           print the report as JSON (on stdout with --out, else on stderr)
See docs/import-qemu.md.
`;

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export async function importMain(argv: string[], io: ImportIO = processIO): Promise<number> {
  const usage = (msg: string): number => {
    io.stderr(`iotrail import: ${msg}\n${IMPORT_USAGE}`);
    return 2;
  };
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: {
        out: { type: 'string' }, device: { type: 'string', multiple: true }, header: { type: 'string' },
        backend: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    return usage(errorText(e));
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.stdout(IMPORT_USAGE);
    return 0;
  }
  const [format, log, ...extra] = positionals;
  if (format !== 'qemu') return usage(format === undefined ? 'missing the log format (qemu)' : `unknown log format "${format}" (known: qemu)`);
  if (log === undefined) return usage('missing LOG');
  if (extra.length > 0) return usage(`unexpected argument "${extra[0]}"`);
  const backend = values.backend;
  if (backend !== undefined && backend !== 'iommufd' && backend !== 'legacy') return usage(`--backend must be iommufd or legacy, not "${backend}"`);

  const devices: JsonObject[] = [];
  for (const spec of values.device ?? []) {
    const d = parseDeviceSpec(spec);
    if (!d.ok) return usage(d.error);
    devices.push(d.value);
  }
  let file: JsonObject | undefined;
  if (values.header !== undefined) {
    let text: string;
    try {
      text = await readFile(values.header, 'utf8');
    } catch (e) {
      return fatal(io, `cannot read --header ${values.header}: ${errorText(e)}`);
    }
    const h = parseHeaderText(text, values.header);
    if (!h.ok) return usage(h.error);
    file = h.value;
  }
  const header = userHeader(file, devices);
  if (!header.ok) return usage(header.error);

  const importer = new QemuImporter({ source: basename(log), header: header.value, ...(backend !== undefined ? { backend: backend as Backend } : {}) });
  try {
    const lines = createInterface({ input: createReadStream(log, { encoding: 'utf8' }), crlfDelay: Infinity });
    for await (const line of lines) importer.push(line);
  } catch (e) {
    return fatal(io, `cannot read ${log}: ${errorText(e)}`);
  }
  const result = importer.finish();

  const out = values.out;
  if (out === undefined || out === '-') for (const chunk of batches(traceLines(result))) io.stdout(chunk);
  else {
    const written = writeAtomically(out, traceLines(result));
    if (written !== undefined) return fatal(io, written);
  }
  const toFile = out !== undefined && out !== '-';
  if (values.json === true) {
    const report = JSON.stringify(jsonReport(result, log, toFile ? out : null), null, 2) + '\n';
    (toFile ? io.stdout : io.stderr)(report);
  } else {
    for (const chunk of batches(humanReport(result, toFile ? out : 'stdout'))) io.stderr(chunk);
  }
  return 0;
}

function fatal(io: ImportIO, msg: string): number {
  io.stderr(`iotrail import: ${msg}\n`);
  return 2;
}

/** Join many small strings into fewer large writes. */
function* batches(lines: Iterable<string>, size = 4096): Generator<string> {
  let batch: string[] = [];
  for (const line of lines) {
    batch.push(line);
    if (batch.length === size) {
      yield batch.join('');
      batch = [];
    }
  }
  if (batch.length > 0) yield batch.join('');
}

/** The project's atomic writer (temp file beside `path`, fsync, rename); undefined on success, else the error. */
function writeAtomically(path: string, lines: Iterable<string>): string | undefined {
  let w: AtomicWriter | undefined;
  try {
    w = new AtomicWriter(path);
    for (const line of lines) w.write(line);
    w.commit();
    return undefined;
  } catch (e) {
    try {
      w?.abort();
    } catch {
      // The temp file could not be removed either; the target is untouched all the same.
    }
    return `cannot write ${path}: ${errorText(e)}`;
  }
}

const KIND_LABEL: Record<Unused['kind'], string> = {
  'not-an-ioctl': 'not an ioctl', unparseable: 'unparseable', unconvertible: 'unconvertible',
};

function* humanReport(r: ImportResult, where: string): Generator<string> {
  const s = r.stats;
  yield `iotrail import: ${s.events} events (${s.synthesized} synthesized) from ${s.lines - s.blank} lines written to ${where}\n`;
  if (r.unused.length === 0) return;
  const n = r.unused.length;
  yield `iotrail import: ${n} line${n === 1 ? '' : 's'} not imported: ${s.notAnIoctl} not an ioctl, ${s.unparseable} unparseable, ${s.unconvertible} unconvertible\n`;
  for (const u of r.unused) yield `  line ${u.line}: ${KIND_LABEL[u.kind]}: ${u.reason}\n    ${u.text}\n`;
}

function jsonReport(r: ImportResult, input: string, output: string | null): JsonObject {
  const s = r.stats;
  return {
    format: 'qemu', input, output, backend: s.backend,
    lines: s.lines, blank: s.blank, used: s.used, events: s.events, synthesized: s.synthesized,
    not_imported: { total: r.unused.length, not_an_ioctl: s.notAnIoctl, unparseable: s.unparseable, unconvertible: s.unconvertible },
    unused: r.unused.map((u) => ({ line: u.line, kind: u.kind, reason: u.reason, text: u.text })),
  };
}
