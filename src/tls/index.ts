/**
 * The TLS layer: per-connection Token Binding facts (EKM, protocol, EMS, ClientHello offer) and
 * the per-connection verification cache.
 */
export { createSelfSignedCertificate, type SelfSignedCertificate, type SelfSignedCertificateOptions } from './certificate.js';
export { TOKEN_BINDING_EXPORTER_LABEL, exportTokenBindingKeyingMaterial } from './ekm.js';
export { hasExtendedMasterSecret } from './session.js';
export {
  TOKBIND_SECURE_OPTIONS,
  checkTokenBindingConditions,
  keepRenegotiationRefused,
  tokenBindingConditions,
  withRenegotiationRefused,
  type TlsConditionsDetail,
  type TokenBindingConditions,
} from './conditions.js';
export { MAX_CLIENT_HELLO_RECORDS, parseClientHello, type ClientHelloInfo } from './client-hello.js';
export { CLIENT_HELLO_ERROR_EVENT, getClientHelloInfo, inspectClientHellos, type InspectClientHellosOptions } from './inspect.js';
export {
  DEFAULT_MAX_DISTINCT_MESSAGES,
  captureConnectionFacts,
  getConnectionContext,
  getConnectionFacts,
  getConnectionState,
  lookupVerification,
  rememberVerification,
  type ConnectionFacts,
  type ConnectionFactsOptions,
  type ConnectionState,
  type IneligibleReason,
} from './connection.js';
export {
  PROXY_PROTOCOL_DEFAULT_TIMEOUT_MS,
  PROXY_PROTOCOL_V1_MAX_BYTES,
  PROXY_PROTOCOL_V2_MAX_BYTES,
  acceptProxyProtocol,
  frameProxyProtocolHeader,
  getProxiedPeer,
  parseProxyProtocolHeader,
  type ProxiedPeer,
  type ProxyProtocolOptions,
} from './proxy-protocol.js';
