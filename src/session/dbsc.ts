/**
 * Device Bound Session Credentials (W3C DBSC, w3c/webappsec-dbsc; Chromium's
 * net/device_bound_sessions is the reference client): sessions bound to a key the BROWSER holds,
 * the successor of Token Binding for exactly the stolen-cookie case. One more
 * {@link SessionBindingMethod} beside Token Binding, so the policy ladder, `onMismatch`, the
 * problem answers and the `tokbind:session` events of tokbind/session apply to it unchanged.
 *
 * The protocol, as Chromium 156 speaks it (measured):
 *
 * 1. Login answers `Secure-Session-Registration: (ES256 RS256);path="…";challenge="…"`.
 * 2. The browser makes a key pair and POSTs to `path` with `Secure-Session-Response: <JWT>`:
 *    header `{ alg, typ: "dbsc+jwt", jwk }`, payload `{ jti: <challenge> }`, signed with the new key.
 *    The server verifies it (jose, the embedded public `jwk`), stores the JWK with the session,
 *    sets a short-lived bound cookie and answers the session configuration JSON
 *    (`session_identifier`, `refresh_url`, `scope`, `credentials`, `allowed_refresh_initiators`, `continue`).
 * 3. Before the cookie expires (about 120 s early) the browser POSTs to `refresh_url` with
 *    `Sec-Secure-Session-Id`; the server answers 403 + `Secure-Session-Challenge: "…";id="…"`; the
 *    browser retries with a JWT `{ alg, typ: "dbsc+jwt" }.{ jti }` signed with the session key; the
 *    server verifies it against the STORED key and sets a fresh cookie. A failed proof ends the
 *    session: `{ "session_identifier", "continue": false }`, the session destroyed, a theft signal.
 *
 * What is stored (plain JSON, any express-session / @fastify/session store, Redis included):
 * `session.tokbind = { method: 'dbsc', boundAt, sessionIdentifier, alg, jwk, used, refreshedAt }`
 * — `jwk` the public key only, `used` the challenges already answered that have not expired yet.
 *
 * Challenges and cookies are stateless MACs (HMAC-SHA-256 under the `secret`): a challenge names
 * its purpose and the session it was issued for and expires after `challengeTtlSeconds`; the
 * bound cookie names its expiry. Issuing a challenge writes nothing to the store; answering one
 * records it as used (single-use: Chromium resends an identical JWT for a repeated challenge, so a
 * replay is refused by the record, and by a per-process cache against concurrent replays).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { EmbeddedJWK, importJWK, jwtVerify, type JWK } from 'jose';
import { TokenBindingError, type TokenBindingErrorCode } from '../errors.js';
import { PROBLEM_CONTENT_TYPE, problemDetails } from '../http/problem.js';
import {
  SESSION_BINDING_KEY,
  publishSessionEvent,
  readSessionBinding,
  type SessionBindingMethod,
  type SessionBindingRecord,
  type SessionBindingRequest,
  type SessionBindingVerdict,
} from './binding.js';
import { bindSession, destroySession, rawRequest, regenerateSession, requestTokenBinding, sessionOf, type SessionObject, type SessionRequest } from './bind.js';

/** The algorithms a DBSC key may use (the spec's list; Chromium offers ES256 first). */
export type DbscAlgorithm = 'ES256' | 'RS256';

/** A session bound by DBSC: what tokbind stores in the session data. */
export interface DbscSessionBinding extends SessionBindingRecord {
  readonly method: 'dbsc';
  /** The DBSC `session_identifier` (random, base64url). */
  readonly sessionIdentifier: string;
  readonly alg: DbscAlgorithm;
  /** The browser's public key (public members only). */
  readonly jwk: { readonly kty: string; readonly [member: string]: string };
  /** Challenges already answered (`nonce.expiry`), kept until they expire. */
  readonly used: readonly string[];
  /** When the bound cookie was last issued (ms since the epoch). Informational. */
  readonly refreshedAt: number;
}

/** Options of {@link deviceBoundSessions}. */
export interface DeviceBoundSessionOptions {
  /**
   * Key for the challenge and cookie MACs (≥ 32 bytes). Default: 32 random bytes per process —
   * pass one shared secret when several processes or servers share the session store.
   */
  readonly secret?: string | Uint8Array;
  /** Where the browser registers (POST). Default `/tokbind/dbsc/register`. */
  readonly registrationPath?: string;
  /** Where the browser refreshes (POST). Default `/tokbind/dbsc/refresh`. */
  readonly refreshPath?: string;
  /** The short-lived bound cookie's name. Default `__Host-tokbind-dbsc` (Secure, Path=/, no Domain). */
  readonly cookieName?: string;
  /** The bound cookie's lifetime, seconds. Default 600. Chromium refreshes about 120 s before expiry. */
  readonly cookieTtlSeconds?: number;
  /** How long a challenge may be answered, seconds. Default 120. */
  readonly challengeTtlSeconds?: number;
  /** Algorithms offered and accepted. Default `['ES256', 'RS256']`. */
  readonly algorithms?: readonly DbscAlgorithm[];
  /** Refresh requests (challenge or proof) allowed per session per window. Default `{ max: 10, windowSeconds: 60 }`. */
  readonly refreshLimit?: { readonly max: number; readonly windowSeconds: number };
  /** A failed refresh proof: `destroy` (default) the session in the store, or only `reject` it. The browser is told `continue: false` either way. */
  readonly onFailedProof?: 'destroy' | 'reject';
  /** `allowed_refresh_initiators` of the session configuration. Default `[]`. */
  readonly allowedRefreshInitiators?: readonly string[];
  /**
   * For this long after registration (seconds, default 10), a request WITHOUT the bound cookie is
   * treated as unbound (the policy decides), not as a theft signal: the browser sends requests
   * (a favicon, a redirect) while the registration answer that carries the cookie is on its way.
   * A wrong or expired cookie is never covered.
   */
  readonly registrationGraceSeconds?: number;
  /** The clock (ms since the epoch). Default `Date.now`. For tests. */
  readonly now?: () => number;
}

/** What a proof verification found. */
export interface VerifiedDbscProof {
  readonly alg: DbscAlgorithm;
  /** The public key (registration: the embedded one; refresh: the stored one). */
  readonly jwk: DbscSessionBinding['jwk'];
  /** The challenge answered, as recorded in `used`. */
  readonly challenge: string;
}

/** The session configuration JSON answered on registration and refresh. */
export interface DbscSessionConfig {
  readonly session_identifier: string;
  readonly refresh_url?: string;
  readonly scope?: { readonly include_site: boolean; readonly scope_specification: readonly unknown[] };
  readonly credentials?: readonly { readonly type: 'cookie'; readonly name: string; readonly attributes: string }[];
  readonly allowed_refresh_initiators?: readonly string[];
  readonly continue: boolean;
}

/** DBSC for one application: the binding method, the endpoints, the login offer. */
export interface DeviceBoundSessions {
  /** The binding method to list in `sessionBinding({ methods: [tokenBindingSessionMethod, dbsc.method] })`. */
  readonly method: SessionBindingMethod;
  readonly registrationPath: string;
  readonly refreshPath: string;
  readonly cookieName: string;
  /**
   * Connect/Express middleware answering the registration and refresh endpoints (POST). Mount it
   * after the session library and BEFORE `sessionBinding()`: a refresh arrives precisely when the
   * bound cookie is missing or expired. Other requests pass to `next()`.
   */
  readonly middleware: (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;
  /**
   * Answers a registration or refresh request when `raw`'s path is one of them (the session is on
   * `holder`: the Express request, or a Fastify request). Resolves true when it answered.
   */
  handle(holder: object, raw: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): Promise<boolean>;
  /**
   * The answer to a registration or refresh request (null for other paths), without writing it:
   * for frameworks that send through their own reply (the Fastify plugin).
   */
  answer(holder: object, raw: IncomingMessage | Http2ServerRequest): Promise<DbscAnswer | null>;
  /**
   * Adds `Secure-Session-Registration` to the login response, for the request's (already
   * regenerated) session. Needs the session id: call it after `regenerateSession` / the login's
   * own regeneration.
   *
   * @throws {TypeError} when the request has no session
   */
  offer(req: SessionRequest, res: ServerResponse | Http2ServerResponse): void;
  /**
   * The login for every client: binds the session by Token Binding when the request carries a
   * verified one (`bindSession`), otherwise regenerates the session id and offers DBSC (the
   * session stays unbound, under the policy, until the browser registers). Store the user after it.
   *
   * @returns `'token-binding'` or `'dbsc-offered'`
   * @throws {TypeError} when the request has no session, or no tokbind verification ran on it
   */
  bindOrOffer(req: SessionRequest, res: ServerResponse | Http2ServerResponse): Promise<'token-binding' | 'dbsc-offered'>;
  /** Verifies a registration JWT for the session `sessionId` (unit-level; `handle` does it). */
  verifyRegistration(token: string, sessionId: string): Promise<VerifiedDbscProof>;
  /** Verifies a refresh JWT against a stored record (unit-level; `handle` does it). Does not record the challenge as used. */
  verifyRefresh(token: string, record: DbscSessionBinding): Promise<VerifiedDbscProof>;
  /** A fresh challenge: `register` for the session id `binder`, `refresh` for the DBSC session identifier. */
  issueChallenge(purpose: 'register' | 'refresh', binder: string): string;
  /** The bound cookie value for a record, expiring `cookieTtlSeconds` from now. */
  issueCookie(record: DbscSessionBinding): string;
}

const DEFAULT_ALGORITHMS: readonly DbscAlgorithm[] = ['ES256', 'RS256'];
const COOKIE_ATTRIBUTES = 'Path=/; Secure; HttpOnly; SameSite=Lax';
const MAX_TOKEN_LENGTH = 8192;
const REPLAY_CACHE_MAX = 100_000;
const RATE_TABLE_MAX = 100_000;
const TOKEN_CHARS = /^[A-Za-z0-9_.-]+$/;

function dbscError(code: TokenBindingErrorCode, reason: string): TokenBindingError {
  return new TokenBindingError(code, undefined, { field: 'Secure-Session-Response', reason });
}

function checkPath(name: string, value: string): string {
  if (typeof value !== 'string' || !value.startsWith('/') || /["\\\s;]/.test(value)) throw new TypeError(`${name} must be a path starting with /`);
  return value;
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) throw new TypeError(`${name} must be a positive integer`);
  return value;
}

/** The public members of a JWK the DBSC algorithm allows (EC P-256 for ES256, RSA ≥ 2048 for RS256), or null. */
function publicJwk(jwk: unknown, alg: DbscAlgorithm): DbscSessionBinding['jwk'] | null {
  if (jwk === null || typeof jwk !== 'object') return null;
  const k = jwk as Record<string, unknown>;
  if ('d' in k) return null;
  if (alg === 'ES256') {
    if (k['kty'] !== 'EC' || k['crv'] !== 'P-256' || typeof k['x'] !== 'string' || typeof k['y'] !== 'string') return null;
    return { kty: 'EC', crv: 'P-256', x: k['x'], y: k['y'] };
  }
  if (k['kty'] !== 'RSA' || typeof k['n'] !== 'string' || typeof k['e'] !== 'string') return null;
  if (Buffer.from(k['n'], 'base64url').length < 256) return null;
  return { kty: 'RSA', n: k['n'], e: k['e'] };
}

/** The cookie values named `name` in a Cookie header (a name may appear more than once). */
function cookieValues(header: string | undefined, name: string): string[] {
  if (header === undefined) return [];
  const values: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) values.push(part.slice(eq + 1).trim());
  }
  return values;
}

function isDbscRecord(record: SessionBindingRecord | null): record is DbscSessionBinding {
  if (record === null || record.method !== 'dbsc') return false;
  const r = record as Partial<DbscSessionBinding>;
  return (
    typeof r.sessionIdentifier === 'string' &&
    (r.alg === 'ES256' || r.alg === 'RS256') &&
    r.jwk !== null &&
    typeof r.jwk === 'object' &&
    Array.isArray(r.used)
  );
}

function singleHeader(raw: IncomingMessage | Http2ServerRequest, name: string): string | undefined | null {
  const value = raw.headers[name];
  if (Array.isArray(value)) return null;
  return value;
}

/** What a DBSC endpoint answers, before it is written to a Node response or a Fastify reply. */
export interface DbscAnswer {
  status: number;
  contentType: string;
  body: string;
  /** Headers besides content-type (lower-case names). */
  readonly headers: Record<string, string>;
  /** Set-Cookie lines to append to the ones the session library sets. */
  readonly setCookies: string[];
}

function newAnswer(): DbscAnswer {
  return { status: 500, contentType: 'application/json', body: '', headers: {}, setCookies: [] };
}

function sendJson(a: DbscAnswer, status: number, body: unknown): void {
  a.status = status;
  a.contentType = 'application/json';
  a.body = JSON.stringify(body);
}

function sendProblemAnswer(a: DbscAnswer, error: TokenBindingError, status: number): void {
  a.status = status;
  a.contentType = PROBLEM_CONTENT_TYPE;
  a.body = JSON.stringify(problemDetails(error, status));
}

/** Writes an answer to a Node response (appending to the Set-Cookie lines already there). */
export function writeDbscAnswer(res: ServerResponse | Http2ServerResponse, a: DbscAnswer): void {
  if (a.setCookies.length > 0) {
    const prev = res.getHeader('set-cookie');
    const list = prev === undefined ? [] : Array.isArray(prev) ? prev.map(String) : [String(prev)];
    res.setHeader('set-cookie', [...list, ...a.setCookies]);
  }
  res.statusCode = a.status;
  for (const [k, v] of Object.entries(a.headers)) res.setHeader(k, v);
  res.setHeader('content-type', a.contentType);
  res.setHeader('cache-control', 'no-store');
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('content-length', Buffer.byteLength(a.body));
  (res as ServerResponse).end(a.body);
}

function sessionIdOf(holder: object, session: SessionObject): string | null {
  // express-session: req.sessionID and session.id; @fastify/session: session.sessionId.
  const id = (holder as { sessionID?: unknown }).sessionID ?? session['id'] ?? session['sessionId'];
  return typeof id === 'string' && id.length > 0 ? id : null;
}

/**
 * DBSC for one application: the session binding method, the registration and refresh endpoints
 * and the login offer (see the module comment for the protocol).
 *
 * @throws {TypeError} for invalid options
 * @example
 * ```ts
 * const dbsc = deviceBoundSessions({ secret: process.env.DBSC_SECRET })
 * app.use(session({ secret, resave: false, saveUninitialized: false, cookie: { secure: true } }))
 * app.use(dbsc.middleware)
 * app.use(sessionBinding({ methods: [tokenBindingSessionMethod, dbsc.method] }))
 * app.post('/login', async (req, res) => { await dbsc.bindOrOffer(req, res); req.session.user = 'alice'; res.end() })
 * ```
 */
export function deviceBoundSessions(options: DeviceBoundSessionOptions = {}): DeviceBoundSessions {
  if (options === null || typeof options !== 'object') throw new TypeError('DBSC options must be an object');
  const registrationPath = checkPath('registrationPath', options.registrationPath ?? '/tokbind/dbsc/register');
  const refreshPath = checkPath('refreshPath', options.refreshPath ?? '/tokbind/dbsc/refresh');
  if (registrationPath === refreshPath) throw new TypeError('registrationPath and refreshPath must differ');
  const cookieName = options.cookieName ?? '__Host-tokbind-dbsc';
  if (typeof cookieName !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(cookieName)) throw new TypeError('cookieName must be a cookie name token');
  const cookieTtl = positive('cookieTtlSeconds', options.cookieTtlSeconds ?? 600);
  const challengeTtl = positive('challengeTtlSeconds', options.challengeTtlSeconds ?? 120);
  const algorithms = options.algorithms ?? DEFAULT_ALGORITHMS;
  if (!Array.isArray(algorithms) || algorithms.length === 0 || algorithms.some((a) => a !== 'ES256' && a !== 'RS256')) {
    throw new TypeError("algorithms must be a non-empty list of 'ES256' / 'RS256'");
  }
  const limit = options.refreshLimit ?? { max: 10, windowSeconds: 60 };
  positive('refreshLimit.max', limit.max);
  positive('refreshLimit.windowSeconds', limit.windowSeconds);
  const onFailedProof = options.onFailedProof ?? 'destroy';
  if (onFailedProof !== 'destroy' && onFailedProof !== 'reject') throw new TypeError("onFailedProof must be 'destroy' or 'reject'");
  const initiators = options.allowedRefreshInitiators ?? [];
  if (!Array.isArray(initiators) || initiators.some((i) => typeof i !== 'string')) throw new TypeError('allowedRefreshInitiators must be strings');
  const graceMs = (options.registrationGraceSeconds ?? 10) * 1000;
  if (!Number.isFinite(graceMs) || graceMs < 0) throw new TypeError('registrationGraceSeconds must be a non-negative number');
  const now = options.now ?? Date.now;
  if (typeof now !== 'function') throw new TypeError('now must be a function');
  const secret = options.secret === undefined ? randomBytes(32) : Buffer.from(options.secret);
  if (secret.length < 32) throw new TypeError('secret must be at least 32 bytes');

  const mac = (input: string): string => createHmac('sha256', secret).update(input).digest('base64url');
  const macEqual = (a: string, b: string): boolean => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

  // Challenges answered recently in this process (against two replays racing one store write).
  const answered = new Map<string, number>();
  const rate = new Map<string, { start: number; count: number }>();

  function prune<T>(map: Map<string, T>, max: number, expired: (v: T) => boolean): void {
    if (map.size < max) return;
    for (const [k, v] of map) if (expired(v)) map.delete(k);
    // Still full of live entries: drop the oldest (insertion order) rather than grow without bound.
    for (const k of map.keys()) {
      if (map.size < max) break;
      map.delete(k);
    }
  }

  function issueChallenge(purpose: 'register' | 'refresh', binder: string): string {
    const nonce = randomBytes(18).toString('base64url');
    const expiry = (now() + challengeTtl * 1000).toString(36);
    return `${nonce}.${expiry}.${mac(`challenge|${purpose}|${binder}|${nonce}|${expiry}`)}`;
  }

  /** The challenge's `nonce.expiry` when it is one we issued for this purpose and binder and it has not expired. */
  function checkChallenge(jti: unknown, purpose: 'register' | 'refresh', binder: string): string {
    if (typeof jti !== 'string' || jti.length > 200) throw dbscError('ERR_TB_DBSC_CHALLENGE_INVALID', 'jti');
    const parts = jti.split('.');
    if (parts.length !== 3) throw dbscError('ERR_TB_DBSC_CHALLENGE_INVALID', 'jti');
    const [nonce, expiry, tag] = parts as [string, string, string];
    if (!macEqual(tag, mac(`challenge|${purpose}|${binder}|${nonce}|${expiry}`))) throw dbscError('ERR_TB_DBSC_CHALLENGE_INVALID', 'not issued for this session');
    if (parseInt(expiry, 36) <= now()) throw dbscError('ERR_TB_DBSC_CHALLENGE_INVALID', 'expired');
    const id = `${nonce}.${expiry}`;
    if (answered.has(`${purpose}|${id}`)) throw dbscError('ERR_TB_DBSC_CHALLENGE_INVALID', 'replayed');
    return id;
  }

  function markAnswered(purpose: 'register' | 'refresh', id: string): void {
    const t = now();
    prune(answered, REPLAY_CACHE_MAX, (expiry) => expiry <= t);
    answered.set(`${purpose}|${id}`, parseInt(id.slice(id.indexOf('.') + 1), 36));
  }

  function issueCookie(record: DbscSessionBinding): string {
    const expiry = (now() + cookieTtl * 1000).toString(36);
    return `${expiry}.${mac(`cookie|${record.sessionIdentifier}|${expiry}`)}`;
  }

  function checkToken(token: string | undefined | null): string {
    if (token === undefined) throw dbscError('ERR_TB_DBSC_PROOF_INVALID', 'missing');
    if (token === null) throw dbscError('ERR_TB_DBSC_PROOF_INVALID', 'duplicate');
    if (token.length > MAX_TOKEN_LENGTH || !TOKEN_CHARS.test(token)) throw dbscError('ERR_TB_DBSC_PROOF_INVALID', 'not a compact JWS');
    return token;
  }

  async function verifyRegistration(token: string, sessionId: string): Promise<VerifiedDbscProof> {
    checkToken(token);
    let verified;
    try {
      // EmbeddedJWK: the key is the header's `jwk`, which jose refuses when it is not a public key.
      verified = await jwtVerify(token, EmbeddedJWK, { typ: 'dbsc+jwt', algorithms: [...algorithms] });
    } catch {
      throw dbscError('ERR_TB_DBSC_PROOF_INVALID', 'signature, typ or alg');
    }
    const alg = verified.protectedHeader.alg as DbscAlgorithm;
    const jwk = publicJwk(verified.protectedHeader.jwk, alg);
    if (jwk === null) throw dbscError('ERR_TB_DBSC_PROOF_INVALID', 'jwk');
    const challenge = checkChallenge(verified.payload.jti, 'register', sessionId);
    return { alg, jwk, challenge };
  }

  async function verifyRefresh(token: string, record: DbscSessionBinding): Promise<VerifiedDbscProof> {
    checkToken(token);
    if (!algorithms.includes(record.alg)) throw dbscError('ERR_TB_DBSC_PROOF_INVALID', 'alg');
    let verified;
    try {
      // The STORED key only: a key in the header (a thief's own) is never looked at.
      const key = await importJWK(record.jwk as JWK, record.alg);
      verified = await jwtVerify(token, key, { typ: 'dbsc+jwt', algorithms: [record.alg] });
    } catch {
      throw dbscError('ERR_TB_DBSC_PROOF_INVALID', 'signature, typ or alg');
    }
    const challenge = checkChallenge(verified.payload.jti, 'refresh', record.sessionIdentifier);
    if (record.used.includes(challenge)) throw dbscError('ERR_TB_DBSC_CHALLENGE_INVALID', 'replayed');
    return { alg: record.alg, jwk: record.jwk, challenge };
  }

  function config(record: DbscSessionBinding): DbscSessionConfig {
    return {
      session_identifier: record.sessionIdentifier,
      refresh_url: refreshPath,
      scope: { include_site: false, scope_specification: [] },
      credentials: [{ type: 'cookie', name: cookieName, attributes: COOKIE_ATTRIBUTES }],
      allowed_refresh_initiators: [...initiators],
      continue: true,
    };
  }

  function setBoundCookie(a: DbscAnswer, record: DbscSessionBinding): void {
    a.setCookies.push(`${cookieName}=${issueCookie(record)}; Max-Age=${cookieTtl}; ${COOKIE_ATTRIBUTES}`);
  }

  function stillLive(used: readonly string[]): string[] {
    const t = now();
    return used.filter((u) => typeof u === 'string' && parseInt(u.slice(u.indexOf('.') + 1), 36) > t);
  }

  function refuse(a: DbscAnswer, code: TokenBindingErrorCode, reason: string, status: number): void {
    sendProblemAnswer(a, new TokenBindingError(code, undefined, { field: 'Secure-Session-Response', reason }), status);
  }

  async function register(holder: object, raw: IncomingMessage | Http2ServerRequest, res: DbscAnswer): Promise<void> {
    const session = sessionOf(holder);
    const sessionId = session === null ? null : sessionIdOf(holder, session);
    if (session === null || sessionId === null) return refuse(res, 'ERR_TB_DBSC_SESSION_UNKNOWN', 'no session', 401);
    let proof: VerifiedDbscProof;
    try {
      proof = await verifyRegistration(checkToken(singleHeader(raw, 'secure-session-response')), sessionId);
      // The session is bound already (a registration replayed, or a second one): refused, kept.
      if (readSessionBinding(session) !== null || session[SESSION_BINDING_KEY] !== undefined) {
        throw dbscError('ERR_TB_DBSC_CHALLENGE_INVALID', 'session already bound');
      }
    } catch (err) {
      if (!(err instanceof TokenBindingError)) throw err;
      return refuse(res, err.code, 'registration refused', 400);
    }
    markAnswered('register', proof.challenge);
    const t = now();
    const record: DbscSessionBinding = {
      method: 'dbsc',
      boundAt: t,
      sessionIdentifier: randomBytes(18).toString('base64url'),
      alg: proof.alg,
      jwk: proof.jwk,
      used: [],
      refreshedAt: t,
    };
    // The id was regenerated at login (before the offer); regenerating again here would race the
    // browser's own requests with the old cookie.
    await bindSession(holder as SessionRequest, { binding: record, regenerate: false });
    setBoundCookie(res, record);
    sendJson(res, 200, config(record));
  }

  function overLimit(id: string): boolean {
    const t = now();
    const window = limit.windowSeconds * 1000;
    prune(rate, RATE_TABLE_MAX, (v) => t - v.start >= window);
    const entry = rate.get(id);
    if (entry === undefined || t - entry.start >= window) {
      rate.set(id, { start: t, count: 1 });
      return false;
    }
    entry.count += 1;
    return entry.count > limit.max;
  }

  async function refresh(holder: object, raw: IncomingMessage | Http2ServerRequest, res: DbscAnswer): Promise<void> {
    const id = singleHeader(raw, 'sec-secure-session-id');
    if (typeof id !== 'string' || id.length === 0 || id.length > 200 || !TOKEN_CHARS.test(id)) {
      return refuse(res, 'ERR_TB_DBSC_SESSION_UNKNOWN', 'Sec-Secure-Session-Id', 400);
    }
    const session = sessionOf(holder);
    const record = session === null ? null : readSessionBinding(session);
    if (session === null || !isDbscRecord(record) || record.sessionIdentifier !== id) {
      // Not this server's session (any more): the browser is told to drop it. Not a theft signal
      // on its own (a session that expired, an older DBSC session of a browser that logged in again).
      return sendJson(res, 200, { session_identifier: id, continue: false } satisfies DbscSessionConfig);
    }
    if (overLimit(id)) {
      sendProblemAnswer(res, new TokenBindingError('ERR_TB_DBSC_RATE_LIMITED', undefined, { field: 'Sec-Secure-Session-Id' }), 429);
      return;
    }
    const token = singleHeader(raw, 'secure-session-response');
    if (token === undefined) {
      res.headers['secure-session-challenge'] = `"${issueChallenge('refresh', id)}";id="${id}"`;
      sendJson(res, 403, { challenge: true });
      return;
    }
    let proof: VerifiedDbscProof;
    try {
      proof = await verifyRefresh(checkToken(token), record);
    } catch (err) {
      if (!(err instanceof TokenBindingError)) throw err;
      // A proof that fails against the stored key: whoever sent it holds the cookie, not the key.
      if (onFailedProof === 'destroy') await destroySession(holder, session);
      else (holder as { session?: unknown }).session = null;
      publishSessionEvent('rejected', 'dbsc', 'mismatch', onFailedProof === 'destroy' ? 'destroyed' : 'rejected');
      return sendJson(res, 200, { session_identifier: id, continue: false } satisfies DbscSessionConfig);
    }
    markAnswered('refresh', proof.challenge);
    const t = now();
    const updated: DbscSessionBinding = { ...record, used: [...stillLive(record.used), proof.challenge], refreshedAt: t };
    session[SESSION_BINDING_KEY] = updated;
    publishSessionEvent('accepted', 'dbsc');
    setBoundCookie(res, updated);
    sendJson(res, 200, config(updated));
  }

  async function answer(holder: object, raw: IncomingMessage | Http2ServerRequest): Promise<DbscAnswer | null> {
    const url = raw.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path !== registrationPath && path !== refreshPath) return null;
    const a = newAnswer();
    if (raw.method !== 'POST') {
      a.headers['allow'] = 'POST';
      sendJson(a, 405, { error: 'method_not_allowed' });
      return a;
    }
    if (path === registrationPath) await register(holder, raw, a);
    else await refresh(holder, raw, a);
    return a;
  }

  async function handle(holder: object, raw: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): Promise<boolean> {
    const a = await answer(holder, raw);
    if (a === null) return false;
    writeDbscAnswer(res, a);
    return true;
  }

  const method: SessionBindingMethod = Object.freeze({
    method: 'dbsc' as const,
    check(binding: SessionBindingRecord, request: SessionBindingRequest): SessionBindingVerdict {
      if (!isDbscRecord(binding)) return 'mismatch';
      const values = cookieValues(singleHeader(request.raw, 'cookie') ?? undefined, cookieName);
      if (values.length === 0) return now() - binding.boundAt < graceMs ? 'unbound' : 'missing-binding';
      let expired = false;
      for (const value of values) {
        const dot = value.indexOf('.');
        if (dot === -1) continue;
        const expiry = value.slice(0, dot);
        if (!macEqual(value.slice(dot + 1), mac(`cookie|${binding.sessionIdentifier}|${expiry}`))) continue;
        if (parseInt(expiry, 36) > now()) return 'match';
        expired = true;
      }
      return expired ? 'expired' : 'mismatch';
    },
  });

  function offer(req: SessionRequest, res: ServerResponse | Http2ServerResponse): void {
    const session = sessionOf(req);
    const sessionId = session === null ? null : sessionIdOf(req, session);
    if (session === null || sessionId === null) throw new TypeError('tokbind/session: DBSC needs a session with an id: mount express-session (or register @fastify/session) first');
    const list = algorithms.join(' ');
    res.setHeader('secure-session-registration', `(${list});path="${registrationPath}";challenge="${issueChallenge('register', sessionId)}"`);
  }

  async function bindOrOffer(req: SessionRequest, res: ServerResponse | Http2ServerResponse): Promise<'token-binding' | 'dbsc-offered'> {
    if (requestTokenBinding(rawRequest(req)) !== null) {
      await bindSession(req);
      return 'token-binding';
    }
    await regenerateSession(req);
    offer(req, res);
    return 'dbsc-offered';
  }

  return {
    method,
    registrationPath,
    refreshPath,
    cookieName,
    middleware(req, res, next) {
      handle(req, req, res).then(
        (answered) => {
          if (!answered) next();
        },
        (err: unknown) => next(err),
      );
    },
    handle,
    answer,
    offer,
    bindOrOffer,
    verifyRegistration,
    verifyRefresh,
    issueChallenge,
    issueCookie,
  };
}
