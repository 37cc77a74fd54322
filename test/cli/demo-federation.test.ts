/** `tokbind demo --federation [--once]` through the CLI (what `npm start -- --federation` runs). */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import test from 'ava';
import { ExitCode, type CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';

function capture(): { io: CliIo; stdout: () => string; stderr: () => string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const sink = (into: Buffer[]) => new Writable({ write: (chunk: Buffer, _e, cb) => (into.push(Buffer.from(chunk)), cb()) });
  return {
    io: { stdin: Readable.from([]), stdout: sink(out), stderr: sink(err), env: { PORT: '0' } },
    stdout: () => Buffer.concat(out).toString(),
    stderr: () => Buffer.concat(err).toString(),
  };
}

test('demo --federation --once: five steps, exit 0', async (t) => {
  const run = capture();
  t.is(await main(['demo', '--federation', '--once'], run.io), ExitCode.ok, run.stderr());
  const out = run.stdout();
  for (const line of [
    /^✔ victim: GET https:\/\/localhost:\d+\/login → https:\/\/127\.0\.0\.1:\d+\/authorize → https:\/\/localhost:\d+\/callback → 200 \{"user":"alice"\}/m,
    /^✔ victim: GET \/profile with the session cookie → 200 \{"user":"alice"\}/m,
    /^✔ attacker: POST \/session with the victim's ID token \(leaked from a log\) → 401 ERR_TB_CNF_MISMATCH/m,
    /^✔ attacker: GET \/callback with the victim's intercepted code → 401 sign_in_failed/m,
    /^✔ attacker: GET \/profile with the victim's session cookie → 403 ERR_TB_SESSION_BINDING_MISMATCH/m,
    /^✔ all 5 steps behaved as expected/m,
  ]) {
    t.regex(out, line);
  }
  t.notRegex(out, /✘/);
});

test('demo --federation without --once serves until stopped', async (t) => {
  const run = capture();
  const controller = new AbortController();
  const done = main(['demo', '--federation', '--port=0'], run.io, controller.signal);
  while (!run.stdout().includes('keep running')) await new Promise((r) => setTimeout(r, 50));
  controller.abort();
  t.is(await done, ExitCode.ok);
});

test('demo --federation refuses the options of the other demo (exit 2)', async (t) => {
  for (const extra of [['--serve'], ['--session-store', 'redis://127.0.0.1:1'], ['--host', '::1'], ['--workers', '2']]) {
    const run = capture();
    t.is(await main(['demo', '--federation', ...extra], run.io), ExitCode.usage, extra.join(' '));
    t.regex(run.stderr(), /--federation goes with --once and --port only/);
  }
});

test('PORT=0 npm start -- --federation --once (the compiled CLI, as CI runs it) exits 0', async (t) => {
  const child = spawn(process.execPath, ['dist/src/cli/main.js', 'demo', '--federation', '--once'], { env: { ...process.env, PORT: '0', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  t.is(code, 0, out);
  t.regex(out, /all 5 steps behaved as expected/);
});
