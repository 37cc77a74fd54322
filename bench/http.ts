/**
 * End-to-end HTTPS figures: a plain `https.createServer` against tokbind's server (and against
 * the same plain server verifying DPoP proofs), same tiny handler, server and load generator in
 * their own pinned processes. The plain baseline receives the same requests as tokbind's server
 * (Sec-Token-Binding included, ignored); the plain server without the header is measured too.
 * Rounds interleave the variants (A/B/C, then B/C/A, …) so machine noise hits all of them;
 * ratios are paired per round.
 */
import type { BenchContext, Budget } from './lib/context.js';
import type { Child } from './lib/proc.js';
import type { RunConfig, RunResult } from './lib/loadgen.js';
import { pairedRatio, summarize, median } from './lib/stats.js';
import type { ListenConfig, ServerKind } from './http-server.js';
import type { RelayKind } from './relay-server.js';
import type { BenchCertificate } from './lib/cert.js';

const SERVER = new URL('./http-server.js', import.meta.url);
export const RELAY = new URL('./relay-server.js', import.meta.url);
const GENERATOR = new URL('./lib/loadgen.js', import.meta.url);

interface Sample extends RunResult {
  /** Server CPU over the window / wall time (1 = the whole pinned core). */
  readonly serverCpu: number;
}

export interface HttpRig {
  /** By server name (the kind, unless the spec named it: a second copy of a kind for A/A). */
  readonly servers: Map<string, { child: Child; port: number }>;
  /** The first of `generators`: the one sequential runs use. */
  readonly generator: Child;
  /** One load generator per server that runs in the same window (`sameWindow`); at least one. */
  readonly generators: readonly Child[];
}

/** A server of the rig: a kind, or a named copy of a kind with its own listen options. */
export type ServerSpec = ServerKind | { readonly name: string; readonly kind: ServerKind; readonly resumption?: boolean };

export async function startRig(
  ctx: BenchContext,
  specs: readonly (ServerSpec | RelayKind)[],
  nodeArgs: readonly string[] = [],
  cert: BenchCertificate = ctx.cert,
  script: URL = SERVER,
  generatorCount = 1,
): Promise<HttpRig> {
  const servers = new Map<string, { child: Child; port: number }>();
  for (const spec of specs) {
    const { name, kind, resumption } = typeof spec === 'string' ? { name: spec, kind: spec, resumption: false } : { resumption: false, ...spec };
    const child = ctx.spawn(script, { role: 'server', name: `${name} server`, nodeArgs });
    const config = { kind, key: cert.key, cert: cert.cert, resumption } as ListenConfig;
    const reply = await child.request({ cmd: 'listen', config }, 20_000);
    servers.set(name, { child, port: reply.port as number });
  }
  const generators = Array.from({ length: generatorCount }, (_, i) => ctx.spawn(GENERATOR, { role: 'generator', name: `load generator ${i + 1}` }));
  return { servers, generator: generators[0]!, generators };
}

/** One timed run against one server (by rig name), with the server's CPU sampled at the window edges. */
export async function runOnce(ctx: BenchContext, rig: HttpRig, kind: string, config: Omit<RunConfig, 'port' | 'ca'>, generator: Child = rig.generator): Promise<Sample> {
  const server = rig.servers.get(kind)!;
  let start: Promise<Record<string, unknown>> | null = null;
  let end: Promise<Record<string, unknown>> | null = null;
  const off = generator.onEvent((m) => {
    if (m.event === 'window-start') start = server.child.request({ cmd: 'cpu' }, 10_000);
    if (m.event === 'window-end') end = server.child.request({ cmd: 'cpu' }, 10_000);
  });
  const full: RunConfig = { ...config, port: server.port, ca: ctx.cert.cert };
  const bound = config.warmupMs + config.durationMs + 60_000;
  let result: RunResult;
  try {
    result = (await generator.request({ cmd: 'run', config: full }, bound)).result as RunResult;
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

/**
 * A new-connection run: a fresh TLS connection per request (with `resume`, resuming the slot's
 * previous session), `auth: 'tokbind'` signing each for its EKM.
 */
function newconnConfig(b: Budget, auth: 'none' | 'tokbind', resume: boolean): Omit<RunConfig, 'port' | 'ca'> {
  return {
    mode: 'newconn',
    auth,
    connections: b.newconnConcurrency,
    warmupMs: b.httpWarmupMs,
    durationMs: b.httpWindowMs,
    ...(resume ? { resume: true } : {}),
  };
}

/** One variant of a figure: a server (by rig name), and the requests sent to it. */
interface Variant {
  readonly name: string;
  readonly kind: string;
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

/**
 * Runs every variant at once, each server driven by its own generator, for `rounds` rounds
 * (generators rotated over the variants each round): every sample of a round saw the same machine
 * in the same seconds, so a paired ratio of capacities (rps per server CPU second) does not move
 * with what the rest of the VM did between two sequential windows. Servers share the server core
 * and generators the generator core, so each server runs at a fraction of its core: the figure is
 * capacity, not throughput.
 */
async function sameWindow(ctx: BenchContext, rig: HttpRig, runs: readonly Variant[], preWarmMs: number): Promise<Map<string, Sample[]>> {
  if (rig.generators.length < runs.length) throw new Error(`sameWindow: ${runs.length} variants need as many generators, the rig has ${rig.generators.length}`);
  // One untimed window first, the same for every server: code run once per connection is only
  // optimized after thousands of connections, and the rounds are meant to see the steady state a
  // long-running server is in (the floor is warmed exactly as long).
  await Promise.all(runs.map((run, k) => runOnce(ctx, rig, run.kind, { ...run.config(), warmupMs: preWarmMs, durationMs: 200 }, rig.generators[k]!)));
  const out = new Map<string, Sample[]>(runs.map((r) => [r.name, []]));
  for (let round = 0; round < ctx.budget.rounds; round++) {
    const samples = await Promise.all(runs.map((run, k) => runOnce(ctx, rig, run.kind, run.config(), rig.generators[(k + round) % runs.length]!)));
    samples.forEach((sample, k) => out.get(runs[k]!.name)!.push(sample));
  }
  return out;
}

function utilisation(ctx: BenchContext, label: string, samples: Map<string, Sample[]>, mustSaturate = true, prefix = 'http'): void {
  for (const [kind, list] of samples) {
    const server = median(list.map((s) => s.serverCpu));
    const client = median(list.map((s) => s.cpu));
    ctx.report.set(`${prefix}.${label}.cpu.${kind}`, { server: round2(server), generator: round2(client), p50_us: median(list.map((s) => s.p50us)), p99_us: median(list.map((s) => s.p99us)) });
    if (mustSaturate && server < 0.9) ctx.report.note(`${prefix}.${label} ${kind}: server used ${(server * 100).toFixed(0)}% of its core (generator ${(client * 100).toFixed(0)}%): not fully server-bound, the ratio is compressed toward 1`);
  }
}

/** The median of the paired ratios a[i] / b[i], to three decimals (for values recorded without a row). */
function pairedMedian(a: readonly number[], b: readonly number[]): number {
  return Math.round(pairedRatio(a, b).median * 1000) / 1000;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** Median server CPU time per completed request, in µs, over a variant's rounds. */
function cpuPerRequest(samples: readonly Sample[]): number {
  return median(samples.map((s) => (s.serverCpu * s.windowMs * 1000) / s.completed));
}

/** The `cpuPerRequest` and `control` parts of a figure, from the interleaved samples by variant name. */
function measuredBeside(
  samples: Map<string, Sample[]>,
  candidate: string,
  baseline: string,
  control: { key: string; copy: string; of: string } | undefined,
  value: (s: Sample) => number,
) {
  const values = (name: string): number[] => samples.get(name)!.map(value);
  return {
    cpuPerRequest: { candidateUs: cpuPerRequest(samples.get(candidate)!), baselineUs: cpuPerRequest(samples.get(baseline)!) },
    ...(control === undefined ? {} : { control: { key: control.key, summary: pairedRatio(values(control.copy), values(control.of)) } }),
  };
}

export async function benchHttp(ctx: BenchContext): Promise<void> {
  const b = ctx.budget;
  // `plain_b` is a second, identical plain server: the A/A control of every ratio below.
  const rig = await startRig(ctx, ['plain', 'tokbind', 'dpop', 'floor', { name: 'plain_b', kind: 'plain' }, 'tokbind_metrics']);
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
      { name: 'plain_aa', kind: 'plain_b', config: () => keepalive('tokbind') },
      { name: 'tokbind_metrics', kind: 'tokbind_metrics', config: () => keepalive('tokbind') },
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
    note: 'baseline: plain https.createServer receiving the same requests (Sec-Token-Binding sent, ignored); A/A control: a second plain server against the first, same rounds',
    ...measuredBeside(ka, 'tokbind', 'plain', { key: 'http.keepalive.aa_ratio', copy: 'plain_aa', of: 'plain' }, (s) => s.rps),
  });
  ctx.report.figure({
    key: 'http.keepalive.tokbind_rps',
    label: 'http.keepalive.tokbind_rps (vs no header)',
    unit: 'req/s',
    summary: summarize(rps('tokbind')),
    baseline: { key: 'http.keepalive.plain_noheader_rps', label: 'https, no header', summary: summarize(rps('plain_noheader')) },
    ratio: { key: 'http.keepalive.noheader_ratio', summary: pairedRatio(rps('tokbind'), rps('plain_noheader')) },
    note: 'the same against plain https receiving requests without the header: includes the cost of the header bytes themselves',
    ...measuredBeside(ka, 'tokbind', 'plain_noheader', undefined, (s) => s.rps),
  });
  ctx.report.set('http.keepalive.header_ratio', pairedMedian(rps('plain'), rps('plain_noheader')));
  ctx.report.figure({
    key: 'http.keepalive.metrics_rps',
    label: 'http.keepalive.metrics_rps (registry attached)',
    unit: 'req/s',
    summary: summarize(rps('tokbind_metrics')),
    baseline: { key: 'http.keepalive.tokbind_rps', label: 'tokbind, no registry', summary: summarize(rps('tokbind')) },
    ratio: { key: 'http.keepalive.metrics_ratio', summary: pairedRatio(rps('tokbind_metrics'), rps('tokbind')) },
    target: { on: 'ratio', op: '>=', value: 0.97 },
    note: 'tokbind with tokbind/metrics (prom-client registry on the channels, cache hits timed) against tokbind without, same requests, same rounds',
    ...measuredBeside(ka, 'tokbind_metrics', 'tokbind', { key: 'http.keepalive.aa_ratio', copy: 'plain_aa', of: 'plain' }, (s) => s.rps),
  });
  const late = ka.get('dpop')!.reduce((a, s) => a + s.lateProofs, 0);
  ctx.report.figure({
    key: 'http.dpop.rps',
    label: 'http.dpop.rps (keep-alive, jose)',
    unit: 'req/s',
    summary: summarize(rps('dpop')),
    baseline: { key: 'http.dpop.tokbind_rps', label: 'tokbind', summary: summarize(rps('tokbind')) },
    ratio: { key: 'http.dpop.ratio', summary: pairedRatio(rps('tokbind'), rps('dpop')) },
    note: `ratio = tokbind keep-alive rps / DPoP rps (higher: tokbind cheaper); proofs pre-generated before each window (median ${Math.round(median(ka.get('dpop')!.map((s) => s.proofGenMs)))} ms per round), ${late} made late inside the window`,
    ...measuredBeside(ka, 'dpop', 'tokbind', undefined, (s) => s.rps),
  });
  ctx.report.set('http.dpop.proofs_late', late);
  utilisation(ctx, 'keepalive', ka);
  // Cross-check: the same per-server-CPU view as for new connections. CPU time per request is
  // far less sensitive than throughput to other processes taking the server's core.
  const kaCapacity = (name: string): number[] => ka.get(name)!.map((s) => s.rps / s.serverCpu);
  for (const name of ['plain', 'plain_noheader', 'tokbind', 'dpop', 'plain_aa', 'tokbind_metrics']) ctx.report.set(`http.keepalive.capacity.${name}_rps`, Math.round(median(kaCapacity(name))));
  const capRatio = pairedRatio(kaCapacity('tokbind'), kaCapacity('plain'));
  ctx.report.set('http.keepalive.capacity.ratio', Math.round(capRatio.median * 1000) / 1000);
  ctx.report.set('http.keepalive.capacity.metrics_ratio', pairedMedian(kaCapacity('tokbind_metrics'), kaCapacity('tokbind')));
  ctx.report.note(`http.keepalive: per server CPU second, tokbind/plain = ${capRatio.median.toFixed(3)} (${capRatio.min.toFixed(2)}..${capRatio.max.toFixed(2)}) — the cross-check when the server core was not saturated`);

  const newconn = (auth: 'none' | 'tokbind'): Omit<RunConfig, 'port' | 'ca'> => newconnConfig(b, auth, false);
  // Every variant but `plain_noheader` receives the same requests (a new connection, a signed
  // header for it): only the server differs.
  const nc = await interleave(ctx, rig, [
    { name: 'plain', kind: 'plain', config: () => newconn('tokbind') },
    { name: 'tokbind', kind: 'tokbind', config: () => newconn('tokbind') },
    { name: 'floor', kind: 'floor', config: () => newconn('tokbind') },
    { name: 'plain_noheader', kind: 'plain', config: () => newconn('none') },
    { name: 'plain_aa', kind: 'plain_b', config: () => newconn('tokbind') },
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
    note: 'new connections: rps per second of server CPU (the generator cannot saturate the server core, see README); measured rates in http.newconn.measured',
    ...measuredBeside(nc, 'tokbind', 'plain', { key: 'http.newconn.aa_ratio', copy: 'plain_aa', of: 'plain' }, (s) => s.rps / s.serverCpu),
  });
  ctx.report.figure({
    key: 'http.newconn.floor_rps',
    label: 'http.newconn.floor_rps (EKM + 1 verify, per core)',
    unit: 'req/s',
    summary: summarize(capacity('floor')),
    baseline: { key: 'http.newconn.plain_rps', label: 'https, same requests', summary: summarize(capacity('plain')) },
    ratio: { key: 'http.newconn.floor_ratio', summary: pairedRatio(capacity('floor'), capacity('plain')) },
    note: 'floor = plain https + EKM export + one raw ECDSA verify per connection: the best ratio any in-line verifier can reach here',
    ...measuredBeside(nc, 'floor', 'plain', undefined, (s) => s.rps / s.serverCpu),
  });
  newconnOverFloor(ctx, 'http.newconn', 'ECDSA P-256 certificate, no resumption', nc);
  ctx.report.set('http.newconn.plain_noheader_rps', Math.round(median(capacity('plain_noheader'))));
  ctx.report.set('http.newconn.noheader_ratio', pairedMedian(capacity('tokbind'), capacity('plain_noheader')));
  ctx.report.set('http.newconn.measured', {
    plain_rps: Math.round(median(nc.get('plain')!.map((s) => s.rps))),
    tokbind_rps: Math.round(median(nc.get('tokbind')!.map((s) => s.rps))),
    floor_rps: Math.round(median(nc.get('floor')!.map((s) => s.rps))),
    plain_noheader_rps: Math.round(median(nc.get('plain_noheader')!.map((s) => s.rps))),
  });
  utilisation(ctx, 'newconn', nc, false);
}

/**
 * tokbind's capacity over the floor's (plain https + EKM + one raw verify per connection) from
 * sequential rounds, beside the other new-connection figures. Reported, not a target: the target
 * figures are measured in the same window (`benchNewconnWindow`), whose A/A control is far
 * tighter than these rounds' on a shared VM.
 */
function newconnOverFloor(ctx: BenchContext, prefix: string, shape: string, nc: Map<string, Sample[]>): void {
  const capacity = (name: string): number[] => nc.get(name)!.map((s) => s.rps / s.serverCpu);
  ctx.report.figure({
    key: `${prefix}.sequential.tokbind_capacity_rps`,
    label: `${prefix}.sequential.tokbind_over_floor (${shape})`,
    unit: 'req/s',
    summary: summarize(capacity('tokbind')),
    baseline: { key: `${prefix}.sequential.floor_capacity_rps`, label: 'floor', summary: summarize(capacity('floor')) },
    ratio: { key: `${prefix}.sequential.tokbind_over_floor`, summary: pairedRatio(capacity('tokbind'), capacity('floor')) },
    note: `the same as ${prefix}.tokbind_over_floor (${shape}) from sequential rounds, each server alone in its window; rps per second of server CPU`,
    ...measuredBeside(nc, 'tokbind', 'floor', nc.has('plain_aa') ? { key: `${prefix}.sequential.aa_ratio`, copy: 'plain_aa', of: 'plain' } : undefined, (s) => s.rps / s.serverCpu),
  });
}

/**
 * tokbind's HTTP/2 server (`createSecureServer`) against plain `http2.createSecureServer`, same
 * tiny handler, keep-alive sessions with one stream in flight each, every stream carrying its
 * connection's Sec-Token-Binding (the plain server ignores it); A/A: a second plain server.
 */
export async function benchHttp2(ctx: BenchContext): Promise<void> {
  const b = ctx.budget;
  const rig = await startRig(ctx, ['plain_h2', 'tokbind_h2', { name: 'plain_h2_b', kind: 'plain_h2' }]);
  const config = (): Omit<RunConfig, 'port' | 'ca'> => ({
    mode: 'keepalive',
    protocol: 'h2',
    auth: 'tokbind',
    connections: b.keepaliveConnections,
    warmupMs: b.httpWarmupMs,
    durationMs: b.httpWindowMs,
  });
  const h2 = await interleave(ctx, rig, [
    { name: 'plain', kind: 'plain_h2', config },
    { name: 'tokbind', kind: 'tokbind_h2', config },
    { name: 'plain_aa', kind: 'plain_h2_b', config },
  ]);
  const rps = (name: string): number[] => h2.get(name)!.map((s) => s.rps);
  ctx.report.figure({
    key: 'http2.keepalive.tokbind_rps',
    label: `http2.keepalive.tokbind_rps (${b.keepaliveConnections} sessions)`,
    unit: 'req/s',
    summary: summarize(rps('tokbind')),
    baseline: { key: 'http2.keepalive.plain_rps', label: 'http2, same requests', summary: summarize(rps('plain')) },
    ratio: { key: 'http2.keepalive.ratio', summary: pairedRatio(rps('tokbind'), rps('plain')) },
    target: { on: 'ratio', op: '>=', value: 0.95 },
    note: 'baseline: plain http2.createSecureServer receiving the same streams (Sec-Token-Binding sent, ignored)',
    ...measuredBeside(h2, 'tokbind', 'plain', { key: 'http2.keepalive.aa_ratio', copy: 'plain_aa', of: 'plain' }, (s) => s.rps),
  });
  utilisation(ctx, 'keepalive', h2, true, 'http2');
}

/**
 * New connections in the two other shapes users run: an RSA-2048 server certificate (the
 * handshake costs more, so the binding's share is smaller), and TLS session resumption (returning
 * clients: the handshake costs less, so the binding's share is larger). tokbind over the floor in
 * each, with the same variants as the main new-connection figure.
 */
export async function benchNewconnShapes(ctx: BenchContext, rsaCert: BenchCertificate): Promise<void> {
  const newconn = (resume: boolean): Omit<RunConfig, 'port' | 'ca'> => newconnConfig(ctx.budget, 'tokbind', resume);
  const variants = (resume: boolean) => [
    { name: 'plain', kind: 'plain', config: () => newconn(resume) },
    { name: 'tokbind', kind: 'tokbind', config: () => newconn(resume) },
    { name: 'floor', kind: 'floor', config: () => newconn(resume) },
    { name: 'plain_aa', kind: 'plain_b', config: () => newconn(resume) },
  ];
  const rsaRig = await startRig(ctx, ['plain', 'tokbind', 'floor', { name: 'plain_b', kind: 'plain' }], [], rsaCert);
  const rsa = await interleave(ctx, rsaRig, variants(false));
  newconnOverFloor(ctx, 'http.newconn_rsa', 'RSA-2048 certificate, no resumption', rsa);
  await closeRig(rsaRig);
  const resumedRig = await startRig(ctx, [
    { name: 'plain', kind: 'plain', resumption: true },
    { name: 'tokbind', kind: 'tokbind', resumption: true },
    { name: 'floor', kind: 'floor', resumption: true },
    { name: 'plain_b', kind: 'plain', resumption: true },
  ]);
  const resumed = await interleave(ctx, resumedRig, variants(true));
  newconnOverFloor(ctx, 'http.newconn_resumed', 'ECDSA P-256 certificate, TLS 1.3 session resumption', resumed);
  const share = median(resumed.get('tokbind')!.map((s) => s.resumedShare ?? 0));
  ctx.report.set('http.newconn_resumed.sequential.resumed_share', round2(share));
  if (share < 0.9) ctx.report.note(`http.newconn_resumed.sequential: only ${(share * 100).toFixed(0)}% of connections resumed a session`);
  await closeRig(resumedRig);
}

/**
 * The new-connection target figures, measured in the same window: tokbind, the floor and a second
 * floor (the A/A control) serve at once, each driven by its own generator, in each of the three
 * shapes (ECDSA P-256; RSA-2048; TLS 1.3 resumption). tokbind over the floor is paired per window,
 * and so is the floor's copy over the floor: a ratio outside that control's spread is measured.
 */
export async function benchNewconnWindow(ctx: BenchContext, rsaCert: BenchCertificate): Promise<void> {
  const b = ctx.budget;
  const shapes = [
    { prefix: 'http.newconn', shape: 'ECDSA P-256 certificate, no resumption', cert: ctx.cert, resume: false },
    { prefix: 'http.newconn_rsa', shape: 'RSA-2048 certificate, no resumption', cert: rsaCert, resume: false },
    { prefix: 'http.newconn_resumed', shape: 'ECDSA P-256 certificate, TLS 1.3 session resumption', cert: ctx.cert, resume: true },
  ];
  for (const { prefix, shape, cert, resume } of shapes) {
    const rig = await startRig(
      ctx,
      [
        { name: 'tokbind', kind: 'tokbind', resumption: resume },
        { name: 'floor', kind: 'floor', resumption: resume },
        { name: 'floor_b', kind: 'floor', resumption: resume },
      ],
      [],
      cert,
      SERVER,
      3,
    );
    const config = (): Omit<RunConfig, 'port' | 'ca'> => newconnConfig(b, 'tokbind', resume);
    const nc = await sameWindow(
      ctx,
      rig,
      [
        { name: 'tokbind', kind: 'tokbind', config },
        { name: 'floor', kind: 'floor', config },
        { name: 'floor_aa', kind: 'floor_b', config },
      ],
      b.newconnPreWarmMs,
    );
    const capacity = (name: string): number[] => nc.get(name)!.map((s) => s.rps / s.serverCpu);
    ctx.report.figure({
      key: `${prefix}.tokbind_capacity_rps`,
      label: `${prefix}.tokbind_over_floor (${shape}; same window)`,
      unit: 'req/s',
      summary: summarize(capacity('tokbind')),
      baseline: { key: `${prefix}.floor_capacity_rps`, label: 'floor', summary: summarize(capacity('floor')) },
      ratio: { key: `${prefix}.tokbind_over_floor`, summary: pairedRatio(capacity('tokbind'), capacity('floor')) },
      target: { on: 'ratio', op: '>=', value: 0.95 },
      note: `tokbind's cost over the unavoidable EKM + one verification per new connection (${shape}); tokbind, the floor and the floor's A/A copy serving in the same windows, each with its own generator; rps per second of server CPU`,
      ...measuredBeside(nc, 'tokbind', 'floor', { key: `${prefix}.floor_aa_ratio`, copy: 'floor_aa', of: 'floor' }, (s) => s.rps / s.serverCpu),
    });
    if (resume) {
      const share = median(nc.get('tokbind')!.map((s) => s.resumedShare ?? 0));
      ctx.report.set(`${prefix}.resumed_share`, round2(share));
      if (share < 0.9) ctx.report.note(`${prefix}: only ${(share * 100).toFixed(0)}% of connections resumed a session`);
    }
    utilisation(ctx, 'window', nc, false, prefix);
    await closeRig(rig);
  }
}

async function closeRig(rig: HttpRig): Promise<void> {
  await Promise.all([...rig.servers.values()].map((s) => s.child.close()));
  await Promise.all(rig.generators.map((g) => g.close()));
}

/**
 * `tokbind proxy` and `tokbind forward` against the same library (undici) relaying without Token
 * Binding, the far end in the same process in both variants (bench/relay-server.ts), keep-alive:
 *
 * - `proxy.keepalive.ratio` (target >= 0.95): clients send signed requests over TLS to the front;
 *   tokbind's proxy verifies and forwards the IDs, the baseline forwards them unread.
 * - `forward.keepalive.ratio` (reported): plain HTTP clients on loopback; tokbind's sidecar signs
 *   every new upstream connection, the baseline relays over TLS unbound.
 */
export async function benchRelays(ctx: BenchContext): Promise<void> {
  const b = ctx.budget;
  const rig = await startRig(ctx, ['proxy_plain', 'proxy_tokbind', 'forward_plain', 'forward_tokbind'], [], ctx.cert, RELAY);
  const config = (auth: 'none' | 'tokbind', transport: 'tls' | 'tcp'): Omit<RunConfig, 'port' | 'ca'> => ({
    mode: 'keepalive',
    auth,
    transport,
    connections: b.keepaliveConnections,
    warmupMs: b.httpWarmupMs,
    durationMs: b.httpWindowMs,
  });
  const proxy = await interleave(ctx, rig, [
    { name: 'plain', kind: 'proxy_plain', config: () => config('tokbind', 'tls') },
    { name: 'tokbind', kind: 'proxy_tokbind', config: () => config('tokbind', 'tls') },
  ]);
  const rps = (m: Map<string, Sample[]>, name: string): number[] => m.get(name)!.map((s) => s.rps);
  ctx.report.figure({
    key: 'proxy.keepalive.tokbind_rps',
    label: `proxy.keepalive.tokbind_rps (${b.keepaliveConnections} conns)`,
    unit: 'req/s',
    summary: summarize(rps(proxy, 'tokbind')),
    baseline: { key: 'proxy.keepalive.plain_rps', label: 'undici relay, same requests', summary: summarize(rps(proxy, 'plain')) },
    ratio: { key: 'proxy.keepalive.ratio', summary: pairedRatio(rps(proxy, 'tokbind'), rps(proxy, 'plain')) },
    target: { on: 'ratio', op: '>=', value: 0.95 },
    note: 'tokbind proxy (HTTP/1.1 front) vs an https front relaying with the same undici Pool, hop-by-hop headers dropped and X-Forwarded-*/Forwarded added, no binding; same backend in the same process; server CPU includes the backend',
    ...measuredBeside(proxy, 'tokbind', 'plain', undefined, (s) => s.rps),
  });
  const forward = await interleave(ctx, rig, [
    { name: 'plain', kind: 'forward_plain', config: () => config('none', 'tcp') },
    { name: 'tokbind', kind: 'forward_tokbind', config: () => config('none', 'tcp') },
  ]);
  ctx.report.figure({
    key: 'forward.keepalive.tokbind_rps',
    label: `forward.keepalive.tokbind_rps (${b.keepaliveConnections} conns)`,
    unit: 'req/s',
    summary: summarize(rps(forward, 'tokbind')),
    baseline: { key: 'forward.keepalive.plain_rps', label: 'undici relay, unbound', summary: summarize(rps(forward, 'plain')) },
    ratio: { key: 'forward.keepalive.ratio', summary: pairedRatio(rps(forward, 'tokbind'), rps(forward, 'plain')) },
    note: 'tokbind forward (sidecar: plain HTTP in, Token-Bound TLS out) vs a plain-HTTP front relaying with an undici Agent over TLS without binding; the target (a tokbind server) in the same process',
    ...measuredBeside(forward, 'tokbind', 'plain', undefined, (s) => s.rps),
  });
  utilisation(ctx, 'keepalive', proxy, true, 'proxy');
  utilisation(ctx, 'keepalive', forward, true, 'forward');
}
