/**
 * `npm run bench` — tokbind's benchmarks, each figure beside its baseline from the same run.
 *
 *   npm run bench                 full mode (5 rounds per figure, a few minutes)
 *   npm run bench -- --quick      smoke test for CI (3 short rounds, well under a minute)
 *   npm run bench -- --json       JSON on stdout (the table goes to stderr)
 *   npm run bench -- --only=verify,http   a subset (the names in `sections` below; a wrong one lists them)
 *   npm run bench -- --markdown   also print the table as markdown (for the README)
 *
 * Always writes bench/results.json. Exits non-zero only when something broke (a failed request,
 * a wrong verification result, a child that died, the time limit); targets are reported, never
 * enforced.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { cpus, availableParallelism, loadavg } from 'node:os';
import { benchCluster } from './cluster.js';
import { benchCodec } from './codec.js';
import { benchHttp, benchHttp2, benchNewconnShapes, benchNewconnWindow, benchRelays } from './http.js';
import { benchMemory } from './memory.js';
import { benchSession } from './session.js';
import { benchToken } from './token.js';
import { benchVerify } from './verify.js';
import { createBenchCertificate } from './lib/cert.js';
import { FULL, QUICK } from './lib/context.js';
import type { BenchContext } from './lib/context.js';
import { Child, detectPinning } from './lib/proc.js';
import { Report } from './lib/report.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const json = args.includes('--json');
const markdown = args.includes('--markdown');
const onlyArg = args.find((a) => a.startsWith('--only='));
const only = onlyArg === undefined ? null : new Set(onlyArg.slice('--only='.length).split(','));
const unknown = args.filter((a) => !['--quick', '--json', '--markdown'].includes(a) && !a.startsWith('--only='));

const log = (line: string): void => {
  (json ? process.stderr : process.stdout).write(line + '\n');
};

const children = new Set<Child>();
const programs = new Set<ChildProcess>();
async function closeChildren(): Promise<void> {
  await Promise.all([...children].map((c) => c.close()));
  children.clear();
  await Promise.all(
    [...programs].map((p) => {
      const exited = new Promise<void>((resolve) => (p.exitCode !== null || p.signalCode !== null ? resolve() : p.once('exit', () => resolve())));
      p.kill('SIGTERM');
      const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
      return exited.finally(() => clearTimeout(timer));
    }),
  );
  programs.clear();
}

// Every run is bounded: a hung child or a stuck socket ends the benchmark with an error.
// Quick mode runs every section once, briefly (CI's smoke test): minutes on a loaded machine.
const limitMs = quick ? 600_000 : 45 * 60_000;
const watchdog = setTimeout(() => {
  console.error(`bench: time limit (${limitMs / 1000} s) reached, aborting`);
  void closeChildren().finally(() => process.exit(1));
}, limitMs);

const sections: [string, (ctx: BenchContext) => void | Promise<void>][] = [
  ['verify', benchVerify],
  ['codec', benchCodec],
  ['http', benchHttp],
  ['http2', benchHttp2],
  ['newconn-shapes', async (ctx) => benchNewconnShapes(ctx, await createBenchCertificate('rsa'))],
  ['newconn-window', async (ctx) => benchNewconnWindow(ctx, await createBenchCertificate('rsa'))],
  ['memory', benchMemory],
  ['cluster', benchCluster],
  ['relays', benchRelays],
  ['session', benchSession],
  ['token', benchToken],
];

async function main(): Promise<void> {
  const names = sections.map(([name]) => name);
  const wrong = only === null ? [] : [...only].filter((n) => !names.includes(n));
  if (unknown.length > 0 || wrong.length > 0) {
    console.error(`unknown argument(s): ${[...unknown, ...wrong.map((n) => `--only=${n}`)].join(' ')}\nusage: node dist/bench/run.js [--quick] [--json] [--markdown] [--only=${names.join(',')}]`);
    process.exit(2);
  }
  const started = Date.now();
  // Read before pinning: the runner's own affinity would then report one core.
  const cores = availableParallelism();
  const pinning = detectPinning();
  const cert = await createBenchCertificate();
  const report = new Report();
  const ctx: BenchContext = {
    budget: quick ? QUICK : FULL,
    quick,
    report,
    cert,
    pinning,
    log,
    spawnProgram: (programArgs, name) => {
      // Every core: undo the runner's own pinning, which children would inherit.
      const child = pinning.used ? spawn('taskset', ['-c', `0-${cores - 1}`, process.execPath, ...programArgs], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(process.execPath, [...programArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
      programs.add(child);
      child.once('exit', () => programs.delete(child));
      void name;
      return child;
    },
    spawn: (script, options) => {
      const core = options.role === 'server' ? pinning.serverCore : options.role === 'generator' ? pinning.generatorCore : pinning.used ? `0-${cores - 1}` : null;
      const child = new Child(script, { core, name: options.name, ...(options.nodeArgs ? { nodeArgs: options.nodeArgs } : {}) });
      children.add(child);
      return child;
    },
  };
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const meta = {
    tokbind: pkg.version,
    node: process.version,
    openssl: process.versions.openssl,
    v8: process.versions.v8,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores,
    loadavg_at_start: loadavg().map((x) => Math.round(x * 100) / 100),
    date: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    rounds: ctx.budget.rounds,
    budget: ctx.budget,
    certificate: cert.description,
    pinning: pinning.note,
  };
  log(`tokbind bench (${meta.mode}) — node ${meta.node}, OpenSSL ${meta.openssl}, ${meta.cpu}, ${meta.cores} cores`);
  log(`pinning: ${pinning.note}`);
  log(`certificate: ${cert.description}`);
  const busy = meta.loadavg_at_start[0]! / cores;
  if (busy > 0.5) {
    const warning = `machine busy at start (load average ${meta.loadavg_at_start[0]} on ${cores} cores): figures will be noisy, ratios less so (paired rounds)`;
    log(`warning: ${warning}`);
    report.note(warning);
  }

  for (const [name, run] of sections) {
    if (only !== null && !only.has(name)) continue;
    const t0 = Date.now();
    log(`… ${name}`);
    try {
      await run(ctx);
    } finally {
      await closeChildren();
    }
    log(`  ${name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  const out = { ...report.json(meta), elapsed_s: Math.round((Date.now() - started) / 100) / 10 };
  writeFileSync(new URL('../../bench/results.json', import.meta.url), JSON.stringify(out, null, 2) + '\n');
  log('');
  log(report.table());
  if (report.notes.length > 0) {
    log('');
    for (const n of report.notes) log(`note: ${n}`);
  }
  if (markdown) {
    log('');
    log(report.markdown());
  }
  log('');
  log(`wrote bench/results.json (${out.elapsed_s} s)`);
  if (json) process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}

main().then(
  () => {
    clearTimeout(watchdog);
  },
  async (err: unknown) => {
    console.error('bench failed:', err instanceof Error ? (err.stack ?? err.message) : err);
    await closeChildren();
    clearTimeout(watchdog);
    process.exitCode = 1;
  },
);
