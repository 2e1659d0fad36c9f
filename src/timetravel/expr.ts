/**
 * A small expression language for predicates over a view (bisect, the debugger's `bisect`):
 *
 *   expr := or          or := and ('||' and)*          and := not ('&&' not)*        not := '!' not | cmp
 *   cmp  := atom (('==' | '!=' | '<' | '<=' | '>' | '>=') atom)?
 *   atom := NUMBER | 0xHEX | "string" | 'string' | true | false | null | '(' expr ')' | FUNC '(' PATH ')' | PATH
 *   FUNC := len | exists
 *
 * A PATH is a view path (path.ts): `accounting.pinnedVm`, `contexts[id=1].objects[id=2].users`; `$event.FIELD`,
 * `$line`, `$n` and `$tid` read the log entry the view is at. Numbers compare with the view's `0x…` strings by
 * value; `==` on anything else compares JSON. A path that leads nowhere is absent: `exists(p)` is false, `len(p)`
 * is 0, and any comparison with it is false except `!=`.
 *
 *   accounting.pinnedVm > 0
 *   len(contexts[0].objects) >= 3 && !exists(contexts[0].objects[id=2])
 *   $event.type == "Diverged"
 */
import type { LogEntry } from '../events/domain.js';
import { isObject, numericOf, parseInteger, toJson, type Json } from './json.js';
import { getAt, parsePath, PathError, sameValue, type Step } from './path.js';

export class ExprError extends Error {}

type Node =
  | { readonly t: 'lit'; readonly v: Json }
  | { readonly t: 'path'; readonly root: 'view' | '$event' | '$line' | '$n' | '$tid'; readonly steps: Step[] }
  | { readonly t: 'fn'; readonly f: 'len' | 'exists'; readonly arg: Node }
  | { readonly t: 'not'; readonly e: Node }
  | { readonly t: 'bin'; readonly op: string; readonly l: Node; readonly r: Node };

interface Tok { readonly k: 'op' | 'num' | 'str' | 'path' | 'word'; readonly v: string; readonly at: number }

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) { i++; continue; }
    const two = src.slice(i, i + 2);
    if (['==', '!=', '<=', '>=', '&&', '||'].includes(two)) { out.push({ k: 'op', v: two, at: i }); i += 2; continue; }
    if ('<>!()'.includes(c)) { out.push({ k: 'op', v: c, at: i }); i++; continue; }
    if (c === '"' || c === "'") {
      let j = i + 1, s = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) j++;
        s += src[j];
        j++;
      }
      if (j >= src.length) throw new ExprError(`unterminated string at ${i}`);
      out.push({ k: 'str', v: s, at: i });
      i = j + 1;
      continue;
    }
    const num = /^(-?0x[0-9a-fA-F]+|-?[0-9]+)/.exec(src.slice(i));
    if (num !== null) { out.push({ k: 'num', v: num[0], at: i }); i += num[0].length; continue; }
    if (/[A-Za-z_$]/.test(c)) {
      // A path: names, dots and bracketed steps (which may hold '=' and quotes).
      let j = i;
      while (j < src.length) {
        const d = src[j]!;
        if (/[A-Za-z0-9_$.]/.test(d)) { j++; continue; }
        if (d === '[') {
          const end = src.indexOf(']', j);
          if (end < 0) throw new ExprError(`"[" at ${j} is not closed`);
          j = end + 1;
          continue;
        }
        break;
      }
      const text = src.slice(i, j);
      out.push({ k: /^[A-Za-z]+$/.test(text) && ['true', 'false', 'null', 'len', 'exists'].includes(text) ? 'word' : 'path', v: text, at: i });
      i = j;
      continue;
    }
    throw new ExprError(`unexpected ${JSON.stringify(c)} at ${i}`);
  }
  return out;
}

export function parseExpr(src: string): Node {
  const toks = tokenize(src);
  let p = 0;
  const peek = (): Tok | undefined => toks[p];
  const eat = (v: string): boolean => {
    if (toks[p]?.k === 'op' && toks[p]!.v === v) { p++; return true; }
    return false;
  };
  const where = (): string => (p < toks.length ? `at ${toks[p]!.at} (${JSON.stringify(toks[p]!.v)})` : 'at the end');
  const orE = (): Node => {
    let l = andE();
    while (eat('||')) l = { t: 'bin', op: '||', l, r: andE() };
    return l;
  };
  const andE = (): Node => {
    let l = notE();
    while (eat('&&')) l = { t: 'bin', op: '&&', l, r: notE() };
    return l;
  };
  const notE = (): Node => (eat('!') ? { t: 'not', e: notE() } : cmp());
  const cmp = (): Node => {
    const l = atom();
    const t = peek();
    if (t?.k === 'op' && ['==', '!=', '<', '<=', '>', '>='].includes(t.v)) {
      p++;
      return { t: 'bin', op: t.v, l, r: atom() };
    }
    return l;
  };
  const pathNode = (text: string): Node => {
    const m = /^(\$event|\$line|\$n|\$tid)(.*)$/.exec(text);
    const root = (m?.[1] ?? 'view') as 'view' | '$event' | '$line' | '$n' | '$tid';
    const rest = m === null ? text : m[2]!.replace(/^\./, '');
    if (m !== null && root !== '$event' && rest !== '') throw new ExprError(`${root} has no fields`);
    try {
      return { t: 'path', root, steps: parsePath(rest) };
    } catch (e) {
      throw new ExprError(e instanceof PathError ? e.message : String(e));
    }
  };
  const atom = (): Node => {
    const t = toks[p];
    if (t === undefined) throw new ExprError('expected a value at the end');
    p++;
    if (t.k === 'num') {
      const v = parseInteger(t.v)!;
      return { t: 'lit', v: v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : t.v };
    }
    if (t.k === 'str') return { t: 'lit', v: t.v };
    if (t.k === 'path') return pathNode(t.v);
    if (t.k === 'word') {
      if (t.v === 'true' || t.v === 'false') return { t: 'lit', v: t.v === 'true' };
      if (t.v === 'null') return { t: 'lit', v: null };
      if (!eat('(')) throw new ExprError(`${t.v} takes a path in parentheses`);
      const a = atom();
      if (!eat(')')) throw new ExprError(`expected ")" ${where()}`);
      if (a.t !== 'path') throw new ExprError(`${t.v}() takes a path`);
      return { t: 'fn', f: t.v as 'len' | 'exists', arg: a };
    }
    if (t.v === '(') {
      const e = orE();
      if (!eat(')')) throw new ExprError(`expected ")" ${where()}`);
      return e;
    }
    throw new ExprError(`unexpected ${JSON.stringify(t.v)} at ${t.at}`);
  };
  if (toks.length === 0) throw new ExprError('empty expression');
  const e = orE();
  if (p < toks.length) throw new ExprError(`unexpected ${JSON.stringify(toks[p]!.v)} at ${toks[p]!.at}`);
  return e;
}

const truthy = (v: Json | undefined): boolean =>
  v !== undefined && v !== null && v !== false && v !== 0 && v !== '' && !(Array.isArray(v) && v.length === 0);

function evalNode(n: Node, view: Json, e: LogEntry | undefined): Json | undefined {
  switch (n.t) {
    case 'lit': return n.v;
    case 'path': {
      if (n.root === 'view') return getAt(view, n.steps);
      if (e === undefined) return undefined;
      if (n.root === '$line') return e.line;
      if (n.root === '$n') return e.n;
      if (n.root === '$tid') return e.tid;
      return getAt(toJson(e.ev), n.steps);
    }
    case 'fn': {
      const v = evalNode(n.arg, view, e);
      if (n.f === 'exists') return v !== undefined;
      return Array.isArray(v) ? v.length : isObject(v) ? Object.keys(v).length : typeof v === 'string' ? v.length : 0;
    }
    case 'not': return !truthy(evalNode(n.e, view, e));
    case 'bin': {
      if (n.op === '&&') return truthy(evalNode(n.l, view, e)) && truthy(evalNode(n.r, view, e));
      if (n.op === '||') return truthy(evalNode(n.l, view, e)) || truthy(evalNode(n.r, view, e));
      const a = evalNode(n.l, view, e), b = evalNode(n.r, view, e);
      if (n.op === '==') return a !== undefined && b !== undefined && sameValue(a, b);
      if (n.op === '!=') return !(a !== undefined && b !== undefined && sameValue(a, b));
      if (a === undefined || b === undefined) return false;
      const x = numericOf(a), y = numericOf(b);
      const c = x !== undefined && y !== undefined ? (x < y ? -1 : x > y ? 1 : 0)
        : typeof a === 'string' && typeof b === 'string' ? (a < b ? -1 : a > b ? 1 : 0) : undefined;
      if (c === undefined) return false;
      return n.op === '<' ? c < 0 : n.op === '<=' ? c <= 0 : n.op === '>' ? c > 0 : c >= 0;
    }
  }
}

/** Compiles an expression into a test of (view, entry). Throws ExprError with the position of a mistake. */
export function compileExpr(src: string): { readonly test: (view: Json, e: LogEntry | undefined) => boolean; readonly usesView: boolean } {
  const ast = parseExpr(src);
  const usesView = (n: Node): boolean => n.t === 'path' ? n.root === 'view'
    : n.t === 'fn' ? usesView(n.arg) : n.t === 'not' ? usesView(n.e) : n.t === 'bin' ? usesView(n.l) || usesView(n.r) : false;
  return { test: (view, e) => truthy(evalNode(ast, view, e)), usesView: usesView(ast) };
}
