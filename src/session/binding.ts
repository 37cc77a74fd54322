/**
 * The framework-free core of tokbind/session: what a session binding is, how one is checked
 * against a request under a policy, and what is published when it is.
 *
 * A session is bound by storing a binding record in its data under {@link SESSION_BINDING_KEY}:
 * `{ method: 'token-binding', tbh, boundAt }` for Token Binding (RFC 8471 §1, RFC 8473 §1: the
 * server keeps the hash of the provided Token Binding ID the session was created under). The
 * record names its method so that other methods (DBSC, issue 16) plug in beside it: each is a
 * {@link SessionBindingMethod} that judges its own records against the request.
 *
 * The framework glue (express-session, @fastify/session) lives in ./express.ts and ./fastify.ts;
 * both call {@link checkSessionBinding} on every request and {@link createTokenBindingSessionBinding}
 * on login.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import { TokenBindingError, type TokenBindingErrorCode } from '../errors.js';
import { recordSessionOutcome } from '../http/metrics.js';
import type { TokenBindingResult } from '../http/result.js';

/** The session data key tokbind stores the binding record under. */
export const SESSION_BINDING_KEY = 'tokbind';

/** The diagnostics channel tokbind/session publishes on (see {@link SessionEvent}). */
export const SESSION_CHANNEL_NAME = 'tokbind:session';

/** The binding methods a session can be bound by. */
export type SessionBindingMethodName = 'token-binding' | 'dbsc';

/**
 * Any binding record: `method` names the {@link SessionBindingMethod} that judges it. Records are
 * plain JSON (every session store serializes them); a method adds its own fields.
 */
export interface SessionBindingRecord {
  readonly method: SessionBindingMethodName;
  /** When the session was bound (ms since the epoch). Informational; not checked. */
  readonly boundAt: number;
  readonly [field: string]: unknown;
}

/** A session bound to a Token Binding ID: what tokbind stores in the session data. */
export interface TokenBindingSessionBinding extends SessionBindingRecord {
  readonly method: 'token-binding';
  /** base64url(SHA-256(provided TokenBindingID)): `req.tokenBinding.provided.hash` at login. */
  readonly tbh: string;
}

/** `optional`: unbound sessions are allowed, a bound one must match. `required`: every authenticated session must be bound. */
export type SessionPolicy = 'optional' | 'required';

/** What happens to a bound session presented with a wrong, missing or expired binding. */
export type SessionMismatchAction = 'destroy' | 'reject';

/** Why a session check refused a request. */
export type SessionRefusalReason = 'mismatch' | 'missing-binding' | 'unbound' | 'expired';

/**
 * A method's judgement of its own record against a request. `unbound`: the binding is still
 * being established (a DBSC browser that registered a moment ago and has not received its bound
 * cookie yet): the ladder treats the session as unbound (accepted under `optional`, refused 401
 * and kept under `required`), never as a theft signal.
 */
export type SessionBindingVerdict = 'match' | 'mismatch' | 'missing-binding' | 'expired' | 'unbound';

/** What a binding method sees of the request. */
export interface SessionBindingRequest {
  /** The request's verified Token Binding (`req.tokenBinding`): null when it carried none. */
  readonly tokenBinding: TokenBindingResult | null;
  /** The Node request (headers, cookies: what another method needs). */
  readonly raw: IncomingMessage | Http2ServerRequest;
}

/**
 * A way of binding sessions. tokbind ships {@link tokenBindingSessionMethod}; another method (DBSC)
 * is one more object of this shape, passed in `methods`. `check` must be synchronous and cheap: it
 * runs on every request of a bound session. It must fail closed: a record it cannot read is a
 * `mismatch`.
 */
export interface SessionBindingMethod {
  readonly method: SessionBindingMethodName;
  check(binding: SessionBindingRecord, request: SessionBindingRequest): SessionBindingVerdict;
}

/** Options of the session-binding middleware (express-session) and plugin (@fastify/session). */
export interface SessionBindingOptions {
  /** Default `required`: every authenticated session must be bound. */
  readonly policy?: SessionPolicy;
  /** Default `destroy`: a bound session presented with a wrong or missing binding is destroyed in the store. */
  readonly onMismatch?: SessionMismatchAction;
  /**
   * Which sessions `required` applies to. Default: a session holding any data besides `cookie`
   * and tokbind's record (so an untouched session, such as express-session's uninitialized one,
   * is not "authenticated"). Pass e.g. `(s) => s.user !== undefined` to let anonymous sessions
   * with data of their own (a cart) through unbound.
   */
  readonly isAuthenticated?: (session: Readonly<Record<string, unknown>>) => boolean;
  /** The binding methods records may name. Default: `[tokenBindingSessionMethod]`. */
  readonly methods?: readonly SessionBindingMethod[];
}

/** {@link SessionBindingOptions} checked, with defaults. */
export interface ResolvedSessionBindingOptions {
  readonly policy: SessionPolicy;
  readonly onMismatch: SessionMismatchAction;
  readonly isAuthenticated: (session: Readonly<Record<string, unknown>>) => boolean;
  readonly methods: ReadonlyMap<string, SessionBindingMethod>;
}

/** What a `tokbind:session` subscriber receives. */
export interface SessionEvent {
  readonly outcome: 'bound' | 'accepted' | 'rejected';
  /** The method the session is bound by; null for an unbound session (or a record naming no known method). */
  readonly method: SessionBindingMethodName | null;
  /** Only when `outcome` is `rejected`. `mismatch` and `missing-binding` are stolen-credential signals. */
  readonly reason?: SessionRefusalReason;
  /** Only when `outcome` is `rejected`: whether the session was destroyed in the store, or only refused. */
  readonly action?: 'destroyed' | 'rejected';
}

/** A refused session check: what to answer, and whether to destroy the session. */
export interface SessionRefusal {
  readonly reason: SessionRefusalReason;
  readonly method: SessionBindingMethodName | null;
  /** 401 (missing or expired binding, unbound) or 403 (another client's session). */
  readonly status: 401 | 403;
  readonly error: TokenBindingError;
  /** True when the session is to be destroyed in the store (`onMismatch: 'destroy'`, never for `unbound`). */
  readonly destroy: boolean;
}

const sessionChannel = diagnosticsChannel.channel(SESSION_CHANNEL_NAME);

const REFUSALS: Record<SessionRefusalReason, { readonly code: TokenBindingErrorCode; readonly status: 401 | 403 }> = {
  mismatch: { code: 'ERR_TB_SESSION_BINDING_MISMATCH', status: 403 },
  'missing-binding': { code: 'ERR_TB_SESSION_BINDING_MISSING', status: 401 },
  expired: { code: 'ERR_TB_SESSION_BINDING_EXPIRED', status: 401 },
  unbound: { code: 'ERR_TB_SESSION_UNBOUND', status: 401 },
};

/** The HTTP status tokbind/session answers an error of this code with (401, or 403 for a mismatch). */
export function sessionErrorStatus(code: TokenBindingErrorCode): 401 | 403 {
  return code === 'ERR_TB_SESSION_BINDING_MISMATCH' ? 403 : 401;
}

/**
 * Token Binding as a session binding method: the record's `tbh` must equal the hash of the
 * request's provided Token Binding ID (RFC 8471 §4.2: the ID the client uses with this server).
 * A request without a verified Token Binding is `missing-binding`; a record whose `tbh` is not a
 * base64url SHA-256 is a `mismatch` (fail closed).
 */
export const tokenBindingSessionMethod: SessionBindingMethod = Object.freeze({
  method: 'token-binding' as const,
  check(binding: SessionBindingRecord, request: SessionBindingRequest): SessionBindingVerdict {
    const tbh = binding['tbh'];
    // No format check needed: only a verified ID's hash (43 base64url characters) can equal it.
    if (typeof tbh !== 'string' || tbh.length === 0) return 'mismatch';
    if (request.tokenBinding === null) return 'missing-binding';
    // A plain comparison: `tbh` is the hash of a public key, not a secret, and matching it is
    // worth nothing without the private key whose signature the server verified on this
    // connection (a constant-time compare here cost ~1 µs per request for no protection).
    return request.tokenBinding.provided.hash === tbh ? 'match' : 'mismatch';
  },
});

function hasAppData(session: Readonly<Record<string, unknown>>): boolean {
  for (const key of Object.keys(session)) if (key !== 'cookie' && key !== SESSION_BINDING_KEY) return true;
  return false;
}

/**
 * Checks and completes {@link SessionBindingOptions}.
 *
 * @throws {TypeError} for an unknown policy or action, a non-function predicate, or a method list
 *   that is empty, malformed or names a method twice
 */
export function resolveSessionBindingOptions(options: SessionBindingOptions = {}): ResolvedSessionBindingOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('session binding options must be an object');
  const { policy = 'required', onMismatch = 'destroy', isAuthenticated = hasAppData, methods = [tokenBindingSessionMethod] } = options;
  if (policy !== 'optional' && policy !== 'required') throw new TypeError(`policy must be 'optional' or 'required', got ${JSON.stringify(policy)}`);
  if (onMismatch !== 'destroy' && onMismatch !== 'reject') {
    throw new TypeError(`onMismatch must be 'destroy' or 'reject', got ${JSON.stringify(onMismatch)}`);
  }
  if (typeof isAuthenticated !== 'function') throw new TypeError('isAuthenticated must be a function');
  if (!Array.isArray(methods) || methods.length === 0) throw new TypeError('methods must be a non-empty array');
  const byName = new Map<string, SessionBindingMethod>();
  for (const m of methods as readonly SessionBindingMethod[]) {
    if (m === null || typeof m !== 'object' || typeof m.method !== 'string' || typeof m.check !== 'function') {
      throw new TypeError('each method must be { method, check }');
    }
    if (byName.has(m.method)) throw new TypeError(`method ${JSON.stringify(m.method)} given twice`);
    byName.set(m.method, m);
  }
  return { policy, onMismatch, isAuthenticated, methods: byName };
}

/** The binding record stored in `session`, or null when it is unbound (or the value is not a record). */
export function readSessionBinding(session: Readonly<Record<string, unknown>> | null | undefined): SessionBindingRecord | null {
  const record = session?.[SESSION_BINDING_KEY];
  if (record === null || typeof record !== 'object' || typeof (record as { method?: unknown }).method !== 'string') return null;
  return record as SessionBindingRecord;
}

/**
 * The record that binds a session to the request's provided Token Binding ID.
 *
 * @throws {TokenBindingError} `ERR_TB_SESSION_BINDING_MISSING` when the request carries no verified Token Binding
 */
export function createTokenBindingSessionBinding(tokenBinding: TokenBindingResult | null | undefined): TokenBindingSessionBinding {
  if (tokenBinding === null || tokenBinding === undefined) {
    throw new TokenBindingError('ERR_TB_SESSION_BINDING_MISSING', undefined, { field: 'Sec-Token-Binding', expected: 'a verified Token Binding' });
  }
  return { method: 'token-binding', tbh: tokenBinding.provided.hash, boundAt: Date.now() };
}

/** Publishes a `tokbind:session` event (only built when someone listens) and counts it. */
export function publishSessionEvent(
  outcome: SessionEvent['outcome'],
  method: SessionBindingMethodName | null,
  reason?: SessionRefusalReason,
  action?: 'destroyed' | 'rejected',
): void {
  recordSessionOutcome(outcome, reason);
  if (!sessionChannel.hasSubscribers) return;
  const event: { -readonly [K in keyof SessionEvent]: SessionEvent[K] } = { outcome, method };
  if (reason !== undefined) event.reason = reason;
  if (action !== undefined) event.action = action;
  sessionChannel.publish(event);
}

function refusal(reason: SessionRefusalReason, method: SessionBindingMethodName | null, options: ResolvedSessionBindingOptions): SessionRefusal {
  const { code, status } = REFUSALS[reason];
  const destroy = reason !== 'unbound' && options.onMismatch === 'destroy';
  return { reason, method, status, destroy, error: new TokenBindingError(code, undefined, { field: 'session', reason }) };
}

function checkUnbound(session: Readonly<Record<string, unknown>>, options: ResolvedSessionBindingOptions): SessionRefusal | null {
  if (!options.isAuthenticated(session)) return null;
  if (options.policy === 'required') return refusal('unbound', null, options);
  publishSessionEvent('accepted', null);
  return null;
}

/**
 * The policy ladder, on one request:
 *
 * | session                      | `optional` | `required`          |
 * | ---------------------------- | ---------- | ------------------- |
 * | bound, binding matches       | accepted   | accepted            |
 * | bound, other / no / expired binding | refused (403 / 401 / 401) | refused (403 / 401 / 401) |
 * | unbound, authenticated       | accepted   | refused 401 `unbound` |
 * | unbound, not authenticated   | passes     | passes              |
 *
 * Returns null when the request may go on (an `accepted` event is published for a bound or
 * authenticated session; nothing for an anonymous one), or the refusal. The caller acts on it
 * (destroys the session when `destroy`, answers `status`) and then calls
 * {@link publishSessionEvent} with `rejected`. A record naming a method not in `methods` is
 * refused as a `mismatch` (fail closed).
 *
 * @example
 * ```ts
 * const refused = checkSessionBinding(req.session, { tokenBinding: req.tokenBinding, raw: req }, resolved)
 * ```
 */
export function checkSessionBinding(
  session: Readonly<Record<string, unknown>>,
  request: SessionBindingRequest,
  options: ResolvedSessionBindingOptions,
): SessionRefusal | null {
  const record = readSessionBinding(session);
  if (record === null) {
    if (session[SESSION_BINDING_KEY] !== undefined) return refusal('mismatch', null, options);
    return checkUnbound(session, options);
  }
  const method = options.methods.get(record.method);
  if (method === undefined) return refusal('mismatch', null, options);
  const verdict = method.check(record, request);
  if (verdict === 'unbound') return checkUnbound(session, options);
  if (verdict === 'match') {
    publishSessionEvent('accepted', method.method);
    return null;
  }
  return refusal(verdict, method.method, options);
}
