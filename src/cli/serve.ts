/**
 * `iotrail serve TRACE [--port N] [--host H] [--for SECONDS]`: a local web page to travel through a trace: a
 * timeline with the divergences and errors marked, a slider, the object graph with each object's lifecycle state,
 * each IOAS's IOVA space (areas, reserved, allowed) and each domain's mappings. Bound to 127.0.0.1 unless --host
 * says otherwise; the server is src/timetravel/web/server.ts.
 */
import { basename } from 'node:path';
import { parse, UsageError } from '../timetravel/args.js';
import { openAny, REPLAY_OPTIONS, REPLAY_OPTIONS_USAGE, replayOpenOptions, out, runCli } from '../timetravel/cli.js';
import { startServer } from '../timetravel/web/server.js';

export const SERVE_USAGE = `usage: iotrail serve TRACE [--port N] [--host H] [--for SECONDS] [--index FILE] [--invariants] [--schedule F] [--mutant M]...
  --port N       the port (default 7331; 0 for any free port)
  --host H       the address to bind (default 127.0.0.1: only this machine; the page shows the whole trace)
  --for SECONDS  stop after that long (default: until interrupted)
  --index FILE   use the time-travel index FILE for this trace (built and saved there if missing or stale)
${REPLAY_OPTIONS_USAGE}`;

export async function serveMain(argv: string[]): Promise<number> {
  return runCli('serve', SERVE_USAGE, async () => {
    const { values: o, positionals } = parse(argv, {
      port: { type: 'string' }, host: { type: 'string' }, for: { type: 'string' }, index: { type: 'string' }, ...REPLAY_OPTIONS, help: { type: 'boolean', short: 'h' },
    });
    if (o.help) {
      out(SERVE_USAGE);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'no trace given' : `one trace, got ${positionals.length} arguments`);
    const port = o.port === undefined ? 7331 : Number(o.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port takes 0 to 65535, got ${JSON.stringify(o.port)}`);
    const seconds = o.for === undefined ? undefined : Number(o.for);
    if (seconds !== undefined && (!Number.isFinite(seconds) || seconds <= 0)) throw new UsageError(`--for takes a positive number of seconds, got ${JSON.stringify(o.for)}`);
    const idx = await openAny(positionals[0]!, { index: o.index as string | undefined, ...replayOpenOptions(o) });
    const served = await startServer(idx, { host: o.host as string | undefined, port, title: basename(positionals[0]!) });
    out(`iotrail serve: ${served.url} (${idx.count} log entries, ${idx.marks.length} divergences and errors); Ctrl-C stops`);
    await new Promise<void>((resolveP) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        if (timer !== undefined) clearTimeout(timer);
        void served.close().then(resolveP);
      };
      const timer = seconds === undefined ? undefined : setTimeout(stop, seconds * 1000);
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return 0;
  });
}
