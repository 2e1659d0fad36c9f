/**
 * Object lifetimes over a whole log: when each object (per context and id; an id reused after a destroy is a new
 * lifetime) was allocated, finalized, and destroyed or aborted. Read off the generic fields of the lifecycle events
 * (`ctx`, `id`, `kind`).
 */
import type { TraceIndex } from './index.js';

export interface Lifetime {
  readonly ctx: number;
  readonly id: number;
  readonly kind: string;
  readonly allocated: number;
  finalized: number | undefined;
  ended: number | undefined;
  how: 'destroyed' | 'aborted' | undefined;
}

export function lifetimes(idx: TraceIndex): Lifetime[] {
  const out: Lifetime[] = [];
  const open = new Map<string, Lifetime>();
  for (const e of idx.entries()) {
    const ev = e.ev as unknown as Record<string, unknown>;
    if (typeof ev.ctx !== 'number' || typeof ev.id !== 'number') continue;
    const key = `${ev.ctx}:${ev.id}`;
    switch (ev.type) {
      case 'ObjectAllocated': {
        const l: Lifetime = { ctx: ev.ctx, id: ev.id, kind: String(ev.kind), allocated: e.n, finalized: undefined, ended: undefined, how: undefined };
        out.push(l);
        open.set(key, l);
        break;
      }
      case 'ObjectFinalized': {
        const l = open.get(key);
        if (l !== undefined) l.finalized = e.n;
        break;
      }
      case 'ObjectDestroyed':
      case 'ObjectAborted': {
        const l = open.get(key);
        if (l !== undefined) {
          l.ended = e.n;
          l.how = ev.type === 'ObjectDestroyed' ? 'destroyed' : 'aborted';
          open.delete(key);
        }
        break;
      }
      default:
        break;
    }
  }
  return out;
}

/** The lifecycle state of a lifetime at entry n, or undefined before it began. */
export function lifeAt(l: Lifetime, n: number): string | undefined {
  if (n < l.allocated) return undefined;
  if (l.ended !== undefined && n >= l.ended) return l.how;
  if (l.finalized !== undefined && n >= l.finalized) return 'finalized';
  return 'allocated';
}
