/**
 * Arguments shared by the time-travel commands and the terminal debugger: entry positions, history selectors and
 * bisect predicates, parsed with node:util parseArgs from the command line or from a debugger command.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { TraceIndex } from './index.js';
import { parseInteger, type Json } from './json.js';
import { ExprError } from './expr.js';
import { PathError } from './path.js';
import { exprPredicate, firstDivergence, firstError, firstInternalError, iovaUnmapped, pathEquals, type Predicate, type Selector } from './queries.js';

export class UsageError extends Error {}

/** An entry number: N, -1 (the initial state), `start` (-1), `end` (the last entry), `line:L` (the last entry of line L). */
export function parseEntry(idx: TraceIndex, text: string, what = 'entry'): number {
  const t = text.trim();
  if (t === 'start') return -1;
  if (t === 'end') return idx.count - 1;
  const m = /^line:([0-9]+)$/.exec(t);
  if (m !== null) return entryOfLine(idx, Number(m[1]));
  if (!/^-?[0-9]+$/.test(t)) throw new UsageError(`${what} must be an entry number, start, end or line:L; got ${JSON.stringify(text)}`);
  const n = Number(t);
  if (n < -1 || n >= idx.count) throw new UsageError(`${what} ${n} is out of range: entries run from 0 to ${idx.count - 1} (-1 is the initial state)`);
  return n;
}

/** The last entry of trace line `line`, or the last entry before it when the line produced none. */
export function entryOfLine(idx: TraceIndex, line: number): number {
  if (!Number.isInteger(line) || line < 1 || line > idx.lines) throw new UsageError(`line ${line} is out of range: the trace has lines 1 to ${idx.lines}`);
  return idx.lowerBoundLine(line + 1) - 1;
}

const int = (v: string | undefined, what: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = parseInteger(v);
  if (n === undefined || n < 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) throw new UsageError(`${what} takes a non-negative number, got ${JSON.stringify(v)}`);
  return Number(n);
};
const u64 = (v: string, what: string): bigint => {
  const n = parseInteger(v);
  if (n === undefined || n < 0n || n >= 1n << 64n) throw new UsageError(`${what} takes a u64 (decimal or 0x hex), got ${JSON.stringify(v)}`);
  return n;
};

export const SELECTOR_OPTIONS = {
  object: { type: 'string' }, ctx: { type: 'string' }, iova: { type: 'string' }, ioas: { type: 'string' },
  page: { type: 'string' }, pages: { type: 'string' }, domain: { type: 'string' }, fd: { type: 'string' },
  type: { type: 'string' }, line: { type: 'string' },
} as const;

export const SELECTOR_USAGE = '--object ID [--ctx C] | --iova ADDR --ioas ID [--ctx C] | --page I --pages P | --pages P | --domain D | --fd F | --type EVENT | --line L';

export function selectorFrom(v: Values): Selector {
  const s = (k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const ctx = int(s('ctx'), '--ctx');
  const chosen = ['object', 'iova', 'page', 'domain', 'fd', 'type', 'line'].filter((k) => s(k) !== undefined);
  if (chosen.length === 0 && s('pages') !== undefined) return { kind: 'page', pages: int(s('pages'), '--pages')! };
  if (chosen.length !== 1) throw new UsageError(`choose one of ${SELECTOR_USAGE}`);
  switch (chosen[0]) {
    case 'object': return { kind: 'object', id: int(s('object'), '--object')!, ctx };
    case 'iova':
      if (s('ioas') === undefined) throw new UsageError('--iova needs --ioas ID (the IOAS whose IOVA space it is)');
      return { kind: 'iova', iova: u64(s('iova')!, '--iova'), ioas: int(s('ioas'), '--ioas')!, ctx };
    case 'page':
      if (s('pages') === undefined) throw new UsageError('--page needs --pages P (the iopt_pages id)');
      return { kind: 'page', index: int(s('page'), '--page')!, pages: int(s('pages'), '--pages')! };
    case 'domain': return { kind: 'domain', domain: int(s('domain'), '--domain')! };
    case 'fd': return { kind: 'fd', fd: int(s('fd'), '--fd')! };
    case 'type': return { kind: 'type', type: s('type')! };
    default: return { kind: 'line', line: int(s('line'), '--line')! };
  }
}

export const PREDICATE_OPTIONS = {
  'first-divergence': { type: 'boolean' }, 'first-internal-error': { type: 'boolean' }, 'first-error': { type: 'boolean' },
  'iova-unmapped': { type: 'string' }, ioas: { type: 'string' }, ctx: { type: 'string' },
  path: { type: 'string' }, equals: { type: 'string' }, expr: { type: 'string' },
} as const;

export const PREDICATE_USAGE = '--first-divergence | --first-internal-error | --first-error | --iova-unmapped ADDR --ioas ID [--ctx C] | --path P --equals VALUE | --expr EXPR';

/** A value given on the command line: JSON when it parses as JSON, else the text itself. */
export function valueArg(text: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch {
    return text;
  }
}

export function predicateFrom(v: Values): Predicate {
  const s = (k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const chosen = ['first-divergence', 'first-internal-error', 'first-error', 'iova-unmapped', 'path', 'expr'].filter((k) => v[k] !== undefined && v[k] !== false);
  if (chosen.length !== 1) throw new UsageError(`choose one predicate: ${PREDICATE_USAGE}`);
  try {
    switch (chosen[0]) {
      case 'first-divergence': return firstDivergence();
      case 'first-internal-error': return firstInternalError();
      case 'first-error': return firstError();
      case 'iova-unmapped':
        if (s('ioas') === undefined) throw new UsageError('--iova-unmapped needs --ioas ID');
        return iovaUnmapped(int(s('ioas'), '--ioas')!, u64(s('iova-unmapped')!, '--iova-unmapped'), int(s('ctx'), '--ctx'));
      case 'path':
        if (s('equals') === undefined) throw new UsageError('--path needs --equals VALUE');
        return pathEquals(s('path')!, valueArg(s('equals')!));
      default: return exprPredicate(s('expr')!);
    }
  } catch (e) {
    if (e instanceof PathError || e instanceof ExprError) throw new UsageError(e.message);
    throw e;
  }
}

export type Values = { readonly [k: string]: string | boolean | (string | boolean)[] | undefined };

/** parseArgs, with its errors as UsageErrors. */
export function parse(args: readonly string[], options: ParseArgsConfig['options']): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Splits a command line into words: whitespace separates, quotes group ('…' literally, "…" with \ escapes). */
export function splitWords(line: string): string[] {
  const out: string[] = [];
  let cur = '', inWord = false, i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      if (end < 0) throw new UsageError(`unterminated ${c} quote`);
      let body = line.slice(i + 1, end);
      if (c === '"') body = body.replace(/\\(.)/g, '$1');
      cur += body;
      inWord = true;
      i = end + 1;
      continue;
    }
    if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      i++;
      continue;
    }
    cur += c;
    inWord = true;
    i++;
  }
  if (inWord) out.push(cur);
  return out;
}
