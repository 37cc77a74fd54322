/**
 * Fastify-specific behaviour of `tokbind/fastify` (the shared RFC behaviours are in
 * conformance.test.ts): reuse of the server's verdict through `serverFactory`, scoped
 * registration, the rejection as an ordinary Fastify reply, option checks. Real TLS on 127.0.0.1.
 */
import test from 'ava';
import Fastify from 'fastify';
import type { FastifyInstance, RawServerBase } from 'fastify';
import { tokenBinding } from '../../src/adapters/fastify.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { createServer } from '../../src/http/server.js';
import { testCertificate } from '../_tls.js';
import { openConnection } from './_client.js';
import { collectVerifyEvents } from '../_events.js';

const { key: tlsKey, cert } = testCertificate;
const key = generateTokenBindingKey();

async function start<S extends RawServerBase>(app: FastifyInstance<S>): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  return address.port;
}

const countVerifications = async (fn: () => Promise<void>) => (await collectVerifyEvents(fn)).events;

for (const [name, make] of [
  [
    'serverFactory with tokbind createServer (verdict reused)',
    () => Fastify({ serverFactory: (handler) => createServer({ key: tlsKey, cert, tokenBinding: {} }, handler), forceCloseConnections: true }),
  ],
  ['https option (verified by the plugin)', () => Fastify({ https: { key: tlsKey, cert }, forceCloseConnections: true })],
] as const) {
  test.serial(`${name}: exactly one verification per request`, async (t) => {
    const app = make();
    await app.register(tokenBinding);
    app.get('/', async (request) => ({ id: request.tokenBinding?.provided.id ?? null }));
    const conn = await openConnection(await start(app), { tls: 'TLSv1.2' });
    try {
      const events = await countVerifications(async () => {
        const res = await conn.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) });
        t.deepEqual(JSON.parse(res.body), { id: Buffer.from(key.id.raw).toString('base64url') });
      });
      t.deepEqual(
        events.map((e) => [e.outcome, e.cached]),
        [['accepted', false]],
      );
    } finally {
      await conn.close();
      await app.close();
    }
  });
}

test.serial('registered at the root and again in a scope with required: true, a request is verified once', async (t) => {
  const app = Fastify({ https: { key: tlsKey, cert }, forceCloseConnections: true });
  await app.register(tokenBinding);
  app.get('/', async (request) => ({ tokenBinding: request.tokenBinding }));
  await app.register(
    async (scope) => {
      await scope.register(tokenBinding, { required: true });
      scope.get('/me', async (request) => ({ id: request.tokenBinding?.provided.id }));
    },
    { prefix: '/api' },
  );
  const conn = await openConnection(await start(app), { tls: 'TLSv1.3' });
  try {
    const events = await countVerifications(async () => {
      const res = await conn.request('/api/me', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) });
      t.deepEqual(JSON.parse(res.body), { id: Buffer.from(key.id.raw).toString('base64url') });
    });
    t.is(events.length, 1);
    t.deepEqual(JSON.parse((await conn.request('/')).body), { tokenBinding: null });
    const missing = await conn.request('/api/me');
    t.is(missing.status, 400);
    t.is(JSON.parse(missing.body).code, 'ERR_TB_HEADER_MISSING');
  } finally {
    await conn.close();
    await app.close();
  }
});

test.serial('HTTP/2 with the https option: facts and verdicts belong to the session, not the request', async (t) => {
  const app = Fastify({ http2: true, https: { key: tlsKey, cert } });
  await app.register(tokenBinding);
  app.get('/', async (request) => ({ id: request.tokenBinding?.provided.id ?? null }));
  const conn = await openConnection(await start(app), { tls: 'TLSv1.3', http2: true });
  try {
    t.is(conn.alpn, 'h2');
    const header = createSecTokenBindingHeader({ provided: key, ekm: conn.ekm });
    const events = await countVerifications(async () => {
      // Each compat request has its own `socket` proxy; the second one still hits the cache.
      for (let i = 0; i < 2; i++) {
        t.deepEqual(JSON.parse((await conn.request('/', { 'sec-token-binding': header })).body), { id: Buffer.from(key.id.raw).toString('base64url') });
      }
    });
    t.deepEqual(
      events.map((e) => [e.outcome, e.cached]),
      [
        ['accepted', false],
        ['accepted', true],
      ],
    );
  } finally {
    await conn.close();
    await app.close();
  }
});

test('registered in a scope, the plugin applies to that scope only', async (t) => {
  const app = Fastify({ https: { key: tlsKey, cert }, forceCloseConnections: true });
  app.get('/open', async (request) => ({ tokenBinding: request.tokenBinding }));
  await app.register(
    async (scope) => {
      await scope.register(tokenBinding, { required: true });
      scope.get('/me', async (request) => ({ tbh: request.tokenBinding?.provided.hash }));
    },
    { prefix: '/api' },
  );
  const conn = await openConnection(await start(app), { tls: 'TLSv1.3' });
  try {
    // Outside the scope neither the hook nor the decorator exists: nothing verified, nothing set.
    const open = await conn.request('/open', { 'sec-token-binding': 'AAA' });
    t.is(open.status, 200);
    t.deepEqual(JSON.parse(open.body), {});
    const missing = await conn.request('/api/me');
    t.is(missing.status, 400);
    t.is(JSON.parse(missing.body).code, 'ERR_TB_HEADER_MISSING');
    const bound = await conn.request('/api/me', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) });
    t.is(bound.status, 200);
    t.is(typeof JSON.parse(bound.body).tbh, 'string');
  } finally {
    await conn.close();
    await app.close();
  }
});

test("the 400 is an ordinary Fastify reply: onSend and onResponse hooks see it", async (t) => {
  const app = Fastify({ https: { key: tlsKey, cert }, forceCloseConnections: true });
  const statuses: number[] = [];
  app.addHook('onSend', async (_request, reply, payload) => {
    void reply.header('x-on-send', 'yes');
    return payload;
  });
  app.addHook('onResponse', async (_request, reply) => void statuses.push(reply.statusCode));
  await app.register(tokenBinding);
  app.get('/', async () => 'unreachable');
  const conn = await openConnection(await start(app), { tls: 'TLSv1.3' });
  try {
    const res = await conn.request('/', { 'sec-token-binding': 'not base64url!' });
    t.is(res.status, 400);
    t.is(res.headers['x-on-send'], 'yes');
    t.is(res.headers['content-type'], 'application/problem+json');
    t.is(JSON.parse(res.body).code, 'ERR_TB_HEADER_ENCODING');
    t.deepEqual(statuses, [400]);
  } finally {
    await conn.close();
    await app.close();
  }
});

test("onInvalid: 'ignore' lets an invalid binding through as null", async (t) => {
  const app = Fastify({ https: { key: tlsKey, cert }, forceCloseConnections: true });
  await app.register(tokenBinding, { onInvalid: 'ignore' });
  app.get('/', async (request) => ({ tokenBinding: request.tokenBinding }));
  const conn = await openConnection(await start(app), { tls: 'TLSv1.3' });
  try {
    const res = await conn.request('/', { 'sec-token-binding': 'AAA' });
    t.is(res.status, 200);
    t.deepEqual(JSON.parse(res.body), { tokenBinding: null });
  } finally {
    await conn.close();
    await app.close();
  }
});

test('invalid options fail registration with a TypeError', async (t) => {
  const app = Fastify();
  void app.register(tokenBinding, { keyParameters: ['ecdsap384' as 'ecdsap256'] });
  await t.throwsAsync(app.ready(), { instanceOf: TypeError });
});

test('the plugin registers the tokenBinding request decorator', async (t) => {
  const app = Fastify();
  await app.register(tokenBinding);
  t.true(app.hasRequestDecorator('tokenBinding'));
  await app.close();
});
