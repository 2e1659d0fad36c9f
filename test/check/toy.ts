/**
 * A toy world for testing the explorer itself: a shared counter, an atomic increment, and a planted bug — an
 * increment that reads the counter in one step and writes it back in the next, so two threads can lose an update.
 */
import fc from 'fast-check';
import type { World, WorldOp } from '../../src/check/scheduler.js';

export type ToyCmd = { readonly op: 'incr' } | { readonly op: 'atomic' } | { readonly op: 'read' };
export const toyCmd: fc.Arbitrary<ToyCmd> = fc.constantFrom<ToyCmd>({ op: 'atomic' }, { op: 'read' }, { op: 'incr' });

export class ToyWorld implements World<ToyCmd> {
  counter = 0;
  completed = 0;
  readonly firstLine = 2;
  failure: string | undefined;
  readonly trace: string[] = [];
  get failed(): boolean {
    return this.failure !== undefined;
  }
  private check(): void {
    if (this.failure === undefined && this.counter !== this.completed) this.failure = `counter ${this.counter} after ${this.completed} increments`;
  }
  issue(tid: number, cmd: ToyCmd, line: number): WorldOp {
    const w = this;
    this.trace.push(`${line} t${tid} ${cmd.op}`);
    if (cmd.op !== 'incr')
      return { line, step: () => { if (cmd.op === 'atomic') { w.counter++; w.completed++; } w.check(); return 'done'; } };
    let seen: number | undefined;
    return {
      line,
      step: () => {
        if (seen === undefined) {
          seen = w.counter;
          return 'more';
        }
        w.counter = seen + 1;
        w.completed++;
        w.check();
        return 'done';
      },
    };
  }
}
