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
  TLS_CHANNEL_NAME,
  formatPrometheusMetrics,
  getMetricsSnapshot,
  resetMetrics,
  type LatencyBucket,
  type MetricsSnapshot,
  type TlsConditionsEvent,
  type TlsConditionsReason,
  type VerifyEvent,
} from './metrics.js';
export {
  FORWARDED_HEADER_NAMES,
  SEC_OTHER_TOKEN_BINDING_ID,
  SEC_PROVIDED_TOKEN_BINDING_ID,
  SEC_REFERRED_TOKEN_BINDING_ID,
  SEC_TOKEN_BINDING_ASSERTION,
  TTRP_HEADER_NAMES,
  formatForwardedTokenBindingHeaders,
  formatOtherTokenBindingIDs,
  parseForwardedTokenBindingHeaders,
  parseOtherTokenBindingIDs,
  type ForwardedHeaderValues,
  type ForwardedTokenBindingHeaders,
} from './forwarded.js';
export {
  FORWARDING_ASSERTION_TYPE,
  createForwardingSigner,
  createForwardingVerifier,
  type ForwardingAssertionClaims,
  type ForwardingKeyInput,
  type ForwardingSigner,
  type ForwardingVerifier,
  type ForwardingVerifierOptions,
} from './assertion.js';
export {
  resolveTrustProxy,
  verifyForwardedRequest,
  type ForwardedRequestOptions,
  type ResolvedTrustProxy,
  type TrustProxyOptions,
} from './trust-proxy.js';
export {
  CLIENT_CERT_CHAIN_HEADER,
  CLIENT_CERT_HEADER,
  MAX_CLIENT_CERT_BYTES,
  clientCertificateFromTrustedProxy,
  formatClientCertHeader,
  parseClientCertHeader,
} from './client-cert.js';
