/**
 * A progress bar on stderr, only when stderr is a terminal (never in pipes, CI logs or `--json` runs). It redraws
 * at most every 100 ms; wall-clock time is used here, in the CLI, never in the model.
 */
export class Progress {
  private last = 0;
  private shown = false;
  constructor(private readonly enabled: boolean) {}

  static forStderr(disabled: boolean): Progress {
    return new Progress(!disabled && process.stderr.isTTY === true);
  }

  update(label: string, done: number, total: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const width = 30;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const fill = Math.round(frac * width);
    const cols = process.stderr.columns ?? 80;
    const text = `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${label}`;
    process.stderr.write(`\r${text.slice(0, cols - 1).padEnd(Math.min(cols - 1, 100))}`);
    this.shown = true;
  }

  clear(): void {
    if (this.shown) process.stderr.write(`\r${' '.repeat(Math.min((process.stderr.columns ?? 80) - 1, 100))}\r`);
    this.shown = false;
  }
}
