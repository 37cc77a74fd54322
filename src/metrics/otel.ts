/**
 * The Token Binding SLIs through OpenTelemetry: a span per verification and the same metrics as
 * the prom-client registration, through a meter. `@opentelemetry/api` is an optional peer: it is
 * loaded only when {@link registerTokenBindingTelemetry} is called.
 */
import type { Attributes, MeterProvider, TracerProvider } from '@opentelemetry/api';
import { subscribeTokenBindingChannels, type TokenBindingSink } from './channels.js';
import { UPSTREAM_BUCKETS_SECONDS, VERIFICATION_BUCKETS_SECONDS } from './prometheus.js';

/** The instrumentation scope name of tokbind's tracer and meter. */
export const INSTRUMENTATION_NAME = 'tokbind';

/** Options for {@link registerTokenBindingTelemetry}. */
export interface TokenBindingTelemetryOptions {
  /** Default: the global tracer provider (`trace.getTracerProvider()`). */
  readonly tracerProvider?: TracerProvider;
  /** Default: the global meter provider (`metrics.getMeterProvider()`). */
  readonly meterProvider?: MeterProvider;
  /** A span per verification (`tokbind.verify`). Default true. */
  readonly spans?: boolean;
}

/** What {@link registerTokenBindingTelemetry} returns. */
export interface TokenBindingTelemetry {
  /** Unsubscribes from the channels (idempotent); instruments stay with their meter. */
  unregister(): void;
}

type OtelApi = typeof import('@opentelemetry/api');

async function loadApi(): Promise<OtelApi> {
  try {
    return await import('@opentelemetry/api');
  } catch (err) {
    throw new Error('tokbind/metrics: registerTokenBindingTelemetry needs @opentelemetry/api (npm install @opentelemetry/api)', { cause: err });
  }
}

/** Milliseconds since the epoch, sub-millisecond precise (what OTel's TimeInput takes as a number). */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Feeds OpenTelemetry from tokbind's diagnostics channels:
 *
 * - a span `tokbind.verify` per verification (none for a request without the header), child of
 *   the active context (the request span of an instrumented server), with the attributes
 *   `tokbind.outcome` (`accepted`, `rejected`, `replayed`), `tokbind.code`,
 *   `tokbind.key_parameters` and `tokbind.cached`; status ERROR on a refusal;
 * - the instruments `tokbind.verifications`, `tokbind.rejections`, `tokbind.replays`,
 *   `tokbind.verification.duration` (s), `tokbind.tls_conditions_unmet`,
 *   `tokbind.session.verdicts`, `tokbind.token.verdicts`, `tokbind.stolen_credentials`,
 *   `tokbind.proxy.requests` and `tokbind.proxy.upstream.duration` (s), with the attributes of
 *   the Prometheus labels (a Prometheus exporter turns them into the same names).
 *
 * Attributes only ever hold values from closed lists: never IDs, EKMs, headers or keys.
 *
 * @throws {Error} when `@opentelemetry/api` is not installed
 * @example
 * ```ts
 * import { registerTokenBindingTelemetry } from 'tokbind/metrics'
 * const telemetry = await registerTokenBindingTelemetry() // global providers, set up by the OTel SDK
 * ```
 */
export async function registerTokenBindingTelemetry(options: TokenBindingTelemetryOptions = {}): Promise<TokenBindingTelemetry> {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  const api = await loadApi();
  const tracer = (options.tracerProvider ?? api.trace.getTracerProvider()).getTracer(INSTRUMENTATION_NAME);
  const meter = (options.meterProvider ?? api.metrics.getMeterProvider()).getMeter(INSTRUMENTATION_NAME);
  const spans = options.spans ?? true;

  const verifications = meter.createCounter('tokbind.verifications', { description: 'Sec-Token-Binding verifications by outcome and key parameters.' });
  const rejections = meter.createCounter('tokbind.rejections', { description: 'Refused Sec-Token-Binding headers by error code (replays included).' });
  const replays = meter.createCounter('tokbind.replays', { description: 'Sec-Token-Binding messages replayed on another connection.' });
  const duration = meter.createHistogram('tokbind.verification.duration', {
    description: 'Time to decide on a Sec-Token-Binding header.',
    unit: 's',
    advice: { explicitBucketBoundaries: [...VERIFICATION_BUCKETS_SECONDS] },
  });
  const tlsUnmet = meter.createCounter('tokbind.tls_conditions_unmet', { description: 'TLS connections that cannot carry Token Binding, by reason.' });
  const sessions = meter.createCounter('tokbind.session.verdicts', { description: 'Bound-session checks by outcome, method and reason.' });
  const tokens = meter.createCounter('tokbind.token.verdicts', { description: 'Bound-token checks by outcome, method and error code.' });
  const stolen = meter.createCounter('tokbind.stolen_credentials', { description: "Bound sessions or tokens presented with another client's binding." });
  const proxyRequests = meter.createCounter('tokbind.proxy.requests', { description: 'Requests forwarded by tokbind proxy/forward, by outcome.' });
  const proxyDuration = meter.createHistogram('tokbind.proxy.upstream.duration', {
    description: 'Upstream latency of requests forwarded by tokbind proxy/forward.',
    unit: 's',
    advice: { explicitBucketBoundaries: [...UPSTREAM_BUCKETS_SECONDS] },
  });

  const sink: TokenBindingSink = {
    verification(outcome, keyParameters, code, cached, secs) {
      verifications.add(1, { outcome, key_parameters: keyParameters });
      if (code !== null) rejections.add(1, { code });
      if (outcome === 'replayed') replays.add(1);
      if (secs !== null) duration.record(secs, { cached: cached ? 'true' : 'false' });
      if (!spans || outcome === 'absent') return;
      const end = nowMs();
      const attributes: Attributes = { 'tokbind.outcome': outcome, 'tokbind.key_parameters': keyParameters, 'tokbind.cached': cached };
      if (code !== null) attributes['tokbind.code'] = code;
      const span = tracer.startSpan(
        'tokbind.verify',
        { kind: api.SpanKind.INTERNAL, startTime: end - (secs ?? 0) * 1000, attributes },
        api.context.active(),
      );
      if (code !== null) span.setStatus({ code: api.SpanStatusCode.ERROR, message: code });
      span.end(end);
    },
    tlsConditionsUnmet(reason, protocol) {
      tlsUnmet.add(1, { reason, protocol });
    },
    session(outcome, method, reason) {
      sessions.add(1, { outcome, method, reason });
    },
    token(outcome, method, code) {
      tokens.add(1, { outcome, method, code });
    },
    stolenCredential(source, method) {
      stolen.add(1, { source, method });
    },
    proxy(role, outcome, code, statusClass, secs) {
      proxyRequests.add(1, { role, outcome, code, status_class: statusClass });
      if (secs !== null) proxyDuration.record(secs, { role, outcome });
    },
  };
  return { unregister: subscribeTokenBindingChannels(sink) };
}
