/**
 * The demo's web app: a login that sets a session cookie bound to the client's Token Binding ID,
 * the recipe of the Token Binding literature (RFC 8471 §1, RFC 8473 §1): the server keeps, with
 * each session, the hash of the provided Token Binding ID it was created under, and honours the
 * cookie only on requests whose provided ID hashes the same. A stolen cookie is then worthless
 * without the private key it is bound to.
 *
 * Built on tokbind/session over express-session (as a plain Node handler: no Express needed):
 * `bindSession` on login, the `sessionBinding` middleware (policy `required`, stolen sessions
 * destroyed) on every request. Any express-session store works (MemoryStore by default,
 * connect-redis for `--session-store redis://…`).
 *
 * Mount it on tokbind's binding-aware server, which has already verified `Sec-Token-Binding`
 * (signature over this connection's EKM) before the app runs.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import session, { type Store } from 'express-session';
import { isTokenBindingError } from '../errors.js';
import { sendProblem } from '../http/problem.js';
import { getTokenBinding } from '../http/server.js';
import {
  bindSession,
  deviceBoundSessions,
  readSessionBinding,
  sessionBinding,
  sessionErrorStatus,
  tokenBindingSessionMethod,
  type DeviceBoundSessionOptions,
  type SessionBindingOptions,
} from '../session/index.js';
import { runMiddleware, type Middleware } from './middleware.js';

/** The session cookie's name. */
export const SESSION_COOKIE = 'sid';

/**
 * How the app answers a refused request of its own: a stable `error` code and one line of why.
 * (Refused sessions and logins without a Token Binding are tokbind/session's `application/problem+json`.)
 */
export interface DemoAppError {
  readonly error: 'not_logged_in' | 'invalid_user' | 'not_found' | 'method_not_allowed' | 'internal';
  readonly detail: string;
}

/** Options of {@link createDemoApp}. */
export interface DemoAppOptions {
  /** Where sessions live. Default: a new express-session MemoryStore. */
  readonly store?: Store;
  /** The cookie signing secret. Default: 32 random bytes (cookies do not outlive the process). */
  readonly secret?: string;
  /** Default `{ policy: 'required' }` (stolen sessions destroyed). */
  readonly binding?: SessionBindingOptions;
  /**
   * Offer DBSC (Device Bound Session Credentials) on login to clients without Token Binding
   * (browsers): the session is bound once the browser registers (`tokbind demo --serve --dbsc`).
   * Default: off. Its `secret` defaults to the cookie secret.
   */
  readonly dbsc?: DeviceBoundSessionOptions | boolean;
}

/** The app: a request handler and its session store (exposed for tests and the curious). */
export interface DemoApp {
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** The express-session store: session id → `{ user, tokbind: { method, tbh, boundAt }, cookie }`. */
  readonly store: Store;
}

interface DemoSession {
  user?: string;
}

/** A demo server left running must not keep sessions forever: they expire after half an hour. */
const SESSION_MAX_AGE_MS = 30 * 60 * 1000;
const MAX_BODY_BYTES = 1024;
const USER = /^[A-Za-z0-9_.-]{1,32}$/;

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function refuse(res: ServerResponse, status: number, error: DemoAppError['error'], detail: string): void {
  send(res, status, { error, detail } satisfies DemoAppError);
}

/** `user` from `?user=`, or from a POST body: `user=alice` (form) or `{"user":"alice"}`. */
async function loginUser(req: IncomingMessage, url: URL): Promise<string | null> {
  if (req.method !== 'POST') return url.searchParams.get('user');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks).toString('utf8');
  if ((req.headers['content-type'] ?? '').startsWith('application/json')) {
    try {
      const parsed = JSON.parse(body) as unknown;
      const user = (parsed as { user?: unknown } | null)?.user;
      return typeof user === 'string' ? user : null;
    } catch {
      return null;
    }
  }
  return new URLSearchParams(body).get('user') ?? url.searchParams.get('user');
}

/**
 * Creates the demo app (RFC 8473 §1's bound cookie, through tokbind/session):
 *
 * - `POST /login` (`user=alice`, form or JSON) or `GET /login?user=alice`: needs a verified
 *   Token Binding (401 `ERR_TB_SESSION_BINDING_MISSING` otherwise); `bindSession` gives the
 *   session a new id bound to the provided ID's `tbh` and sets the `sid` cookie; answers
 *   `{"user","tbh"}`.
 * - `GET /profile`: 200 `{"user"}` only when the request's provided Token Binding ID is the one
 *   the session was bound to; 401 `not_logged_in` (no or unknown cookie). A bound session
 *   presented with another ID is answered 403 `ERR_TB_SESSION_BINDING_MISMATCH`, with none 401
 *   `ERR_TB_SESSION_BINDING_MISSING` (problem+json), and destroyed: a stolen cookie is a theft signal.
 * - `GET /whoami`: what the server verified on this request, as `tokbind serve` answers it, and
 *   how the session is bound (`"binding": "token-binding"` or null).
 *
 * @example
 * ```ts
 * const app = createDemoApp()
 * const server = createServer({ key, cert, tokenBinding: { required: false } }, app.handler)
 * server.listen(8443, '127.0.0.1')
 * ```
 */
export function createDemoApp(options: DemoAppOptions = {}): DemoApp {
  const { store = new session.MemoryStore(), secret = randomBytes(32).toString('base64url'), binding = { policy: 'required' } } = options;
  const sessions = session({
    name: SESSION_COOKIE,
    secret,
    store,
    resave: false,
    saveUninitialized: false,
    cookie: { secure: true, httpOnly: true, sameSite: 'strict', path: '/', maxAge: SESSION_MAX_AGE_MS },
  }) as unknown as Middleware;
  const dbsc =
    options.dbsc === undefined || options.dbsc === false
      ? null
      : // Its own key, derived from the cookie secret (never the same MAC key for two purposes).
        deviceBoundSessions({ secret: createHmac('sha256', secret).update('tokbind demo dbsc').digest(), ...(options.dbsc === true ? {} : options.dbsc) });
  const checkBinding = sessionBinding(dbsc === null ? binding : { ...binding, methods: [tokenBindingSessionMethod, dbsc.method] });

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!(await runMiddleware(sessions, req, res))) return;
    // The DBSC endpoints come before the binding check: a refresh arrives when the bound cookie has expired.
    if (dbsc !== null && (await dbsc.handle(req, req, res))) return;
    if (!(await runMiddleware(checkBinding, req, res))) return;
    const data = (req as { session?: DemoSession & Record<string, unknown> }).session;
    const url = new URL(req.url ?? '/', 'https://demo.invalid');
    switch (url.pathname) {
      case '/login': {
        if (req.method !== 'GET' && req.method !== 'POST') return refuse(res, 405, 'method_not_allowed', 'use POST or GET');
        const user = await loginUser(req, url);
        if (user === null || !USER.test(user)) return refuse(res, 400, 'invalid_user', 'user must be 1-32 of A-Z a-z 0-9 _ . -');
        let tbh: string;
        try {
          if (dbsc !== null && getTokenBinding(req) === null) {
            // A browser: no Token Binding; DBSC is offered (Secure-Session-Registration) and binds
            // the session when the browser registers. Until then it is unbound (policy applies).
            await dbsc.bindOrOffer(req, res);
            (req as { session?: DemoSession }).session!.user = user;
            return send(res, 200, { user, tbh: null, dbsc: 'offered' });
          }
          tbh = (await bindSession(req)).tbh as string;
        } catch (err) {
          if (isTokenBindingError(err)) return sendProblem(res, err, sessionErrorStatus(err.code));
          throw err;
        }
        (req as { session?: DemoSession }).session!.user = user;
        return send(res, 200, { user, tbh });
      }
      case '/profile': {
        if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, 'method_not_allowed', 'use GET');
        if (data?.user === undefined) return refuse(res, 401, 'not_logged_in', 'no session: POST /login first');
        return send(res, 200, { user: data.user });
      }
      case '/whoami':
        if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, 'method_not_allowed', 'use GET');
        return send(res, 200, { tokenBinding: getTokenBinding(req), binding: readSessionBinding(data)?.method ?? null });
      default:
        return refuse(res, 404, 'not_found', 'try POST /login, GET /profile, GET /whoami');
    }
  }

  return {
    store,
    handler(req, res) {
      route(req, res).catch((err: unknown) => {
        if (!res.headersSent) send(res, 500, { error: 'internal', detail: 'the demo app failed' });
        else res.destroy(err as Error);
      });
    },
  };
}
