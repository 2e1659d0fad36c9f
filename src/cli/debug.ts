/**
 * `iotrail debug TRACE [--at N] [-e CMD]... [--index FILE]`: a terminal debugger over a trace (time travel, issue
 * #7): go to any entry, step forwards and backwards, jump to divergences, print the state as tables, diff, history,
 * blame and bisect. The commands are src/timetravel/debugger.ts; this file is the terminal around them.
 */
import { createInterface } from 'node:readline';
import { parse, parseEntry, UsageError } from '../timetravel/args.js';
import { openAny, REPLAY_OPTIONS, REPLAY_OPTIONS_USAGE, replayOpenOptions, out, runCli } from '../timetravel/cli.js';
import { complete, newSession, runCommand, where, type Session } from '../timetravel/debugger.js';

export const DEBUG_USAGE = `usage: iotrail debug TRACE [--at N] [-e COMMAND]... [--index FILE] [--invariants] [--schedule F] [--mutant M]...
  --at N        start at entry N (default: the initial state)
  -e COMMAND    run COMMAND (repeatable), print what it prints, and exit without a prompt
  --index FILE  use the time-travel index FILE for this trace (built and saved there if missing or stale)
Without -e, commands are read from the terminal (with history and TAB completion of commands and view paths),
or one per line from standard input when it is not a terminal. Type help for the commands.
${REPLAY_OPTIONS_USAGE}`;

const prompt = (s: Session): string => {
  const line = s.n >= 0 ? s.idx.entry(s.n).line : 0;
  return `(iotrail #${s.n}/${s.idx.count - 1} L${line}) `;
};

export async function debugMain(argv: string[]): Promise<number> {
  return runCli('debug', DEBUG_USAGE, async () => {
    const { values: o, positionals } = parse(argv, {
      at: { type: 'string' }, exec: { type: 'string', short: 'e', multiple: true }, index: { type: 'string' }, ...REPLAY_OPTIONS, help: { type: 'boolean', short: 'h' },
    });
    if (o.help) {
      out(DEBUG_USAGE);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'no trace given' : `one trace, got ${positionals.length} arguments`);
    const idx = await openAny(positionals[0]!, { index: o.index as string | undefined, ...replayOpenOptions(o) });
    let s = newSession(idx, typeof o.at === 'string' ? parseEntry(idx, o.at, '--at') : -1);
    const exec = (o.exec as string[] | undefined) ?? [];
    if (exec.length > 0) {
      for (const c of exec) {
        const r = runCommand(s, c);
        s = r.session;
        if (r.output) out(r.output);
        if (s.quit) break;
      }
      return 0;
    }
    const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
    if (interactive) {
      out(`iotrail debug: ${positionals[0]}: ${idx.lines} trace lines, ${idx.count} log entries, ${idx.marks.length} divergence${idx.marks.length === 1 ? '' : 's'} and errors`);
      if (idx.meta.source) out(`source: ${idx.meta.source}`);
      out(`${where(idx, s.n)}\ntype help for the commands, quit to leave`);
    }
    const rl = createInterface({
      input: process.stdin, output: process.stdout, terminal: interactive, historySize: 1000,
      completer: interactive ? (line: string): [string[], string] => complete(s, line) : undefined,
    });
    if (interactive) {
      rl.setPrompt(prompt(s));
      rl.prompt();
    }
    await new Promise<void>((resolveP) => {
      rl.on('line', (line) => {
        const r = runCommand(s, line);
        s = r.session;
        if (r.output) out(r.output);
        if (s.quit) {
          rl.close();
          return;
        }
        if (interactive) {
          rl.setPrompt(prompt(s));
          rl.prompt();
        }
      });
      rl.on('SIGINT', () => rl.close());
      rl.on('close', () => resolveP());
    });
    return 0;
  });
}
