/**
 * A compact, lossless and schema-free binary encoding of log entries, for the time-travel index.
 *
 * The JSONL event log (events/log.ts) spells every field name and every `why` string out on every line, and its
 * decoder knows the u64 fields of each event type by name. The index holds millions of entries and is written while
 * the replay runs, so it uses a shape dictionary and varints instead: the first time an event of a given type
 * arrives with a given list of fields (and the same JS type in each field) it becomes a *shape* `[type, keys,
 * tags]`, and each entry is written as varints: shape, line delta, tid, then one value per field that takes room.
 *
 *   n  a safe integer (|v| ≤ 2^52), zigzag varint      f  any other number, 8 bytes (float64)
 *   b  a bigint: zigzag varint when |v| ≤ 2^51, else an escape and the string id of its hex
 *   s  a string: its id in the string table (the `why` texts repeat endlessly)
 *   t  a boolean: one byte                              u, z  undefined, null: no room at all
 *   o  anything else (a FileRef, a list of ranges): the string id of a tagged JSON form (`encodeNested`) in which
 *      every string carries a one-letter prefix, so nothing in a trace can pass for a bigint
 *
 * Nothing here knows an event type: a new event type (or a new field) gets a new shape, and decodes to exactly the
 * object that was encoded (same keys, same order, same JS types). Blocks are plain bytes: no JSON to build while
 * the replay runs, and nothing for the garbage collector to trace while they sit in memory.
 */
import type { DomainEvent, LogEntry } from '../events/domain.js';

/** The JS type of a field: see the file comment. */
type Tag = 'n' | 'f' | 'b' | 's' | 't' | 'u' | 'z' | 'o';
const TAGS = 'nfbstuzo';

export interface Shape {
  readonly id: number;
  readonly type: string;
  readonly keys: readonly string[];
  readonly tags: readonly Tag[];
  /** The decoder of this shape, made on first use. */
  decode?: ShapeDecoder;
}

const MAX_SMALL = 2 ** 52;
const BIG_SMALL = 2n ** 51n;
/** A varint no zigzagged small bigint can be: a bigint's hex string id follows. */
const BIG_ESCAPE = 2 ** 53 - 1;

function tagOf(v: unknown): Tag {
  switch (typeof v) {
    case 'number': return Number.isInteger(v) && v <= MAX_SMALL && v >= -MAX_SMALL && !Object.is(v, -0) ? 'n' : 'f';
    case 'bigint': return 'b';
    case 'string': return 's';
    case 'boolean': return 't';
    case 'undefined': return 'u';
    default: return v === null ? 'z' : 'o';
  }
}

const bigToText = (v: bigint): string => (v < 0n ? `-${(-v).toString(16)}` : v.toString(16));
const textToBig = (s: string): bigint => (s.startsWith('-') ? -BigInt(`0x${s.slice(1)}`) : BigInt(`0x${s}`));

/** The tagged JSON form of a nested value: strings `s…`, bigints `b…`, `u` undefined, `f…` a non-finite number. */
export function encodeNested(v: unknown): unknown {
  switch (typeof v) {
    case 'string': return `s${v}`;
    case 'bigint': return `b${bigToText(v)}`;
    case 'undefined': return 'u';
    case 'number': return Number.isFinite(v) && !Object.is(v, -0) ? v : Object.is(v, -0) ? 'f-0' : `f${String(v)}`;
    case 'boolean': return v;
    case 'function': case 'symbol': return 'u';
    default: {
      if (v === null) return null;
      if (Array.isArray(v)) return v.map(encodeNested);
      if (v instanceof Map) return { '': 'map', e: [...v].map(([k, x]) => [encodeNested(k), encodeNested(x)]) };
      const o: Record<string, unknown> = {};
      for (const k of Object.keys(v as object)) o[k] = encodeNested((v as Record<string, unknown>)[k]);
      return o;
    }
  }
}

export function decodeNested(v: unknown): unknown {
  if (typeof v === 'string') {
    const t = v.charCodeAt(0);
    if (t === 115 /* s */) return v.slice(1);
    if (t === 98 /* b */) return textToBig(v.slice(1));
    if (t === 102 /* f */) return Number(v.slice(1));
    if (v === 'u') return undefined;
    throw new Error(`bad nested value ${JSON.stringify(v).slice(0, 40)}`);
  }
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map(decodeNested);
  const o = v as Record<string, unknown>;
  if (o[''] === 'map' && Array.isArray(o.e)) return new Map((o.e as [unknown, unknown][]).map(([k, x]) => [decodeNested(k), decodeNested(x)]));
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) {
    if (k === '__proto__') Object.defineProperty(out, k, { value: decodeNested(o[k]), enumerable: true, writable: true, configurable: true });
    else out[k] = decodeNested(o[k]);
  }
  return out;
}

/** Bytes of one block being written. */
class Writer {
  buf = new Uint8Array(1 << 14);
  pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.pos));
    this.buf = b;
  }

  /** An unsigned integer < 2^53. */
  u(v: number): void {
    this.room(8);
    const b = this.buf;
    if (v < 0x80) {
      b[this.pos++] = v;
      return;
    }
    while (v >= 0x80) {
      b[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[this.pos++] = v;
  }

  /** A safe integer, zigzagged. */
  z(v: number): void {
    this.u(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  f(v: number): void {
    this.room(8);
    new DataView(this.buf.buffer).setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  done(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

/** Reads one block. The generated decoders call its methods. */
export class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array, private readonly strings: readonly string[]) {}

  get atEnd(): boolean {
    return this.pos >= this.buf.length;
  }

  u(): number {
    const b = this.buf;
    let x = b[this.pos++];
    if (x === undefined) throw new Error('index block ends inside an entry');
    if (x < 0x80) return x;
    let v = x & 0x7f, mul = 0x80;
    for (;;) {
      x = b[this.pos++];
      if (x === undefined) throw new Error('index block ends inside an entry');
      v += (x & 0x7f) * mul;
      if (x < 0x80) return v;
      mul *= 0x80;
      if (mul > 2 ** 56) throw new Error('index block holds a varint that is too long');
    }
  }

  z(): number {
    const v = this.u();
    return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
  }

  f(): number {
    if (this.pos + 8 > this.buf.length) throw new Error('index block ends inside an entry');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset).getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  s(): string {
    const s = this.strings[this.u()];
    if (s === undefined) throw new Error('index entry names a string that is not in the table');
    return s;
  }

  b(): bigint {
    const v = this.u();
    if (v === BIG_ESCAPE) return textToBig(this.s());
    return BigInt(v % 2 === 0 ? v / 2 : -(v + 1) / 2);
  }

  t(): boolean {
    return this.u() === 1;
  }

  o(): unknown {
    return decodeNested(JSON.parse(this.s()));
  }
}

type ShapeDecoder = (r: Reader) => Record<string, unknown>;

/**
 * A decoder per shape, generated: an object literal with the shape's keys in order builds every event of the shape
 * with one hidden class, several times faster than setting keys one by one (and `evolve` then reads monomorphic
 * objects). Keys and the type appear only as JSON-quoted string literals, and `__proto__` is refused when shapes
 * are read: nothing from an index file becomes code or a prototype.
 */
function compileDecoder(s: Shape): ShapeDecoder {
  const parts = [`"type": ${JSON.stringify(s.type)}`];
  s.keys.forEach((key, i) => {
    const k = JSON.stringify(key);
    const t = s.tags[i]!;
    parts.push(t === 'u' ? `${k}: undefined` : t === 'z' ? `${k}: null` : `${k}: r.${t === 'n' ? 'z' : t}()`);
  });
  return new Function('r', `"use strict"; return { ${parts.join(', ')} };`) as ShapeDecoder;
}

/** The dictionaries shared by every block of one index: shapes and strings. */
export class Dictionaries {
  readonly shapes: Shape[] = [];
  readonly strings: string[] = [];
  private readonly stringIds = new Map<string, number>();
  private readonly shapesByType = new Map<string, Shape[]>();
  private w = new Writer();

  static fromJson(shapes: unknown, strings: unknown): Dictionaries {
    const d = new Dictionaries();
    if (!Array.isArray(shapes) || !Array.isArray(strings)) throw new Error('index dictionaries are malformed');
    for (const s of strings) {
      if (typeof s !== 'string') throw new Error('index string table is malformed');
      d.strings.push(s);
      if (!d.stringIds.has(s)) d.stringIds.set(s, d.strings.length - 1);
    }
    for (const raw of shapes) {
      if (!Array.isArray(raw) || typeof raw[0] !== 'string' || !Array.isArray(raw[1]) || typeof raw[2] !== 'string')
        throw new Error('index shape table is malformed');
      const keys = raw[1] as unknown[];
      const tags = [...raw[2]] as Tag[];
      if (keys.length !== tags.length || keys.some((k) => typeof k !== 'string' || k === '__proto__' || k === 'type') || tags.some((t) => !TAGS.includes(t)))
        throw new Error('index shape table is malformed');
      d.addShape(raw[0], keys as string[], tags);
    }
    return d;
  }

  toJson(): { shapes: [string, readonly string[], string][]; strings: string[] } {
    return { shapes: this.shapes.map((s) => [s.type, s.keys, s.tags.join('')]), strings: this.strings };
  }

  intern(s: string): number {
    let id = this.stringIds.get(s);
    if (id === undefined) {
      id = this.strings.length;
      this.strings.push(s);
      this.stringIds.set(s, id);
    }
    return id;
  }

  private addShape(type: string, keys: string[], tags: Tag[]): Shape {
    const shape: Shape = { id: this.shapes.length, type, keys, tags };
    this.shapes.push(shape);
    let list = this.shapesByType.get(type);
    if (list === undefined) this.shapesByType.set(type, (list = []));
    list.push(shape);
    return shape;
  }

  /** The shape of an event, made on first sight. Hot path: one pass over the keys against the known shapes. */
  shapeOf(ev: Readonly<Record<string, unknown>>): Shape {
    const type = ev.type as string;
    const list = this.shapesByType.get(type);
    if (list !== undefined) {
      for (const s of list) if (matches(s, ev)) return s;
    }
    const keys: string[] = [];
    const tags: Tag[] = [];
    for (const k in ev) {
      if (k === 'type') continue;
      keys.push(k);
      tags.push(tagOf(ev[k]));
    }
    return this.addShape(type, keys, tags);
  }

  /** Appends an entry to the block being written; `prevLine` is the line of the entry before it in the block (0 for none). */
  add(e: LogEntry, prevLine: number): void {
    const ev = e.ev as unknown as Record<string, unknown>;
    const s = this.shapeOf(ev);
    const w = this.w;
    w.u(s.id);
    w.z(e.line - prevLine);
    w.u(e.tid);
    const { keys, tags } = s;
    for (let i = 0; i < keys.length; i++) {
      const v = ev[keys[i]!];
      switch (tags[i]) {
        case 'n': w.z(v as number); break;
        case 's': w.u(this.intern(v as string)); break;
        case 'b': {
          const b = v as bigint;
          if (b <= BIG_SMALL && b >= -BIG_SMALL) w.z(Number(b));
          else {
            w.u(BIG_ESCAPE);
            w.u(this.intern(bigToText(b)));
          }
          break;
        }
        case 't': w.u(v ? 1 : 0); break;
        case 'f': w.f(v as number); break;
        case 'o': w.u(this.intern(JSON.stringify(encodeNested(v)))); break;
        default: break; // u, z: the shape says it all
      }
    }
  }

  /** The bytes of the block written since the last call. */
  takeBlock(): Uint8Array {
    const b = this.w.done();
    this.w = new Writer();
    return b;
  }

  /** Encodes entries as one block (tests, and encoding a log that is already in memory). */
  encodeBlock(entries: readonly LogEntry[]): Uint8Array {
    let prev = 0;
    for (const e of entries) {
      this.add(e, prev);
      prev = e.line;
    }
    return this.takeBlock();
  }

  /** Decodes one block of `count` entries whose first entry is number `base`. */
  decodeBlock(bytes: Uint8Array, base: number, count: number): LogEntry[] {
    const r = new Reader(bytes, this.strings);
    const out: LogEntry[] = new Array(count);
    let line = 0;
    for (let i = 0; i < count; i++) {
      const s = this.shapes[r.u()];
      if (s === undefined) throw new Error(`index entry ${base + i} names an unknown shape`);
      line += r.z();
      const tid = r.u();
      const ev = (s.decode ??= compileDecoder(s))(r);
      out[i] = { n: base + i, line, tid, ev: ev as unknown as DomainEvent };
    }
    if (!r.atEnd) throw new Error(`index block at entry ${base} holds more than ${count} entries`);
    return out;
  }
}

function matches(s: Shape, ev: Readonly<Record<string, unknown>>): boolean {
  const { keys, tags } = s;
  let i = 0;
  for (const k in ev) {
    if (k === 'type') continue;
    if (keys[i] !== k || tags[i] !== tagOf(ev[k])) return false;
    i++;
  }
  return i === keys.length;
}
