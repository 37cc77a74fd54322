/**
 * The Token Binding SLIs in a prom-client registry: the application's own (the convention Node
 * services follow), or a fresh one for `tokbind serve`.
 */
import { Counter, Histogram, type Registry, type RegistryContentType } from 'prom-client';
import { subscribeTokenBindingChannels, type TokenBindingSink } from './channels.js';
import { TallyHistogram, tallyCounter, type CounterTally } from './tally.js';

/** Latency buckets for verification, in seconds: cache hits (~1 µs) to the pure-JS backend (ms). */
export const VERIFICATION_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
]);

/** Latency buckets for proxied upstream requests, in seconds. */
export const UPSTREAM_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

/**
 * Every metric family {@link registerTokenBindingMetrics} registers, with its type and labels
 * (the README's table, the dashboard and the alerting rules use these names; a test checks it).
 */
export const TOKEN_BINDING_METRICS = Object.freeze({
  verifications: { name: 'tokbind_verifications_total', type: 'counter', labels: ['outcome', 'key_parameters'] },
  rejections: { name: 'tokbind_rejections_total', type: 'counter', labels: ['code'] },
  replays: { name: 'tokbind_replays_total', type: 'counter', labels: [] },
  verificationDuration: { name: 'tokbind_verification_duration_seconds', type: 'histogram', labels: ['cached'] },
  tlsConditionsUnmet: { name: 'tokbind_tls_conditions_unmet_total', type: 'counter', labels: ['reason', 'protocol'] },
  sessions: { name: 'tokbind_session_verdicts_total', type: 'counter', labels: ['outcome', 'method', 'reason'] },
  tokens: { name: 'tokbind_token_verdicts_total', type: 'counter', labels: ['outcome', 'method', 'code'] },
  stolenCredentials: { name: 'tokbind_stolen_credentials_total', type: 'counter', labels: ['source', 'method'] },
  proxyRequests: { name: 'tokbind_proxy_requests_total', type: 'counter', labels: ['role', 'outcome', 'code', 'status_class'] },
  proxyDuration: { name: 'tokbind_proxy_upstream_duration_seconds', type: 'histogram', labels: ['role', 'outcome'] },
} as const);

/** Options for {@link registerTokenBindingMetrics}. */
export interface TokenBindingMetricsOptions {
  /** Verification latency buckets (seconds). Default {@link VERIFICATION_BUCKETS_SECONDS}. */
  readonly verificationBuckets?: readonly number[];
  /** Upstream latency buckets (seconds). Default {@link UPSTREAM_BUCKETS_SECONDS}. */
  readonly upstreamBuckets?: readonly number[];
}

/** What {@link registerTokenBindingMetrics} returns. */
export interface TokenBindingMetrics {
  readonly registry: Registry<RegistryContentType>;
  /** Unsubscribes from the channels and removes the metrics from the registry (idempotent). */
  unregister(): void;
}

function checkBuckets(buckets: readonly number[] | undefined, name: string): number[] | undefined {
  if (buckets === undefined) return undefined;
  if (!Array.isArray(buckets) || buckets.length === 0 || !buckets.every((b, i) => Number.isFinite(b) && b > 0 && (i === 0 || b > buckets[i - 1]!))) {
    throw new TypeError(`${name} must be a non-empty, increasing list of positive numbers`);
  }
  return [...buckets];
}

/**
 * Registers the Token Binding SLIs in `registry` and feeds them from the diagnostics channels
 * (`tokbind:verify`, `tokbind:tls`, `tokbind:session`, `tokbind:token`, `tokbind:proxy`):
 *
 * - `tokbind_verifications_total{outcome, key_parameters}`: `accepted`, `rejected`, `replayed`
 *   (a message that verified on another connection) and `absent` (no header, none required) —
 *   the success rate is accepted / (accepted + rejected + replayed);
 * - `tokbind_rejections_total{code}`: every refusal by its error code (replays included);
 * - `tokbind_replays_total`: captured messages replayed on another connection;
 * - `tokbind_verification_duration_seconds{cached}`: the time to decide, cache hits apart;
 * - `tokbind_tls_conditions_unmet_total{reason, protocol}`: `no-ems` (TLS 1.2 without EMS),
 *   `tls-version` (below TLS 1.2), `renegotiation` (attempted, refused), `ems-unknown`,
 *   `ekm-unavailable`;
 * - `tokbind_session_verdicts_total`, `tokbind_token_verdicts_total` and
 *   `tokbind_stolen_credentials_total{source, method}` (a bound session or token presented with
 *   another client's binding);
 * - `tokbind_proxy_requests_total{role, outcome, code, status_class}` and
 *   `tokbind_proxy_upstream_duration_seconds{role, outcome}`.
 *
 * Labels only ever hold values from closed lists (never IDs, hosts, paths or header values).
 *
 * @throws {Error} from prom-client when a metric of the same name is already in `registry`
 * @example
 * ```ts
 * import { Registry } from 'prom-client'
 * import { registerTokenBindingMetrics } from 'tokbind/metrics'
 * const registry = new Registry()
 * const metrics = registerTokenBindingMetrics(registry)
 * app.get('/metrics', async (_req, res) => res.type(registry.contentType).send(await registry.metrics()))
 * // later: metrics.unregister()
 * ```
 */
export function registerTokenBindingMetrics(registry: Registry<RegistryContentType>, options: TokenBindingMetricsOptions = {}): TokenBindingMetrics {
  if (registry === null || typeof registry !== 'object' || typeof registry.registerMetric !== 'function') {
    throw new TypeError('registry must be a prom-client Registry');
  }
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  const verificationBuckets = checkBuckets(options.verificationBuckets, 'verificationBuckets') ?? [...VERIFICATION_BUCKETS_SECONDS];
  const upstreamBuckets = checkBuckets(options.upstreamBuckets, 'upstreamBuckets') ?? [...UPSTREAM_BUCKETS_SECONDS];
  const m = TOKEN_BINDING_METRICS;
  const registered: string[] = [];
  const registers = [registry];
  const counter = <K extends string>(def: { name: string; labels: readonly K[] }, help: string): Counter<K> => {
    const metric = new Counter<K>({ name: def.name, help, labelNames: def.labels, registers });
    registered.push(def.name);
    return metric;
  };
  const tallied = <K extends string>(def: { name: string; labels: readonly K[] }, help: string): CounterTally => {
    const { tally } = tallyCounter<K>({ name: def.name, help, labelNames: def.labels, registers });
    registered.push(def.name);
    return tally;
  };
  const histogram = <K extends string>(def: { name: string; labels: readonly K[] }, help: string, buckets: number[]): Histogram<K> => {
    const metric = new Histogram<K>({ name: def.name, help, labelNames: def.labels, buckets, registers });
    registered.push(def.name);
    return metric;
  };

  // The verification series are fed on every request: tallied (./tally.ts), handed to prom-client when scraped.
  let verifications: CounterTally;
  let rejections: CounterTally;
  let replays: CounterTally;
  let duration: TallyHistogram;
  let tlsUnmet: Counter<'reason' | 'protocol'>;
  let sessions: Counter<'outcome' | 'method' | 'reason'>;
  let tokens: Counter<'outcome' | 'method' | 'code'>;
  let stolen: Counter<'source' | 'method'>;
  let proxyRequests: Counter<'role' | 'outcome' | 'code' | 'status_class'>;
  let proxyDuration: Histogram<'role' | 'outcome'>;
  try {
    verifications = tallied(m.verifications, 'Sec-Token-Binding verifications by outcome (accepted, rejected, replayed, absent) and key parameters.');
    rejections = tallied(m.rejections, 'Refused Sec-Token-Binding headers by error code (replays included).');
    replays = tallied(m.replays, 'Sec-Token-Binding messages that verified on one connection and were presented on another (captured and replayed).');
    const d = m.verificationDuration;
    duration = new TallyHistogram(d.name, 'Time to decide on a Sec-Token-Binding header, cache hits (cached="true") apart.', d.labels[0], verificationBuckets, registers);
    registered.push(d.name);
    tlsUnmet = counter(m.tlsConditionsUnmet, 'TLS connections that cannot carry Token Binding, by reason (no-ems, tls-version, renegotiation, ...).');
    sessions = counter(m.sessions, 'Bound-session checks by outcome, method and reason.');
    tokens = counter(m.tokens, 'Bound-token checks by outcome, method and error code.');
    stolen = counter(m.stolenCredentials, "Bound sessions or tokens presented with another client's binding (stolen credentials).");
    proxyRequests = counter(m.proxyRequests, 'Requests forwarded by tokbind proxy/forward, by outcome.');
    proxyDuration = histogram(m.proxyDuration, 'Upstream latency of requests forwarded by tokbind proxy/forward.', upstreamBuckets);
    // Zero from the start, so that the first theft is an increase an alert can see.
    for (const method of ['token-binding', 'dbsc']) stolen.inc({ source: 'session', method }, 0);
    for (const method of ['tbh', 'jkt', 'x5t#S256']) stolen.inc({ source: 'token', method }, 0);
  } catch (err) {
    for (const name of registered) registry.removeSingleMetric(name);
    throw err;
  }

  const sink: TokenBindingSink = {
    verification(outcome, keyParameters, code, cached, secs) {
      verifications.add(outcome, keyParameters);
      if (code !== null) rejections.add(code);
      if (outcome === 'replayed') replays.add('');
      if (secs !== null) duration.observe(cached ? 'true' : 'false', secs);
    },
    tlsConditionsUnmet(reason, protocol) {
      tlsUnmet.inc({ reason, protocol });
    },
    session(outcome, method, reason) {
      sessions.inc({ outcome, method, reason });
    },
    token(outcome, method, code) {
      tokens.inc({ outcome, method, code });
    },
    stolenCredential(source, method) {
      stolen.inc({ source, method });
    },
    proxy(role, outcome, code, statusClass, secs) {
      proxyRequests.inc({ role, outcome, code, status_class: statusClass });
      if (secs !== null) proxyDuration.observe({ role, outcome }, secs);
    },
  };
  const unsubscribe = subscribeTokenBindingChannels(sink);
  let active = true;
  return {
    registry,
    unregister() {
      if (!active) return;
      active = false;
      unsubscribe();
      for (const name of registered) registry.removeSingleMetric(name);
    },
  };
}
