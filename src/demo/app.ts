/**
 * The demo's web app: a login that sets a session cookie bound to the client's Token Binding ID,
 * the recipe of the Token Binding literature (RFC 8471 §1, RFC 8473 §1): the server keeps, with
 * each session, the hash of the provided Token Binding ID it was created under, and honours the
 * cookie only on requests whose provided ID hashes the same. A stolen cookie is then worthless
 * without the private key it is bound to.
 *
 * Mount it on tokbind's binding-aware server, which has already verified `Sec-Token-Binding`
 * (signature over this connection's EKM) before the app runs.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getTokenBinding } from '../http/server.js';

/** The session cookie's name. */
export const SESSION_COOKIE = 'sid';

/** How the app answers a refused request: a stable `error` code and one line of why. */
export interface DemoAppError {
  readonly error: 'binding_missing' | 'binding_mismatch' | 'not_logged_in' | 'invalid_user' | 'not_found' | 'method_not_allowed';
  readonly detail: string;
}

interface Session {
  readonly user: string;
  /** `tbh` of the provided Token Binding ID at login: base64url(SHA-256(TokenBindingID)). */
  readonly tbh: string;
}

/** The app: a request handler and its session table (exposed for tests and the curious). */
export interface DemoApp {
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Live sessions: session id → user and the `tbh` the session is bound to. */
  readonly sessions: ReadonlyMap<string, Readonly<Session>>;
}

/** A demo server left running must not grow without bound: the oldest session goes first. */
const MAX_SESSIONS = 1000;
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

function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const pair of (req.headers.cookie ?? '').split(';')) {
    const eq = pair.indexOf('=');
    if (eq > 0 && pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim();
  }
  return undefined;
}

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
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
 * Creates the demo app (RFC 8473 §1's bound cookie):
 *
 * - `POST /login` (`user=alice`, form or JSON) or `GET /login?user=alice`: needs a verified
 *   Token Binding (401 `binding_missing` otherwise); creates a session bound to the provided
 *   ID's `tbh` and sets the `sid` cookie; answers `{"user","tbh"}`.
 * - `GET /profile`: 200 `{"user"}` only when the request's provided Token Binding ID is the one
 *   the session was bound to; 401 `not_logged_in` (no or unknown cookie), 401 `binding_missing`
 *   (the session is bound, the request carries no binding), 403 `binding_mismatch` (another ID).
 * - `GET /whoami`: what the server verified on this request, as `tokbind serve` answers it.
 *
 * @example
 * ```ts
 * const app = createDemoApp()
 * const server = createServer({ key, cert, tokenBinding: { required: false } }, app.handler)
 * server.listen(8443, '127.0.0.1')
 * ```
 */
export function createDemoApp(): DemoApp {
  const sessions = new Map<string, Session>();

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://demo.invalid');
    const binding = getTokenBinding(req);
    switch (url.pathname) {
      case '/login': {
        if (req.method !== 'GET' && req.method !== 'POST') return refuse(res, 405, 'method_not_allowed', 'use POST or GET');
        const user = await loginUser(req, url);
        if (user === null || !USER.test(user)) return refuse(res, 400, 'invalid_user', 'user must be 1-32 of A-Z a-z 0-9 _ . -');
        if (binding === null) return refuse(res, 401, 'binding_missing', 'log in over a Token Binding: the session is bound to it');
        const sid = randomBytes(24).toString('base64url');
        if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
        sessions.set(sid, { user, tbh: binding.provided.hash });
        return send(res, 200, { user, tbh: binding.provided.hash }, {
          'set-cookie': `${SESSION_COOKIE}=${sid}; Path=/; Secure; HttpOnly; SameSite=Strict`,
        });
      }
      case '/profile': {
        if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, 'method_not_allowed', 'use GET');
        const sid = readCookie(req, SESSION_COOKIE);
        const session = sid === undefined ? undefined : sessions.get(sid);
        if (session === undefined) return refuse(res, 401, 'not_logged_in', 'no session: POST /login first');
        if (binding === null) {
          return refuse(res, 401, 'binding_missing', 'the session is bound to a Token Binding ID; the request carries none');
        }
        if (!sameHash(binding.provided.hash, session.tbh)) {
          return refuse(res, 403, 'binding_mismatch', 'the cookie is bound to another Token Binding ID');
        }
        return send(res, 200, { user: session.user });
      }
      case '/whoami':
        if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, 'method_not_allowed', 'use GET');
        return send(res, 200, { tokenBinding: binding });
      default:
        return refuse(res, 404, 'not_found', 'try POST /login, GET /profile, GET /whoami');
    }
  }

  return {
    sessions,
    handler(req, res) {
      route(req, res).catch((err: unknown) => {
        if (!res.headersSent) send(res, 500, { error: 'internal', detail: 'the demo app failed' });
        else res.destroy(err as Error);
      });
    },
  };
}
