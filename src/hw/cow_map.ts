/**
 * A copy-on-read Map for forks of frozen states (state.ts `forkState`): it starts out holding the source's values
 * by reference and copies a value the first time anything takes it out through `get` or an iteration, so a fold
 * into the fork never reaches the source, while the values it never touches are never copied.
 *
 * Why copy on read rather than on write: `evolve` mutates what `get` returns, so every reference handed out may be
 * written through. Read-only walks (views) take values as they are with `rawEntries`, which copies nothing.
 */
export class CowMap<K, V> extends Map<K, V> {
  /** Keys whose value is this map's own (copied, or set here); the others are still the source's. */
  private readonly owned = new Set<K>();
  private readonly copy: (v: V) => V;

  constructor(src: ReadonlyMap<K, V>, copy: (v: V) => V) {
    super();
    this.copy = copy;
    // The source's values as stored, whatever kind of map it is: iterating a CowMap would copy them.
    Map.prototype.forEach.call(src, (v: V, k: K) => {
      Map.prototype.set.call(this, k, v);
    });
  }

  /** Whether the value at `k` is still the source's (never copied, never replaced). */
  isShared(k: K): boolean {
    return !this.owned.has(k) && super.has(k);
  }

  override get(k: K): V | undefined {
    const v = super.get(k);
    if (v === undefined || this.owned.has(k)) return v;
    const c = this.copy(v);
    super.set(k, c);
    this.owned.add(k);
    return c;
  }

  override set(k: K, v: V): this {
    this.owned.add(k);
    return super.set(k, v);
  }

  override delete(k: K): boolean {
    this.owned.delete(k);
    return super.delete(k);
  }

  override clear(): void {
    this.owned.clear();
    super.clear();
  }

  override forEach(f: (v: V, k: K, m: Map<K, V>) => void, thisArg?: unknown): void {
    for (const k of super.keys()) f.call(thisArg, this.get(k)!, k, this);
  }

  override values(): MapIterator<V> {
    return this.gen((k) => this.get(k)!);
  }

  override entries(): MapIterator<[K, V]> {
    return this.gen((k): [K, V] => [k, this.get(k)!]);
  }

  override [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  /** Replacing a key's value keeps its place, so walking the keys while copying visits each once. */
  private gen<T>(f: (k: K) => T): MapIterator<T> {
    const keys = super.keys();
    function* walk(): Generator<T, undefined, unknown> {
      for (const k of keys) yield f(k);
      return undefined;
    }
    return walk() as unknown as MapIterator<T>;
  }
}

/** The entries of a Map as stored, with no copy-on-read: for walks that only read (views). */
export function rawEntries<K, V>(m: ReadonlyMap<K, V>): [K, V][] {
  const out: [K, V][] = [];
  Map.prototype.forEach.call(m, (v: V, k: K) => {
    out.push([k, v]);
  });
  return out;
}

/** Whether the value at `k` of `m` is a fork's source's, not to be written to (false for a plain Map). */
export const isShared = <K, V>(m: ReadonlyMap<K, V>, k: K): boolean => m instanceof CowMap && m.isShared(k);

/** The value at `k` as stored (see rawEntries). */
export const rawGet = <K, V>(m: ReadonlyMap<K, V>, k: K): V | undefined => Map.prototype.get.call(m, k) as V | undefined;

/** A Map that stays empty: writes throw. Shared by snapshots for their empty tables (io_pagetable.ts cloneIopt). */
class FrozenEmptyMap<K, V> extends Map<K, V> {
  override set(): this {
    throw new TypeError('a frozen empty map cannot be written');
  }
  override delete(): boolean {
    throw new TypeError('a frozen empty map cannot be written');
  }
  override clear(): void {
    throw new TypeError('a frozen empty map cannot be written');
  }
}
const FROZEN_EMPTY_MAP = Object.freeze(new FrozenEmptyMap<never, never>());
/** The one frozen empty map, typed as the table it stands in for. */
export const frozenEmptyMap = <K, V>(): Map<K, V> => FROZEN_EMPTY_MAP as unknown as Map<K, V>;
