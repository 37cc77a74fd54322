/**
 * What the express-session and @fastify/session glue share: finding the session and the verified
 * Token Binding on a request, binding a session on login, and acting on a refused check.
 *
 * Both libraries keep the session at `req.session` / `request.session` with the data as own
 * properties, and both offer `regenerate(callback)` and `destroy(callback)` that act on the
 * store and replace (or remove) `session` on the same object: one code path serves both.
 */
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { TokenBindingResult } from '../http/result.js';
import {
  SESSION_BINDING_KEY,
  createTokenBindingSessionBinding,
  publishSessionEvent,
  type SessionBindingRecord,
  type SessionRefusal,
} from './binding.js';
import { bury, sessionIdOf, storeOf } from './tombstones.js';

/** The session object of express-session or @fastify/session, as tokbind uses it. */
export interface SessionObject {
  regenerate(callback: (err?: unknown) => void): unknown;
  destroy(callback: (err?: unknown) => void): unknown;
  [key: string]: unknown;
}

/**
 * A request that carries a session: an Express (or plain Node) request after express-session, or
 * a Fastify request after @fastify/session (its Node request is `request.raw`).
 */
export type SessionRequest = IncomingMessage | { readonly raw: IncomingMessage | Http2ServerRequest };

/** Options of {@link bindSession}. */
export interface BindSessionOptions {
  /**
   * The record to store. Default: `{ method: 'token-binding', tbh, boundAt }` for the request's
   * provided Token Binding ID. Another binding method (DBSC) passes its own record.
   */
  readonly binding?: SessionBindingRecord;
  /** Default true: give the session a new id first (no session fixation; the old one is destroyed in the store). */
  readonly regenerate?: boolean;
}

/** The Node request behind a framework request. */
export function rawRequest(req: SessionRequest): IncomingMessage | Http2ServerRequest {
  return 'raw' in req && req.raw !== null && typeof req.raw === 'object' ? req.raw : (req as IncomingMessage);
}

/** The session on `holder`, or null when there is none (no session library ran, or @fastify/session skipped the path). */
export function sessionOf(holder: object): SessionObject | null {
  const session = (holder as { session?: unknown }).session;
  if (session === null || typeof session !== 'object') return null;
  const s = session as Partial<SessionObject>;
  return typeof s.regenerate === 'function' && typeof s.destroy === 'function' ? (session as SessionObject) : null;
}

/**
 * The request's verified Token Binding, as tokbind's server or adapters left it on the Node
 * request (behind `tokbind proxy` too, from its trusted forwarded IDs).
 *
 * @throws {TypeError} when no tokbind verification ran on the request: a route the session glue
 *   protects must be served by tokbind's `createServer`, or sit behind tokbind/express's
 *   `tokenBinding()` / tokbind/fastify's plugin. Failing loudly beats treating it as unbound.
 */
export function requestTokenBinding(raw: IncomingMessage | Http2ServerRequest): TokenBindingResult | null {
  const verdict = raw.tokenBinding;
  if (verdict === undefined) {
    throw new TypeError(
      "tokbind/session: req.tokenBinding is not set: serve with tokbind's createServer, or mount tokbind/express tokenBinding() / register tokbind/fastify before it",
    );
  }
  return verdict;
}

function call(run: (callback: (err?: unknown) => void) => unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    run((err) => (err === undefined || err === null ? resolve() : reject(err as Error)));
  });
}

/**
 * Binds the request's session to its verified Token Binding: on login, one line. Regenerates the
 * session id first (the old session is destroyed in the store: no fixation) — so store the user
 * AFTER it — then stores `{ method: 'token-binding', tbh, boundAt }` under `session.tokbind`,
 * where `tbh` is base64url(SHA-256(provided TokenBindingID)) (RFC 8471 §1, RFC 8473 §1). From then
 * on the session middleware refuses the session on any request whose provided Token Binding ID
 * differs or is missing. Publishes `tokbind:session` `{ outcome: 'bound', method }`.
 *
 * Works with express-session (`req`) and @fastify/session (`request`), any of their stores.
 *
 * @returns the record stored
 * @throws {TokenBindingError} `ERR_TB_SESSION_BINDING_MISSING` when the request has no verified
 *   Token Binding (nothing is changed; answer 401)
 * @throws {TypeError} when the request has no session, or no tokbind verification ran on it
 * @example
 * ```ts
 * app.post('/login', async (req, res) => {
 *   // …check the credentials…
 *   await bindSession(req)
 *   req.session.user = user
 *   res.json({ user })
 * })
 * ```
 */
export async function bindSession(req: SessionRequest, options: BindSessionOptions = {}): Promise<SessionBindingRecord> {
  const { binding, regenerate = true } = options;
  if (sessionOf(req) === null) {
    throw new TypeError('tokbind/session: the request has no session: mount express-session (or register @fastify/session) first');
  }
  const record = binding ?? createTokenBindingSessionBinding(requestTokenBinding(rawRequest(req)));
  if (typeof record.method !== 'string') throw new TypeError('binding must be a record with a method');
  if (regenerate) {
    const old = sessionOf(req)!;
    await call((done) => old.regenerate(done));
  }
  const session = sessionOf(req);
  if (session === null) throw new TypeError('tokbind/session: the session library left no session after regenerate');
  session[SESSION_BINDING_KEY] = record;
  publishSessionEvent('bound', record.method);
  return record;
}

/**
 * Destroys the request's session in its store for good: the id is recorded first (./tombstones.ts),
 * so that a request of the same session still in flight in this process cannot save its copy back
 * when it ends; then `session` is removed from `holder`. Every destroy tokbind does goes through it.
 *
 * @throws what the store's destroy fails with (the session is detached and its id recorded all the same)
 */
export async function destroySession(holder: object, session: SessionObject): Promise<void> {
  const store = storeOf(holder);
  const sid = sessionIdOf(session);
  if (store !== undefined && sid !== undefined) bury(store, sid);
  try {
    await call((done) => session.destroy(done));
  } finally {
    (holder as { session?: unknown }).session = null;
  }
}

/**
 * Acts on a refused check: destroys the session ({@link destroySession}, when `refusal.destroy`)
 * or detaches it from the request, so that the refused request neither saves nor extends it; then
 * publishes the `rejected` event. A store that fails to destroy rejects the promise (the request
 * is refused all the same: the caller answers 500).
 */
export async function enforceRefusal(holder: object, session: SessionObject, refusal: SessionRefusal): Promise<void> {
  if (refusal.destroy) {
    try {
      await destroySession(holder, session);
    } catch (err) {
      publishSessionEvent('rejected', refusal.method, refusal.reason, 'rejected');
      throw err;
    }
    publishSessionEvent('rejected', refusal.method, refusal.reason, 'destroyed');
    return;
  }
  (holder as { session?: unknown }).session = null;
  publishSessionEvent('rejected', refusal.method, refusal.reason, 'rejected');
}

/**
 * Gives the request's session a new id (the old one is destroyed in the store: no fixation)
 * without binding it: what a login that offers DBSC does before the browser registers.
 *
 * @throws {TypeError} when the request has no session
 */
export async function regenerateSession(req: SessionRequest): Promise<SessionObject> {
  const old = sessionOf(req);
  if (old === null) throw new TypeError('tokbind/session: the request has no session: mount express-session (or register @fastify/session) first');
  await call((done) => old.regenerate(done));
  const session = sessionOf(req);
  if (session === null) throw new TypeError('tokbind/session: the session library left no session after regenerate');
  return session;
}
