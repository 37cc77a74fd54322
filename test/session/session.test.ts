/**
 * tokbind/session end to end: real TLS, real express-session and @fastify/session, MemoryStore
 * and connect-redis against a real redis-server, tokbind's TokenBindingAgent as the victim and
 * another agent (another key store) as the thief.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import test, { type ExecutionContext } from 'ava';
import { TokenBindingAgent } from '../../src/client/agent.js';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { tokenBindingScope } from '../../src/client/scope.js';
import { tokenBindingHash } from '../../src/crypto/hash.js';
import { formatPrometheusMetrics, getMetricsSnapshot } from '../../src/http/metrics.js';
import { SESSION_CHANNEL_NAME, type SessionEvent, type SessionPolicy } from '../../src/session/index.js';
import { startRedis, type RedisServer } from '../_redis.js';
import { testCertificate } from '../_tls.js';
import { send, startApp, type App, type AppOptions, type Framework, type ServerKind, type StoreKind } from './_apps.js';

let redis: RedisServer;
test.before(async () => {
  redis = await startRedis();
});
test.after.always(async () => {
  await redis?.stop();
});

function agent(t: ExecutionContext): TokenBindingAgent {
  const a = new TokenBindingAgent({ keyStore: new MemoryKeyStore(), ca: testCertificate.ca });
  t.teardown(() => a.destroy());
  return a;
}

async function start(t: ExecutionContext, options: Omit<AppOptions, 'redisUrl'>): Promise<App> {
  const app = await startApp({ ...options, redisUrl: redis.url });
  t.teardown(() => app.close());
  return app;
}

async function collectSessionEvents<T>(fn: () => Promise<T>): Promise<SessionEvent[]> {
  const events: SessionEvent[] = [];
  const onMessage = (message: unknown): void => void events.push(message as SessionEvent);
  diagnosticsChannel.subscribe(SESSION_CHANNEL_NAME, onMessage);
  try {
    await fn();
    return events;
  } finally {
    diagnosticsChannel.unsubscribe(SESSION_CHANNEL_NAME, onMessage);
  }
}

const FRAMEWORKS: readonly Framework[] = ['express', 'fastify'];
const STORES: readonly StoreKind[] = ['memory', 'redis'];
const POLICIES: readonly SessionPolicy[] = ['optional', 'required'];

type Presented = 'match' | 'mismatch' | 'missing';

/** What each policy answers for a session (bound or not) presented with the victim's, another, or no binding. */
const LADDER: Record<SessionPolicy, Record<'bound' | 'unbound', Record<Presented, { status: number; code?: string }>>> = {
  optional: {
    bound: { match: { status: 200 }, mismatch: { status: 403, code: 'ERR_TB_SESSION_BINDING_MISMATCH' }, missing: { status: 401, code: 'ERR_TB_SESSION_BINDING_MISSING' } },
    unbound: { match: { status: 200 }, mismatch: { status: 200 }, missing: { status: 200 } },
  },
  required: {
    bound: { match: { status: 200 }, mismatch: { status: 403, code: 'ERR_TB_SESSION_BINDING_MISMATCH' }, missing: { status: 401, code: 'ERR_TB_SESSION_BINDING_MISSING' } },
    unbound: { match: { status: 401, code: 'ERR_TB_SESSION_UNBOUND' }, mismatch: { status: 401, code: 'ERR_TB_SESSION_UNBOUND' }, missing: { status: 401, code: 'ERR_TB_SESSION_UNBOUND' } },
  },
};

for (const framework of FRAMEWORKS) {
  for (const store of STORES) {
    for (const policy of POLICIES) {
      test(`${framework} + ${store} store, policy ${policy}: (bound | unbound) × (match | mismatch | missing)`, async (t) => {
        const app = await start(t, { framework, store, binding: { policy } });
        const victim = agent(t);
        const thief = agent(t);
        for (const kind of ['bound', 'unbound'] as const) {
          for (const presented of ['match', 'mismatch', 'missing'] as const) {
            const label = `${kind} session, ${presented} binding`;
            const login = await send(`${app.url}/${kind === 'bound' ? 'login' : 'login-unbound'}`, { method: 'POST', agent: victim });
            t.is(login.status, 200, label);
            const sid = login.json['sid'] as string;
            t.truthy(login.cookie, label);
            t.true(await app.has(sid), label);
            const by = presented === 'match' ? victim : presented === 'mismatch' ? thief : false;
            const reply = await send(`${app.url}/profile`, { agent: by, cookie: login.cookie });
            const expected = LADDER[policy][kind][presented];
            t.is(reply.status, expected.status, label);
            if (expected.code === undefined) {
              t.is(reply.json['user'], 'alice', label);
              t.true(await app.has(sid), label);
              continue;
            }
            t.is(reply.headers['content-type'], 'application/problem+json', label);
            t.like(reply.json, { code: expected.code, status: expected.status, type: `urn:tokbind:error:${expected.code}` }, label);
            t.is(reply.headers['set-cookie'], undefined, label);
            // A bound session refused is destroyed (a stolen cookie is a theft signal); an unbound one is only refused.
            t.is(await app.has(sid), kind === 'unbound', label);
            const after = await send(`${app.url}/profile`, { agent: victim, cookie: login.cookie });
            t.is(after.status, kind === 'bound' ? 200 : 401, label);
            if (kind === 'bound') t.is(after.json['user'], null, `${label}: the victim's session is gone`);
          }
        }
        // No session at all, or an anonymous one: nothing to check under either policy.
        const anonymous = await send(`${app.url}/profile`, { agent: false });
        t.deepEqual([anonymous.status, anonymous.json], [200, { user: null, binding: null }]);
      });
    }
  }
}

// A destroy must stick: a request of the same session that passed its check before the destroy
// and changes the session afterwards is saved by the session library when it ends — it must not
// bring the destroyed session back (Chromium's DBSC refresh did, in CI).
for (const framework of FRAMEWORKS) {
  for (const store of STORES) {
    test(`${framework} + ${store} store: a request in flight when its session is destroyed does not save it back`, async (t) => {
      const app = await start(t, { framework, store, binding: { policy: 'optional' } });
      const victim = agent(t);
      const thief = agent(t);
      const login = await send(`${app.url}/login`, { method: 'POST', agent: victim });
      const sid = login.json['sid'] as string;
      const inFlight = send(`${app.url}/held`, { method: 'POST', agent: victim, cookie: login.cookie });
      await app.held.arrived;
      const stolen = await send(`${app.url}/profile`, { agent: thief, cookie: login.cookie });
      t.is(stolen.status, 403);
      t.false(await app.has(sid));
      app.held.release();
      const answered = await inFlight;
      t.deepEqual([answered.status, answered.json], [200, { sid }]);
      t.false(await app.has(sid), 'the in-flight request did not save the destroyed session back');
      const after = await send(`${app.url}/profile`, { agent: victim, cookie: login.cookie });
      t.deepEqual([after.status, after.json['user']], [200, null]);
      // Another session of the same store is saved as before.
      const again = await send(`${app.url}/login`, { method: 'POST', agent: victim });
      t.true(await app.has(again.json['sid'] as string));
    });
  }
}

for (const framework of FRAMEWORKS) {
  test(`${framework}: the bound session stores { method, tbh, boundAt } for the victim's ID; the session id changes on bindSession`, async (t) => {
    const app = await start(t, { framework, store: 'memory', binding: { policy: 'optional' } });
    const victim = agent(t);
    const visit = await send(`${app.url}/visit`, { method: 'POST', agent: victim });
    t.is(visit.status, 200);
    const before = visit.json['sid'] as string;
    t.true(await app.has(before));
    const login = await send(`${app.url}/login`, { method: 'POST', agent: victim, cookie: visit.cookie });
    t.is(login.status, 200);
    const after = login.json['sid'] as string;
    t.not(after, before, 'bindSession regenerates the id');
    t.false(await app.has(before), 'the pre-login session is destroyed in the store');
    t.true(await app.has(after));
    t.not(login.cookie, visit.cookie);
    // The old cookie is worth nothing now.
    t.is((await send(`${app.url}/profile`, { agent: victim, cookie: visit.cookie })).json['user'], null);
    const profile = await send(`${app.url}/profile`, { agent: victim, cookie: login.cookie });
    t.is(profile.status, 200);
    const key = await victim.binder.key(tokenBindingScope(app.url));
    const binding = profile.json['binding'] as Record<string, unknown>;
    t.is(binding['method'], 'token-binding');
    t.is(binding['tbh'], tokenBindingHash(key.id));
    t.is(typeof binding['boundAt'], 'number');
    t.deepEqual(Object.keys(binding).sort(), ['boundAt', 'method', 'tbh']);
  });

  test(`${framework}: onMismatch 'reject' refuses the thief and keeps the session`, async (t) => {
    const app = await start(t, { framework, store: 'memory', binding: { onMismatch: 'reject' } });
    const victim = agent(t);
    const thief = agent(t);
    const login = await send(`${app.url}/login`, { method: 'POST', agent: victim });
    const sid = login.json['sid'] as string;
    const stolen = await send(`${app.url}/profile`, { agent: thief, cookie: login.cookie });
    t.is(stolen.status, 403);
    t.is(stolen.json['code'], 'ERR_TB_SESSION_BINDING_MISMATCH');
    const missing = await send(`${app.url}/profile`, { agent: false, cookie: login.cookie });
    t.is(missing.status, 401);
    t.is(missing.json['code'], 'ERR_TB_SESSION_BINDING_MISSING');
    t.true(await app.has(sid));
    const mine = await send(`${app.url}/profile`, { agent: victim, cookie: login.cookie });
    t.deepEqual([mine.status, mine.json['user']], [200, 'alice']);
  });

  test(`${framework}: login without a Token Binding is refused 401 ERR_TB_SESSION_BINDING_MISSING and creates no session`, async (t) => {
    const app = await start(t, { framework, store: 'memory' });
    const login = await send(`${app.url}/login`, { method: 'POST', agent: false });
    t.is(login.status, 401);
    t.is(login.json['code'], 'ERR_TB_SESSION_BINDING_MISSING');
    t.is(login.cookie, undefined);
  });

  test(`${framework}: isAuthenticated decides which unbound sessions 'required' refuses`, async (t) => {
    const strict = await start(t, { framework, store: 'memory', binding: { policy: 'required' } });
    const lenient = await start(t, { framework, store: 'memory', binding: { policy: 'required', isAuthenticated: (s) => s['user'] !== undefined } });
    for (const [app, status] of [
      [strict, 401],
      [lenient, 200],
    ] as const) {
      const visit = await send(`${app.url}/visit`, { method: 'POST', agent: false });
      t.is(visit.status, 200);
      t.is((await send(`${app.url}/profile`, { agent: false, cookie: visit.cookie })).status, status);
    }
    const unbound = await send(`${lenient.url}/login-unbound`, { method: 'POST', agent: false });
    t.is((await send(`${lenient.url}/profile`, { agent: false, cookie: unbound.cookie })).json['code'], 'ERR_TB_SESSION_UNBOUND');
  });
}

for (const framework of FRAMEWORKS) {
  for (const server of ['plain', 'tokbind'] as const satisfies readonly ServerKind[]) {
    test(`${framework} on ${server === 'plain' ? 'a plain https server through the tokbind adapter' : "tokbind's createServer"}: bound, stolen, missing`, async (t) => {
      const app = await start(t, { framework, store: 'redis', server });
      const victim = agent(t);
      const thief = agent(t);
      const login = await send(`${app.url}/login`, { method: 'POST', agent: victim });
      t.is(login.status, 200);
      t.is((await send(`${app.url}/profile`, { agent: victim, cookie: login.cookie })).json['user'], 'alice');
      t.is((await send(`${app.url}/profile`, { agent: thief, cookie: login.cookie })).status, 403);
      t.false(await app.has(login.json['sid'] as string));
      const again = await send(`${app.url}/login`, { method: 'POST', agent: victim });
      t.is((await send(`${app.url}/profile`, { agent: false, cookie: again.cookie })).status, 401);
      t.false(await app.has(again.json['sid'] as string));
    });
  }
}

test('express: a route where no tokbind verification ran fails loudly (500), it is not taken as unbound', async (t) => {
  const { default: express } = await import('express');
  const { default: session } = await import('express-session');
  const { sessionBinding, bindSession } = await import('../../src/session/index.js');
  const https = await import('node:https');
  const { listen } = await import('../_tls.js');
  const app = express();
  app.use(session({ secret: 's'.repeat(32), resave: false, saveUninitialized: true }));
  app.use(sessionBinding());
  app.get('/', (_req, res) => void res.json({ ok: true }));
  app.get('/bind', async (req, res) => {
    try {
      await bindSession(req);
      res.json({ ok: true });
    } catch (err) {
      res.status(500).json({ error: (err as Error).name });
    }
  });
  app.use((err: Error, _req: unknown, res: { status(n: number): { json(v: unknown): void } }, _next: unknown) => res.status(500).json({ error: err.name, message: err.message }));
  const listening = await listen(https.createServer({ key: testCertificate.key, cert: testCertificate.cert }, app));
  t.teardown(() => listening.close());
  const reply = await send(`https://127.0.0.1:${listening.port}/`, { agent: false });
  t.is(reply.status, 500);
  t.is(reply.json['error'], 'TypeError');
  t.regex(reply.json['message'] as string, /req\.tokenBinding is not set/);
});

test('bindSession without a session library is a TypeError', async (t) => {
  const { bindSession } = await import('../../src/session/index.js');
  const { IncomingMessage } = await import('node:http');
  const { Socket } = await import('node:net');
  const req = new IncomingMessage(new Socket());
  req.tokenBinding = null;
  await t.throwsAsync(bindSession(req), { instanceOf: TypeError, message: /no session/ });
});

test.serial('tokbind:session events and counters: bound, accepted, rejected (destroyed / rejected)', async (t) => {
  const before = getMetricsSnapshot();
  const events = await collectSessionEvents(async () => {
    for (const framework of FRAMEWORKS) {
      const app = await start(t, { framework, store: 'memory', binding: { policy: 'optional' } });
      const required = await start(t, { framework, store: 'memory', binding: { policy: 'required', onMismatch: 'reject' } });
      const victim = agent(t);
      const thief = agent(t);
      const login = await send(`${app.url}/login`, { method: 'POST', agent: victim });
      await send(`${app.url}/profile`, { agent: victim, cookie: login.cookie });
      await send(`${app.url}/profile`, { agent: thief, cookie: login.cookie });
      const again = await send(`${app.url}/login`, { method: 'POST', agent: victim });
      await send(`${app.url}/profile`, { agent: false, cookie: again.cookie });
      const unbound = await send(`${app.url}/login-unbound`, { method: 'POST', agent: false });
      await send(`${app.url}/profile`, { agent: false, cookie: unbound.cookie });
      const strict = await send(`${required.url}/login-unbound`, { method: 'POST', agent: false });
      await send(`${required.url}/profile`, { agent: false, cookie: strict.cookie });
      const kept = await send(`${required.url}/login`, { method: 'POST', agent: victim });
      await send(`${required.url}/profile`, { agent: thief, cookie: kept.cookie });
    }
  });
  const one: SessionEvent[] = [
    { outcome: 'bound', method: 'token-binding' },
    { outcome: 'accepted', method: 'token-binding' },
    { outcome: 'rejected', method: 'token-binding', reason: 'mismatch', action: 'destroyed' },
    { outcome: 'bound', method: 'token-binding' },
    { outcome: 'rejected', method: 'token-binding', reason: 'missing-binding', action: 'destroyed' },
    { outcome: 'accepted', method: null },
    { outcome: 'rejected', method: null, reason: 'unbound', action: 'rejected' },
    { outcome: 'bound', method: 'token-binding' },
    { outcome: 'rejected', method: 'token-binding', reason: 'mismatch', action: 'rejected' },
  ];
  t.deepEqual(events, [...one, ...one]);
  const after = getMetricsSnapshot();
  t.deepEqual(
    {
      bound: after.sessions.bound - before.sessions.bound,
      accepted: after.sessions.accepted - before.sessions.accepted,
      rejected: after.sessions.rejected - before.sessions.rejected,
      mismatch: (after.sessionRejections['mismatch'] ?? 0) - (before.sessionRejections['mismatch'] ?? 0),
      missing: (after.sessionRejections['missing-binding'] ?? 0) - (before.sessionRejections['missing-binding'] ?? 0),
      unbound: (after.sessionRejections['unbound'] ?? 0) - (before.sessionRejections['unbound'] ?? 0),
    },
    { bound: 6, accepted: 4, rejected: 8, mismatch: 4, missing: 2, unbound: 2 },
  );
  const text = formatPrometheusMetrics();
  t.true(text.includes(`tokbind_sessions_total{outcome="rejected"} ${after.sessions.rejected}\n`));
  t.true(text.includes(`tokbind_session_rejections_total{reason="mismatch"} ${after.sessionRejections['mismatch']}\n`));
});
