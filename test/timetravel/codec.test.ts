import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DomainEvent, LogEntry } from '../../src/events/domain.js';
import { Dictionaries } from '../../src/timetravel/codec.js';

const SEED = Number(process.env.FC_SEED ?? 707);

/** Any event-shaped object: a type and fields of every JS type the model puts in events, nested ones included. */
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.integer({ min: -5, max: 1 << 30 }), fc.double(), fc.constant(2 ** 60), fc.constant(-0), fc.bigInt({ min: -(1n << 70n), max: 1n << 70n }), fc.string(), fc.boolean(),
    fc.constant(undefined), fc.constant(null), fc.constantFrom('<script>', 'b1f', 's', 'u', '"q"', '\u2028'),
  ),
  any: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('leaf'), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom('start', 'last', 'kind', 'ctx', 'x y'), tie('leaf'), { maxKeys: 3, noNullPrototype: true })),
})).any;
const event = fc.record({
  type: fc.constantFrom('AreaReserved', 'CallCompleted', 'Diverged', 'SomethingNew'),
  fields: fc.dictionary(fc.constantFrom('ctx', 'id', 'start', 'last', 'why', 'file', 'ranges', 'ret', 'memfd'), value, { maxKeys: 6, noNullPrototype: true }),
}).map(({ type, fields }) => ({ type, ...fields }) as unknown as DomainEvent);

describe('the index codec', () => {
  it('decodes every encoded entry to exactly the entry it was, same keys, same types, same order', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(event, fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 9 })), { minLength: 1, maxLength: 40 }), (rows) => {
        const d = new Dictionaries();
        let line = 1;
        const entries: LogEntry[] = rows.map(([ev, dl, tid], n) => ({ n, line: (line += dl), tid, ev }));
        const bytes = d.encodeBlock(entries);
        // Through the saved form of the dictionaries, as a loaded index reads them.
        const j = JSON.parse(JSON.stringify(d.toJson())) as ReturnType<Dictionaries['toJson']>;
        const back = Dictionaries.fromJson(j.shapes, j.strings).decodeBlock(bytes, 0, entries.length);
        expect(back).toStrictEqual(entries);
        back.forEach((b, i) => expect(Object.keys(b.ev)).toEqual(Object.keys(entries[i]!.ev)));
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('refuses a block that is cut short or runs long', () => {
    const d = new Dictionaries();
    const entries: LogEntry[] = [{ n: 0, line: 2, tid: 1, ev: { type: 'FdClosed', fd: 300 } }];
    const bytes = d.encodeBlock(entries);
    expect(() => d.decodeBlock(bytes.subarray(0, bytes.length - 1), 0, 1)).toThrow(/ends inside an entry/);
    expect(() => d.decodeBlock(bytes, 0, 0)).toThrow(/holds more than 0 entries/);
  });

  it('refuses a shape table that would set a prototype or shadow the type', () => {
    expect(() => Dictionaries.fromJson([['X', ['__proto__'], 'n']], [])).toThrow(/malformed/);
    expect(() => Dictionaries.fromJson([['X', ['type'], 'n']], [])).toThrow(/malformed/);
    expect(() => Dictionaries.fromJson([['X', ['a'], 'q']], [])).toThrow(/malformed/);
  });

  it('keeps the type and keys of a crafted shape as data, never as code', () => {
    const d = Dictionaries.fromJson([['"});globalThis.pwned=1;({"', ['"]});globalThis.pwned=2;//'], 'n']], []);
    const [e] = d.decodeBlock(Uint8Array.from([0, 2, 1, 10]), 0, 1);
    expect(e!.ev).toEqual({ type: '"});globalThis.pwned=1;({"', '"]});globalThis.pwned=2;//': 5 });
    expect((globalThis as { pwned?: number }).pwned).toBeUndefined();
  });
});
