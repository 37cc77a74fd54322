export { canVerify, type VerificationBackend } from './backend.js';
export { tokenBindingHash } from './hash.js';
export { DEFAULT_KEY_CACHE_SIZE } from './lru.js';
export { createNobleBackend, nobleBackend, type NobleBackendOptions } from './noble-backend.js';
export { createNodeBackend, nodeBackend, type NodeBackendOptions } from './node-backend.js';
export {
  createSecTokenBindingHeader,
  createTokenBindingMessage,
  generateTokenBindingKey,
  signTokenBinding,
  tokenBindingKeyFromKeyObject,
  type CreateTokenBindingMessageOptions,
  type TokenBindingKey,
} from './sign.js';
export { verifySignature, verifyTokenBinding } from './verify.js';
