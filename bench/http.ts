/**
 * End-to-end HTTPS figures: a plain `https.createServer` against tokbind's server (and against
 * the same plain server verifying DPoP proofs), same tiny handler, server and load generator in
 * their own pinned processes. The plain baseline receives the same requests as tokbind's server
 * (Sec-Token-Binding included, ignored); the plain server without the header is measured too.
 * Rounds interleave the variants (A/B/C, then B/C/A, …) so machine noise hits all of them;
 * ratios are paired per round.
 */
import type { BenchContext } from './lib/context.js';
import type { Child } from './lib/proc.js';
import type { RunConfig, RunResult } from './lib/loadgen.js';
import { pairedRatio, summarize, median } from './lib/stats.js';
import type { ServerKind } from './http-server.js';

const SERVER = new URL('./http-server.js', import.meta.url);
const GENERATOR = new URL('./lib/loadgen.js', import.meta.url);

interface Sample extends RunResult {
  /** Server CPU over the window / wall time (1 = the whole pinned core). */
  readonly serverCpu: number;
}

export interface HttpRig {
  readonly servers: Map<ServerKind, { child: Child; port: number }>;
  readonly generator: Child;
}

export async function startRig(ctx: BenchContext, kinds: readonly ServerKind[], nodeArgs: readonly string[] = []): Promise<HttpRig> {
  const servers = new Map<ServerKind, { child: Child; port: number }>();
  for (const kind of kinds) {
    const child = ctx.spawn(SERVER, { role: 'server', name: `${kind} server`, nodeArgs });
    const reply = await child.request({ cmd: 'listen', config: { kind, key: ctx.cert.key, cert: ctx.cert.cert } }, 20_000);
    servers.set(kind, { child, port: reply.port as number });
  }
  const generator = ctx.spawn(GENERATOR, { role: 'generator', name: 'load generator' });
  return { servers, generator };
}

/** One timed run against one server, with the server's CPU sampled at the window edges. */
export async function runOnce(ctx: BenchContext, rig: HttpRig, kind: ServerKind, config: Omit<RunConfig, 'port' | 'ca'>): Promise<Sample> {
  const server = rig.servers.get(kind)!;
  let start: Promise<Record<string, unknown>> | null = null;
  let end: Promise<Record<string, unknown>> | null = null;
  const off = rig.generator.onEvent((m) => {
    if (m.event === 'window-start') start = server.child.request({ cmd: 'cpu' }, 10_000);
    if (m.event === 'window-end') end = server.child.request({ cmd: 'cpu' }, 10_000);
  });
  const full: RunConfig = { ...config, port: server.port, ca: ctx.cert.cert };
  const bound = config.warmupMs + config.durationMs + 60_000;
  let result: RunResult;
  try {
    result = (await rig.generator.request({ cmd: 'run', config: full }, bound)).result as RunResult;
  } finally {
    off();
  }
  const s = (await start!) as { cpuUs: number; at: number };
  const e = (await end!) as { cpuUs: number; at: number };
  if (result.errors > 0) {
    throw new Error(`${kind} ${config.mode}: ${result.errors} failed requests (${result.firstErrors.join('; ')})`);
  }
  if (result.completed === 0) throw new Error(`${kind} ${config.mode}: no request completed in the window`);
  return { ...result, serverCpu: (e.cpuUs - s.cpuUs) / 1000 / (e.at - s.at) };
}

/** One variant of a figure: a server, and the requests sent to it. */
interface Variant {
  readonly name: string;
  readonly kind: ServerKind;
  readonly config: () => Omit<RunConfig, 'port' | 'ca'>;
}

/** Runs the variants for `rounds` rounds, rotating the order each round; samples by variant name. */
async function interleave(
  ctx: BenchContext,
  rig: HttpRig,
  runs: readonly Variant[],
  onSample?: (name: string, s: Sample) => void,
): Promise<Map<string, Sample[]>> {
  const out = new Map<string, Sample[]>(runs.map((r) => [r.name, []]));
  for (let round = 0; round < ctx.budget.rounds; round++) {
    for (let k = 0; k < runs.length; k++) {
      const run = runs[(k + round) % runs.length]!;
      const sample = await runOnce(ctx, rig, run.kind, run.config());
      out.get(run.name)!.push(sample);
      onSample?.(run.name, sample);
    }
  }
  return out;
}

function utilisation(ctx: BenchContext, label: string, samples: Map<string, Sample[]>, mustSaturate = true): void {
  for (const [kind, list] of samples) {
    const server = median(list.map((s) => s.serverCpu));
    const client = median(list.map((s) => s.cpu));
    ctx.report.set(`http.${label}.cpu.${kind}`, { server: round2(server), generator: round2(client), p50_us: median(list.map((s) => s.p50us)), p99_us: median(list.map((s) => s.p99us)) });
    if (mustSaturate && server < 0.9) ctx.report.note(`http.${label} ${kind}: server used ${(server * 100).toFixed(0)}% of its core (generator ${(client * 100).toFixed(0)}%): not fully server-bound, the ratio is compressed toward 1`);
  }
}

/** The median of the paired ratios a[i] / b[i], to three decimals (for values recorded without a row). */
function pairedMedian(a: readonly number[], b: readonly number[]): number {
  return Math.round(pairedRatio(a, b).median * 1000) / 1000;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

export async function benchHttp(ctx: BenchContext): Promise<void> {
  const b = ctx.budget;
  const rig = await startRig(ctx, ['plain', 'tokbind', 'dpop', 'floor']);
  const keepalive = (auth: 'none' | 'tokbind' | 'dpop', proofs?: number): Omit<RunConfig, 'port' | 'ca'> => ({
    mode: 'keepalive',
    auth,
    connections: b.keepaliveConnections,
    warmupMs: b.httpWarmupMs,
    durationMs: b.httpWindowMs,
    ...(proofs === undefined ? {} : { proofs }),
  });

  // Sizes the DPoP proof pool: DPoP can't outrun the plain server, so a short plain run gives an
  // upper bound; after the first DPoP round its own rate (with a margin) is used.
  const calibration = await runOnce(ctx, rig, 'plain', { ...keepalive('none'), warmupMs: 200, durationMs: 500 });
  let dpopRate = calibration.rps;
  const seconds = (b.httpWarmupMs + b.httpWindowMs) / 1000;
  // The baseline is the plain server receiving the very requests tokbind's server receives (each
  // carries its connection's Sec-Token-Binding; the plain server ignores it): only the server
  // differs, so the ratio is what turning tokbind on costs for the same traffic. The plain server
  // without the header is measured too, so the header's own cost (~190 bytes more for Node to
  // read and parse per request) is on record beside it.
  const ka = await interleave(
    ctx,
    rig,
    [
      { name: 'plain', kind: 'plain', config: () => keepalive('tokbind') },
      { name: 'tokbind', kind: 'tokbind', config: () => keepalive('tokbind') },
      { name: 'plain_noheader', kind: 'plain', config: () => keepalive('none') },
      { name: 'dpop', kind: 'dpop', config: () => keepalive('dpop', Math.ceil(dpopRate * seconds * 1.25) + b.keepaliveConnections) },
    ],
    (name, s) => {
      if (name === 'dpop') dpopRate = Math.min(calibration.rps, (s.completed * 1000) / s.windowMs * 1.2);
    },
  );
  const rps = (name: string): number[] => ka.get(name)!.map((s) => s.rps);
  ctx.report.figure({
    key: 'http.keepalive.tokbind_rps',
    label: `http.keepalive.tokbind_rps (${b.keepaliveConnections} conns)`,
    unit: 'req/s',
    summary: summarize(rps('tokbind')),
    baseline: { key: 'http.keepalive.plain_rps', label: 'https, same requests', summary: summarize(rps('plain')) },
    ratio: { key: 'http.keepalive.ratio', summary: pairedRatio(rps('tokbind'), rps('plain')) },
    target: { on: 'ratio', op: '>=', value: 0.95 },
    note: 'baseline: plain https.createServer receiving the same requests (Sec-Token-Binding sent, ignored)',
  });
  ctx.report.figure({
    key: 'http.keepalive.tokbind_rps',
    label: 'http.keepalive.tokbind_rps (vs no header)',
    unit: 'req/s',
    summary: summarize(rps('tokbind')),
    baseline: { key: 'http.keepalive.plain_noheader_rps', label: 'https, no header', summary: summarize(rps('plain_noheader')) },
    ratio: { key: 'http.keepalive.noheader_ratio', summary: pairedRatio(rps('tokbind'), rps('plain_noheader')) },
    note: 'the same against plain https receiving requests without the header: includes the cost of the header bytes themselves',
  });
  ctx.report.set('http.keepalive.header_ratio', pairedMedian(rps('plain'), rps('plain_noheader')));
  const late = ka.get('dpop')!.reduce((a, s) => a + s.lateProofs, 0);
  ctx.report.figure({
    key: 'http.dpop.rps',
    label: 'http.dpop.rps (keep-alive, jose)',
    unit: 'req/s',
    summary: summarize(rps('dpop')),
    baseline: { key: 'http.dpop.tokbind_rps', label: 'tokbind', summary: summarize(rps('tokbind')) },
    ratio: { key: 'http.dpop.ratio', summary: pairedRatio(rps('tokbind'), rps('dpop')) },
    note: `ratio = tokbind keep-alive rps / DPoP rps (higher: tokbind cheaper); proofs pre-generated before each window (median ${Math.round(median(ka.get('dpop')!.map((s) => s.proofGenMs)))} ms per round), ${late} made late inside the window`,
  });
  ctx.report.set('http.dpop.proofs_late', late);
  utilisation(ctx, 'keepalive', ka);
  // Cross-check: the same per-server-CPU view as for new connections. CPU time per request is
  // far less sensitive than throughput to other processes taking the server's core.
  const kaCapacity = (name: string): number[] => ka.get(name)!.map((s) => s.rps / s.serverCpu);
  for (const name of ['plain', 'plain_noheader', 'tokbind', 'dpop']) ctx.report.set(`http.keepalive.capacity.${name}_rps`, Math.round(median(kaCapacity(name))));
  const capRatio = pairedRatio(kaCapacity('tokbind'), kaCapacity('plain'));
  ctx.report.set('http.keepalive.capacity.ratio', Math.round(capRatio.median * 1000) / 1000);
  ctx.report.note(`http.keepalive: per server CPU second, tokbind/plain = ${capRatio.median.toFixed(3)} (${capRatio.min.toFixed(2)}..${capRatio.max.toFixed(2)}) — the cross-check when the server core was not saturated`);

  const newconn = (auth: 'none' | 'tokbind'): Omit<RunConfig, 'port' | 'ca'> => ({
    mode: 'newconn',
    auth,
    connections: b.newconnConcurrency,
    warmupMs: b.httpWarmupMs,
    durationMs: b.httpWindowMs,
  });
  // Every variant but `plain_noheader` receives the same requests (a new connection, a signed
  // header for it): only the server differs.
  const nc = await interleave(ctx, rig, [
    { name: 'plain', kind: 'plain', config: () => newconn('tokbind') },
    { name: 'tokbind', kind: 'tokbind', config: () => newconn('tokbind') },
    { name: 'floor', kind: 'floor', config: () => newconn('tokbind') },
    { name: 'plain_noheader', kind: 'plain', config: () => newconn('none') },
  ]);
  // A TLS 1.3 client does more handshake work than the server (it verifies the ECDSA
  // CertificateVerify, ~2.5x an ECDSA sign, and here also signs the Token Binding), so one
  // generator core cannot saturate one server core with new connections. The figure is therefore
  // the server's capacity: requests per second of server CPU (completed / server CPU time) — what
  // it would serve with its core saturated. The measured rates are recorded beside it.
  const capacity = (name: string): number[] => nc.get(name)!.map((s) => s.rps / s.serverCpu);
  ctx.report.figure({
    key: 'http.newconn.tokbind_rps',
    label: `http.newconn.tokbind_rps (per server core)`,
    unit: 'req/s',
    summary: summarize(capacity('tokbind')),
    baseline: { key: 'http.newconn.plain_rps', label: 'https, same requests', summary: summarize(capacity('plain')) },
    ratio: { key: 'http.newconn.ratio', summary: pairedRatio(capacity('tokbind'), capacity('plain')) },
    target: { on: 'ratio', op: '>=', value: 0.85 },
    note: 'new connections: rps per second of server CPU (the generator cannot saturate the server core, see README); measured rates in http.newconn.measured',
  });
  ctx.report.figure({
    key: 'http.newconn.floor_rps',
    label: 'http.newconn.floor_rps (EKM + 1 verify, per core)',
    unit: 'req/s',
    summary: summarize(capacity('floor')),
    baseline: { key: 'http.newconn.plain_rps', label: 'https, same requests', summary: summarize(capacity('plain')) },
    ratio: { key: 'http.newconn.floor_ratio', summary: pairedRatio(capacity('floor'), capacity('plain')) },
    note: 'floor = plain https + EKM export + one raw ECDSA verify per connection: the best ratio any in-line verifier can reach here',
  });
  ctx.report.set('http.newconn.plain_noheader_rps', Math.round(median(capacity('plain_noheader'))));
  ctx.report.set('http.newconn.noheader_ratio', pairedMedian(capacity('tokbind'), capacity('plain_noheader')));
  ctx.report.set('http.newconn.tokbind_over_floor', pairedMedian(capacity('tokbind'), capacity('floor')));
  ctx.report.set('http.newconn.measured', {
    plain_rps: Math.round(median(nc.get('plain')!.map((s) => s.rps))),
    tokbind_rps: Math.round(median(nc.get('tokbind')!.map((s) => s.rps))),
    floor_rps: Math.round(median(nc.get('floor')!.map((s) => s.rps))),
    plain_noheader_rps: Math.round(median(nc.get('plain_noheader')!.map((s) => s.rps))),
  });
  utilisation(ctx, 'newconn', nc, false);
}
