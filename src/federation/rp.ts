/**
 * The relying party / client side (OpenID Connect Token Bound Authentication 1.0 draft 04, RFC
 * 8473 §5): start a sign-in with a redirect that asks for a referred Token Binding, verify the
 * ID token that comes back (jose) and its `cnf.tbh` against the provided ID of *this*
 * connection, and bind the session (tokbind/session).
 */
import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  type RemoteJWKSetOptions,
} from 'jose';
import { TokenBindingError } from '../errors.js';
import { redirectWithReferredTokenBinding } from '../http/federation.js';
import type { TokenBindingResult } from '../http/result.js';
import { bindSession } from '../session/bind.js';
import type { SessionBindingRecord } from '../session/binding.js';
import { checkConfirmation, confirmationMethod } from '../token/cnf.js';
import { ACCESS_TOKEN_ALGORITHMS } from '../token/verify.js';
import { TokenBindingPkceMethods } from './codes.js';
import { federationTokenBinding, type FederationRequest } from './provider.js';

/** Options of {@link authorizationRequestUrl}. */
export interface AuthorizationRequestOptions {
  /** The provider's authorization endpoint. */
  readonly authorizationEndpoint: string | URL;
  readonly clientId: string;
  readonly redirectUri: string;
  /** CSRF protection (RFC 6749 §10.12): the application keeps it and compares it on return. */
  readonly state: string;
  /** Binds the ID token to this sign-in (OpenID Connect Core §3.1.2.1); the application keeps it. */
  readonly nonce?: string | undefined;
  /** Default `openid`. */
  readonly scope?: string | undefined;
  /** Default `code`. */
  readonly responseType?: string | undefined;
  /** Default `true`: `code_challenge=referred_tb&code_challenge_method=referred_tb` (draft-ietf-oauth-token-binding-08 §5.2). */
  readonly referredTokenBindingPkce?: boolean | undefined;
  /** More parameters (`login_hint`, `prompt`, …). */
  readonly extra?: Readonly<Record<string, string>> | undefined;
}

function nonEmpty(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw new TypeError(`${name} must be a non-empty string`);
  return value;
}

/**
 * The authorization request URL of a token-bound sign-in: `response_type=code`, `scope=openid`,
 * `client_id`, `redirect_uri`, `state`, `nonce` and the `referred_tb` PKCE pair
 * (draft-ietf-oauth-token-binding-08 §5.2). Send the browser there with
 * {@link redirectToSignIn} so it also carries the referred binding.
 *
 * @example
 * ```ts
 * const url = authorizationRequestUrl({ authorizationEndpoint: 'https://idp.example/authorize', clientId: 'app', redirectUri, state, nonce })
 * ```
 */
export function authorizationRequestUrl(options: AuthorizationRequestOptions): URL {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const url = new URL(options.authorizationEndpoint);
  if (url.protocol !== 'https:') throw new TypeError('authorizationEndpoint must be https: (Token Binding needs TLS)');
  const params: Record<string, string> = {
    response_type: options.responseType ?? 'code',
    scope: options.scope ?? 'openid',
    client_id: nonEmpty(options.clientId, 'clientId'),
    redirect_uri: nonEmpty(options.redirectUri, 'redirectUri'),
    state: nonEmpty(options.state, 'state'),
  };
  if (options.nonce !== undefined) params['nonce'] = nonEmpty(options.nonce, 'nonce');
  if (options.referredTokenBindingPkce ?? true) {
    params['code_challenge'] = TokenBindingPkceMethods.referred;
    params['code_challenge_method'] = TokenBindingPkceMethods.referred;
  }
  for (const [name, value] of Object.entries({ ...options.extra, ...params })) url.searchParams.set(name, nonEmpty(value, name));
  return url;
}

/**
 * Starts a token-bound sign-in: a 302 to the authorization request with
 * `Include-Referred-Token-Binding-ID: true` (RFC 8473 §5.1, through `redirectWithReferredTokenBinding`),
 * so that the browser proves to the provider the Token Binding ID it uses here. Returns the URL.
 *
 * @throws {TypeError} for bad options or a response already sent
 * @example
 * ```ts
 * app.get('/login', (req, res) => {
 *   const state = randomBytes(16).toString('base64url'), nonce = randomBytes(16).toString('base64url')
 *   pending.set(state, nonce) // the application owns this state
 *   redirectToSignIn(res, { authorizationEndpoint, clientId, redirectUri, state, nonce })
 * })
 * ```
 */
export function redirectToSignIn(res: ServerResponse | Http2ServerResponse, options: AuthorizationRequestOptions): URL {
  const url = authorizationRequestUrl(options);
  redirectWithReferredTokenBinding(res, url.href);
  return url;
}

/** Options of {@link verifyIdToken}. */
export interface IdTokenVerifierOptions {
  /** The provider's issuer identifier: `iss` must equal it exactly. */
  readonly issuer: string;
  /** This relying party's `client_id`: `aud` must contain it (and `azp` equal it when present). */
  readonly clientId: string;
  /** The provider's keys: a JWKS object, a `URL` (jose's `createRemoteJWKSet`), or a jose key resolver. */
  readonly jwks: JSONWebKeySet | URL | JWTVerifyGetKey;
  readonly jwksOptions?: RemoteJWKSetOptions | undefined;
  /** Accepted algorithms. Default: the asymmetric ones tokbind/token accepts. */
  readonly algorithms?: readonly string[] | undefined;
  /** Leeway for `exp`/`iat`, seconds. Default 30. */
  readonly clockTolerance?: number | undefined;
  /**
   * Refuse an ID token without `cnf` (OpenID Connect Token Bound Authentication §4 downgrade
   * protection). Default `true`. A `cnf` that is present and wrong is refused either way.
   */
  readonly requireBinding?: boolean | undefined;
}

/** An accepted ID token. */
export interface VerifiedIdToken {
  readonly payload: JWTPayload;
  /** `tbh` when the token is bound (always, unless `requireBinding` is off). */
  readonly method: 'tbh' | null;
}

/** A verifier made once per provider: resolves its keys once. */
export interface IdTokenVerifier {
  /**
   * Verifies `idToken` for this relying party and its binding to `tokenBinding` (the provided ID
   * of the request that brought the sign-in back). `nonce`: the one the application kept.
   */
  verify(idToken: string, tokenBinding: TokenBindingResult | null | undefined, nonce?: string): Promise<VerifiedIdToken>;
}

function keys(jwks: IdTokenVerifierOptions['jwks'], options: RemoteJWKSetOptions | undefined): JWTVerifyGetKey {
  if (typeof jwks === 'function') return jwks;
  if (jwks instanceof URL) return createRemoteJWKSet(jwks, options);
  if (typeof jwks === 'object' && jwks !== null && Array.isArray((jwks as JSONWebKeySet).keys)) return createLocalJWKSet(jwks);
  throw new TypeError('jwks must be a JWKS object, a URL or a key resolver');
}

function invalid(reason: string, field: string): TokenBindingError {
  return new TokenBindingError('ERR_TB_ID_TOKEN_INVALID', `invalid ID token: ${reason}`, { field });
}

/**
 * Makes an ID token verifier for one provider and relying party. `verify` checks with jose the
 * signature, `iss`, `aud` (= `client_id`), `exp`, `iat`, `sub`, `azp` and `nonce` (OpenID Connect
 * Core §3.1.3.7), then the binding (OpenID Connect Token Bound Authentication 1.0 §3): `cnf.tbh`
 * must equal the hash of the provided Token Binding ID on this connection. Fails closed: a
 * present but wrong `tbh` is always refused (mod_auth_openidc's default accepted it); a missing
 * `cnf` is refused while `requireBinding` is on (the default); a `cnf` of another method, or of
 * more than one, is refused.
 *
 * @throws {TypeError} for bad options
 * @example
 * ```ts
 * const idTokens = createIdTokenVerifier({ issuer: 'https://idp.example', clientId: 'app', jwks: new URL('https://idp.example/jwks') })
 * const { payload } = await idTokens.verify(idToken, req.tokenBinding, pending.nonce)
 * ```
 */
export function createIdTokenVerifier(options: IdTokenVerifierOptions): IdTokenVerifier {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const issuer = nonEmpty(options.issuer, 'issuer');
  const clientId = nonEmpty(options.clientId, 'clientId');
  const { requireBinding = true, clockTolerance = 30 } = options;
  if (typeof requireBinding !== 'boolean') throw new TypeError('requireBinding must be a boolean');
  if (!Number.isInteger(clockTolerance) || clockTolerance < 0 || clockTolerance > 300) throw new TypeError('clockTolerance must be an integer in 0..300');
  const algorithms = [...(options.algorithms ?? ACCESS_TOKEN_ALGORITHMS)];
  for (const alg of algorithms) {
    if (!(ACCESS_TOKEN_ALGORITHMS as readonly string[]).includes(alg)) throw new TypeError(`algorithms: ${String(alg)} is not an asymmetric JWS algorithm tokbind accepts`);
  }
  const resolver = keys(options.jwks, options.jwksOptions);
  return {
    async verify(idToken, tokenBinding, nonce) {
      if (typeof idToken !== 'string' || idToken === '') throw invalid('no ID token', 'id_token');
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(idToken, resolver, {
          issuer,
          audience: clientId,
          algorithms,
          clockTolerance,
          requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat'],
        }));
      } catch (err) {
        // jose's code names the failed check (ERR_JWT_EXPIRED, ERR_JWT_CLAIM_VALIDATION_FAILED, …); its claim, not the token.
        const code = (err as { code?: unknown }).code;
        const claim = (err as { claim?: unknown }).claim;
        throw new TokenBindingError('ERR_TB_ID_TOKEN_INVALID', undefined, {
          field: typeof claim === 'string' ? claim : 'id_token',
          ...(typeof code === 'string' ? { error: code } : {}),
        });
      }
      if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp === undefined) throw invalid('several audiences and no azp', 'azp');
      if (payload.azp !== undefined && payload.azp !== clientId) throw invalid('azp is another client', 'azp');
      if (nonce !== undefined) {
        if (typeof nonce !== 'string' || nonce === '') throw new TypeError('nonce must be a non-empty string');
        if (payload.nonce !== nonce) throw invalid('nonce does not match this sign-in', 'nonce');
      }
      const method = confirmationMethod(payload, ['tbh']);
      if (method === null) {
        if (requireBinding) throw new TokenBindingError('ERR_TB_TOKEN_UNBOUND', 'the ID token carries no cnf, and this relying party requires token-bound ID tokens', { field: 'cnf' });
        return { payload, method: null };
      }
      checkConfirmation('tbh', (payload.cnf as { tbh: string }).tbh, tokenBinding?.provided.hash ?? null);
      return { payload, method: 'tbh' };
    },
  };
}

/** The outcome of {@link completeSignIn}. */
export interface CompletedSignIn extends VerifiedIdToken {
  /** The session binding stored by tokbind/session's `bindSession` (a new session id). */
  readonly binding: SessionBindingRecord;
}

/**
 * Finishes a token-bound sign-in on the request that brought it back: verifies the ID token
 * against this request's provided Token Binding ID ({@link createIdTokenVerifier}), then binds
 * the session to it with tokbind/session's `bindSession` (new session id, no fixation). Store
 * the user in the session after it. Nothing is changed when verification fails.
 *
 * @throws {TokenBindingError} `ERR_TB_ID_TOKEN_INVALID`, `ERR_TB_TOKEN_UNBOUND`, `ERR_TB_CNF_UNSUPPORTED`,
 *   `ERR_TB_TOKEN_INVALID`, `ERR_TB_CNF_MISSING`, `ERR_TB_CNF_MISMATCH`, `ERR_TB_SESSION_BINDING_MISSING`
 * @example
 * ```ts
 * const { payload } = await completeSignIn(req, idTokens, idToken, nonce)
 * req.session.user = payload.sub
 * ```
 */
export async function completeSignIn(req: FederationRequest, verifier: IdTokenVerifier, idToken: string, nonce?: string): Promise<CompletedSignIn> {
  const verified = await verifier.verify(idToken, federationTokenBinding(req), nonce);
  const binding = await bindSession(req);
  return { ...verified, binding };
}
