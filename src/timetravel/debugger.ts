/**
 * The terminal debugger's command interpreter: a pure function from (session, command line) to (output, session).
 * src/cli/debug.ts puts it behind node:readline; tests drive it directly.
 *
 * The session is a position in the log (entry n, -1 for the initial state) over an index; moving shows where it
 * landed and what that entry changed. Commands move (goto, step, back, next, prev, continue, rcontinue), look
 * (where, entry, list, print, tables), and ask (diff, history, blame, bisect, marks).
 */
import type { LogEntry } from '../events/domain.js';
import { parse, parseEntry, PREDICATE_OPTIONS, predicateFrom, SELECTOR_OPTIONS, selectorFrom, splitWords, UsageError, type Values } from './args.js';
import { diffViews } from './diff.js';
import { ExprError } from './expr.js';
import {
  areasTable, describeEntry, describeEvent, describeMark, domainsTable, fdsTable, formatChange, mappingsTable, objectsTable, pagesTable, pinsTable,
  pretty, rangesTable, summary, vmasTable,
} from './format.js';
import type { TraceIndex } from './index.js';
import { short, toJson } from './json.js';
import { canonicalPath, completePath, getAt, parsePath, PathError } from './path.js';
import { bisect, blame, describeSelector, history } from './queries.js';

export interface Session {
  readonly idx: TraceIndex;
  /** The current entry: the state shown is the one after it (-1: the initial state). */
  readonly n: number;
  readonly quit: boolean;
  /** The last command, which an empty line repeats (like gdb). */
  readonly last: string | undefined;
}

export const newSession = (idx: TraceIndex, n = -1): Session => ({ idx, n, quit: false, last: undefined });

interface Command {
  readonly names: readonly string[];
  readonly args: string;
  readonly help: string;
  readonly run: (s: Session, words: string[]) => { output: string; n?: number; quit?: boolean };
}

const MAX_CHANGES = 25;

/** Where the session is, and what the current entry changed. */
function landed(s: Session, n: number, why = ''): { output: string; n: number } {
  const idx = s.idx;
  const lines = [why, where(idx, n)].filter((l) => l !== '');
  if (n >= 0) {
    const changes = diffViews(idx.viewAt(n - 1), idx.viewAt(n));
    for (const c of changes.slice(0, MAX_CHANGES)) lines.push(`  ${formatChange(c)}`);
    if (changes.length > MAX_CHANGES) lines.push(`  … ${changes.length - MAX_CHANGES} more changes (diff ${n - 1} ${n})`);
    for (const m of idx.marks) if (m.n === n) lines.push(`  ${describeMark(m)}`);
  }
  return { output: lines.join('\n'), n };
}

export function where(idx: TraceIndex, n: number): string {
  if (n < 0) return `at the initial state (before entry 0 of ${idx.count})`;
  const e = idx.entry(n);
  const info = idx.lineInfo(e.line);
  return [`at #${n} of ${idx.count - 1}, trace line ${e.line} of ${idx.lines}${info.label ? ` [${info.label}]` : ''}${e.tid !== 1 ? ` tid ${e.tid}` : ''}`,
    `  ${describeEvent(e.ev)}`, ...(info.note ? [`  note: ${info.note}`] : [])].join('\n');
}

const count = (w: string | undefined, what: string): number => {
  if (w === undefined) return 1;
  if (!/^[0-9]+$/.test(w) || Number(w) === 0) throw new UsageError(`${what} takes a positive count, got ${JSON.stringify(w)}`);
  return Number(w);
};

/** `object 2 ctx 1` → `--object 2 --ctx 1`: the debugger accepts both spellings. */
function flags(words: readonly string[]): string[] {
  if (words.length === 0 || words[0]!.startsWith('-')) return [...words];
  const out: string[] = [];
  const booleans = new Set(['first-divergence', 'first-internal-error', 'first-error', 'linear', 'fast']);
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w.startsWith('-')) out.push(w);
    else if (booleans.has(w)) out.push(`--${w}`);
    else {
      out.push(`--${w}`);
      if (i + 1 < words.length) out.push(words[++i]!);
    }
  }
  return out;
}

function nextLineEnd(idx: TraceIndex, n: number, k: number): number {
  let m = n;
  for (let i = 0; i < k && m < idx.count - 1; i++) {
    const line = idx.entry(m + 1).line;
    m = idx.lowerBoundLine(line + 1) - 1;
  }
  return m;
}

function prevLineEnd(idx: TraceIndex, n: number, k: number): number {
  let m = n;
  for (let i = 0; i < k && m >= 0; i++) {
    const line = idx.entry(m).line;
    m = idx.lowerBoundLine(line) - 1;
  }
  return m;
}

const COMMANDS: readonly Command[] = [
  { names: ['help', 'h', '?'], args: '[COMMAND]', help: 'this list, or one command', run: (_s, w) => ({ output: helpText(w[0]) }) },
  {
    names: ['goto', 'g'], args: 'N | start | end | line:L', help: 'go to entry N (the state after it; start is the initial state)',
    run: (s, w) => {
      if (w[0] === undefined) throw new UsageError('goto where? N, start, end or line:L');
      return landed(s, parseEntry(s.idx, w[0]));
    },
  },
  { names: ['line'], args: 'L', help: 'go to the end of trace line L', run: (s, w) => landed(s, parseEntry(s.idx, `line:${w[0] ?? ''}`)) },
  {
    names: ['step', 's'], args: '[K]', help: 'forward K log entries (default 1)',
    run: (s, w) => {
      const to = Math.min(s.idx.count - 1, s.n + count(w[0], 'step'));
      return landed(s, to, to === s.n ? 'already at the last entry' : '');
    },
  },
  {
    names: ['back', 'b'], args: '[K]', help: 'backward K log entries (default 1)',
    run: (s, w) => {
      const to = Math.max(-1, s.n - count(w[0], 'back'));
      return landed(s, to, to === s.n ? 'already at the initial state' : '');
    },
  },
  { names: ['next', 'n'], args: '[K]', help: 'forward to the end of the next K trace lines', run: (s, w) => landed(s, nextLineEnd(s.idx, s.n, count(w[0], 'next'))) },
  { names: ['prev'], args: '[K]', help: 'backward to the end of the K-th trace line before this one', run: (s, w) => landed(s, prevLineEnd(s.idx, s.n, count(w[0], 'prev'))) },
  {
    names: ['continue', 'c'], args: '', help: 'forward to the next divergence or error (or the end)',
    run: (s) => {
      const m = s.idx.marks.find((x) => x.n > s.n);
      return m ? landed(s, m.n) : landed(s, s.idx.count - 1, 'no divergence or error ahead: at the last entry');
    },
  },
  {
    names: ['rcontinue', 'rc'], args: '', help: 'backward to the previous divergence or error (or the start)',
    run: (s) => {
      const m = [...s.idx.marks].reverse().find((x) => x.n < s.n);
      return m ? landed(s, m.n) : landed(s, -1, 'no divergence or error behind: at the initial state');
    },
  },
  { names: ['where', 'w'], args: '', help: 'where the session is', run: (s) => ({ output: where(s.idx, s.n) }) },
  {
    names: ['entry', 'e'], args: '[N]', help: 'entry N (default the current one) in full, and what it changed',
    run: (s, w) => {
      const n = w[0] === undefined ? s.n : parseEntry(s.idx, w[0]);
      if (n < 0) return { output: 'the initial state is not an entry' };
      const e = s.idx.entry(n);
      const changes = diffViews(s.idx.viewAt(n - 1), s.idx.viewAt(n));
      const info = s.idx.lineInfo(e.line);
      return {
        output: [describeEntry(s.idx, e), pretty(toJson(e.ev)),
          ...(info.note ? [`note: ${info.note}`] : []), changes.length ? 'changes:' : 'changes: none', ...changes.map((c) => `  ${formatChange(c)}`)].join('\n'),
      };
    },
  },
  {
    names: ['list', 'l'], args: '[N]', help: 'the entries around N (default the current one)',
    run: (s, w) => {
      const c = w[0] === undefined ? s.n : parseEntry(s.idx, w[0]);
      const from = Math.max(0, c - 5), to = Math.min(s.idx.count, c + 6);
      const out: string[] = [];
      for (const e of s.idx.entries(from, to)) out.push(`${e.n === s.n ? '=>' : '  '} ${describeEntry(s.idx, e)}`);
      return { output: out.length ? out.join('\n') : '(empty log)' };
    },
  },
  {
    names: ['print', 'p'], args: '[PATH]', help: 'the state: a summary, or the value at a view path (contexts[0].objects[id=1])',
    run: (s, w) => {
      const view = s.idx.viewAt(s.n);
      if (w.length === 0) return { output: summary(view) };
      const steps = canonicalPath(view, parsePath(w.join(' ')));
      return { output: pretty(getAt(view, steps)) };
    },
  },
  { names: ['objects', 'o'], args: '', help: 'table of the objects', run: (s) => ({ output: objectsTable(s.idx.viewAt(s.n)) }) },
  { names: ['areas', 'a'], args: '[IOAS]', help: 'table of the areas (of one IOAS)', run: (s, w) => ({ output: areasTable(s.idx.viewAt(s.n), w[0] === undefined ? undefined : Number(w[0])) }) },
  { names: ['ranges'], args: '', help: 'allowed and reserved IOVA ranges', run: (s) => ({ output: rangesTable(s.idx.viewAt(s.n)) }) },
  { names: ['pins'], args: '', help: 'pinned page runs and the accounting', run: (s) => ({ output: pinsTable(s.idx.viewAt(s.n)) }) },
  { names: ['pages'], args: '', help: 'table of the iopt_pages', run: (s) => ({ output: pagesTable(s.idx.viewAt(s.n)) }) },
  { names: ['domains'], args: '', help: 'table of the IOMMU domains', run: (s) => ({ output: domainsTable(s.idx.viewAt(s.n)) }) },
  { names: ['maps'], args: '[DOMAIN]', help: "the domains' mappings", run: (s, w) => ({ output: mappingsTable(s.idx.viewAt(s.n), w[0] === undefined ? undefined : Number(w[0])) }) },
  { names: ['fds'], args: '', help: 'table of the fds', run: (s) => ({ output: fdsTable(s.idx.viewAt(s.n)) }) },
  { names: ['vmas'], args: '', help: 'table of the VMAs', run: (s) => ({ output: vmasTable(s.idx.viewAt(s.n)) }) },
  {
    names: ['diff', 'd'], args: '[N [M]]', help: 'what changed from N to M (default: what the current entry changed; one entry: from N to here)',
    run: (s, w) => {
      const a = w[0] === undefined ? s.n - 1 : parseEntry(s.idx, w[0]);
      const b = w[1] === undefined ? s.n : parseEntry(s.idx, w[1]);
      if (a < -1) return { output: 'nothing before the initial state' };
      const changes = diffViews(s.idx.viewAt(a), s.idx.viewAt(b));
      return { output: changes.length ? changes.map(formatChange).join('\n') : `no difference between ${a} and ${b}` };
    },
  },
  {
    names: ['history', 'hist'], args: 'object ID [ctx C] | iova ADDR ioas ID | page I pages P | domain D | fd F | type T', help: 'every entry that touched it',
    run: (s, w) => {
      const { values } = parse(flags(w), SELECTOR_OPTIONS);
      const sel = selectorFrom(values);
      const es = history(s.idx, sel);
      const mark = (e: LogEntry): string => (e.n === s.n ? '=>' : e.n > s.n ? ' >' : '  ');
      return { output: [`history of ${describeSelector(sel)}: ${es.length} entr${es.length === 1 ? 'y' : 'ies'}`, ...es.map((e) => `${mark(e)} ${describeEntry(s.idx, e)}`)].join('\n') };
    },
  },
  {
    names: ['blame'], args: 'PATH [--fast]', help: 'the entry that last changed the value at PATH, up to here',
    run: (s, w) => {
      const fast = w.includes('--fast') || w.includes('fast');
      const path = w.filter((x) => x !== '--fast' && x !== 'fast').join(' ');
      if (path === '') throw new UsageError('blame which path? (print shows the state; tab completes paths)');
      const r = blame(s.idx, path, s.n, { mode: fast ? 'bisect' : 'walk' });
      const out = [`${r.canonical} = ${short(r.value, 200)}`];
      if (r.entry === undefined) out.push('  unchanged since the initial state');
      else out.push(`  last changed by ${describeEntry(s.idx, r.entry)}`, `  before it: ${short(r.before, 200)}`);
      return { output: out.join('\n') };
    },
  },
  {
    names: ['bisect'], args: 'first-divergence | first-internal-error | first-error | iova-unmapped ADDR ioas ID | path P equals V | expr EXPR [linear]',
    help: 'go to the first entry at which the predicate holds',
    run: (s, w) => {
      const { values } = parse(flags(w), { ...PREDICATE_OPTIONS, linear: { type: 'boolean' } });
      const r = bisect(s.idx, predicateFrom(values as Values), { mode: values.linear ? 'linear' : 'binary' });
      if (!r.found || r.n === undefined) return { output: r.message };
      const l = landed(s, r.n, `${r.message} (${r.mode}, ${r.probes} probe${r.probes === 1 ? '' : 's'})`);
      return { output: l.output, n: l.n };
    },
  },
  {
    names: ['marks', 'errors'], args: '', help: 'every divergence and error of the trace',
    run: (s) => ({ output: s.idx.marks.length ? s.idx.marks.map((m) => `${m.n === s.n ? '=>' : '  '} ${describeMark(m)}`).join('\n') : 'no divergence and no error: the trace replays clean' }),
  },
  { names: ['quit', 'q', 'exit'], args: '', help: 'leave', run: () => ({ output: '', quit: true }) },
];

const BY_NAME = new Map(COMMANDS.flatMap((c) => c.names.map((n) => [n, c] as const)));

function helpText(cmd?: string): string {
  if (cmd !== undefined) {
    const c = BY_NAME.get(cmd);
    if (c === undefined) return `no command ${JSON.stringify(cmd)}`;
    return `${c.names.join(', ')} ${c.args}\n  ${c.help}`;
  }
  const rows = COMMANDS.map((c) => `  ${`${c.names[0]}${c.names.length > 1 ? ` (${c.names.slice(1).join(', ')})` : ''} ${c.args}`.trimEnd().padEnd(36)} ${c.help}`);
  return ['commands (an empty line repeats the last one; TAB completes commands and paths):', ...rows].join('\n');
}

/** Runs one command line. Never throws: a mistake is output, and the session stays where it was. */
export function runCommand(s: Session, line: string): { output: string; session: Session } {
  const text = line.trim() === '' ? s.last ?? '' : line.trim();
  if (text === '') return { output: '', session: s };
  let words: string[];
  try {
    words = splitWords(text);
  } catch (e) {
    return { output: `error: ${(e as Error).message}`, session: s };
  }
  const [name, ...rest] = words;
  const cmd = BY_NAME.get(name!);
  if (cmd === undefined) return { output: `unknown command ${JSON.stringify(name)} (help lists them)`, session: s };
  try {
    const r = cmd.run(s, rest);
    return { output: r.output, session: { ...s, n: r.n ?? s.n, quit: r.quit === true, last: text } };
  } catch (e) {
    if (e instanceof UsageError || e instanceof PathError || e instanceof ExprError || e instanceof RangeError)
      return { output: `error: ${e.message}${e instanceof UsageError ? `\nusage: ${cmd.names[0]} ${cmd.args}` : ''}`, session: { ...s, last: text } };
    throw e;
  }
}

const PATH_COMMANDS = new Set(['print', 'p', 'blame']);

/** Completions for node:readline: [candidates, the part of the line they complete]. */
export function complete(s: Session, line: string): [string[], string] {
  const words = line.split(/\s+/);
  if (words.length <= 1) {
    const w = words[0] ?? '';
    return [COMMANDS.flatMap((c) => c.names).filter((n) => n.startsWith(w)).sort(), w];
  }
  const cmd = words[0]!;
  const cur = words[words.length - 1]!;
  if (PATH_COMMANDS.has(cmd)) return [completePath(s.idx.viewAt(s.n), cur), cur];
  if (cmd === 'goto' || cmd === 'g') return [['start', 'end', 'line:'].filter((x) => x.startsWith(cur)), cur];
  if (cmd === 'help' || cmd === 'h') return [COMMANDS.map((c) => c.names[0]!).filter((n) => n.startsWith(cur)), cur];
  if (cmd === 'history' || cmd === 'hist') return [Object.keys(SELECTOR_OPTIONS).filter((n) => n.startsWith(cur)), cur];
  if (cmd === 'bisect') return [[...Object.keys(PREDICATE_OPTIONS), 'linear'].filter((n) => n.startsWith(cur)), cur];
  return [[], cur];
}

export const COMMAND_NAMES: readonly string[] = COMMANDS.map((c) => c.names[0]!);
