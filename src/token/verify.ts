/**
 * The resource server side: verify a JWT access token with jose, then its confirmation (`cnf`)
 * against the request — `tbh` against the provided Token Binding ID, `x5t#S256` against the TLS
 * client certificate, `jkt` against a DPoP proof — and answer failures as RFC 6750 §3 and
 * RFC 9449 §7 prescribe. Framework-free: it reads a Node request (`IncomingMessage` or an
 * HTTP/2 compat request, which is what Express and Fastify hand over).
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  type ProtectedHeaderParameters,
  type RemoteJWKSetOptions,
} from 'jose';
import { TokenBindingError, TokenBindingErrorCodes, type TokenBindingErrorCode } from '../errors.js';
import type { TokenBindingResult } from '../http/result.js';
import { ConfirmationMethods, certificateThumbprint, checkConfirmation, confirmationMethod, type ConfirmationMethod } from './cnf.js';
import { TOKEN_CHANNEL_NAME, type TokenEvent } from './events.js';
import { DPOP_ALGORITHMS, DpopNonces, MemoryDpopReplayCache, createDpopKeyCache, normalizeHtu, verifyDpopProof, type DpopReplayCache } from './dpop.js';

export { TOKEN_CHANNEL_NAME, type TokenEvent } from './events.js';

const tokenChannel = diagnosticsChannel.channel(TOKEN_CHANNEL_NAME);

/** Asymmetric JWS algorithms accepted for access tokens unless `algorithms` says otherwise. */
export const ACCESS_TOKEN_ALGORITHMS = DPOP_ALGORITHMS;

/** The request a verifier reads: Node's, Express's and Fastify's `request.raw` all are. */
export type AccessTokenRequest = (IncomingMessage | Http2ServerRequest) & {
  tokenBinding?: TokenBindingResult | null | undefined;
  originalUrl?: string | undefined;
};

/** DPoP options of {@link createAccessTokenVerifier}. */
export interface DpopVerifierOptions {
  /** Allowed proof algorithms (asymmetric only). Default: {@link DPOP_ALGORITHMS}. */
  readonly algorithms?: readonly string[] | undefined;
  /** How old a proof may be, seconds (the `iat` window and how long a `jti` is kept). Default 60, at most 600. */
  readonly maxAge?: number | undefined;
  /** How far in the future a proof's `iat` may be, seconds. Default 5, at most 60. */
  readonly clockTolerance?: number | undefined;
  /** Where `jti`s are kept. Default: a {@link MemoryDpopReplayCache} of `replayCacheSize` entries. */
  readonly replayCache?: DpopReplayCache | undefined;
  /** Entries of the default replay cache. Default 262,144. */
  readonly replayCacheSize?: number | undefined;
  /** Require server nonces (RFC 9449 §9): `true` for fresh ones, or a shared {@link DpopNonces}. Default off. */
  readonly nonce?: boolean | DpopNonces | undefined;
}

/** Options of {@link createAccessTokenVerifier} (and of the Express and Fastify glue). */
export interface AccessTokenVerifierOptions {
  /** Accepted `iss` value(s). Required. */
  readonly issuer: string | readonly string[];
  /** This resource server's `aud` value(s). Required. */
  readonly audience: string | readonly string[];
  /**
   * The issuer's keys: a JWKS object, a `URL` (fetched and cached by jose's `createRemoteJWKSet`;
   * `jwksOptions` go to it), a path to a JWKS file (read once, now), or a jose key resolver.
   */
  readonly jwks: JSONWebKeySet | URL | string | JWTVerifyGetKey;
  readonly jwksOptions?: RemoteJWKSetOptions | undefined;
  /** Accepted access token algorithms. Default: asymmetric ones ({@link ACCESS_TOKEN_ALGORITHMS}). */
  readonly algorithms?: readonly string[] | undefined;
  /** Leeway for `exp`/`nbf`/`iat`, seconds. Default 30, at most 300. */
  readonly clockTolerance?: number | undefined;
  /** Required `typ` header (`at+jwt` for RFC 9068). Default: not checked. */
  readonly typ?: string | undefined;
  /** The confirmation methods this server checks; a token bound another way is refused. Default all three. */
  readonly methods?: readonly ConfirmationMethod[] | undefined;
  /** Refuse unbound (bearer) tokens. Default `true`. */
  readonly requireBinding?: boolean | undefined;
  /**
   * The DER of the client certificate that `x5t#S256` is checked against. Default: the TLS
   * client certificate of the connection. Behind a TLS-terminating proxy, read it from RFC 9440
   * `Client-Cert` here — but only for requests that come from the trusted proxy (a client can
   * send that header itself).
   */
  readonly clientCertificate?: ((req: AccessTokenRequest) => Uint8Array | undefined | null) | undefined;
  /** The provided Token Binding ID `tbh` is checked against. Default: `req.tokenBinding`. */
  readonly tokenBinding?: ((req: AccessTokenRequest) => TokenBindingResult | null | undefined) | undefined;
  /**
   * The origin (`https://api.example`) DPoP's `htu` is checked against. Default: the request's
   * `Host` (or `:authority`) on `https:` (`http:` for a plain socket). Set it when clients reach
   * this server under one name.
   */
  readonly origin?: string | undefined;
  readonly dpop?: DpopVerifierOptions | undefined;
}

/** An accepted access token. */
export interface VerifiedAccessToken {
  /** The compact JWT as presented. */
  readonly token: string;
  readonly payload: JWTPayload;
  readonly header: ProtectedHeaderParameters;
  /** How it is bound (`null`: an unbound token, accepted because `requireBinding` is off). */
  readonly method: ConfirmationMethod | null;
  /** `Bearer` or `DPoP`: the Authorization scheme it came with. */
  readonly scheme: 'Bearer' | 'DPoP';
  /** The nonce to send back in `DPoP-Nonce` (when nonces are on). */
  readonly dpopNonce?: string;
}

/** The HTTP answer to a refused request: status and headers (`WWW-Authenticate`, `DPoP-Nonce`, `Retry-After`). */
export interface AccessTokenChallenge {
  readonly status: 400 | 401 | 503;
  readonly headers: Readonly<Record<string, string>>;
}

/** A verifier made once per configuration. */
export interface AccessTokenVerifier {
  /**
   * Verifies the request's access token and its binding. Publishes the decision on
   * `tokbind:token` (except for a request without a token: `ERR_TB_TOKEN_MISSING` is a
   * rejection only where a token is required, which the caller knows; the Express and Fastify
   * glue publish it then).
   *
   * @throws {TokenBindingError} a coded error; turn it into a response with {@link challenge}
   */
  verify(req: AccessTokenRequest): Promise<VerifiedAccessToken>;
  /** The status and headers that answer `error` (RFC 6750 §3, RFC 9449 §7.1); never key material. */
  challenge(error: TokenBindingError): AccessTokenChallenge;
  readonly options: ResolvedOptions;
}

interface ResolvedOptions {
  readonly issuer: string | string[];
  readonly audience: string | string[];
  readonly algorithms: string[];
  readonly clockTolerance: number;
  readonly typ: string | undefined;
  readonly methods: readonly ConfirmationMethod[];
  readonly requireBinding: boolean;
  readonly dpopAlgorithms: readonly string[];
  readonly maxAge: number;
  readonly dpopClockTolerance: number;
}

function strings(value: unknown, name: string): string | string[] {
  if (typeof value === 'string' && value !== '') return value;
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v !== '')) return [...(value as string[])];
  throw new TypeError(`${name} must be a non-empty string or array of strings`);
}

function seconds(value: unknown, name: string, fallback: number, max: number, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw new TypeError(`${name} must be an integer in ${min}..${max}`);
  return value;
}

function algorithmList(value: readonly string[] | undefined, name: string): string[] {
  if (value === undefined) return [...DPOP_ALGORITHMS];
  if (!Array.isArray(value) || value.length === 0) throw new TypeError(`${name} must be a non-empty array`);
  for (const alg of value) {
    if (typeof alg !== 'string' || !(DPOP_ALGORITHMS as readonly string[]).includes(alg)) {
      throw new TypeError(`${name}: ${String(alg)} is not an asymmetric JWS algorithm tokbind accepts`);
    }
  }
  return [...value];
}

function jwksError(message: string, cause?: unknown): TokenBindingError {
  return new TokenBindingError('ERR_TB_JWKS_UNAVAILABLE', `JWKS unavailable: ${message}`, { field: 'jwks', ...(cause instanceof Error ? { error: cause.message } : {}) });
}

/** Reads and checks a JWKS file now: a server must not start with keys it cannot use. */
export function loadJwksFile(path: string): JSONWebKeySet {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw jwksError(`cannot read ${path}`, err);
  }
  return checkJwks(data);
}

function checkJwks(data: unknown): JSONWebKeySet {
  const keys = (data as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw jwksError('not a JWKS with at least one key');
  for (const key of keys) {
    if (typeof key !== 'object' || key === null || typeof (key as { kty?: unknown }).kty !== 'string') throw jwksError('a key without kty');
    // A JWKS is public: a private member means the wrong file, or a leaked key.
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) {
      if (member in key) throw jwksError(`a key holds the private/secret member "${member}"`);
    }
  }
  return data as JSONWebKeySet;
}

function keyResolver(jwks: AccessTokenVerifierOptions['jwks'], jwksOptions: RemoteJWKSetOptions | undefined): JWTVerifyGetKey {
  if (typeof jwks === 'function') return jwks;
  if (jwks instanceof URL) {
    if (jwks.protocol !== 'https:' && jwks.protocol !== 'http:') throw new TypeError('jwks URL must be http(s)');
    return createRemoteJWKSet(jwks, jwksOptions);
  }
  if (typeof jwks === 'string') return createLocalJWKSet(loadJwksFile(jwks));
  if (typeof jwks === 'object' && jwks !== null) return createLocalJWKSet(checkJwks(jwks));
  throw new TypeError('jwks must be a JWKS object, a URL, a file path or a key resolver');
}

/** Counts the raw occurrences of `authorization` and `dpop` (Node keeps one `authorization` and joins `dpop`). */
function headerCounts(raw: readonly string[]): { authorization: number; dpop: number } {
  let authorization = 0;
  let dpop = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 13 && name.toLowerCase() === 'authorization') authorization++;
    else if (name.length === 4 && name.toLowerCase() === 'dpop') dpop++;
  }
  return { authorization, dpop };
}

const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

interface Presented {
  readonly scheme: 'Bearer' | 'DPoP';
  readonly token: string;
}

function requestError(scheme: 'Bearer' | 'DPoP', reason: string): TokenBindingError {
  return new TokenBindingError('ERR_TB_TOKEN_REQUEST_INVALID', `malformed access token request: ${reason}`, { field: 'Authorization', scheme });
}

/** The access token and its scheme (RFC 6750 §2.1, RFC 9449 §7.1), or null when none is presented. */
function presentedToken(headers: IncomingHttpHeaders, raw: readonly string[]): Presented | null {
  const value = headers.authorization;
  if (value === undefined) return null;
  const counts = headerCounts(raw);
  const space = value.indexOf(' ');
  const name = (space === -1 ? value : value.slice(0, space)).toLowerCase();
  const scheme = name === 'bearer' ? 'Bearer' : name === 'dpop' ? 'DPoP' : null;
  // Another scheme (Basic, …) carries no access token: the request is answered as one without.
  if (scheme === null) return null;
  if (counts.authorization > 1) throw requestError(scheme, 'more than one Authorization header');
  const token = space === -1 ? '' : value.slice(space + 1).trim();
  if (token.length === 0 || token.length > 16_384 || !TOKEN68.test(token)) throw requestError(scheme, 'not a token68 credential');
  return { scheme, token };
}

function peerCertificate(req: AccessTokenRequest): Uint8Array | null {
  const socket = (req.socket ?? (req as Http2ServerRequest).stream?.session?.socket) as TLSSocket | undefined;
  if (socket === undefined || typeof socket.getPeerCertificate !== 'function') return null;
  const raw = socket.getPeerCertificate(false)?.raw;
  return raw instanceof Uint8Array && raw.length > 0 ? raw : null;
}

function requestOrigin(req: AccessTokenRequest): string {
  const authority = req.headers[':authority'] ?? req.headers.host;
  const host = Array.isArray(authority) ? authority[0] : authority;
  const encrypted = (req.socket as { encrypted?: boolean } | undefined)?.encrypted === true || (req as Http2ServerRequest).stream !== undefined;
  return `${encrypted ? 'https' : 'http'}://${host ?? 'invalid.invalid'}`;
}

/**
 * Publishes one `tokbind:token` event. `verify` publishes every decision but a missing token
 * (which is a rejection only where a token is required: the glue that knows publishes it).
 *
 * @internal
 */
export function publish(outcome: 'accepted' | 'rejected', method: ConfirmationMethod | null, code: TokenBindingErrorCode | undefined, stolen: boolean): void {
  if (!tokenChannel.hasSubscribers) return;
  const event: TokenEvent = code === undefined ? { outcome, method, stolen } : { outcome, method, code, stolen };
  tokenChannel.publish(event);
}

const STOLEN: ReadonlySet<TokenBindingErrorCode> = new Set(['ERR_TB_CNF_MISMATCH', 'ERR_TB_DPOP_REPLAYED']);

/**
 * The same error with the facts the answer needs (the scheme to challenge with, the method):
 * a fresh error, so nothing shared (say, a cached one) is ever changed. A scheme already set wins.
 */
function withFacts(err: unknown, facts: { scheme: 'Bearer' | 'DPoP'; method: ConfirmationMethod | null }): unknown {
  if (!(err instanceof TokenBindingError)) return err;
  const cause = (err.cause instanceof Error ? {} : (err.cause ?? {})) as Record<string, unknown>;
  return new TokenBindingError(err.code, err.message, { ...cause, scheme: cause['scheme'] ?? facts.scheme, method: facts.method });
}

function quoted(text: string): string {
  return `"${text.replace(/["\\]/g, '')}"`;
}

/**
 * Builds a resource server's access token verifier: the JWT (jose `jwtVerify`: signature from
 * the JWKS, `iss`, `aud`, `alg` allow-list, `exp` required, bounded clock tolerance), then its
 * `cnf`:
 *
 * - `tbh` (draft-ietf-oauth-token-binding-08 §3): equal to the hash of the request's provided
 *   Token Binding ID (`req.tokenBinding`, set by tokbind's server or adapters);
 * - `x5t#S256` (RFC 8705 §3): equal to the SHA-256 thumbprint of the TLS client certificate;
 * - `jkt` (RFC 9449 §7): `Authorization: DPoP` with a valid `DPoP` proof whose key thumbprint it is.
 *
 * Unbound tokens are refused unless `requireBinding: false`; a method not in `methods` is
 * refused. Every refusal is a coded {@link TokenBindingError}; {@link AccessTokenVerifier.challenge}
 * turns it into the status and `WWW-Authenticate` the RFCs prescribe. Each decision is published
 * on `tokbind:token`.
 *
 * @throws {TypeError} for invalid options; {@link TokenBindingError} `ERR_TB_JWKS_UNAVAILABLE` for a JWKS file that does not load
 * @example
 * ```ts
 * const verifier = createAccessTokenVerifier({ issuer: 'https://as.example', audience: 'https://api.example', jwks: new URL('https://as.example/jwks') })
 * try {
 *   const token = await verifier.verify(req)
 * } catch (err) {
 *   const { status, headers } = verifier.challenge(err)
 *   res.writeHead(status, headers).end()
 * }
 * ```
 */
export function createAccessTokenVerifier(options: AccessTokenVerifierOptions): AccessTokenVerifier {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const methods = options.methods === undefined ? ConfirmationMethods : options.methods;
  if (!Array.isArray(methods) || methods.some((m) => !(ConfirmationMethods as readonly string[]).includes(m))) {
    throw new TypeError(`methods must be a subset of ${ConfirmationMethods.join(', ')}`);
  }
  if (options.requireBinding !== undefined && typeof options.requireBinding !== 'boolean') throw new TypeError('requireBinding must be a boolean');
  if (options.clientCertificate !== undefined && typeof options.clientCertificate !== 'function') throw new TypeError('clientCertificate must be a function');
  if (options.tokenBinding !== undefined && typeof options.tokenBinding !== 'function') throw new TypeError('tokenBinding must be a function');
  let origin: string | undefined;
  if (options.origin !== undefined) {
    const parsed = normalizeHtu(options.origin);
    if (parsed === null) throw new TypeError('origin must be an http(s) origin');
    origin = parsed.replace(/\/$/, '');
  }
  const dpop = options.dpop ?? {};
  const resolved: ResolvedOptions = {
    issuer: strings(options.issuer, 'issuer'),
    audience: strings(options.audience, 'audience'),
    algorithms: algorithmList(options.algorithms, 'algorithms'),
    clockTolerance: seconds(options.clockTolerance, 'clockTolerance', 30, 300),
    typ: options.typ,
    methods: [...methods],
    requireBinding: options.requireBinding ?? true,
    dpopAlgorithms: algorithmList(dpop.algorithms, 'dpop.algorithms'),
    maxAge: seconds(dpop.maxAge, 'dpop.maxAge', 60, 600, 1),
    dpopClockTolerance: seconds(dpop.clockTolerance, 'dpop.clockTolerance', 5, 60),
  };
  if (resolved.typ !== undefined && (typeof resolved.typ !== 'string' || resolved.typ === '')) throw new TypeError('typ must be a non-empty string');
  const replayCache: DpopReplayCache = dpop.replayCache ?? new MemoryDpopReplayCache(dpop.replayCacheSize);
  if (typeof replayCache.remember !== 'function') throw new TypeError('dpop.replayCache must implement remember()');
  const nonces = dpop.nonce === true ? new DpopNonces() : dpop.nonce instanceof DpopNonces ? dpop.nonce : undefined;
  if (dpop.nonce !== undefined && dpop.nonce !== false && nonces === undefined) throw new TypeError('dpop.nonce must be a boolean or a DpopNonces');
  const keyCache = createDpopKeyCache();
  const getKey = keyResolver(options.jwks, options.jwksOptions);
  const clientCertificate = options.clientCertificate ?? peerCertificate;
  const tokenBindingOf = options.tokenBinding ?? ((req: AccessTokenRequest) => req.tokenBinding);
  const jwtOptions = {
    issuer: resolved.issuer,
    audience: resolved.audience,
    algorithms: resolved.algorithms,
    clockTolerance: resolved.clockTolerance,
    requiredClaims: ['exp'],
    ...(resolved.typ === undefined ? {} : { typ: resolved.typ }),
  };
  const supportsDpop = resolved.methods.includes('jkt');
  const algs = `algs=${quoted(resolved.dpopAlgorithms.join(' '))}`;

  async function check(req: AccessTokenRequest): Promise<VerifiedAccessToken> {
    const presented = presentedToken(req.headers, req.rawHeaders ?? []);
    if (presented === null) throw new TokenBindingError('ERR_TB_TOKEN_MISSING', undefined, { field: 'Authorization' });
    const { scheme, token } = presented;
    let payload: JWTPayload;
    let header: ProtectedHeaderParameters;
    try {
      ({ payload, protectedHeader: header } = await jwtVerify(token, getKey, jwtOptions));
    } catch (err) {
      if (err instanceof joseErrors.JWKSTimeout || !(err instanceof joseErrors.JOSEError) || err.code === 'ERR_JOSE_GENERIC') {
        throw new TokenBindingError('ERR_TB_JWKS_UNAVAILABLE', undefined, { field: 'jwks', scheme });
      }
      const claim = err instanceof joseErrors.JWTClaimValidationFailed ? err.claim : undefined;
      throw new TokenBindingError('ERR_TB_TOKEN_INVALID', undefined, { field: claim === undefined ? 'token' : claim, reason: err.code, scheme });
    }
    let method: ConfirmationMethod | null;
    try {
      method = confirmationMethod(payload, resolved.methods);
    } catch (err) {
      throw withFacts(err, { scheme, method: null });
    }
    const answerScheme = method === 'jkt' ? 'DPoP' : scheme;
    const fail = (code: TokenBindingErrorCode, field: string): TokenBindingError =>
      new TokenBindingError(code, undefined, { field, scheme: answerScheme, method });
    if (method === null) {
      if (resolved.requireBinding || scheme === 'DPoP') throw fail('ERR_TB_TOKEN_UNBOUND', 'cnf');
      return { token, payload, header, method, scheme };
    }
    const expected = (payload.cnf as Record<string, string>)[method]!;
    if (method !== 'jkt' && scheme === 'DPoP') throw fail('ERR_TB_TOKEN_REQUEST_INVALID', 'Authorization');
    try {
      switch (method) {
        case 'tbh':
          checkConfirmation('tbh', expected, tokenBindingOf(req)?.provided.hash ?? null);
          return { token, payload, header, method, scheme };
        case 'x5t#S256': {
          const der = clientCertificate(req);
          checkConfirmation('x5t#S256', expected, der instanceof Uint8Array && der.length > 0 ? certificateThumbprint(der) : null);
          return { token, payload, header, method, scheme };
        }
        case 'jkt': {
          // RFC 9449 §7.2: a DPoP-bound token as a bearer token is refused (the thief has no key).
          if (scheme !== 'DPoP') throw fail('ERR_TB_CNF_MISSING', 'Authorization');
          const proof = req.headers.dpop;
          const counts = headerCounts(req.rawHeaders ?? []);
          if (typeof proof !== 'string' || proof === '' || counts.dpop !== 1) {
            throw new TokenBindingError('ERR_TB_DPOP_INVALID', 'invalid DPoP proof: exactly one DPoP header required', { field: 'DPoP', scheme: 'DPoP' });
          }
          const path = (req.originalUrl ?? req.url ?? '/').split(/[?#]/, 1)[0]!;
          const htu = normalizeHtu((origin ?? requestOrigin(req)) + (path.startsWith('/') ? path : `/${path}`));
          if (htu === null) throw new TokenBindingError('ERR_TB_DPOP_INVALID', 'invalid DPoP proof: request URI', { field: 'htu', scheme: 'DPoP' });
          await verifyDpopProof(
            proof,
            {
              method: req.method ?? 'GET',
              htu,
              accessToken: token,
              algorithms: resolved.dpopAlgorithms,
              maxAge: resolved.maxAge,
              clockTolerance: resolved.dpopClockTolerance,
              replayCache,
              nonces,
              keyCache,
            },
            expected,
          );
          return nonces === undefined
            ? { token, payload, header, method, scheme }
            : { token, payload, header, method, scheme, dpopNonce: nonces.current() };
        }
      }
    } catch (err) {
      throw withFacts(err, { scheme: answerScheme, method });
    }
  }

  function challenge(error: TokenBindingError): AccessTokenChallenge {
    if (!(error instanceof TokenBindingError)) throw new TypeError('error must be a TokenBindingError');
    const cause = (error.cause ?? {}) as { scheme?: unknown };
    const dpopAnswer = cause.scheme === 'DPoP';
    const scheme = (errorCode: string): string =>
      dpopAnswer ? `DPoP error="${errorCode}", ${algs}` : `Bearer error="${errorCode}"`;
    switch (error.code) {
      case 'ERR_TB_TOKEN_MISSING':
        return { status: 401, headers: { 'www-authenticate': supportsDpop ? `Bearer, DPoP ${algs}` : 'Bearer' } };
      case 'ERR_TB_TOKEN_REQUEST_INVALID':
        return { status: 400, headers: { 'www-authenticate': scheme('invalid_request') } };
      case 'ERR_TB_DPOP_INVALID':
      case 'ERR_TB_DPOP_REPLAYED':
        return { status: 401, headers: { 'www-authenticate': `DPoP error="invalid_dpop_proof", ${algs}` } };
      case 'ERR_TB_DPOP_NONCE':
        return {
          status: 401,
          headers: { 'www-authenticate': `DPoP error="use_dpop_nonce", ${algs}`, ...(nonces === undefined ? {} : { 'dpop-nonce': nonces.current() }) },
        };
      case 'ERR_TB_DPOP_REPLAY_CACHE_FULL': {
        const now = Math.floor(Date.now() / 1000);
        const after = replayCache instanceof MemoryDpopReplayCache ? replayCache.retryAfter(now) : 1;
        return { status: 503, headers: { 'retry-after': String(after) } };
      }
      case 'ERR_TB_JWKS_UNAVAILABLE':
        return { status: 503, headers: { 'retry-after': '5' } };
      default:
        return { status: 401, headers: { 'www-authenticate': scheme('invalid_token') } };
    }
  }

  return {
    options: resolved,
    challenge,
    async verify(req) {
      try {
        const result = await check(req);
        publish('accepted', result.method, undefined, false);
        return result;
      } catch (err) {
        if (err instanceof TokenBindingError && err.code !== 'ERR_TB_TOKEN_MISSING') {
          const method = ((err.cause as { method?: ConfirmationMethod | null } | undefined)?.method ?? null) as ConfirmationMethod | null;
          publish('rejected', method, err.code, STOLEN.has(err.code));
        }
        throw err;
      }
    },
  };
}

/** The RFC 9457 problem body of a refused access token (from the code alone, never the cause). */
export function accessTokenProblem(error: TokenBindingError, status: number): { type: string; title: string; status: number; detail: string; code: TokenBindingErrorCode } {
  return {
    type: `urn:tokbind:error:${error.code}`,
    title: status === 503 ? 'Service unavailable' : status === 400 ? 'Invalid request' : 'Unauthorized',
    status,
    detail: TokenBindingErrorCodes[error.code],
    code: error.code,
  };
}
