/**
 * Issuing token-bound JWTs (draft-ietf-oauth-token-binding-08 §3): the claims get
 * `cnf: { tbh }`, and jose signs them.
 */
import type { KeyObject } from 'node:crypto';
import { SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import type { TokenBindingID } from '../codec/types.js';
import type { VerifiedID } from '../http/result.js';
import { tokenBindingConfirmation, type Confirmation } from './cnf.js';

/**
 * `claims` with `cnf` set to `confirmation` (a new object; `claims` is not changed). A `cnf`
 * already in the claims is an error, not merged: a token is bound one way.
 *
 * @throws {TypeError} when `claims` is not an object or already holds a `cnf`
 * @example
 * ```ts
 * const claims = bindClaims({ sub: 'alice', scope: 'read' }, tokenBindingConfirmation(id))
 * ```
 */
export function bindClaims<T extends JWTPayload>(claims: T, confirmation: Confirmation): T & { cnf: Confirmation } {
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new TypeError('claims must be an object');
  if (claims.cnf !== undefined) throw new TypeError('claims already hold a cnf');
  return { ...claims, cnf: { ...confirmation } };
}

/** Options of {@link signTokenBoundJwt}. */
export interface SignTokenBoundJwtOptions {
  /** The Token Binding ID to bind to: the provided one, or the referred one for another server (see `selectTokenBindingID`). */
  readonly tokenBindingID: VerifiedID | TokenBindingID | Uint8Array;
  /** The issuer's private signing key (a KeyObject, a WebCrypto CryptoKey or a private JWK). */
  readonly key: KeyObject | CryptoKey | JWK;
  /** The JWS algorithm, e.g. `ES256`. */
  readonly alg: string;
  /** `kid` header, to pick the key from the issuer's JWKS. */
  readonly kid?: string | undefined;
  /** `typ` header; `at+jwt` for RFC 9068 access tokens. Default: none. */
  readonly typ?: string | undefined;
  /** `iss`, `aud`, `sub` (override the claims' own when given). */
  readonly issuer?: string | undefined;
  readonly audience?: string | string[] | undefined;
  readonly subject?: string | undefined;
  /** `exp`: seconds from now, or a jose time span (`'5m'`). Default 300 s. */
  readonly expiresIn?: number | string | undefined;
}

/**
 * Signs `claims` as a JWT bound to a Token Binding ID: `cnf.tbh` is base64url(SHA-256(ID))
 * (draft-ietf-oauth-token-binding-08 §3); `iat` is now and `exp` defaults to five minutes.
 *
 * @throws {TypeError} for claims that already hold a `cnf`, a missing `alg` or key
 * @example
 * ```ts
 * const token = await signTokenBoundJwt({ scope: 'read' }, {
 *   tokenBindingID: selectTokenBindingID(req.tokenBinding, 'referred'),
 *   key: privateKey, alg: 'ES256', kid: 'k1',
 *   issuer: 'https://as.example', audience: 'https://api.example', subject: 'alice',
 * })
 * ```
 */
export async function signTokenBoundJwt(claims: JWTPayload, options: SignTokenBoundJwtOptions): Promise<string> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { tokenBindingID, key, alg, kid, typ, issuer, audience, subject, expiresIn = 300 } = options;
  if (typeof alg !== 'string' || alg === '' || alg === 'none') throw new TypeError('alg must name a JWS algorithm');
  if (key === undefined || key === null) throw new TypeError('key is required');
  const bound = bindClaims(claims, tokenBindingConfirmation(tokenBindingID));
  const jwt = new SignJWT(bound).setProtectedHeader({ alg, ...(kid === undefined ? {} : { kid }), ...(typ === undefined ? {} : { typ }) }).setIssuedAt();
  if (issuer !== undefined) jwt.setIssuer(issuer);
  if (audience !== undefined) jwt.setAudience(audience);
  if (subject !== undefined) jwt.setSubject(subject);
  jwt.setExpirationTime(typeof expiresIn === 'number' ? Math.floor(Date.now() / 1000) + expiresIn : expiresIn);
  return jwt.sign(key as KeyObject);
}
