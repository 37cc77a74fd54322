/**
 * `tokbind/proxy`: deploy Token Binding in front of any backend and behind any client.
 *
 * - {@link createProxy} / {@link startProxy}: a TLS-terminating reverse proxy
 *   (draft-ietf-tokbind-ttrp-09) that verifies every request as tokbind's server does and
 *   forwards the verified IDs (and, with a forward key, a signed assertion over them).
 * - {@link createForwarder} / {@link startForwarder}: the client sidecar, plain HTTP on loopback
 *   in, Token-Bound TLS out.
 *
 * Both publish `tokbind:proxy` diagnostics events. Backends read the forwarded IDs with
 * `trustProxy` (`tokbind/express`, `tokbind/fastify`) or `verifyForwardedRequest` (`tokbind`).
 */
export { PROXY_CHANNEL_NAME, type ProxyEvent } from './events.js';
export { HOP_BY_HOP_HEADERS } from './headers.js';
export {
  createProxy,
  startProxy,
  type ListeningProxy,
  type ProxyOptions,
  type StartProxyOptions,
  type TokenBindingProxy,
} from './server.js';
export {
  createForwarder,
  isLoopbackHost,
  startForwarder,
  type ForwarderOptions,
  type ListeningForwarder,
  type StartForwarderOptions,
  type TokenBindingForwarder,
} from './forward.js';
