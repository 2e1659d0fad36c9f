/**
 * Files the tool writes are written atomically: into a temporary file beside the target, flushed to disk, then
 * renamed over it. A crash leaves either the old file or the new one, never a half-written file that looks
 * complete; an abandoned temporary file has a name that says so.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export class AtomicWriter {
  private readonly tmp: string;
  private fd: number;
  private buf: string[] = [];
  private bufLen = 0;

  constructor(readonly path: string) {
    this.tmp = join(dirname(path), `.${basename(path)}.partial-${process.pid}`);
    this.fd = openSync(this.tmp, 'w', 0o644);
  }

  write(s: string): void {
    this.buf.push(s);
    this.bufLen += s.length;
    if (this.bufLen >= 1 << 20) this.flush();
  }

  private flush(): void {
    if (this.buf.length === 0) return;
    writeSync(this.fd, this.buf.join(''));
    this.buf = [];
    this.bufLen = 0;
  }

  /** Makes the file visible under its real name. */
  commit(): void {
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
    renameSync(this.tmp, this.path);
  }

  /** Drops the temporary file; the target is left as it was. */
  abort(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    rmSync(this.tmp, { force: true });
  }
}

export function writeFileAtomic(path: string, text: string): void {
  const w = new AtomicWriter(path);
  try {
    w.write(text);
    w.commit();
  } catch (e) {
    w.abort();
    throw e;
  }
}
