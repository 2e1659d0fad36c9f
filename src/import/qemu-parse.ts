// Splitting a QEMU log line into its trace event and arguments, and recognising the error messages QEMU
// prints after a failed DMA map (the only place the errno of a failed IOMMU_IOAS_MAP appears).
//
// Accepted line shapes:
//   iommufd_backend_free_id  iommufd=27 id=2 (0)                      log backend (-trace ..., stderr or -D)
//   1234@1700000000.123456:iommufd_backend_free_id  iommufd=27 ...    the same with the thread@time prefix
//   iommufd_backend_free_id 12.345 pid=1234 iommufd=0x1b id=0x2 ret=0x0   scripts/simpletrace.py output

import { fail, fitC, ok, parseIntText } from './values.js';
import type { Result } from './values.js';
import type { Args, EventDef } from './qemu-events.js';

export interface TraceLine {
  readonly name: string;
  readonly body: string;
  /** simpletrace.py output: `name=value` pairs named as in the declaration, integers as u64 hex */
  readonly simple: boolean;
  readonly tid?: number;
  readonly ts?: bigint;
}

const LOG_PREFIX = /^(\d+)@(\d+)\.(\d+):/;
const EVENT = /^([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?=\s|$)(.*)$/;
const SIMPLE = /^\s+-?\d+(?:\.\d+)?\s+pid=\d+(?=\s|$)(.*)$/;

export function splitLine(text: string): TraceLine | undefined {
  let rest = text;
  let tid: number | undefined;
  let ts: bigint | undefined;
  const p = LOG_PREFIX.exec(rest);
  if (p !== null) {
    const [all, t = '', sec = '', frac = ''] = p;
    if (frac.length <= 9 && Number(t) <= 0x7fffffff) {
      tid = Number(t);
      ts = BigInt(sec) * 1_000_000_000n + BigInt(frac) * 10n ** BigInt(9 - frac.length);
      rest = rest.slice(all.length);
    }
  }
  const m = EVENT.exec(rest);
  if (m === null) return undefined;
  const [, name = '', body = ''] = m;
  const s = SIMPLE.exec(body);
  const base = { name, body: s !== null ? (s[1] ?? '') : body, simple: s !== null };
  return { ...base, ...(tid !== undefined ? { tid } : {}), ...(ts !== undefined ? { ts } : {}) };
}

type Conv = 'dec' | 'hex' | 'ptr' | 'str';
interface Compiled { readonly re: RegExp; readonly names: readonly string[]; readonly convs: readonly Conv[] }

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** A printf format as a regex; conversions capture in order. */
function compile(format: string, names: readonly string[]): Compiled | undefined {
  let src = '';
  const convs: Conv[] = [];
  let i = 0;
  const spec = /^%[-+ #0]*\d*(?:\.\d+)?(?:hh|h|ll|l|z|j|t)?([diuxXpsc%])/;
  while (i < format.length) {
    const rest = format.slice(i);
    const ws = /^\s+/.exec(rest);
    if (ws !== null) {
      if (src !== '' && i + ws[0].length < format.length) src += '\\s+';
      i += ws[0].length;
      continue;
    }
    const m = spec.exec(rest);
    if (m === null) {
      src += escapeRe(rest.charAt(0));
      i += 1;
      continue;
    }
    i += m[0].length;
    const conv = m[1];
    if (conv === '%') src += '%';
    else if (conv === 'd' || conv === 'i') { src += '(-?\\d+)'; convs.push('dec'); }
    else if (conv === 'u') { src += '(\\d+)'; convs.push('dec'); }
    else if (conv === 'x' || conv === 'X') { src += '([0-9a-fA-F]+)'; convs.push('hex'); }
    else if (conv === 'p') { src += '(0x[0-9a-fA-F]+|\\(nil\\))'; convs.push('ptr'); }
    else if (conv === 'c') { src += '(.)'; convs.push('str'); }
    else {
      // A %s runs to the closing quote, to the end of the line when it is last, else to the next blank.
      const after = format.slice(i);
      src += after.startsWith('"') ? '([^"]*)' : after.trim() === '' ? '(.*?)' : '(\\S+)';
      convs.push('str');
    }
  }
  if (convs.length !== names.length) return undefined;
  return { re: new RegExp(`^\\s*${src}\\s*$`), names, convs };
}

const compiled = new WeakMap<EventDef, readonly (Compiled | undefined)[]>();

function formatsOf(def: EventDef): readonly (Compiled | undefined)[] {
  let c = compiled.get(def);
  if (c === undefined) {
    c = def.formats.map(([format, names]) => compile(format, names ?? Object.keys(def.args)));
    compiled.set(def, c);
  }
  return c;
}

/** Every format of every event compiles with as many conversions as it names arguments (checked by a test). */
export function formatsCompile(def: EventDef): boolean {
  return formatsOf(def).every((c) => c !== undefined);
}

function value(def: EventDef, name: string, text: string, conv: Conv | 'simple'): Result<bigint | string> {
  const type = def.args[name];
  if (type === undefined) return fail(`argument ${name} is not declared`);
  if (type === 'str') return ok(text);
  const raw = conv === 'hex' ? BigInt(`0x${text}`) : parseIntText(text);
  if (raw === undefined) return fail(`${name}=${text}: not an integer`);
  return fitC(name, text, raw, type, conv === 'simple');
}

function withDefaults(def: EventDef, args: Record<string, bigint | string>): Result<Args> {
  for (const name of Object.keys(def.args)) {
    if (args[name] !== undefined) continue;
    const d = def.defaults[name];
    if (d === undefined) return fail(`argument ${name} is missing`);
    args[name] = d;
  }
  return ok(args);
}

function parseText(def: EventDef, body: string): Result<Args> {
  let firstError: string | undefined;
  for (const c of formatsOf(def)) {
    const m = c?.re.exec(body);
    if (c === undefined || m === null || m === undefined) continue;
    const args: Record<string, bigint | string> = {};
    let error: string | undefined;
    c.names.forEach((name, k) => {
      const v = value(def, name, m[k + 1] ?? '', c.convs[k] ?? 'str');
      if (v.ok) args[name] = v.value;
      else error ??= v.error;
    });
    if (error === undefined) return withDefaults(def, args);
    firstError ??= error;
  }
  return fail(firstError ?? 'arguments do not match the event\'s format');
}

/** simpletrace.py prints `name=value` for each declared argument; a string value runs to the next name. */
function parseSimple(def: EventDef, body: string): Result<Args> {
  const keys = Object.keys(def.args).map(escapeRe).join('|');
  const re = new RegExp(`(?:^|\\s)(${keys})=`, 'g');
  const hits = [...body.matchAll(re)];
  if (hits.length === 0) return fail('no name=value arguments');
  const args: Record<string, bigint | string> = {};
  for (const [k, h] of hits.entries()) {
    const name = h[1] ?? '';
    const start = (h.index ?? 0) + h[0].length;
    const end = hits[k + 1]?.index ?? body.length;
    const text = body.slice(start, end).trim();
    if (args[name] !== undefined) return fail(`argument ${name} given twice`);
    const v = value(def, name, text, 'simple');
    if (!v.ok) return v;
    args[name] = v.value;
  }
  return withDefaults(def, args);
}

export function parseArgs(def: EventDef, line: TraceLine): Result<Args> {
  if (!line.simple) return parseText(def, line.body);
  const simple = parseSimple(def, line.body);
  // A simpletrace-like prefix in front of the log backend's text is accepted too.
  return simple.ok ? simple : parseText(def, line.body);
}

export type Message =
  | { readonly kind: 'failed'; readonly cmd: string; readonly error: string }
  | { readonly kind: 'dma'; readonly unmap: boolean; readonly iova: bigint; readonly size: bigint; readonly vaddr?: bigint; readonly rc: bigint }
  | { readonly kind: 'other' };

const FAILED = /^((?:IOMMU|VFIO)_[A-Z0-9_]+) failed: (.+?)(?:, PCI BAR\?)?$/;
const DMA_CALL = /^vfio_\w*dma_(un)?map\(([^)]*)\) = (-?\d+)(?: \(.*\))?$/;

/** error_report()/warn_report() lines: optional -msg timestamp=on time, the program name, "warning: ". */
function messageBody(text: string): { prog?: string; msg: string } {
  let msg = text.trim().replace(/^\d{4}-\d\d-\d\dT\S+\s+/, '');
  let prog: string | undefined;
  const colon = msg.indexOf(': ');
  const head = colon > 0 ? msg.slice(0, colon) : '';
  if (head.includes('qemu') && !/\s/.test(head)) {
    prog = head;
    msg = msg.slice(colon + 2).trimStart();
  }
  msg = msg.replace(/^warning:\s+/, '');
  return prog !== undefined ? { prog, msg } : { msg };
}

export function parseMessage(text: string): Message | undefined {
  const { prog, msg } = messageBody(text);
  const f = FAILED.exec(msg);
  if (f !== null) return { kind: 'failed', cmd: f[1] ?? '', error: f[2] ?? '' };
  const d = DMA_CALL.exec(msg);
  if (d !== null) {
    const args = (d[2] ?? '').split(',').map((s) => parseIntText(s.trim()));
    const [, iova, size, vaddr] = args;
    const unmap = d[1] !== undefined;
    if (iova !== undefined && size !== undefined && args.length === (unmap ? 3 : 4)) {
      return { kind: 'dma', unmap, iova, size, ...(vaddr !== undefined ? { vaddr } : {}), rc: BigInt(d[3] ?? '0') };
    }
  }
  return prog !== undefined ? { kind: 'other' } : undefined;
}
