/**
 * Authorization codes bound to a Token Binding with PKCE (draft-ietf-oauth-token-binding-08 §5):
 * the authorization endpoint turns the request's PKCE parameters into a {@link CodeBinding} the
 * application stores beside the code; the token endpoint checks it with
 * {@link checkAuthorizationCodeBinding}. Pure functions: no code is stored here.
 */
import { tokenBindingHash } from '../crypto/hash.js';
import { base64urlDecode } from '../codec/base64url.js';
import { TokenBindingError } from '../errors.js';
import type { TokenBindingResult } from '../http/result.js';

/**
 * The PKCE methods of draft-ietf-oauth-token-binding-08 §5. `referred_tb` (§5.2, web-server
 * clients): the client redirects with `code_challenge=referred_tb&code_challenge_method=referred_tb`
 * and `Include-Referred-Token-Binding-ID: true`; the code is bound to the *referred* ID (the
 * browser's ID for the client), and the client's `code_verifier` at the token endpoint is the
 * base64url provided Token Binding ID it saw on the redirect back. `TB-S256` (§5.1, native
 * apps): `code_challenge` = base64url(SHA-256(the provided ID the app will use at the token
 * endpoint)); the token request proves it with its own `Sec-Token-Binding`.
 */
export const TokenBindingPkceMethods = { referred: 'referred_tb', native: 'TB-S256' } as const;

/** `referred_tb` or `TB-S256`. */
export type TokenBindingPkceMethod = (typeof TokenBindingPkceMethods)[keyof typeof TokenBindingPkceMethods];

/**
 * What the application stores with a token-bound authorization code (plain JSON). `referred_tb`:
 * the referred Token Binding ID (base64url of its wire bytes, public); `TB-S256`: the challenge.
 */
export type CodeBinding =
  | { readonly method: 'referred_tb'; readonly id: string }
  | { readonly method: 'TB-S256'; readonly challenge: string };

/** The PKCE parameters of an authorization request (RFC 7636 §4.3), as the query holds them. */
export interface PkceParameters {
  readonly code_challenge?: string | null | undefined;
  readonly code_challenge_method?: string | null | undefined;
}

const SHA256_B64URL = /^[A-Za-z0-9_-]{43}$/;

function pkceError(message: string, field: string): TokenBindingError {
  return new TokenBindingError('ERR_TB_PKCE_INVALID', message, { field });
}

/**
 * The binding of an authorization code about to be issued, from the authorization request's PKCE
 * parameters and its verified Token Binding (draft-ietf-oauth-token-binding-08 §5). Returns
 * `null` for a request that uses no Token Binding method (no PKCE, or `S256`/`plain`, which the
 * application handles itself) — unless `required`, which refuses it.
 *
 * @throws {TokenBindingError} `ERR_TB_PKCE_INVALID` (a malformed `referred_tb`/`TB-S256` request, or
 *   none where `required`); `ERR_TB_BINDING_UNAVAILABLE` for `referred_tb` without a referred
 *   binding on the request (no bound code may be issued, RFC 8473 §5.3)
 * @example
 * ```ts
 * const binding = bindAuthorizationCode(Object.fromEntries(url.searchParams), req.tokenBinding)
 * await codes.set(code, { user, clientId, binding }) // the application's store
 * ```
 */
export function bindAuthorizationCode(
  params: PkceParameters,
  tokenBinding: TokenBindingResult | null | undefined,
  options: { readonly required?: boolean } = {},
): CodeBinding | null {
  if (typeof params !== 'object' || params === null) throw new TypeError('params must be an object');
  const { required = false } = options;
  const method = params.code_challenge_method ?? undefined;
  const challenge = params.code_challenge ?? undefined;
  if (method === TokenBindingPkceMethods.referred) {
    if (challenge !== TokenBindingPkceMethods.referred) throw pkceError('code_challenge must be the literal referred_tb', 'code_challenge');
    const referred = tokenBinding?.referred ?? null;
    if (referred === null) throw new TokenBindingError('ERR_TB_BINDING_UNAVAILABLE', undefined, { field: 'tokenBinding.referred' });
    return { method: 'referred_tb', id: referred.id };
  }
  if (method === TokenBindingPkceMethods.native) {
    if (typeof challenge !== 'string' || !SHA256_B64URL.test(challenge)) {
      throw pkceError('a TB-S256 code_challenge is base64url(SHA-256(Token Binding ID)): 43 characters', 'code_challenge');
    }
    return { method: 'TB-S256', challenge };
  }
  if (required) throw pkceError('a Token Binding PKCE method (referred_tb or TB-S256) is required', 'code_challenge_method');
  return null;
}

/** What the token request presents for a bound code. */
export interface CodeRedemption {
  /** The token request's `code_verifier` (`referred_tb`: the base64url provided ID the client saw). */
  readonly codeVerifier?: string | null | undefined;
  /** The token request's verified Token Binding (`TB-S256`: its provided ID is the proof). */
  readonly tokenBinding?: TokenBindingResult | null | undefined;
}

function isCodeBinding(value: unknown): value is CodeBinding {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { method?: unknown; id?: unknown; challenge?: unknown };
  return (v.method === 'referred_tb' && typeof v.id === 'string') || (v.method === 'TB-S256' && typeof v.challenge === 'string');
}

/**
 * Checks a token request against the binding stored with its authorization code
 * (draft-ietf-oauth-token-binding-08 §5.1.2, §5.2) and returns the wire bytes of the Token
 * Binding ID that tokens issued for this code are bound to: for `referred_tb` the browser's ID
 * for the client (an ID token's `cnf.tbh` for the relying party), for `TB-S256` the app's own
 * provided ID. Fails closed: a record that is not a binding, a missing or malformed verifier, or
 * another ID is refused. Answer a failure with `invalid_grant` (RFC 6749 §5.2), and treat the
 * code as spent either way.
 *
 * @throws {TokenBindingError} `ERR_TB_CODE_VERIFIER_INVALID`, `ERR_TB_CNF_MISSING` (no Token Binding on
 *   a `TB-S256` redemption) or `ERR_TB_CODE_BINDING_MISMATCH`
 * @example
 * ```ts
 * const id = checkAuthorizationCodeBinding(stored.binding, { codeVerifier: form.get('code_verifier'), tokenBinding: req.tokenBinding })
 * const idToken = await signIdToken({ nonce: stored.nonce }, { tokenBindingID: id, key, alg: 'ES256', issuer, audience: clientId, subject: stored.user })
 * ```
 */
export function checkAuthorizationCodeBinding(binding: CodeBinding, redemption: CodeRedemption): Uint8Array {
  if (!isCodeBinding(binding)) throw new TokenBindingError('ERR_TB_CODE_BINDING_MISMATCH', 'the stored code binding is not one tokbind made', { field: 'binding' });
  if (typeof redemption !== 'object' || redemption === null) throw new TypeError('redemption must be an object');
  if (binding.method === 'referred_tb') {
    const verifier = redemption.codeVerifier;
    if (typeof verifier !== 'string' || verifier === '') throw new TokenBindingError('ERR_TB_CODE_VERIFIER_INVALID', 'code_verifier required: the provided Token Binding ID the client saw', { field: 'code_verifier' });
    let presented: Uint8Array;
    try {
      presented = base64urlDecode(verifier);
    } catch {
      throw new TokenBindingError('ERR_TB_CODE_VERIFIER_INVALID', 'code_verifier is not base64url', { field: 'code_verifier' });
    }
    // Compare the hashes, not the strings: one ID has one hash, however a client spelled it.
    const expected = base64urlDecode(binding.id);
    if (tokenBindingHash(presented) !== tokenBindingHash(expected)) throw new TokenBindingError('ERR_TB_CODE_BINDING_MISMATCH', undefined, { field: 'code_verifier' });
    return expected;
  }
  const provided = redemption.tokenBinding?.provided ?? null;
  if (provided === null) throw new TokenBindingError('ERR_TB_CNF_MISSING', 'a TB-S256 code is redeemed over a Token Binding', { field: 'tokenBinding.provided' });
  if (provided.hash !== binding.challenge) throw new TokenBindingError('ERR_TB_CODE_BINDING_MISMATCH', undefined, { field: 'tokenBinding.provided' });
  return provided.raw;
}

/**
 * The `code_verifier` a web-server client sends for a `referred_tb` code: the base64url provided
 * Token Binding ID on the request that brought the code back (draft-ietf-oauth-token-binding-08
 * §5.2) — the browser's ID for this client, the one the code was bound to as referred ID.
 *
 * @throws {TokenBindingError} `ERR_TB_BINDING_UNAVAILABLE` when that request carries no Token Binding
 * @example
 * ```ts
 * body.set('code_verifier', referredTokenBindingCodeVerifier(req.tokenBinding))
 * ```
 */
export function referredTokenBindingCodeVerifier(tokenBinding: TokenBindingResult | null | undefined): string {
  const provided = tokenBinding?.provided ?? null;
  if (provided === null) throw new TokenBindingError('ERR_TB_BINDING_UNAVAILABLE', undefined, { field: 'tokenBinding.provided' });
  return provided.id;
}

/**
 * A native app's `TB-S256` `code_challenge`: base64url(SHA-256(the provided Token Binding ID it
 * will use at the token endpoint)) (draft-ietf-oauth-token-binding-08 §5.1.1) — its `tbh`.
 *
 * @example
 * ```ts
 * const key = await keyStore.getOrCreateKey(tokenBindingScope(tokenEndpoint), 'ecdsap256')
 * url.searchParams.set('code_challenge', nativeCodeChallenge(key.id.raw))
 * ```
 */
export function nativeCodeChallenge(tokenBindingID: Uint8Array): string {
  if (!(tokenBindingID instanceof Uint8Array) || tokenBindingID.length === 0) throw new TypeError('tokenBindingID must be the non-empty wire bytes of a TokenBindingID');
  return tokenBindingHash(tokenBindingID);
}
