/**
 * The identity provider / authorization server side (draft-ietf-oauth-token-binding-08,
 * OpenID Connect Token Bound Authentication 1.0 draft 04): ID tokens and access tokens bound to
 * the *referred* Token Binding ID of the request the relying party redirected here, and refresh
 * tokens bound to the *provided* ID of the client that redeems them. Issuing is tokbind/token's
 * (`signTokenBoundJwt`, `tokenBindingConfirmation`, `selectTokenBindingID`); this adds the
 * federation rules.
 */
import type { JWTPayload } from 'jose';
import { TokenBindingError } from '../errors.js';
import type { TokenBindingResult } from '../http/result.js';
import { rawRequest, type SessionRequest } from '../session/bind.js';
import { checkConfirmation, selectTokenBindingID, tokenBindingConfirmation } from '../token/cnf.js';
import { signTokenBoundJwt, type SignTokenBoundJwtOptions } from '../token/issue.js';

/** A Node, Express or Fastify request that went through tokbind's verification. */
export type FederationRequest = SessionRequest;

/**
 * The verified Token Binding of a Node/Express request or a Fastify request (`request.raw`).
 *
 * @throws {TypeError} when no tokbind verification ran on it (`req.tokenBinding` unset): a
 *   misconfiguration, never treated as "no binding"
 */
export function federationTokenBinding(req: FederationRequest): TokenBindingResult | null {
  const verdict = (rawRequest(req) as { tokenBinding?: TokenBindingResult | null }).tokenBinding;
  if (verdict === undefined) {
    throw new TypeError("tokbind/federation: req.tokenBinding is not set: serve with tokbind's createServer, or mount tokbind/express tokenBinding() / register tokbind/fastify first");
  }
  return verdict;
}

/** Options of {@link signIdToken}: tokbind/token's, with the `nonce` of the authentication request. */
export interface SignIdTokenOptions extends SignTokenBoundJwtOptions {
  /** The authentication request's `nonce` (OpenID Connect Core §3.1.2.1), echoed in the token. */
  readonly nonce?: string | undefined;
}

/**
 * Signs an OpenID Connect ID token bound to a Token Binding ID: `cnf.tbh`
 * (OpenID Connect Token Bound Authentication 1.0 §2). `audience` is the relying party's
 * `client_id`; `tokenBindingID` is the referred ID of the authorization request (see
 * {@link issueReferredIdToken}) or what {@link checkAuthorizationCodeBinding} returned.
 *
 * @throws {TypeError} for a missing issuer, audience or subject, or claims that already hold a `cnf`
 * @example
 * ```ts
 * const idToken = await signIdToken({ auth_time }, { tokenBindingID, key, alg: 'ES256', kid: 'k1', issuer, audience: clientId, subject: 'alice', nonce })
 * ```
 */
export function signIdToken(claims: JWTPayload, options: SignIdTokenOptions): Promise<string> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { nonce, ...rest } = options;
  for (const name of ['issuer', 'subject'] as const) {
    if (typeof rest[name] !== 'string' || rest[name] === '') throw new TypeError(`an ID token needs ${name}`);
  }
  if (rest.audience === undefined || (Array.isArray(rest.audience) && rest.audience.length === 0)) throw new TypeError('an ID token needs audience (the client_id)');
  if (nonce !== undefined && (typeof nonce !== 'string' || nonce === '')) throw new TypeError('nonce must be a non-empty string');
  return signTokenBoundJwt(nonce === undefined ? claims : { ...claims, nonce }, rest);
}

/**
 * Issues, from the request that carries the referred binding (the authorization request the
 * relying party redirected with `Include-Referred-Token-Binding-ID: true`, RFC 8473 §5), an ID
 * token bound to that referred ID: the relying party then finds `cnf.tbh` equal to the hash of
 * the provided ID on its own connection. A request without a referred binding — or with one
 * whose key parameters this server cannot evaluate — gets no bound token (RFC 8473 §5.3).
 *
 * @throws {TokenBindingError} `ERR_TB_BINDING_UNAVAILABLE` when the request carries no referred ID
 * @example
 * ```ts
 * const idToken = await issueReferredIdToken(req, {}, { key, alg: 'ES256', issuer, audience: clientId, subject: user, nonce })
 * ```
 */
export function issueReferredIdToken(req: FederationRequest, claims: JWTPayload, options: Omit<SignIdTokenOptions, 'tokenBindingID'>): Promise<string> {
  try {
    const tokenBindingID = selectTokenBindingID(federationTokenBinding(req), 'referred');
    return signIdToken(claims, { ...options, tokenBindingID });
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Issues an access token for another server (a resource server the client was redirected from)
 * bound to the request's referred ID (draft-ietf-oauth-token-binding-08 §3.1): `cnf.tbh` of the
 * referred ID, checked by tokbind/token's verifier at that server against its provided ID.
 *
 * @throws {TokenBindingError} `ERR_TB_BINDING_UNAVAILABLE` when the request carries no referred ID
 * @example
 * ```ts
 * const accessToken = await issueReferredAccessToken(req, { scope: 'read' }, { key, alg: 'ES256', typ: 'at+jwt', issuer, audience: 'https://api.example', subject: user })
 * ```
 */
export function issueReferredAccessToken(req: FederationRequest, claims: JWTPayload, options: Omit<SignTokenBoundJwtOptions, 'tokenBindingID'>): Promise<string> {
  try {
    return signTokenBoundJwt(claims, { ...options, tokenBindingID: selectTokenBindingID(federationTokenBinding(req), 'referred') });
  } catch (err) {
    return Promise.reject(err);
  }
}

/** What the application stores with a refresh token: the `tbh` of the client's provided ID. */
export interface RefreshTokenBinding {
  readonly tbh: string;
}

/**
 * The binding of a refresh token about to be issued: the hash of the provided Token Binding ID
 * of the token request (draft-ietf-oauth-token-binding-08 §2: the client uses a refresh token
 * with the server that issued it). Store it with the refresh token.
 *
 * @throws {TokenBindingError} `ERR_TB_BINDING_UNAVAILABLE` when the request carries no Token Binding
 * @example
 * ```ts
 * await refreshTokens.set(refreshToken, { user, clientId, binding: bindRefreshToken(req.tokenBinding) })
 * ```
 */
export function bindRefreshToken(tokenBinding: TokenBindingResult | null | undefined): RefreshTokenBinding {
  return tokenBindingConfirmation(selectTokenBindingID(tokenBinding, 'provided'));
}

/**
 * Checks a refresh request against the stored binding: the provided ID of this request must be
 * the one the refresh token was issued to (draft-ietf-oauth-token-binding-08 §2). Fails closed:
 * a malformed record, no binding on the request, or another ID; answer `invalid_grant`.
 *
 * @throws {TokenBindingError} `ERR_TB_CNF_MISSING` or `ERR_TB_CNF_MISMATCH`
 * @example
 * ```ts
 * checkRefreshTokenBinding(stored.binding, req.tokenBinding)
 * ```
 */
export function checkRefreshTokenBinding(binding: RefreshTokenBinding, tokenBinding: TokenBindingResult | null | undefined): void {
  if (typeof binding !== 'object' || binding === null || typeof binding.tbh !== 'string' || binding.tbh === '') {
    throw new TokenBindingError('ERR_TB_CNF_MISMATCH', 'the stored refresh token binding is not one tokbind made', { field: 'binding' });
  }
  checkConfirmation('tbh', binding.tbh, tokenBinding?.provided.hash ?? null);
}
