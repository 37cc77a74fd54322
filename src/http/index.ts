/**
 * The HTTP layer (RFC 8473): server processing of Sec-Token-Binding, binding-aware HTTPS and
 * HTTP/2 servers, problem responses, federation helpers and metrics.
 */
export {
  verifyTokenBindingHeader,
  type TokenBindingConnection,
  type TokenBindingConnectionContext,
} from './verify.js';
export type { OtherVerifiedBinding, TokenBindingResult, VerifiedID } from './result.js';
export {
  resolveTokenBindingOptions,
  type ClientHelloInspectionOptions,
  type ResolvedTokenBindingOptions,
  type TokenBindingServerOptions,
  type TokenBindingVerifyOptions,
} from './options.js';
export { createServer, getTokenBinding, type TokenBindingHttpsServerOptions } from './server.js';
export { createSecureServer, type TokenBindingHttp2ServerOptions } from './http2.js';
export { attachTokenBinding } from './attach.js';
export { PROBLEM_CONTENT_TYPE, problemDetails, sendProblem, type TokenBindingProblem } from './problem.js';
export { INCLUDE_REFERRED_TOKEN_BINDING_ID, redirectWithReferredTokenBinding, requestReferredTokenBinding } from './federation.js';
export {
  VERIFY_CHANNEL_NAME,
  formatPrometheusMetrics,
  getMetricsSnapshot,
  resetMetrics,
  type LatencyBucket,
  type MetricsSnapshot,
  type VerifyEvent,
} from './metrics.js';
