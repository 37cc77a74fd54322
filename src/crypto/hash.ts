import { createHash } from 'node:crypto';
import { base64urlEncode } from '../codec/base64url.js';
import type { TokenBindingID } from '../codec/types.js';

/**
 * `tbh`: base64url(SHA-256(TokenBindingID)), the confirmation value that binds a token to a
 * Token Binding (draft-ietf-oauth-token-binding §3, `cnf: { tbh }`). Hashes the exact wire bytes
 * of the TokenBindingID (key_parameters || u16 length || key).
 *
 * @example
 * ```ts
 * const tbh = tokenBindingHash(message.bindings[0].id)
 * ```
 */
export function tokenBindingHash(id: TokenBindingID | Uint8Array): string {
  const raw = id instanceof Uint8Array ? id : id.raw;
  return base64urlEncode(createHash('sha256').update(raw).digest());
}
