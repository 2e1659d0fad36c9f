/**
 * The `iotrail` command: dispatch to its subcommands. All I/O of the tool lives under src/cli; the model below it
 * is pure.
 */
import { checkMain } from './check.js';
import { bisectMain } from './bisect.js';
import { blameMain } from './blame.js';
import { debugMain } from './debug.js';
import { diffMain } from './diff.js';
import { exportMain } from './export.js';
import { historyMain } from './history.js';
import { serveMain } from './serve.js';
import { stateMain } from './state.js';
import { importMain } from './import.js';
import { recordMain } from './record.js';
import { replayMain } from './replay.js';

const USAGE = `iotrail — an executable model of the Linux IOMMU user API (iommufd, VFIO)

usage:
  iotrail replay FILE|DIR...        replay traces against the model and report every divergence
  iotrail record [--out FILE] [--path P]... -- COMMAND ARGS...
                                    run a program and record its IOMMU ioctls as a trace
  iotrail import qemu LOG [--out FILE] [--device SPEC]... [--header FILE]
                                    convert QEMU's iommufd/vfio trace events into a trace
  iotrail check [--seed N] [--runs N|--time S] [--threads N] [--workers N] [--mutant M]...
                                    explore interleavings of ioctls, DMA and invalidations against the
                                    model's invariants; shrink and write a replayable counterexample
  iotrail state TRACE [--at N]      the model's state after any event (time travel; also: diff, history,
                                    blame, bisect, export, debug for an interactive debugger, serve for a
                                    browser view)
  iotrail help                      this text

Run 'iotrail COMMAND --help' for a command's options.`;

type Command = (argv: string[]) => Promise<number>;
const COMMANDS: Readonly<Record<string, Command>> = {
  replay: replayMain,
  record: recordMain,
  import: importMain,
  check: checkMain,
  bisect: bisectMain,
  blame: blameMain,
  debug: debugMain,
  diff: diffMain,
  export: exportMain,
  history: historyMain,
  serve: serveMain,
  state: stateMain,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return cmd === undefined ? 2 : 0;
  }
  const run = COMMANDS[cmd];
  if (run === undefined) {
    process.stderr.write(`iotrail: unknown command ${JSON.stringify(cmd)}\n${USAGE}\n`);
    return 2;
  }
  return run(rest);
}
