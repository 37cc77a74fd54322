/**
 * The pure wire-format layer: RFC 8471 messages, RFC 8472 extension and negotiation, RFC 8473
 * header encoding. No Node APIs, no crypto.
 */
export * from './types.js';
export { base64urlDecode, base64urlEncode } from './base64url.js';
export {
  DEFAULT_MAX_HEADER_LENGTH,
  decodeSecTokenBindingHeader,
  encodeSecTokenBindingHeader,
  parseSecTokenBindingHeader,
  type SecTokenBindingHeaderOptions,
} from './header.js';
export {
  createTokenBindingID,
  encodeTokenBinding,
  encodeTokenBindingMessage,
  formatTokenBindingID,
  parseTokenBindingID,
  parseTokenBindingMessage,
} from './message.js';
export { decodeTokenBindingPublicKey, encodeEcP256PublicKey, encodeRsaPublicKey } from './keys.js';
export { keyParametersName, parseKeyParameters } from './keyparams.js';
export { TOKEN_BINDING_EKM_LENGTH, tokenBindingSignedData } from './signed-data.js';
export {
  DEFAULT_MIN_TOKEN_BINDING_VERSION,
  TOKEN_BINDING_EXTENSION_TYPE,
  TOKEN_BINDING_VERSION_1_0,
  encodeTokenBindingExtension,
  parseTokenBindingExtension,
  selectTokenBindingParameters,
  validateTokenBindingReply,
  type NegotiatedTokenBinding,
  type TokenBindingClientNegotiation,
  type TokenBindingServerNegotiation,
  type TokenBindingTlsFacts,
} from './extension.js';
