/**
 * The scheduler: runs a program of choices over several threads, one atomic step at a time, in the order the
 * choices say. A choice names a thread and a command: an idle thread issues the command (its first step runs at
 * once), a busy thread runs the next step of its in-flight operation (the command is ignored). When the choices run
 * out, the in-flight operations finish, round robin. Each committed step is recorded as the trace line of its
 * operation: that list is the interleaving schedule `iotrail replay --schedule` replays.
 *
 * The scheduler knows nothing of iommufd: a `World` issues operations and runs their steps (folding events,
 * checking invariants, refusing steps that a lock held by another thread's operation forbids).
 */

/** One scheduling decision: thread index `t` (taken modulo the thread count) and what it issues if idle. */
export interface Choice<C> {
  readonly t: number;
  readonly cmd: C;
}

/** An issued operation. */
export interface WorldOp {
  readonly line: number;
  /**
   * Runs the next atomic step. 'blocked': the step may not run now (another thread's operation holds a lock it
   * needs) and nothing happened.
   */
  step(): 'blocked' | 'more' | 'done';
}

export interface World<C> {
  /** The trace line the next issued operation gets. */
  readonly firstLine: number;
  /** Resolves `cmd` for thread `tid` (1-based) as trace line `line`; undefined when there is nothing to issue. */
  issue(tid: number, cmd: C, line: number): WorldOp | undefined;
  /** Set once a step broke an invariant: the run stops. */
  readonly failed: boolean;
}

export interface ScheduleResult {
  /** The trace line of every committed step, in order. */
  readonly schedule: number[];
  /** Operations left unfinished because every remaining step was refused (a scheduler deadlock; never expected). */
  readonly stuck: number[];
}

export function runSchedule<C>(world: World<C>, choices: readonly Choice<C>[], threads: number): ScheduleResult {
  const inflight: (WorldOp | undefined)[] = new Array(threads).fill(undefined);
  const schedule: number[] = [];
  let nextLine = world.firstLine;
  const run = (t: number, op: WorldOp): boolean => {
    const r = op.step();
    if (r === 'blocked') return false;
    schedule.push(op.line);
    inflight[t] = r === 'done' ? undefined : op;
    return true;
  };
  for (const c of choices) {
    if (world.failed) break;
    const t = ((c.t % threads) + threads) % threads;
    const cur = inflight[t];
    if (cur !== undefined) {
      run(t, cur);
      continue;
    }
    const op = world.issue(t + 1, c.cmd, nextLine);
    if (op === undefined) continue;
    if (run(t, op)) nextLine++;
  }
  // Drain: finish what is in flight, one step per thread per round.
  for (;;) {
    if (world.failed) break;
    let progressed = false, pending = false;
    for (let t = 0; t < threads && !world.failed; t++) {
      const op = inflight[t];
      if (op === undefined) continue;
      pending = true;
      if (run(t, op)) progressed = true;
    }
    if (!pending || !progressed) break;
  }
  const stuck = world.failed ? [] : inflight.flatMap((o) => (o === undefined ? [] : [o.line]));
  return { schedule, stuck };
}
