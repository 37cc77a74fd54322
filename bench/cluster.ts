/**
 * `cluster.scaling`: `tokbind serve --workers 2` over `--workers 1`, keep-alive, every request
 * bound, with the load generator and the servers free to run on every core (no pinning: the
 * point is to let the workers spread). On a machine with C cores the generator takes a share of
 * them too, so the ceiling is below 2 — the figure is reported with the core count, never as a
 * target. Server CPU is the whole process tree's (primary and workers), read from /proc.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from './lib/context.js';
import type { RunConfig, RunResult } from './lib/loadgen.js';
import { median, pairedRatio, summarize } from './lib/stats.js';

const GENERATOR = new URL('./lib/loadgen.js', import.meta.url);
const BIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** CPU time (µs) of a process and all its descendants, from /proc (Linux), or NaN elsewhere. */
function treeCpuUs(pid: number): number {
  const tick = 1e6 / 100; // USER_HZ is 100 on Linux.
  const one = (p: number): number => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) * tick;
    } catch {
      return 0;
    }
  };
  const children = (p: number): number[] => {
    try {
      return readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  let total = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    total += one(p);
    stack.push(...children(p));
  }
  return total;
}

async function startServe(ctx: BenchContext, workers: number): Promise<{ child: ChildProcess; port: number }> {
  const child = ctx.spawnProgram([BIN, 'serve', '--port', '0', '--workers', String(workers)], `serve --workers ${workers}`);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`serve --workers ${workers} did not listen within 30 s`)), 30_000);
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`serve --workers ${workers} exited ${code}`)));
  });
  return { child, port };
}

interface Sample extends RunResult {
  readonly cpuUsPerRequest: number;
}

export async function benchCluster(ctx: BenchContext): Promise<void> {
  const b = ctx.budget;
  // Not availableParallelism(): the runner pinned itself to one core, and that would report 1.
  const cores = cpus().length;
  const servers = { one: await startServe(ctx, 1), two: await startServe(ctx, 2) };
  const generator = ctx.spawn(GENERATOR, { role: 'unpinned', name: 'load generator (unpinned)' });
  const run = async (server: { child: ChildProcess; port: number }): Promise<Sample> => {
    let startCpu = 0;
    let endCpu = 0;
    const off = generator.onEvent((m) => {
      if (m.event === 'window-start') startCpu = treeCpuUs(server.child.pid!);
      if (m.event === 'window-end') endCpu = treeCpuUs(server.child.pid!);
    });
    const config: RunConfig = {
      mode: 'keepalive',
      auth: 'tokbind',
      connections: b.keepaliveConnections,
      warmupMs: b.httpWarmupMs,
      durationMs: b.httpWindowMs,
      port: server.port,
      ca: ctx.cert.cert,
      path: '/whoami',
    };
    let result: RunResult;
    try {
      result = (await generator.request({ cmd: 'run', config }, b.httpWarmupMs + b.httpWindowMs + 60_000)).result as RunResult;
    } finally {
      off();
    }
    if (result.errors > 0) throw new Error(`cluster: ${result.errors} failed requests (${result.firstErrors.join('; ')})`);
    if (result.completed === 0) throw new Error('cluster: no request completed in the window');
    return { ...result, cpuUsPerRequest: (endCpu - startCpu) / result.completed };
  };
  const one: Sample[] = [];
  const two: Sample[] = [];
  for (let round = 0; round < b.rounds; round++) {
    if (round % 2 === 0) {
      one.push(await run(servers.one));
      two.push(await run(servers.two));
    } else {
      two.push(await run(servers.two));
      one.push(await run(servers.one));
    }
  }
  ctx.report.figure({
    key: 'cluster.workers2_rps',
    label: `cluster.scaling (serve --workers 2 / --workers 1, ${cores} cores, unpinned)`,
    unit: 'req/s',
    summary: summarize(two.map((s) => s.rps)),
    baseline: { key: 'cluster.workers1_rps', label: '--workers 1', summary: summarize(one.map((s) => s.rps)) },
    ratio: { key: 'cluster.scaling', summary: pairedRatio(two.map((s) => s.rps), one.map((s) => s.rps)) },
    cpuPerRequest: { candidateUs: median(two.map((s) => s.cpuUsPerRequest)), baselineUs: median(one.map((s) => s.cpuUsPerRequest)) },
    note: `keep-alive, ${b.keepaliveConnections} bound connections; the load generator shares the ${cores} cores with the workers, so 2.0 is out of reach here; server CPU per request is the whole process tree's`,
  });
  ctx.report.set('cluster.cores', cores);
}
