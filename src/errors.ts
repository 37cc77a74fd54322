/**
 * The one error family of tokbind. Every rejection of input — a malformed header, an invalid
 * signature, a connection that does not meet the TLS conditions — is a {@link TokenBindingError}
 * with a stable `code`. API misuse (an argument of the wrong type) throws a plain `TypeError`.
 *
 * Tests and callers branch on `code`, never on `message`.
 */

/** Every code tokbind may raise, with what it means. */
export const TokenBindingErrorCodes = {
  /** The TokenBindingMessage (or a part of it) is not well-formed (RFC 8471 §3). */
  ERR_TB_MALFORMED: 'malformed Token Binding message',
  /** The Sec-Token-Binding value is not base64url without padding and whitespace (RFC 8473 §2). */
  ERR_TB_HEADER_ENCODING: 'Sec-Token-Binding is not unpadded base64url',
  /** The Sec-Token-Binding value is longer than the configured cap. */
  ERR_TB_HEADER_TOO_LARGE: 'Sec-Token-Binding header too large',
  /** More than one Sec-Token-Binding header in one request (RFC 8473 §2). */
  ERR_TB_HEADER_DUPLICATE: 'more than one Sec-Token-Binding header',
  /** Token Binding is required but the request carries no Sec-Token-Binding header. */
  ERR_TB_HEADER_MISSING: 'Sec-Token-Binding header required',
  /** A TokenBindingID key does not decode for its key parameters (point length, modulus, …). */
  ERR_TB_KEY_INVALID: 'invalid Token Binding public key',
  /** The message holds no provided_token_binding (RFC 8471 §4.2). */
  ERR_TB_NO_PROVIDED: 'no provided Token Binding',
  /** The message holds more than one provided_token_binding. */
  ERR_TB_MULTIPLE_PROVIDED: 'more than one provided Token Binding',
  /** The message holds more than one referred_token_binding. */
  ERR_TB_MULTIPLE_REFERRED: 'more than one referred Token Binding',
  /** The provided binding's key parameters are not the ones negotiated/accepted on this connection. */
  ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED: 'key parameters not accepted on this connection',
  /** Key parameters tokbind cannot sign or verify with. */
  ERR_TB_KEY_PARAMETERS_UNSUPPORTED: 'unsupported key parameters',
  /** A signature does not verify over type || key_parameters || EKM (RFC 8471 §3.3). */
  ERR_TB_SIGNATURE_INVALID: 'Token Binding signature invalid',
  /** Token Binding was not negotiated on this connection but a message was sent. */
  ERR_TB_NOT_NEGOTIATED: 'Token Binding not negotiated on this connection',
  /** The TLS connection does not meet the conditions (TLS 1.3, or TLS 1.2 with EMS). */
  ERR_TB_TLS_CONDITIONS: 'TLS connection does not meet the Token Binding conditions',
  /** The exported keying material could not be taken (not yet secure, or closed). */
  ERR_TB_EKM_UNAVAILABLE:
    'exported keying material unavailable: Token Binding is bound to the TLS connection, so TLS must end in tokbind (terminate TLS here, or forward through a trusted proxy such as tokbind proxy)',
  /** A connection sent more distinct Token Binding messages than the per-connection limit. */
  ERR_TB_TOO_MANY_MESSAGES: 'too many distinct Token Binding messages on one connection',
  /** A message needs more signature checks than one message may cost (`maxSignaturesPerMessage`). */
  ERR_TB_TOO_MANY_BINDINGS: 'too many Token Bindings to verify in one message',
  /** A connection has spent its signature-check budget (`maxSignaturesPerConnection`). */
  ERR_TB_SIGNATURE_BUDGET: 'signature-check budget of the connection spent',
  /** The RFC 8472 token_binding extension body is malformed. */
  ERR_TB_EXTENSION_MALFORMED: 'malformed token_binding TLS extension',
  /** A server's token_binding reply violates RFC 8472 (the client must abort the handshake). */
  ERR_TB_NEGOTIATION_INVALID: 'invalid token_binding negotiation',
  /** A ClientHello could not be read (malformed, too large, or too slow). */
  ERR_TB_CLIENT_HELLO: 'unreadable TLS ClientHello',
  /** A key store file is unreadable or corrupt; tokbind never replaces it silently. */
  ERR_TB_KEY_STORE: 'key store unreadable or corrupt',
  /** A connection's PROXY protocol header (v1/v2, before TLS) is missing, malformed, too large or too slow. */
  ERR_TB_PROXY_PROTOCOL: 'invalid or missing PROXY protocol header',
  /** A client-side request failed for a Token Binding reason (e.g. no EKM, scope). */
  ERR_TB_CLIENT: 'Token Binding client error',
  /** A Sec-*-Token-Binding-ID header from a trusted proxy is not well-formed (draft-ietf-tokbind-ttrp §2). */
  ERR_TB_FORWARDED_MALFORMED: 'malformed forwarded Token Binding ID header',
  /** The trusted proxy's signed assertion is missing, invalid, expired, replayed or does not match the request. */
  ERR_TB_FORWARDED_ASSERTION: 'forwarded Token Binding assertion missing or invalid',
  /** A trusted proxy's RFC 9440 `Client-Cert` header is malformed, too large or repeated. */
  ERR_TB_FORWARDED_CLIENT_CERT: 'malformed forwarded Client-Cert header',
  /** The upstream server of a tokbind proxy or sidecar could not be reached or failed. */
  ERR_TB_UPSTREAM: 'upstream server unavailable',
  /** A session cannot be bound, or a bound session cannot be checked: the request carries no verified binding (tokbind/session). */
  ERR_TB_SESSION_BINDING_MISSING: 'the request carries no verified binding for this session',
  /** The session is bound to another Token Binding ID (or another binding key) than the request's (tokbind/session). */
  ERR_TB_SESSION_BINDING_MISMATCH: 'the session is bound to another client',
  /** The session's binding proof is no longer valid (a DBSC short-lived cookie expired unrefreshed; tokbind/session). */
  ERR_TB_SESSION_BINDING_EXPIRED: 'the session binding expired',
  /** The policy requires bound sessions and this authenticated session is not bound (tokbind/session). */
  ERR_TB_SESSION_UNBOUND: 'the session is not bound; log in again over a bound connection',
  /** A DBSC `Secure-Session-Response` is missing, not a `dbsc+jwt` JWT, names an algorithm not allowed, or its signature does not verify (tokbind/session). */
  ERR_TB_DBSC_PROOF_INVALID: 'invalid DBSC proof',
  /** A DBSC proof's `jti` is not a challenge this server issued for this session, has expired, or was already used (tokbind/session). */
  ERR_TB_DBSC_CHALLENGE_INVALID: 'invalid, expired or replayed DBSC challenge',
  /** A DBSC registration or refresh for a request without a session, or for a session it does not apply to (tokbind/session). */
  ERR_TB_DBSC_SESSION_UNKNOWN: 'no session for this DBSC request',
  /** Too many DBSC refreshes for one session in the rate-limit window (tokbind/session). */
  ERR_TB_DBSC_RATE_LIMITED: 'too many DBSC refreshes for this session',
  /** The request carries no access token (RFC 6750 §3.1: answered with a bare challenge). */
  ERR_TB_TOKEN_MISSING: 'access token required',
  /** The request presents its access token wrongly: more than one way, or a malformed Authorization (RFC 6750 §3.1 invalid_request). */
  ERR_TB_TOKEN_REQUEST_INVALID: 'malformed access token request',
  /** The access token is not a valid JWT for this resource server (signature, issuer, audience, algorithm, expiry). */
  ERR_TB_TOKEN_INVALID: 'invalid access token',
  /** The access token carries no confirmation (`cnf`) but this resource server requires bound tokens. */
  ERR_TB_TOKEN_UNBOUND: 'access token is not bound',
  /** The access token's `cnf` uses a confirmation method this resource server does not check (or more than one). */
  ERR_TB_CNF_UNSUPPORTED: 'unsupported token confirmation method',
  /** The access token is bound, but the request carries no binding of that method (no Token Binding ID, no client certificate). */
  ERR_TB_CNF_MISSING: 'the request does not carry the binding the token is bound to',
  /** The access token is bound to another Token Binding ID, certificate or DPoP key than the request presents. */
  ERR_TB_CNF_MISMATCH: 'token confirmation does not match the request',
  /** The DPoP proof is missing or invalid (RFC 9449 §4.3: typ, alg, jwk, signature, htm, htu, iat, ath). */
  ERR_TB_DPOP_INVALID: 'invalid DPoP proof',
  /** The DPoP proof's `jti` was seen before within its `iat` window (RFC 9449 §11.1). */
  ERR_TB_DPOP_REPLAYED: 'DPoP proof replayed',
  /** The DPoP proof lacks the server's current nonce, or carries a stale one (RFC 9449 §9). */
  ERR_TB_DPOP_NONCE: 'DPoP nonce required',
  /** The bounded DPoP replay cache is full of unexpired proofs: the proof is refused, never admitted unchecked. */
  ERR_TB_DPOP_REPLAY_CACHE_FULL: 'DPoP replay cache full',
  /** The JWKS could not be loaded (unreadable file, invalid JSON, unreachable URL). */
  ERR_TB_JWKS_UNAVAILABLE: 'JWKS unavailable',
  /** A token cannot be bound: the request carries no (provided or referred) Token Binding ID to bind it to. */
  ERR_TB_BINDING_UNAVAILABLE: 'no Token Binding ID to bind the token to',
  /** The ID token is not valid for this relying party (signature, issuer, audience = client_id, expiry, nonce; tokbind/federation). */
  ERR_TB_ID_TOKEN_INVALID: 'invalid ID token',
  /** A Token Binding PKCE request is malformed: `referred_tb` without the literal challenge, a `TB-S256` challenge that is no SHA-256 hash (tokbind/federation). */
  ERR_TB_PKCE_INVALID: 'invalid Token Binding PKCE parameters',
  /** The token request's code verifier is missing or malformed for the code's Token Binding (tokbind/federation). */
  ERR_TB_CODE_VERIFIER_INVALID: 'invalid code verifier for a token-bound authorization code',
  /** The authorization code is bound to another Token Binding ID than the one redeeming it (tokbind/federation; answered as invalid_grant). */
  ERR_TB_CODE_BINDING_MISMATCH: 'the authorization code is bound to another client',
} as const;

export type TokenBindingErrorCode = keyof typeof TokenBindingErrorCodes;

/** The facts behind an error: which field, what was expected, what was found. Never secrets. */
export interface TokenBindingErrorCause {
  readonly field?: string;
  readonly expected?: unknown;
  readonly actual?: unknown;
  readonly [key: string]: unknown;
}

/**
 * The error tokbind raises for every bad input.
 *
 * @example
 * ```ts
 * try {
 *   parseTokenBindingMessage(bytes)
 * } catch (err) {
 *   if (err instanceof TokenBindingError && err.code === 'ERR_TB_MALFORMED') { ... }
 * }
 * ```
 */
export class TokenBindingError extends Error {
  override readonly name = 'TokenBindingError';
  readonly code: TokenBindingErrorCode;
  declare readonly cause: TokenBindingErrorCause | Error | undefined;

  constructor(code: TokenBindingErrorCode, message?: string, cause?: TokenBindingErrorCause | Error) {
    super(message ?? TokenBindingErrorCodes[code], cause === undefined ? undefined : { cause });
    this.code = code;
  }
}

/** True when `err` is a {@link TokenBindingError} (optionally with the given code). */
export function isTokenBindingError(err: unknown, code?: TokenBindingErrorCode): err is TokenBindingError {
  return err instanceof TokenBindingError && (code === undefined || err.code === code);
}
