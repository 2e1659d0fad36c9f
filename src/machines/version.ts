/**
 * The header's `kernel` field is the switch where kernel versions behave differently (core spec §9); no field
 * means the newest behaviour modelled.
 */
import type { TraceHeader } from '../events/header.js';

export function kernelAtLeast(h: TraceHeader, major: number, minor: number): boolean {
  if (h.kernel === undefined) return true;
  const m = /^(\d+)\.(\d+)/.exec(h.kernel);
  if (m === null) return true;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}
