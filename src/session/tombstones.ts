/**
 * A destroyed session stays destroyed (in this process).
 *
 * express-session and @fastify/session save a request's session when the request ends: a request
 * of the same session that was already being served when tokbind destroyed it (a refused
 * binding, a failed DBSC proof) would write its copy back into the store, and the session would
 * live on. Measured with Chromium, whose DBSC refresh of a short-lived cookie is often in flight
 * at that moment. So before destroying, tokbind records the session id here and guards the
 * store: `set` and `touch` of a recorded id are dropped (their callback is called without
 * error: saving a destroyed session is a no-op, not a failure of the request that did it).
 *
 * The record is per process: with several processes on one shared store, an in-flight request
 * served by another process can still save its copy (SECURITY.md says so). Ids are kept
 * {@link TOMBSTONE_TTL_MS} (longer than any request is served) and at most
 * {@link MAX_TOMBSTONES} per store, the oldest dropped first.
 */

/** How long a destroyed session's id is remembered: longer than a request lives. */
export const TOMBSTONE_TTL_MS = 15 * 60_000;
/** At most this many ids per store (an id and an expiry time each). */
export const MAX_TOMBSTONES = 10_000;

type Callback = (err?: unknown) => void;
interface GuardableStore {
  set(sid: string, session: unknown, callback?: Callback): unknown;
  touch?(sid: string, session: unknown, callback?: Callback): unknown;
}

const tombstones = new WeakMap<object, Map<string, number>>();

function buried(ids: Map<string, number>, sid: unknown): boolean {
  if (typeof sid !== 'string') return false;
  const until = ids.get(sid);
  if (until === undefined) return false;
  if (until > Date.now()) return true;
  ids.delete(sid);
  return false;
}

function guard(store: GuardableStore, ids: Map<string, number>, method: 'set' | 'touch'): void {
  const original = store[method];
  if (typeof original !== 'function') return;
  const guarded = function (this: unknown, sid: string, session: unknown, callback?: Callback): unknown {
    if (!buried(ids, sid)) return Reflect.apply(original, this, [sid, session, callback]);
    if (typeof callback === 'function') process.nextTick(callback);
    return undefined;
  };
  // An own property that shadows the prototype's method; the store object is otherwise untouched.
  // A store that cannot take one (frozen, sealed) is left unguarded: the destroy itself still
  // happens, only the in-flight save is not stopped.
  try {
    Object.defineProperty(store, method, { value: guarded, writable: true, configurable: true, enumerable: false });
  } catch {
    // not extensible
  }
}

function idsFor(store: GuardableStore): Map<string, number> {
  let ids = tombstones.get(store);
  if (ids === undefined) {
    ids = new Map();
    guard(store, ids, 'set');
    guard(store, ids, 'touch');
    tombstones.set(store, ids);
  }
  return ids;
}

/**
 * The session store a request's session lives in: express-session's `req.sessionStore`,
 * @fastify/session's `request.sessionStore`; undefined for any other session library.
 */
export function storeOf(holder: object): GuardableStore | undefined {
  const store = (holder as { sessionStore?: unknown }).sessionStore;
  if (store === null || typeof store !== 'object') return undefined;
  return typeof (store as { set?: unknown }).set === 'function' ? (store as GuardableStore) : undefined;
}

/** The session's id: express-session's `id`, @fastify/session's `sessionId`. */
export function sessionIdOf(session: object): string | undefined {
  const s = session as { sessionId?: unknown; id?: unknown };
  if (typeof s.sessionId === 'string') return s.sessionId;
  return typeof s.id === 'string' ? s.id : undefined;
}

/**
 * Records that `sid` is being destroyed in `store`: from now on (for {@link TOMBSTONE_TTL_MS})
 * the store drops every `set` and `touch` of it made in this process. Call it BEFORE destroying.
 */
export function bury(store: GuardableStore, sid: string): void {
  const ids = idsFor(store);
  ids.delete(sid);
  ids.set(sid, Date.now() + TOMBSTONE_TTL_MS);
  while (ids.size > MAX_TOMBSTONES) ids.delete(ids.keys().next().value as string);
}
