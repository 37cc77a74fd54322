/**
 * The cost of a bound-session check per request: express-session with tokbind/session's
 * `sessionBinding()` after it, against express-session alone, on the same requests for the same
 * stored session (which holds the same binding record on both sides, so both parse the same JSON).
 *
 * Each request is a fresh `IncomingMessage`/`ServerResponse` pair without a socket, carrying the
 * signed session cookie (and, on the candidate, the verified Token Binding a tokbind server would
 * have put on it), run through the middleware chain to a handler that reads the session and ends
 * the response (express-session's `end` hook included). The store is express-session's own Store
 * class over a Map, storing JSON as MemoryStore does, but answering synchronously: MemoryStore
 * defers every callback with setImmediate, which would measure the event loop rather than the
 * middleware, and would not let the synchronous micro-benchmark loop (lib/micro.ts) run it.
 *
 * - `session.check_ns`: nanoseconds the check adds per request (median ops of both sides);
 * - `session.check_ratio`: requests/s with the check over requests/s without (paired rounds),
 *   beside an A/A control (express-session alone against itself).
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import session, { Store, type SessionData } from 'express-session';
import type { TokenBindingResult } from '../src/http/result.js';
import { sessionBinding, SESSION_BINDING_KEY } from '../src/session/index.js';
import type { BenchContext } from './lib/context.js';
import { runIsolated, serveGroups, type Group } from './lib/isolate.js';
import type { MicroCase } from './lib/micro.js';

type Callback = (err?: unknown, value?: unknown) => void;

/** express-session's Store over a Map, JSON in and out like MemoryStore, callbacks synchronous. */
class SyncMapStore extends Store {
  readonly #sessions = new Map<string, string>();

  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    const json = this.#sessions.get(sid);
    callback(null, json === undefined ? null : (JSON.parse(json) as SessionData));
  }

  override set(sid: string, data: SessionData, callback?: Callback): void {
    this.#sessions.set(sid, JSON.stringify(data));
    callback?.();
  }

  override destroy(sid: string, callback?: Callback): void {
    this.#sessions.delete(sid);
    callback?.();
  }
}

type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

const TBH = 'v7wwAmUm-ZT1TOKnKskm7xR3ErFihZyvaRRvzfOxGTA';
const VERDICT: TokenBindingResult = Object.freeze({
  provided: Object.freeze({ id: 'AAIAQQ', hash: TBH, keyParameters: 'ecdsap256' as const, raw: new Uint8Array(0) }),
  referred: null,
  others: Object.freeze([]),
});

function request(socket: Socket, cookie: string | undefined): { req: IncomingMessage; res: ServerResponse } {
  const req = new IncomingMessage(socket);
  req.method = 'GET';
  req.url = '/profile';
  if (cookie !== undefined) req.headers['cookie'] = cookie;
  req.tokenBinding = VERDICT;
  return { req, res: new ServerResponse(req) };
}

function chain(middlewares: readonly Middleware[], req: IncomingMessage, res: ServerResponse, handler: () => void): void {
  let i = 0;
  const next = (err?: unknown): void => {
    if (err !== undefined && err !== null) throw err;
    const m = middlewares[i++];
    if (m === undefined) handler();
    else m(req, res, next);
  };
  next();
}

const group: Group = {
  setup() {
    const store = new SyncMapStore();
    const sessions = session({ secret: 'a bench secret of at least thirty-two chars', store, resave: false, saveUninitialized: false }) as unknown as Middleware;
    const check = sessionBinding({ policy: 'required' });
    const socket = new Socket();

    // Log in once: the session with its user and binding record, and the signed cookie for it.
    const login = request(socket, undefined);
    chain([sessions], login.req, login.res, () => {
      const data = (login.req as unknown as { session: Record<string, unknown> }).session;
      data['user'] = 'alice';
      data[SESSION_BINDING_KEY] = { method: 'token-binding', tbh: TBH, boundAt: Date.now() };
      login.res.end();
    });
    const setCookie = login.res.getHeader('set-cookie');
    const cookie = (Array.isArray(setCookie) ? setCookie[0] : String(setCookie ?? '')).split(';', 1)[0];
    if (cookie === undefined || !cookie.startsWith('connect.sid=')) throw new Error('session bench: express-session set no cookie');

    const perRequest = (name: string, middlewares: readonly Middleware[]): MicroCase => ({
      name,
      run: (n) => {
        let seen = 0;
        let last: ServerResponse | undefined;
        for (let k = 0; k < n; k++) {
          const { req, res } = request(socket, cookie);
          chain(middlewares, req, res, () => {
            if ((req as unknown as { session?: { user?: string } }).session?.user === 'alice') seen++;
            res.end();
          });
          last = res;
        }
        if (seen !== n || last?.statusCode !== 200) throw new Error(`${name}: ${n - seen} of ${n} requests did not reach the handler with the session`);
        return last;
      },
    });

    return {
      cases: [perRequest('express-session', [sessions]), perRequest('bound', [sessions, check]), perRequest('control', [sessions])],
      report(res) {
        const base = res.get('express-session')!.ops;
        const bound = res.get('bound')!;
        const control = res.get('control')!;
        return {
          figures: [
            {
              key: 'session.bound_ops',
              label: 'session.bound_ops (express-session + sessionBinding, per request)',
              unit: 'req/s',
              summary: bound.ops,
              baseline: { key: 'session.express_session_ops', label: 'express-session alone', summary: base },
              ratio: { key: 'session.check_ratio', summary: bound.ratio! },
              control: { key: 'session.control_ratio', summary: control.ratio! },
              target: { on: 'ratio', op: '>=', value: 0.9 },
            },
          ],
          values: { 'session.check_ns': Math.round(1e9 / bound.ops.median - 1e9 / base.median) },
        };
      },
    };
  },
};

export async function benchSession(ctx: BenchContext): Promise<void> {
  await runIsolated(ctx, new URL(import.meta.url), 'bound-session');
}

serveGroups(import.meta.url, { 'bound-session': group });
