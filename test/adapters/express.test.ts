/**
 * Express-specific behaviour of `tokbind/express` (the shared RFC behaviours are in
 * conformance.test.ts): the next(err) contract, the error handler, reuse of the server's verdict,
 * route-level `required`, option checks. Real TLS on 127.0.0.1.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import test from 'ava';
import express from 'express';
import type { ErrorRequestHandler } from 'express';
import { tokenBinding, tokenBindingErrorHandler } from '../../src/adapters/express.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { TokenBindingError } from '../../src/errors.js';
import { createServer } from '../../src/http/server.js';
import { listen, testCertificate } from '../_tls.js';
import { openConnection } from './_client.js';
import { collectVerifyEvents } from '../_events.js';

const { key: tlsKey, cert } = testCertificate;
const key = generateTokenBindingKey();

const countVerifications = async (fn: () => Promise<void>) => (await collectVerifyEvents(fn)).events;

function echoApp(middleware = tokenBinding()): express.Express {
  const app = express();
  app.use(middleware);
  app.get('/', (req, res) => res.json({ tbh: req.tokenBinding?.provided.hash ?? null }));
  app.use(tokenBindingErrorHandler());
  return app;
}

for (const [name, makeServer] of [
  ['tokbind createServer (verdict reused)', (app: express.Express) => createServer({ key: tlsKey, cert, tokenBinding: {} }, app)],
  ['https.createServer (verified by the middleware)', (app: express.Express) => https.createServer({ key: tlsKey, cert }, app)],
] as const) {
  test.serial(`${name}: exactly one verification per request`, async (t) => {
    const server = await listen(makeServer(echoApp()));
    const conn = await openConnection(server.port, { tls: 'TLSv1.3' });
    const header = createSecTokenBindingHeader({ provided: key, ekm: conn.ekm });
    try {
      const events = await countVerifications(async () => {
        const res = await conn.request('/', { 'sec-token-binding': header });
        t.is(res.status, 200);
        t.is(JSON.parse(res.body).tbh, createHash('sha256').update(key.id.raw).digest('base64url'));
      });
      t.deepEqual(
        events.map((e) => [e.outcome, e.cached]),
        [['accepted', false]],
      );
    } finally {
      await conn.close();
      await server.close();
    }
  });
}

test('a rejection reaches Express error handling as a TokenBindingError with status 400 and expose', async (t) => {
  const app = express();
  app.use(tokenBinding());
  app.get('/', (_req, res) => res.send('unreachable'));
  const inspect: ErrorRequestHandler = (err, _req, res, _next) => {
    res.status(599).json({
      isTokenBindingError: err instanceof TokenBindingError,
      code: err.code,
      status: err.status,
      statusCode: err.statusCode,
      expose: err.expose,
    });
  };
  app.use(inspect);
  const server = await listen(https.createServer({ key: tlsKey, cert }, app));
  const conn = await openConnection(server.port, { tls: 'TLSv1.2' });
  const header = createSecTokenBindingHeader({ provided: key, ekm: conn.ekm });
  try {
    for (let i = 0; i < 2; i++) {
      // Twice: the second verdict comes from the connection cache and must look the same.
      const res = await conn.request('/', { 'sec-token-binding': [header, header] });
      t.is(res.status, 599);
      t.deepEqual(JSON.parse(res.body), {
        isTokenBindingError: true,
        code: 'ERR_TB_HEADER_DUPLICATE',
        status: 400,
        statusCode: 400,
        expose: true,
      });
    }
  } finally {
    await conn.close();
    await server.close();
  }
});

test("without tokenBindingErrorHandler, Express's default handler answers 400", async (t) => {
  const app = express();
  app.use(tokenBinding({ required: true }));
  app.get('/', (_req, res) => res.send('unreachable'));
  const server = await listen(https.createServer({ key: tlsKey, cert }, app));
  const conn = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    const res = await conn.request('/');
    t.is(res.status, 400);
    t.notRegex(String(res.headers['content-type']), /problem\+json/);
  } finally {
    await conn.close();
    await server.close();
  }
});

test('tokenBindingErrorHandler passes other errors on', async (t) => {
  const app = express();
  app.use(tokenBinding());
  app.get('/', () => {
    throw new Error('boom');
  });
  app.use(tokenBindingErrorHandler());
  app.use(((err, _req, res, _next) => void res.status(503).send((err as Error).message)) as ErrorRequestHandler);
  const server = await listen(https.createServer({ key: tlsKey, cert }, app));
  const conn = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    const res = await conn.request('/');
    t.is(res.status, 503);
    t.is(res.body, 'boom');
  } finally {
    await conn.close();
    await server.close();
  }
});

test('required on one route only, over a server that leaves the binding optional', async (t) => {
  const app = express();
  app.get('/open', (req, res) => res.json({ bound: req.tokenBinding !== null }));
  app.use('/api', tokenBinding({ required: true }));
  app.get('/api/me', (req, res) => res.json({ bound: req.tokenBinding !== null }));
  app.use(tokenBindingErrorHandler());
  const server = await listen(createServer({ key: tlsKey, cert, tokenBinding: {} }, app));
  const conn = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    t.is((await conn.request('/open')).status, 200);
    const missing = await conn.request('/api/me');
    t.is(missing.status, 400);
    t.is(JSON.parse(missing.body).code, 'ERR_TB_HEADER_MISSING');
    const bound = await conn.request('/api/me', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) });
    t.deepEqual(JSON.parse(bound.body), { bound: true });
  } finally {
    await conn.close();
    await server.close();
  }
});

test("onInvalid: 'ignore' lets an invalid binding through as null; a missing required one is still refused", async (t) => {
  const server = await listen(https.createServer({ key: tlsKey, cert }, echoApp(tokenBinding({ onInvalid: 'ignore' }))));
  const strict = await listen(https.createServer({ key: tlsKey, cert }, echoApp(tokenBinding({ onInvalid: 'ignore', required: true }))));
  const conn = await openConnection(server.port, { tls: 'TLSv1.3' });
  const strictConn = await openConnection(strict.port, { tls: 'TLSv1.3' });
  try {
    const res = await conn.request('/', { 'sec-token-binding': 'AAA' });
    t.is(res.status, 200);
    t.deepEqual(JSON.parse(res.body), { tbh: null });
    t.is((await strictConn.request('/')).status, 400);
  } finally {
    await Promise.all([conn.close(), strictConn.close()]);
    await Promise.all([server.close(), strict.close()]);
  }
});

test('over plain HTTP (no TLS) a Sec-Token-Binding is refused, its absence is not', async (t) => {
  const server = await listen(http.createServer(echoApp()));
  const get = (headers: Record<string, string>) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: server.port, path: '/', headers, agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
        .on('error', reject);
    });
  try {
    const refused = await get({ 'sec-token-binding': 'AAA' });
    t.is(refused.status, 400);
    t.is(JSON.parse(refused.body).code, 'ERR_TB_EKM_UNAVAILABLE');
    t.deepEqual(JSON.parse((await get({})).body), { tbh: null });
  } finally {
    await server.close();
  }
});

test('invalid options throw a TypeError at setup', (t) => {
  t.throws(() => tokenBinding({ keyParameters: ['ecdsap384' as 'ecdsap256'] }), { instanceOf: TypeError });
  t.throws(() => tokenBinding({ required: 'yes' as unknown as boolean }), { instanceOf: TypeError });
  t.throws(() => tokenBinding({ onInvalid: 'drop' as 'ignore' }), { instanceOf: TypeError });
});
