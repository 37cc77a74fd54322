/**
 * Observability for server-side verification: a `node:diagnostics_channel` event per
 * verification, in-process counters, a fixed-bucket latency histogram and a Prometheus text
 * exporter.
 *
 * The channels (`tokbind:verify` here, `tokbind:tls` for connections that do not meet the TLS
 * conditions) are the zero-dependency source: `tokbind/metrics` builds the prom-client and
 * OpenTelemetry metrics on them (and is what `tokbind serve` exposes at /metrics). The
 * in-process counters and {@link formatPrometheusMetrics} below stay for applications without
 * prom-client: a synchronous snapshot of the same figures under the same names.
 *
 * Nothing recorded here ever holds key material, header values or EKMs: only outcomes, error
 * codes, key parameter names and durations.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import type { KeyParametersName } from '../codec/types.js';
import type { TokenBindingErrorCode } from '../errors.js';

/** The diagnostics channel every server-side verification is published on. */
export const VERIFY_CHANNEL_NAME = 'tokbind:verify';

/** What a `tokbind:verify` subscriber receives, once per request that went through verification. */
export interface VerifyEvent {
  /** `absent`: no Sec-Token-Binding header and none required. */
  readonly outcome: 'accepted' | 'rejected' | 'absent';
  /** The rejection code (only when `outcome` is `rejected`). */
  readonly code?: TokenBindingErrorCode;
  /** Time spent deciding, in nanoseconds (0 when not measured: absent header). */
  readonly durationNs: number;
  /** True when the verdict came from the connection's verification cache. */
  readonly cached: boolean;
  /**
   * The provided binding's key parameters: always when `outcome` is `accepted`; on a rejection
   * when the provided binding was read (`ERR_TB_SIGNATURE_INVALID`,
   * `ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED`).
   */
  readonly keyParameters?: KeyParametersName | number;
  /**
   * `true` on a rejection of a message whose provided signature verified earlier on another
   * connection: a captured message replayed (the code stays `ERR_TB_SIGNATURE_INVALID`, see replay.ts).
   */
  readonly replayed?: true;
}

/** The diagnostics channel a TLS connection that cannot carry Token Binding is published on. */
export const TLS_CHANNEL_NAME = 'tokbind:tls';

/**
 * Why a connection cannot carry Token Binding: the facts' reasons (`tls-version`: below TLS 1.2;
 * `no-ems`: TLS 1.2 without Extended Master Secret; `ems-unknown`; `ekm-unavailable`) and
 * `renegotiation`: the client attempted a TLS renegotiation (refused).
 */
export type TlsConditionsReason = 'tls-version' | 'no-ems' | 'ems-unknown' | 'ekm-unavailable' | 'renegotiation';

/** What a `tokbind:tls` subscriber receives, once per connection (and per renegotiation attempt). */
export interface TlsConditionsEvent {
  readonly outcome: 'unmet';
  readonly reason: TlsConditionsReason;
  /** `tlsSocket.getProtocol()` (`'TLSv1.2'`, `'TLSv1.1'`, …, `'unknown'`). */
  readonly protocol: string;
}

const verifyChannel = diagnosticsChannel.channel(VERIFY_CHANNEL_NAME);
const tlsChannel = diagnosticsChannel.channel(TLS_CHANNEL_NAME);

/**
 * Upper bounds of the latency buckets, in seconds (Prometheus convention). ECDSA P-256 with
 * node:crypto lands around 50–150 µs, RSA-2048 verification below that, the pure-JS backend in
 * the low milliseconds: the buckets straddle all three.
 */
const BUCKET_BOUNDS_SECONDS = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
] as const;
const BUCKET_BOUNDS_NS = BUCKET_BOUNDS_SECONDS.map((s) => Math.round(s * 1e9));

interface Counters {
  accepted: number;
  rejected: number;
  absent: number;
  cacheHits: number;
  cacheMisses: number;
  rejections: Map<string, number>;
  tlsConditionsUnmet: Map<string, number>;
  /** tokbind/session: sessions bound, and session checks by outcome; refusals by reason. */
  sessions: { bound: number; accepted: number; rejected: number };
  sessionRejections: Map<string, number>;
  /** Per bucket (not cumulative), plus one overflow bucket (+Inf). */
  buckets: number[];
  latencyCount: number;
  latencySumNs: number;
}

function emptyCounters(): Counters {
  return {
    accepted: 0,
    rejected: 0,
    absent: 0,
    cacheHits: 0,
    cacheMisses: 0,
    rejections: new Map(),
    tlsConditionsUnmet: new Map(),
    sessions: { bound: 0, accepted: 0, rejected: 0 },
    sessionRejections: new Map(),
    buckets: new Array<number>(BUCKET_BOUNDS_NS.length + 1).fill(0),
    latencyCount: 0,
    latencySumNs: 0,
  };
}

let counters = emptyCounters();

/**
 * Monotonic nanoseconds since the process started, as an integer number. `performance.now()` is
 * Node's monotonic clock in milliseconds as a double (finer than 10 ns for a year of uptime) at
 * about half the cost of `process.hrtime.bigint()` (43 vs 75 ns measured): a subscribed server
 * reads it twice per request.
 */
export function nowNs(): number {
  return Math.round(performance.now() * 1e6);
}

/** True when someone subscribed to `tokbind:verify`: lets callers skip measuring cache hits. */
export function hasVerifySubscribers(): boolean {
  return verifyChannel.hasSubscribers;
}

function observeLatency(durationNs: number): void {
  let i = 0;
  while (i < BUCKET_BOUNDS_NS.length && durationNs > BUCKET_BOUNDS_NS[i]!) i++;
  counters.buckets[i]!++;
  counters.latencyCount++;
  counters.latencySumNs += durationNs;
}

/**
 * Records one verification verdict. Counters are plain integer increments; the histogram only
 * observes verification work (cache misses), so a busy keep-alive connection does not drown the
 * signature latency in near-zero cache lookups. The event object is only built when the channel
 * has subscribers.
 *
 * @internal Called by the request verification path; exported for the adapters.
 */
export function recordVerification(
  outcome: VerifyEvent['outcome'],
  durationNs: number,
  cached: boolean,
  code?: TokenBindingErrorCode,
  keyParameters?: KeyParametersName | number,
  replayed = false,
): void {
  counters[outcome]++;
  if (outcome === 'rejected' && code !== undefined) {
    counters.rejections.set(code, (counters.rejections.get(code) ?? 0) + 1);
  }
  if (outcome !== 'absent') {
    if (cached) counters.cacheHits++;
    else {
      counters.cacheMisses++;
      observeLatency(durationNs);
    }
  }
  if (verifyChannel.hasSubscribers) {
    const event: { -readonly [K in keyof VerifyEvent]: VerifyEvent[K] } = { outcome, durationNs, cached };
    if (code !== undefined) event.code = code;
    if (keyParameters !== undefined) event.keyParameters = keyParameters;
    if (replayed) event.replayed = true;
    verifyChannel.publish(event);
  }
}

/**
 * Counts a TLS connection that does not meet the Token Binding conditions (RFC 8471 §4.2,
 * e.g. TLS 1.2 without Extended Master Secret), by reason, and publishes it on `tokbind:tls`.
 *
 * @internal Called by the servers when they capture connection facts.
 */
export function recordTlsConditionsUnmet(reason: string, protocol = 'unknown'): void {
  counters.tlsConditionsUnmet.set(reason, (counters.tlsConditionsUnmet.get(reason) ?? 0) + 1);
  if (tlsChannel.hasSubscribers) tlsChannel.publish({ outcome: 'unmet', reason, protocol });
}

/**
 * Counts one tokbind/session outcome (the `tokbind:session` event is published by tokbind/session
 * itself): a session bound, a check accepted, or a check refused with its reason.
 *
 * @internal Called by tokbind/session.
 */
export function recordSessionOutcome(outcome: 'bound' | 'accepted' | 'rejected', reason?: string): void {
  counters.sessions[outcome]++;
  if (reason !== undefined) counters.sessionRejections.set(reason, (counters.sessionRejections.get(reason) ?? 0) + 1);
}

/** One latency bucket: upper bound (ns, `Infinity` for the overflow bucket) and cumulative count. */
export interface LatencyBucket {
  readonly leNs: number;
  readonly count: number;
}

/** A point-in-time copy of the process-wide counters. */
export interface MetricsSnapshot {
  readonly verifications: { readonly accepted: number; readonly rejected: number; readonly absent: number };
  /** Rejections by error code. */
  readonly rejections: Readonly<Record<string, number>>;
  readonly cache: { readonly hits: number; readonly misses: number };
  /** Connections that did not meet the TLS conditions, by reason. */
  readonly tlsConditionsUnmet: Readonly<Record<string, number>>;
  /** tokbind/session: sessions bound, and checks of a bound or authenticated session by outcome. */
  readonly sessions: { readonly bound: number; readonly accepted: number; readonly rejected: number };
  /** tokbind/session refusals by reason (`mismatch` and `missing-binding` are stolen-cookie signals). */
  readonly sessionRejections: Readonly<Record<string, number>>;
  /** Latency of verifications that were not answered from the cache. */
  readonly latency: {
    readonly count: number;
    readonly sumNs: number;
    /**
     * Quantile estimates (ns), interpolated linearly inside the bucket that holds the rank, as
     * Prometheus' `histogram_quantile` does; `null` when nothing was observed. The error is
     * bounded by the bucket width.
     */
    readonly p50Ns: number | null;
    readonly p95Ns: number | null;
    readonly p99Ns: number | null;
    /** Cumulative, like a Prometheus histogram. */
    readonly buckets: readonly LatencyBucket[];
  };
}

function quantileNs(q: number): number | null {
  const total = counters.latencyCount;
  if (total === 0) return null;
  const rank = q * total;
  let cumulative = 0;
  for (let i = 0; i < counters.buckets.length; i++) {
    const inBucket = counters.buckets[i]!;
    if (inBucket > 0 && cumulative + inBucket >= rank) {
      const lower = i === 0 ? 0 : BUCKET_BOUNDS_NS[i - 1]!;
      // Overflow bucket: no upper bound to interpolate towards; report its lower bound.
      if (i === BUCKET_BOUNDS_NS.length) return lower;
      const upper = BUCKET_BOUNDS_NS[i]!;
      return Math.round(lower + ((upper - lower) * (rank - cumulative)) / inBucket);
    }
    cumulative += inBucket;
  }
  return BUCKET_BOUNDS_NS[BUCKET_BOUNDS_NS.length - 1]!;
}

/**
 * Reads the process-wide Token Binding counters and latency histogram.
 *
 * @example
 * ```ts
 * const { verifications, latency } = getMetricsSnapshot()
 * console.log(verifications.rejected, latency.p99Ns)
 * ```
 */
export function getMetricsSnapshot(): MetricsSnapshot {
  const buckets: LatencyBucket[] = [];
  let cumulative = 0;
  for (let i = 0; i < counters.buckets.length; i++) {
    cumulative += counters.buckets[i]!;
    buckets.push({ leNs: i < BUCKET_BOUNDS_NS.length ? BUCKET_BOUNDS_NS[i]! : Infinity, count: cumulative });
  }
  return {
    verifications: { accepted: counters.accepted, rejected: counters.rejected, absent: counters.absent },
    rejections: Object.fromEntries(counters.rejections),
    cache: { hits: counters.cacheHits, misses: counters.cacheMisses },
    tlsConditionsUnmet: Object.fromEntries(counters.tlsConditionsUnmet),
    sessions: { ...counters.sessions },
    sessionRejections: Object.fromEntries(counters.sessionRejections),
    latency: {
      count: counters.latencyCount,
      sumNs: counters.latencySumNs,
      p50Ns: quantileNs(0.5),
      p95Ns: quantileNs(0.95),
      p99Ns: quantileNs(0.99),
      buckets,
    },
  };
}

/**
 * Sets every counter back to zero (tests, or a process that exports deltas).
 *
 * @example
 * ```ts
 * resetMetrics()
 * ```
 */
export function resetMetrics(): void {
  counters = emptyCounters();
}

/** Label values are codes and reasons we produce, but escape them as the format demands anyway. */
function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/**
 * The counters and the histogram in the Prometheus text exposition format (version 0.0.4), to
 * serve from a `/metrics` route with content type `text/plain; version=0.0.4`.
 *
 * @example
 * ```ts
 * res.setHeader('content-type', 'text/plain; version=0.0.4')
 * res.end(formatPrometheusMetrics())
 * ```
 */
export function formatPrometheusMetrics(): string {
  const s = getMetricsSnapshot();
  const lines: string[] = [];
  const family = (name: string, type: string, help: string): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };

  family('tokbind_verifications_total', 'counter', 'Sec-Token-Binding verifications by outcome.');
  for (const [outcome, n] of Object.entries(s.verifications)) {
    lines.push(`tokbind_verifications_total{outcome="${outcome}"} ${n}`);
  }
  family('tokbind_rejections_total', 'counter', 'Rejected Sec-Token-Binding headers by error code.');
  for (const [code, n] of Object.entries(s.rejections)) {
    lines.push(`tokbind_rejections_total{code="${label(code)}"} ${n}`);
  }
  family('tokbind_cache_lookups_total', 'counter', 'Per-connection verification cache lookups by result.');
  lines.push(`tokbind_cache_lookups_total{result="hit"} ${s.cache.hits}`);
  lines.push(`tokbind_cache_lookups_total{result="miss"} ${s.cache.misses}`);
  family('tokbind_tls_conditions_unmet_total', 'counter', 'TLS connections not meeting the Token Binding conditions, by reason.');
  for (const [reason, n] of Object.entries(s.tlsConditionsUnmet)) {
    lines.push(`tokbind_tls_conditions_unmet_total{reason="${label(reason)}"} ${n}`);
  }
  family('tokbind_verification_duration_seconds', 'histogram', 'Time to verify a Sec-Token-Binding header (cache misses).');
  s.latency.buckets.forEach((b, i) => {
    const le = i < BUCKET_BOUNDS_SECONDS.length ? String(BUCKET_BOUNDS_SECONDS[i]) : '+Inf';
    lines.push(`tokbind_verification_duration_seconds_bucket{le="${le}"} ${b.count}`);
  });
  lines.push(`tokbind_verification_duration_seconds_sum ${s.latency.sumNs / 1e9}`);
  lines.push(`tokbind_verification_duration_seconds_count ${s.latency.count}`);
  family('tokbind_sessions_total', 'counter', 'tokbind/session: sessions bound, and session checks by outcome.');
  for (const [outcome, n] of Object.entries(s.sessions)) {
    lines.push(`tokbind_sessions_total{outcome="${outcome}"} ${n}`);
  }
  family('tokbind_session_rejections_total', 'counter', 'tokbind/session: refused sessions by reason (mismatch, missing-binding: stolen-cookie signals).');
  for (const [reason, n] of Object.entries(s.sessionRejections)) {
    lines.push(`tokbind_session_rejections_total{reason="${label(reason)}"} ${n}`);
  }
  return lines.join('\n') + '\n';
}
