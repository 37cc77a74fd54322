/**
 * The apps the tokbind/session tests run against: Express + express-session and Fastify +
 * @fastify/session, each with MemoryStore or connect-redis, on tokbind's createServer or on a
 * plain TLS server through the tokbind adapters. Every app has the same routes:
 *
 *   POST /login           bindSession(req), then user = alice        → { sid }
 *   POST /login-unbound   regenerate, user = alice (never bound)     → { sid }
 *   POST /visit           an anonymous session with data of its own  → { sid }
 *   GET  /profile         → { user, binding }   (user null when not logged in)
 *   POST /held            past the binding check, waits for `app.held.release()`, then changes
 *                         the session (visits = 2) → { sid }: a request still in flight
 *
 * and a client helper that speaks to them with tokbind's TokenBindingAgent or without binding.
 */
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import { RedisStore } from 'connect-redis';
import express from 'express';
import session from 'express-session';
import Fastify from 'fastify';
import { createClient } from 'redis';
import { tokenBinding as expressTokenBinding, tokenBindingErrorHandler } from '../../src/adapters/express.js';
import { tokenBinding as fastifyTokenBinding } from '../../src/adapters/fastify.js';
import { isTokenBindingError } from '../../src/errors.js';
import { sendProblem } from '../../src/http/problem.js';
import { createServer } from '../../src/http/server.js';
import { bindSession, fastifySessionBinding, sessionBinding, sessionErrorStatus, type SessionBindingOptions } from '../../src/session/index.js';
import { listen, testCertificate } from '../_tls.js';

export type Framework = 'express' | 'fastify';
export type StoreKind = 'memory' | 'redis';
export type ServerKind = 'tokbind' | 'plain';

export interface AppOptions {
  readonly framework: Framework;
  readonly store: StoreKind;
  readonly server?: ServerKind;
  /** Needed for `store: 'redis'`. */
  readonly redisUrl?: string;
  readonly binding?: SessionBindingOptions;
}

export interface App {
  readonly url: string;
  /** Whether the store holds a session with this id. */
  has(sid: string): Promise<boolean>;
  /** The gate of POST /held (one use). */
  readonly held: Held;
  close(): Promise<void>;
}

interface CallbackStore {
  get(sid: string, callback: (err: unknown, session?: unknown) => void): void;
}

export interface Held {
  /** Resolves when a POST /held request is past the binding check and waiting. */
  readonly arrived: Promise<void>;
  /** Lets it go on: it changes its session and answers (and the session library saves it). */
  release(): void;
}

function heldGate(): Held & { wait(): Promise<void> } {
  let arrive!: () => void;
  let release!: () => void;
  const arrived = new Promise<void>((resolve) => (arrive = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  return { arrived, release, wait: () => (arrive(), released) };
}

const SECRET = 'a test secret that is at least thirty-two characters long';
const { key, cert } = testCertificate;

function storeHas(store: CallbackStore, sid: string): Promise<boolean> {
  return new Promise((resolve, reject) => store.get(sid, (err, found) => (err ? reject(err as Error) : resolve(found !== null && found !== undefined))));
}

async function redisStore(url: string | undefined): Promise<{ store: RedisStore; close: () => Promise<void> }> {
  if (url === undefined) throw new Error('redis store without a redis url');
  const client = createClient({ url });
  await client.connect();
  // One prefix per app: the apps of a test file share one redis-server.
  const store = new RedisStore({ client, prefix: `tokbind-test:${Math.random().toString(36).slice(2)}:` });
  return { store, close: () => client.close() };
}

function refuseLogin(err: unknown): { status: number; send: boolean } {
  return isTokenBindingError(err) ? { status: sessionErrorStatus(err.code), send: true } : { status: 500, send: false };
}

async function expressApp(options: AppOptions): Promise<App> {
  const redis = options.store === 'redis' ? await redisStore(options.redisUrl) : undefined;
  const store = redis?.store ?? new session.MemoryStore();
  const app = express();
  if (options.server === 'plain') app.use(expressTokenBinding());
  app.use(session({ secret: SECRET, store, resave: false, saveUninitialized: false, cookie: { secure: true, httpOnly: true, sameSite: 'strict' } }));
  app.use(sessionBinding(options.binding));
  app.post('/login', async (req, res, next) => {
    try {
      await bindSession(req);
    } catch (err) {
      const { status, send } = refuseLogin(err);
      if (send && isTokenBindingError(err)) return sendProblem(res, err, status);
      return next(err);
    }
    (req.session as unknown as Record<string, unknown>)['user'] = 'alice';
    res.json({ sid: req.sessionID });
  });
  app.post('/login-unbound', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      (req.session as unknown as Record<string, unknown>)['user'] = 'alice';
      res.json({ sid: req.sessionID });
    });
  });
  app.post('/visit', (req, res) => {
    (req.session as unknown as Record<string, unknown>)['visits'] = 1;
    res.json({ sid: req.sessionID });
  });
  const held = heldGate();
  app.post('/held', async (req, res) => {
    await held.wait();
    (req.session as unknown as Record<string, unknown>)['visits'] = 2;
    res.json({ sid: req.sessionID });
  });
  app.get('/profile', (req, res) => {
    const data = req.session as unknown as Record<string, unknown> | undefined;
    res.json({ user: data?.['user'] ?? null, binding: data?.['tokbind'] ?? null });
  });
  app.use(tokenBindingErrorHandler());
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).json({ error: err instanceof Error ? err.name : 'error', message: err instanceof Error ? err.message : String(err) });
  });
  const server = options.server === 'plain' ? https.createServer({ key, cert }, app) : createServer({ key, cert, tokenBinding: {} }, app);
  const listening = await listen(server);
  return {
    url: `https://127.0.0.1:${listening.port}`,
    has: (sid) => storeHas(store as unknown as CallbackStore, sid),
    held,
    close: async () => {
      await listening.close();
      await redis?.close();
    },
  };
}

async function fastifyApp(options: AppOptions): Promise<App> {
  const redis = options.store === 'redis' ? await redisStore(options.redisUrl) : undefined;
  const store = redis?.store ?? new fastifySession.MemoryStore();
  const app =
    options.server === 'plain'
      ? Fastify({ https: { key, cert }, forceCloseConnections: true })
      : Fastify({ serverFactory: (handler) => createServer({ key, cert, tokenBinding: {} }, handler), forceCloseConnections: true });
  if (options.server === 'plain') await app.register(fastifyTokenBinding);
  await app.register(fastifyCookie);
  await app.register(fastifySession, {
    secret: SECRET,
    store: store as unknown as fastifySession.SessionStore,
    saveUninitialized: false,
    cookie: { secure: true, httpOnly: true, sameSite: 'strict' },
  });
  await app.register(fastifySessionBinding, options.binding ?? {});
  app.setErrorHandler((err: Error, _request, reply) => {
    void reply.code(500).send({ error: err.name, message: err.message });
  });
  app.post('/login', async (request, reply) => {
    try {
      await bindSession(request);
    } catch (err) {
      const { status, send } = refuseLogin(err);
      if (!send) throw err;
      return reply.code(status).send({ code: (err as { code: string }).code });
    }
    request.session.set('user' as never, 'alice' as never);
    return { sid: request.session.sessionId };
  });
  app.post('/login-unbound', async (request) => {
    await request.session.regenerate();
    request.session.set('user' as never, 'alice' as never);
    return { sid: request.session.sessionId };
  });
  app.post('/visit', async (request) => {
    request.session.set('visits' as never, 1 as never);
    return { sid: request.session.sessionId };
  });
  const held = heldGate();
  app.post('/held', async (request) => {
    await held.wait();
    request.session.set('visits' as never, 2 as never);
    return { sid: request.session.sessionId };
  });
  app.get('/profile', async (request) => {
    const data = request.session as unknown as Record<string, unknown> | null;
    return { user: data?.['user'] ?? null, binding: data?.['tokbind'] ?? null };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  return {
    url: `https://127.0.0.1:${address.port}`,
    has: (sid) => storeHas(store as unknown as CallbackStore, sid),
    held,
    close: async () => {
      await app.close();
      await redis?.close();
    },
  };
}

export function startApp(options: AppOptions): Promise<App> {
  return options.framework === 'express' ? expressApp(options) : fastifyApp(options);
}

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly json: Record<string, unknown>;
  /** The session cookie the response set (`name=value`), if any. */
  readonly cookie: string | undefined;
}

export interface SendOptions {
  readonly method?: string;
  /** A TokenBindingAgent, or false: no Token Binding, a connection of its own. */
  readonly agent: https.Agent | false;
  readonly cookie?: string | undefined;
}

const COOKIE_NAMES = ['connect.sid', 'sessionId'];

export function send(url: string, options: SendOptions): Promise<Reply> {
  const { method = 'GET', agent, cookie } = options;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-length': '0' };
    if (cookie !== undefined) headers['cookie'] = cookie;
    const req = https.request(url, { method, agent, ca: testCertificate.ca, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          json = { text };
        }
        const set = (res.headers['set-cookie'] ?? []).map((line) => line.split(';', 1)[0]!.trim());
        const session = set.find((pair) => COOKIE_NAMES.some((name) => pair.startsWith(`${name}=`)) && !pair.endsWith('='));
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json, cookie: session });
      });
    });
    req.on('error', reject);
    req.end();
  });
}
