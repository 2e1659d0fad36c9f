import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { complete, newSession, runCommand, type Session } from '../../src/timetravel/debugger.js';
import { indexText } from '../../src/timetravel/index.js';
import { EXAMPLES } from './support.js';

const EXAMPLE = join(EXAMPLES, 'timetravel', 'timetravel-unmap-twice.jsonl');

/** Runs commands in order; returns every output and the final session. */
function script(s: Session, ...lines: string[]): { outputs: string[]; session: Session } {
  const outputs: string[] = [];
  for (const l of lines) {
    const r = runCommand(s, l);
    outputs.push(r.output);
    s = r.session;
  }
  return { outputs, session: s };
}

describe('the debugger command interpreter', () => {
  const idx = indexText(readFileSync(EXAMPLE, 'utf8'));
  const start = newSession(idx);

  it('starts at the initial state and moves with goto, step, back, next and prev', () => {
    expect(start.n).toBe(-1);
    const { outputs, session } = script(start, 'goto 43', 'step', 'step 3', 'back 2', 'next', 'prev');
    expect(outputs[0]).toMatch(/^at #43 of 92, trace line 7 of 14 \[ioctl IOMMU_IOAS_MAP\]/);
    expect(outputs[1]).toMatch(/^at #44 /);
    expect(outputs[2]).toMatch(/^at #47 /);
    expect(outputs[3]).toMatch(/^at #45 /);
    expect(outputs[4]).toMatch(/^at #51 .*trace line 7/); // the end of line 7
    expect(outputs[5]).toMatch(/^at #39 .*trace line 6/); // the end of line 6
    expect(session.n).toBe(39);
  });

  it('shows what the entry it lands on changed, and the note of its trace line', () => {
    const { outputs } = script(start, 'goto 30');
    expect(outputs[0]).toContain('AreaReserved');
    expect(outputs[0]).toContain('+ contexts[id=1].objects[id=1].ioas.areas[id=1]');
    expect(outputs[0]).toContain('note: two pages at IOVA 0x1000000');
  });

  it('goes to trace lines, the start and the end, and refuses positions that do not exist', () => {
    const { outputs, session } = script(start, 'line 9', 'goto end', 'goto start', 'goto 9999', 'goto line:99');
    expect(outputs[0]).toMatch(/^at #63 .*trace line 9 /);
    expect(outputs[1]).toMatch(/^at #92 /);
    expect(outputs[2]).toMatch(/^at the initial state/);
    expect(outputs[3]).toMatch(/^error: entry 9999 is out of range/);
    expect(outputs[4]).toMatch(/^error: line 99 is out of range/);
    expect(session.n).toBe(-1);
  });

  it('continues to the divergence and back, and lists the marks', () => {
    const { outputs, session } = script(start, 'continue', 'marks', 'rcontinue');
    expect(outputs[0]).toMatch(/^at #65 .*trace line 10 /);
    expect(outputs[0]).toContain('DIVERGENCE at #65 line 10: ret: observed 0, predicted ENOENT');
    expect(outputs[1]).toMatch(/^=> DIVERGENCE at #65 line 10/);
    expect(outputs[2]).toMatch(/no divergence or error behind: at the initial state/);
    expect(session.n).toBe(-1);
  });

  it('prints the state as a summary, as tables and by path', () => {
    const { outputs } = script(start, 'line 7', 'print', 'objects', 'areas', 'pins', 'domains', 'maps', 'fds', 'print contexts[0].objects[0].users', 'p accounting');
    expect(outputs[1]).toMatch(/4 objects \(1 IOAS, 1 SELFTEST, 1 DEVICE, 1 HWPT_PAGING\)/);
    expect(outputs[2]).toMatch(/ctx +id +kind +life +users/);
    expect(outputs[2]).toMatch(/1 +4 +HWPT_PAGING +finalized +2 +1/);
    expect(outputs[3]).toMatch(/1 +1 +1 +0x1000000 +0x1001fff +1 +0-1/);
    expect(outputs[4]).toMatch(/pinnedVm=4/);
    expect(outputs[5]).toMatch(/1 +paging +mock/);
    expect(outputs[6]).toMatch(/1 +0x1004000 +0x1005fff +0x2000/);
    expect(outputs[7]).toMatch(/3 +iommufd +ctx=1/);
    expect(outputs[8]).toBe('2');
    expect(JSON.parse(outputs[9]!)).toMatchObject({ pinnedVm: 4 });
  });

  it('answers diff, history, blame and bisect, and bisect moves to what it found', () => {
    const { outputs, session } = script(start, 'line 9', 'diff line:8', 'diff line:8 line:9', 'history object 4', 'history --iova 0x1004000 --ioas 1', 'blame accounting.pinnedVm', 'bisect first-divergence');
    expect(outputs[1]).toContain('- contexts[id=1].objects[id=1].ioas.areas[id=1]');
    expect(outputs[2]).toContain('~ accounting.pinnedVm: 4 -> 2');
    expect(outputs[3]).toMatch(/^history of object 4: \d+ entries/);
    expect(outputs[3]).toContain('HwptInitialized');
    expect(outputs[4]).toMatch(/history of IOVA 0x1004000 of IOAS 1/);
    expect(outputs[4]).toContain('area=2');
    expect(outputs[5]).toMatch(/^accounting.pinnedVm = 2\n  last changed by #59 line 9 \[ioctl IOMMU_IOAS_UNMAP\] AccountingUncharged/);
    expect(outputs[6]).toMatch(/^first divergence: entry 65/);
    expect(session.n).toBe(65);
  });

  it('repeats the last command on an empty line, and explains mistakes without moving', () => {
    const { outputs, session } = script(start, 'step', '', '', 'frobnicate', 'step x', 'history', 'print contexts[0', 'bisect expr "len(("');
    expect(outputs[2]).toMatch(/^at #2 /);
    expect(outputs[3]).toMatch(/unknown command "frobnicate"/);
    expect(outputs[4]).toMatch(/^error: step takes a positive count/);
    expect(outputs[5]).toMatch(/^error: choose one of --object/);
    expect(outputs[6]).toMatch(/^error: path .* is not closed/);
    expect(outputs[7]).toMatch(/^error: /);
    expect(session.n).toBe(2);
  });

  it('lists its commands and quits', () => {
    const { outputs, session } = script(start, 'help', 'help blame', 'quit');
    for (const c of ['goto', 'step', 'back', 'diff', 'history', 'blame', 'bisect', 'print', 'help', 'quit']) expect(outputs[0]).toContain(`  ${c}`);
    expect(outputs[1]).toMatch(/^blame PATH/);
    expect(session.quit).toBe(true);
  });

  it('completes command names, view paths and option names', () => {
    expect(complete(start, 'bl')).toEqual([['blame'], 'bl']);
    expect(complete(start, 'st')[0]).toEqual(['step']);
    const at = runCommand(start, 'line 7').session;
    expect(complete(at, 'print contexts[0].ob')).toEqual([['contexts[0].objects'], 'contexts[0].ob']);
    expect(complete(at, 'blame acc')).toEqual([['accounting'], 'acc']);
    expect(complete(at, 'history io')[0]).toEqual(['iova', 'ioas']);
    expect(complete(at, 'bisect first-d')[0]).toEqual(['first-divergence']);
  });
});

describe('iotrail debug in a terminal', () => {
  it('runs in tmux: prompt, commands, tab completion, tables, bisect, quit', async () => {
    const tmux = spawnSync('sh', ['-c', 'command -v tmux'], { encoding: 'utf8' }).stdout.trim();
    expect(tmux, 'tmux is not installed on this machine: this end-to-end test needs it (apt-get install -y tmux)').not.toBe('');
    const js = join(process.cwd(), 'dist', 'src', 'cli', 'debug.js');
    expect(existsSync(js), `${js} is missing: run npm run build first (npm test does)`).toBe(true);
    expect(statSync(js).mtimeMs, 'dist/ is older than src/cli/debug.ts: run npm run build first (npm test does)').toBeGreaterThanOrEqual(statSync(join(process.cwd(), 'src', 'cli', 'debug.ts')).mtimeMs);
    const sock = `iotrail-test-${process.pid}`;
    const t = (...args: string[]): string => execFileSync(tmux, ['-L', sock, ...args], { encoding: 'utf8' });
    const cmd = `node -e "import('${js}').then((m) => m.debugMain(['${EXAMPLE}'])).then((c) => process.exit(c))"`;
    const pane = (): string => t('capture-pane', '-p', '-J', '-t', 'dbg', '-S', '-200');
    const waitFor = async (re: RegExp, what: string): Promise<string> => {
      for (let i = 0; i < 200; i++) {
        const text = pane();
        if (re.test(text)) return text;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`timed out waiting for ${what}; the pane shows:\n${pane()}`);
    };
    t('new-session', '-d', '-s', 'dbg', '-x', '200', '-y', '60', cmd);
    try {
      await waitFor(/\(iotrail #-1\/92 L0\) $/m, 'the prompt');
      expect(pane()).toContain('14 trace lines, 93 log entries, 1 divergence');
      t('send-keys', '-t', 'dbg', 'goto 51', 'Enter');
      await waitFor(/\(iotrail #51\/92 L7\) $/m, 'goto 51');
      t('send-keys', '-t', 'dbg', 'pri', 'Tab');
      await waitFor(/\(iotrail #51\/92 L7\) print$/m, 'completion of "pri"');
      t('send-keys', '-t', 'dbg', ' contexts[0].ob', 'Tab');
      await waitFor(/print contexts\[0\]\.objects$/m, 'completion of a view path');
      t('send-keys', '-t', 'dbg', '[id=4].kind', 'Enter');
      await waitFor(/^"HWPT_PAGING"$/m, 'print of the path');
      t('send-keys', '-t', 'dbg', 'objects', 'Enter');
      await waitFor(/1 +4 +HWPT_PAGING +finalized/, 'the objects table');
      t('send-keys', '-t', 'dbg', 'bisect first-divergence', 'Enter');
      await waitFor(/\(iotrail #65\/92 L10\) $/m, 'bisect');
      expect(pane()).toContain('first divergence: entry 65');
      t('send-keys', '-t', 'dbg', 'back', 'Enter');
      await waitFor(/\(iotrail #64\/92 L10\) $/m, 'back');
      t('send-keys', '-t', 'dbg', 'quit', 'Enter');
      for (let i = 0; i < 100 && spawnSync(tmux, ['-L', sock, 'has-session', '-t', 'dbg']).status === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(spawnSync(tmux, ['-L', sock, 'has-session', '-t', 'dbg']).status, 'the debugger should have exited on quit').not.toBe(0);
    } finally {
      spawnSync(tmux, ['-L', sock, 'kill-server']);
    }
  });
});
