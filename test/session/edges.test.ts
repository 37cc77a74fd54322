/**
 * tokbind/session at its edges: another binding method's record stored through bindSession and
 * judged by the glue, a store that fails to destroy, misconfigured plugins and routes.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import https from 'node:https';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import test from 'ava';
import express from 'express';
import session from 'express-session';
import Fastify from 'fastify';
import { TokenBindingAgent } from '../../src/client/agent.js';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { createServer } from '../../src/http/server.js';
import {
  SESSION_CHANNEL_NAME,
  bindSession,
  fastifySessionBinding,
  sessionBinding,
  tokenBindingSessionMethod,
  type SessionBindingMethod,
  type SessionEvent,
} from '../../src/session/index.js';
import { listen, testCertificate } from '../_tls.js';
import { send } from './_apps.js';

const { key, cert } = testCertificate;
const SECRET = 'a test secret that is at least thirty-two characters long';

/** A second method as DBSC will plug in: its record holds a key; the request proves it with a header. */
const headerMethod: SessionBindingMethod = {
  method: 'dbsc',
  check(binding, request) {
    const proof = request.raw.headers['x-proof'];
    if (proof === undefined) return 'missing-binding';
    return proof === binding['key'] ? 'match' : proof === 'old' ? 'expired' : 'mismatch';
  },
};

test.serial('express: bindSession stores another method\'s record (without regenerating); the glue judges it with that method', async (t) => {
  const app = express();
  app.use(session({ secret: SECRET, resave: false, saveUninitialized: false, cookie: { secure: true } }));
  app.use(sessionBinding({ methods: [tokenBindingSessionMethod, headerMethod] }));
  app.post('/start', (req, res) => {
    (req.session as unknown as Record<string, unknown>)['user'] = 'alice';
    res.json({ sid: req.sessionID });
  });
  app.post('/register', async (req, res) => {
    const record = await bindSession(req, { binding: { method: 'dbsc', key: 'k1', boundAt: Date.now() }, regenerate: false });
    res.json({ sid: req.sessionID, record });
  });
  app.get('/profile', (req, res) => void res.json({ user: (req.session as unknown as Record<string, unknown>)['user'] ?? null }));
  const listening = await listen(createServer({ key, cert, tokenBinding: {} }, app));
  t.teardown(() => listening.close());
  const url = `https://127.0.0.1:${listening.port}`;
  const events: SessionEvent[] = [];
  const onMessage = (m: unknown): void => void events.push(m as SessionEvent);
  diagnosticsChannel.subscribe(SESSION_CHANNEL_NAME, onMessage);
  t.teardown(() => diagnosticsChannel.unsubscribe(SESSION_CHANNEL_NAME, onMessage));

  const start = await send(`${url}/start`, { method: 'POST', agent: false });
  // Under `required` an authenticated unbound session is refused until it is bound.
  t.is((await send(`${url}/register`, { method: 'POST', agent: false, cookie: start.cookie })).status, 401);
  const unboundStart = await send(`${url}/register`, { method: 'POST', agent: false });
  t.is(unboundStart.status, 200);
  t.deepEqual((unboundStart.json['record'] as Record<string, unknown>)['method'], 'dbsc');
  const cookie = unboundStart.cookie;
  const get = (proof: string | undefined) =>
    new Promise<number>((resolve, reject) => {
      const headers: Record<string, string> = { cookie: cookie! };
      if (proof !== undefined) headers['x-proof'] = proof;
      https.get(`${url}/profile`, { ca: testCertificate.ca, agent: false, headers }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      }).on('error', reject);
    });
  t.is(await get('k1'), 200);
  t.is(await get('old'), 401);
  t.is(await get('k1'), 200, 'the destroyed session is gone: the cookie now opens a fresh, anonymous one');
  t.deepEqual(
    events.map((e) => [e.outcome, e.method, e.reason, e.action]),
    [
      ['rejected', null, 'unbound', 'rejected'],
      ['bound', 'dbsc', undefined, undefined],
      ['accepted', 'dbsc', undefined, undefined],
      ['rejected', 'dbsc', 'expired', 'destroyed'],
    ],
  );
});

test('express: a store that fails to destroy a stolen session: the request is refused with 500, the event says not destroyed', async (t) => {
  class FailingStore extends session.MemoryStore {
    override destroy(_sid: string, callback?: (err?: unknown) => void): void {
      callback?.(new Error('store down'));
    }
  }
  const store = new FailingStore();
  const app = express();
  app.use(session({ secret: SECRET, store, resave: false, saveUninitialized: false, cookie: { secure: true } }));
  app.use(sessionBinding());
  app.post('/login', async (req, res) => {
    (req.session as unknown as Record<string, unknown>)['tokbind'] = { method: 'token-binding', tbh: req.tokenBinding!.provided.hash, boundAt: 1 };
    res.json({});
  });
  app.get('/profile', (_req, res) => void res.json({ ok: true }));
  app.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => void res.status(500).json({ message: err.message }));
  const listening = await listen(createServer({ key, cert, tokenBinding: {} }, app));
  t.teardown(() => listening.close());
  const url = `https://127.0.0.1:${listening.port}`;
  const victim = new TokenBindingAgent({ keyStore: new MemoryKeyStore(), ca: testCertificate.ca });
  t.teardown(() => victim.destroy());
  const login = await send(`${url}/login`, { method: 'POST', agent: victim });
  const events: SessionEvent[] = [];
  const onMessage = (m: unknown): void => void events.push(m as SessionEvent);
  diagnosticsChannel.subscribe(SESSION_CHANNEL_NAME, onMessage);
  t.teardown(() => diagnosticsChannel.unsubscribe(SESSION_CHANNEL_NAME, onMessage));
  const stolen = await send(`${url}/profile`, { agent: false, cookie: login.cookie });
  t.deepEqual([stolen.status, stolen.json], [500, { message: 'store down' }]);
  t.true(events.some((e) => e.outcome === 'rejected' && e.reason === 'missing-binding' && e.action === 'rejected'));
});

test('bindSession: a binding record without a method is a TypeError', async (t) => {
  const app = express();
  app.use(session({ secret: SECRET, resave: false, saveUninitialized: false }));
  app.get('/', async (req, res) => {
    try {
      await bindSession(req, { binding: { boundAt: 1 } as never });
      res.json({ error: null });
    } catch (err) {
      res.json({ error: (err as Error).name });
    }
  });
  const listening = await listen(createServer({ key, cert, tokenBinding: {} }, app));
  t.teardown(() => listening.close());
  t.deepEqual((await send(`https://127.0.0.1:${listening.port}/`, { agent: false })).json, { error: 'TypeError' });
});

test('fastify: invalid plugin options fail at boot; the plugin needs @fastify/session first', async (t) => {
  const bad = Fastify();
  await bad.register(fastifyCookie);
  await bad.register(fastifySession, { secret: SECRET });
  await t.throwsAsync(bad.register(fastifySessionBinding, { policy: 'strict' as never }), { instanceOf: TypeError });
  const unordered = Fastify();
  const err = await unordered.register(fastifySessionBinding, {}).then(
    () => null,
    (e: unknown) => e as { code?: string },
  );
  t.is(err?.code, 'FST_ERR_PLUGIN_DEPENDENCY_NOT_REGISTERED');
});

test('fastify: a route where no tokbind verification ran fails loudly (500)', async (t) => {
  const app = Fastify({ https: { key, cert }, forceCloseConnections: true });
  await app.register(fastifyCookie);
  await app.register(fastifySession, { secret: SECRET, cookie: { secure: true } });
  await app.register(fastifySessionBinding, {});
  app.get('/', async () => ({ ok: true }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  const address = app.server.address() as { port: number };
  const reply = await send(`https://127.0.0.1:${address.port}/`, { agent: false });
  t.is(reply.status, 500);
  t.regex(String(reply.json['message']), /req\.tokenBinding is not set/);
});
