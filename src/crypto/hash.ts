import { hash } from 'node:crypto';
import type { TokenBindingID } from '../codec/types.js';

/**
 * `tbh`: base64url(SHA-256(TokenBindingID)), the confirmation value that binds a token to a
 * Token Binding (draft-ietf-oauth-token-binding §3, `cnf: { tbh }`). Hashes the exact wire bytes
 * of the TokenBindingID (key_parameters || u16 length || key).
 *
 * One-shot `crypto.hash` (Node ≥ 20.12): no Hash object, and the base64url string comes out flat
 * (it is kept for the life of the connection in every verified ID).
 *
 * @example
 * ```ts
 * const tbh = tokenBindingHash(message.bindings[0].id)
 * ```
 */
export function tokenBindingHash(id: TokenBindingID | Uint8Array): string {
  const raw = id instanceof Uint8Array ? id : id.raw;
  return hash('sha256', raw, 'base64url');
}
