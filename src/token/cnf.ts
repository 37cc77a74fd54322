/**
 * Confirmation (`cnf`, RFC 7800) values and checks for the three ways tokbind binds a token:
 * `tbh` (draft-ietf-oauth-token-binding-08 §3), `x5t#S256` (RFC 8705 §3.1) and `jkt`
 * (RFC 9449 §6.1). Small pure functions: the issuer side and the resource server side (and the
 * federation helpers) share them.
 */
import { hash } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { TokenBindingID } from '../codec/types.js';
import { tokenBindingHash } from '../crypto/hash.js';
import { TokenBindingError } from '../errors.js';
import type { TokenBindingResult, VerifiedID } from '../http/result.js';

/** The confirmation methods tokbind checks, by their `cnf` member names. */
export const ConfirmationMethods = ['tbh', 'jkt', 'x5t#S256'] as const;

/** `tbh` (Token Binding), `jkt` (DPoP key thumbprint) or `x5t#S256` (client certificate thumbprint). */
export type ConfirmationMethod = (typeof ConfirmationMethods)[number];

/** A `cnf` claim with one of tokbind's confirmation methods. */
export type Confirmation = { readonly tbh: string } | { readonly jkt: string } | { readonly 'x5t#S256': string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * `cnf: { tbh }` for a Token Binding ID: base64url(SHA-256(TokenBindingID)) of its exact wire
 * bytes (draft-ietf-oauth-token-binding-08 §3). Pass the *provided* ID for a token used at the
 * server that issues it, the *referred* ID for a token meant for another server (see
 * {@link selectTokenBindingID}).
 *
 * @example
 * ```ts
 * const cnf = tokenBindingConfirmation(req.tokenBinding.provided) // { tbh: 'lRnJ…' }
 * ```
 */
export function tokenBindingConfirmation(id: VerifiedID | TokenBindingID | Uint8Array): { tbh: string } {
  if (id instanceof Uint8Array) return { tbh: tokenBindingHash(id) };
  if (isRecord(id) && typeof (id as { hash?: unknown }).hash === 'string') return { tbh: (id as VerifiedID).hash };
  if (isRecord(id) && (id as { raw?: unknown }).raw instanceof Uint8Array) return { tbh: tokenBindingHash((id as TokenBindingID).raw) };
  throw new TypeError('id must be a VerifiedID, a TokenBindingID or its wire bytes');
}

/**
 * `cnf: { "x5t#S256" }` for a client certificate: base64url(SHA-256(DER)) (RFC 8705 §3.1). The
 * binding is to the certificate itself, not its chain: a self-signed certificate works.
 *
 * @example
 * ```ts
 * const cnf = certificateConfirmation(socket.getPeerCertificate().raw)
 * ```
 */
export function certificateConfirmation(der: Uint8Array): { 'x5t#S256': string } {
  if (!(der instanceof Uint8Array) || der.length === 0) throw new TypeError('der must be a non-empty Uint8Array');
  return { 'x5t#S256': certificateThumbprint(der) };
}

/** base64url(SHA-256(DER)) of a certificate. */
export function certificateThumbprint(der: Uint8Array): string {
  return hash('sha256', der, 'base64url');
}

/**
 * `cnf: { jkt }` for a DPoP public key: its RFC 7638 SHA-256 thumbprint (RFC 9449 §6.1).
 *
 * @example
 * ```ts
 * const cnf = await dpopConfirmation(proofHeader.jwk)
 * ```
 */
export async function dpopConfirmation(jwk: JWK): Promise<{ jkt: string }> {
  if (!isRecord(jwk) || typeof jwk.kty !== 'string') throw new TypeError('jwk must be a JWK');
  if ('d' in jwk || jwk.kty === 'oct') throw new TypeError('jwk must be a public key');
  return { jkt: await calculateJwkThumbprint(jwk, 'sha256') };
}

/**
 * The Token Binding ID a token issued on this request must be bound to
 * (draft-ietf-oauth-token-binding-08 §2, RFC 8473 §5): `provided` for a token the client will
 * present back to this server; `referred` for a token meant for the server that redirected the
 * client here (an access token for a resource server, an ID token for a relying party).
 *
 * @throws {TokenBindingError} `ERR_TB_BINDING_UNAVAILABLE` when the request carries no such ID (no
 *   Token Binding, or no referred binding — including a referred binding whose key parameters
 *   this server cannot evaluate: such a token must not be issued bound, RFC 8473 §5.3)
 * @example
 * ```ts
 * const id = selectTokenBindingID(req.tokenBinding, 'referred')
 * ```
 */
export function selectTokenBindingID(result: TokenBindingResult | null | undefined, which: 'provided' | 'referred'): VerifiedID {
  if (which !== 'provided' && which !== 'referred') throw new TypeError("which must be 'provided' or 'referred'");
  const id = result === null || result === undefined ? null : which === 'provided' ? result.provided : result.referred;
  if (id === null || id === undefined) {
    throw new TokenBindingError('ERR_TB_BINDING_UNAVAILABLE', undefined, { field: which === 'provided' ? 'tokenBinding.provided' : 'tokenBinding.referred' });
  }
  return id;
}

/**
 * Which confirmation method a token's `cnf` claim uses: `null` for an unbound token (no `cnf`).
 * Fails closed: a `cnf` that is not an object, that names a method outside `supported` (say
 * `jwk` or `kid`), or more than one method, is refused; so is a method value that is not a
 * non-empty string.
 *
 * @throws {TokenBindingError} `ERR_TB_CNF_UNSUPPORTED`, or `ERR_TB_TOKEN_INVALID` for a malformed `cnf`
 * @example
 * ```ts
 * confirmationMethod({ cnf: { jkt: '0ZcO…' } }) // 'jkt'
 * ```
 */
export function confirmationMethod(
  claims: { readonly [claim: string]: unknown },
  supported: readonly ConfirmationMethod[] = ConfirmationMethods,
): ConfirmationMethod | null {
  const cnf = claims.cnf;
  if (cnf === undefined) return null;
  if (!isRecord(cnf)) throw new TokenBindingError('ERR_TB_TOKEN_INVALID', 'cnf is not an object', { field: 'cnf' });
  const members = Object.keys(cnf);
  if (members.length !== 1) {
    throw new TokenBindingError('ERR_TB_CNF_UNSUPPORTED', `cnf must name exactly one confirmation method, found ${members.length}`, {
      field: 'cnf',
      actual: members.length,
    });
  }
  const member = members[0]!;
  if (!(supported as readonly string[]).includes(member)) {
    // The member name is a claim name from the token, not key material: safe to report.
    throw new TokenBindingError('ERR_TB_CNF_UNSUPPORTED', undefined, { field: 'cnf', expected: [...supported], actual: member.slice(0, 32) });
  }
  const value = cnf[member];
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) {
    throw new TokenBindingError('ERR_TB_TOKEN_INVALID', `cnf.${member} is not a non-empty string`, { field: `cnf.${member}` });
  }
  return member as ConfirmationMethod;
}

/**
 * Checks a token's `cnf` value against what the request presents: the hash of the provided
 * Token Binding ID (`tbh`), the certificate thumbprint (`x5t#S256`) or the DPoP key
 * thumbprint (`jkt`). Present-but-wrong is always a rejection (`stolen: true` in the event);
 * nothing presented is `ERR_TB_CNF_MISSING`.
 *
 * @throws {TokenBindingError} `ERR_TB_CNF_MISSING` when `presented` is null, `ERR_TB_CNF_MISMATCH` when it differs
 * @example
 * ```ts
 * checkConfirmation('tbh', payload.cnf.tbh, req.tokenBinding?.provided.hash ?? null)
 * ```
 */
export function checkConfirmation(method: ConfirmationMethod, expected: string, presented: string | null): void {
  if (presented === null) throw new TokenBindingError('ERR_TB_CNF_MISSING', undefined, { field: `cnf.${method}` });
  if (presented !== expected) throw new TokenBindingError('ERR_TB_CNF_MISMATCH', undefined, { field: `cnf.${method}` });
}

/**
 * Checks that `claims` (an access token's or an ID token's, already verified) are bound to the
 * provided Token Binding ID of this request: `cnf.tbh` = its hash
 * (draft-ietf-oauth-token-binding-08 §3; OpenID Connect Token Bound Authentication 1.0 §3).
 * Fails closed on every path: no `cnf`, another method, no binding on the request, another ID.
 *
 * @throws {TokenBindingError} `ERR_TB_TOKEN_UNBOUND`, `ERR_TB_CNF_UNSUPPORTED`, `ERR_TB_TOKEN_INVALID`,
 *   `ERR_TB_CNF_MISSING` or `ERR_TB_CNF_MISMATCH`
 * @example
 * ```ts
 * const { payload } = await jwtVerify(idToken, jwks, { issuer, audience })
 * checkTokenBindingConfirmation(payload, req.tokenBinding)
 * ```
 */
export function checkTokenBindingConfirmation(claims: { readonly [claim: string]: unknown }, tokenBinding: TokenBindingResult | null | undefined): void {
  const method = confirmationMethod(claims, ['tbh']);
  if (method === null) throw new TokenBindingError('ERR_TB_TOKEN_UNBOUND', undefined, { field: 'cnf' });
  checkConfirmation('tbh', (claims.cnf as { tbh: string }).tbh, tokenBinding?.provided.hash ?? null);
}
