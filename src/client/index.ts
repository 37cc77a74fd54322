/**
 * The client side of RFC 8473: agents that bind every request, key stores, key scopes and
 * referred bindings for federation.
 */
export { TokenBindingAgent, type TokenBindingAgentOptions, type TokenBindingRequestOptions } from './agent.js';
export { TokenBindingDispatcher, tokbindFetch, type TokbindFetchInit, type TokenBindingDispatcherOptions } from './dispatcher.js';
export { DPOP_KEY_SCOPE_PREFIX, DpopSigner, accessTokenHeaders, type DpopProofRequest } from './dpop.js';
export { FileKeyStore, MemoryKeyStore, type TokenBindingKeyStore } from './keystore.js';
export {
  INCLUDE_REFERRED_TOKEN_BINDING_ID_HEADER,
  SEC_TOKEN_BINDING_HEADER,
  TokenBinder,
  isReferredTokenBindingRequested,
  type ClientConnectionBinding,
  type ResponseHeadersLike,
  type TokenBindingClientOptions,
} from './referred.js';
export { tokenBindingScope } from './scope.js';
