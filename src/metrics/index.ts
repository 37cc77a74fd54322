/**
 * `tokbind/metrics`: the Token Binding SLIs for the people who run it — in the application's
 * prom-client registry ({@link registerTokenBindingMetrics}), aggregated across node:cluster
 * workers ({@link createClusterMetrics}) and through OpenTelemetry
 * ({@link registerTokenBindingTelemetry}). All three are fed by tokbind's diagnostics channels,
 * the zero-dependency source (`tokbind:verify`, `tokbind:tls`, `tokbind:session`,
 * `tokbind:token`, `tokbind:proxy`).
 *
 * @packageDocumentation
 */
export {
  registerTokenBindingMetrics,
  TOKEN_BINDING_METRICS,
  UPSTREAM_BUCKETS_SECONDS,
  VERIFICATION_BUCKETS_SECONDS,
  type TokenBindingMetrics,
  type TokenBindingMetricsOptions,
} from './prometheus.js';
export { createClusterMetrics, createServerMetrics, type ClusterMetrics, type ClusterMetricsOptions } from './cluster.js';
export {
  INSTRUMENTATION_NAME,
  registerTokenBindingTelemetry,
  type TokenBindingTelemetry,
  type TokenBindingTelemetryOptions,
} from './otel.js';
export {
  PROXY_CHANNEL_NAME,
  SESSION_CHANNEL_NAME,
  TOKEN_CHANNEL_NAME,
  type ProxyEvent,
  type SessionEvent,
  type TokenEvent,
} from './channels.js';
export { TLS_CHANNEL_NAME, VERIFY_CHANNEL_NAME, type TlsConditionsEvent, type TlsConditionsReason, type VerifyEvent } from '../http/metrics.js';
