/**
 * issue 11 item 3 and the class "per-caller options": every option reaches the code that uses it
 * from the caller that set it. Two routes with different options on ONE connection — through the
 * Express and Fastify adapters on plain servers (connection facts taken lazily by whichever route
 * came first) and behind tokbind's server (verdict reuse) — for keyParameters,
 * maxDistinctMessages, maxHeaderLength, required / onInvalid and backend. Real TLS on 127.0.0.1.
 */
import https from 'node:https';
import test, { type ExecutionContext } from 'ava';
import express from 'express';
import Fastify, { type FastifyInstance, type RawServerBase } from 'fastify';
import { tokenBinding as expressTokenBinding, tokenBindingErrorHandler } from '../../src/adapters/express.js';
import { tokenBinding as fastifyTokenBinding } from '../../src/adapters/fastify.js';
import type { TokenBindingAdapterOptions } from '../../src/adapters/request.js';
import type { VerificationBackend } from '../../src/crypto/backend.js';
import { nodeBackend } from '../../src/crypto/node-backend.js';
import { createSecTokenBindingHeader, generateTokenBindingKey, type TokenBindingKey } from '../../src/crypto/sign.js';
import type { TokenBindingServerOptions } from '../../src/http/options.js';
import { createServer } from '../../src/http/server.js';
import { listen, testCertificate, type Listening } from '../_tls.js';
import { openConnection, type TestConnection, type TestResponse } from './_client.js';

const { key: tlsKey, cert } = testCertificate;
const ec = generateTokenBindingKey('ecdsap256');
const pss = generateTokenBindingKey('rsa2048_pss');

type Routes = Readonly<Record<string, TokenBindingAdapterOptions>>;

const sign = (conn: TestConnection, key: TokenBindingKey) => createSecTokenBindingHeader({ provided: key, ekm: conn.ekm });
const answer = (tb: { provided: { keyParameters: unknown } } | null | undefined) => JSON.stringify({ kp: tb === undefined ? 'unset' : (tb?.provided.keyParameters ?? null) });

function expressApp(routes: Routes): express.Express {
  const app = express();
  for (const [path, options] of Object.entries(routes)) {
    app.get(path, expressTokenBinding(options), (req, res) => res.type('application/json').send(answer(req.tokenBinding)));
  }
  app.get('/server', (req, res) => res.type('application/json').send(answer(req.tokenBinding)));
  app.use(tokenBindingErrorHandler());
  return app;
}

function fastifyRoutes<S extends RawServerBase>(app: FastifyInstance<S>, routes: Routes): void {
  for (const [path, options] of Object.entries(routes)) {
    void app.register(async (scope) => {
      await scope.register(fastifyTokenBinding, options);
      scope.get(path, async (request, reply) => {
        void reply.type('application/json');
        return answer(request.tokenBinding);
      });
    });
  }
  app.get('/server', async (request, reply) => {
    void reply.type('application/json');
    return answer(request.raw.tokenBinding);
  });
}

async function listenFastify<S extends RawServerBase>(app: FastifyInstance<S>): Promise<Listening> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  return { port: address.port, close: () => app.close() };
}

interface Shape {
  readonly name: string;
  readonly http2: boolean;
  /** `server`: options of tokbind's server behind the routes; undefined: a plain Node server. */
  start(routes: Routes, server?: TokenBindingServerOptions): Promise<Listening>;
}

const shapes: readonly Shape[] = [
  {
    name: 'express',
    http2: false,
    start: (routes, server) =>
      listen(server === undefined ? https.createServer({ key: tlsKey, cert }, expressApp(routes)) : createServer({ key: tlsKey, cert, tokenBinding: server }, expressApp(routes))),
  },
  {
    name: 'fastify',
    http2: false,
    start: (routes, server) => {
      const app =
        server === undefined
          ? Fastify({ https: { key: tlsKey, cert }, forceCloseConnections: true })
          : Fastify({ serverFactory: (handler) => createServer({ key: tlsKey, cert, tokenBinding: server }, handler), forceCloseConnections: true });
      fastifyRoutes(app, routes);
      return listenFastify(app);
    },
  },
  {
    name: 'fastify http2',
    http2: true,
    start: (routes) => {
      const app = Fastify({ http2: true, https: { key: tlsKey, cert } });
      fastifyRoutes(app, routes);
      return listenFastify(app);
    },
  },
];

function code(res: TestResponse): string | undefined {
  return (JSON.parse(res.body) as { code?: string }).code;
}

function ok(t: ExecutionContext, res: TestResponse, kp: string | null): void {
  t.is(res.status, 200, res.body);
  t.deepEqual(JSON.parse(res.body), { kp });
}

function refused(t: ExecutionContext, res: TestResponse, expected: string): void {
  t.is(res.status, 400, res.body);
  t.is(code(res), expected);
}

const keyRoutes: Routes = { '/ec-only': { keyParameters: ['ecdsap256'] }, '/pss-only': { keyParameters: ['rsa2048_pss'] } };

for (const shape of shapes) {
  for (const first of ['/ec-only', '/pss-only'] as const) {
    test(`${shape.name} on a plain server: each route's own keyParameters on one connection (${first} first)`, async (t) => {
      const server = await shape.start(keyRoutes);
      const conn = await openConnection(server.port, { tls: 'TLSv1.3', http2: shape.http2 });
      try {
        const steps: [string, TokenBindingKey, string | null][] = [
          ['/ec-only', ec, 'ecdsap256'],
          ['/pss-only', pss, 'rsa2048_pss'],
          ['/ec-only', pss, null],
          ['/pss-only', ec, null],
        ];
        if (first === '/pss-only') steps.reverse();
        for (const [path, key, kp] of steps) {
          const res = await conn.request(path, { 'sec-token-binding': sign(conn, key) });
          if (kp === null) refused(t, res, 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
          else ok(t, res, kp);
        }
        // And again, now that both verdicts are cached on the connection.
        ok(t, await conn.request('/ec-only', { 'sec-token-binding': sign(conn, ec) }), 'ecdsap256');
        refused(t, await conn.request('/ec-only', { 'sec-token-binding': sign(conn, pss) }), 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
        ok(t, await conn.request('/pss-only', { 'sec-token-binding': sign(conn, pss) }), 'rsa2048_pss');
      } finally {
        await conn.close();
        await server.close();
      }
    });
  }

  test(`${shape.name} on a plain server: each route's own maxDistinctMessages on one connection`, async (t) => {
    const server = await shape.start({ '/small': { maxDistinctMessages: 2 }, '/big': { maxDistinctMessages: 20 } });
    const keys = Array.from({ length: 5 }, () => generateTokenBindingKey());
    const conn = await openConnection(server.port, { tls: 'TLSv1.3', http2: shape.http2 });
    const small = await openConnection(server.port, { tls: 'TLSv1.3', http2: shape.http2 });
    // ECDSA signatures are randomized: sign each (key, connection) once so a repeat is the same value.
    const signed = new Map<string, string>();
    const sign = (c: TestConnection, k: TokenBindingKey) => {
      const id = `${c === conn ? 'a' : 'b'}${keys.indexOf(k)}`;
      if (!signed.has(id)) signed.set(id, createSecTokenBindingHeader({ provided: k, ekm: c.ekm }));
      return signed.get(id)!;
    };
    try {
      // The big route first: its cap must not become the small route's.
      ok(t, await conn.request('/big', { 'sec-token-binding': sign(conn, keys[0]!) }), 'ecdsap256');
      ok(t, await conn.request('/small', { 'sec-token-binding': sign(conn, keys[1]!) }), 'ecdsap256');
      refused(t, await conn.request('/small', { 'sec-token-binding': sign(conn, keys[2]!) }), 'ERR_TB_TOO_MANY_MESSAGES');
      ok(t, await conn.request('/small', { 'sec-token-binding': sign(conn, keys[0]!) }), 'ecdsap256');
      ok(t, await conn.request('/big', { 'sec-token-binding': sign(conn, keys[2]!) }), 'ecdsap256');
      ok(t, await conn.request('/big', { 'sec-token-binding': sign(conn, keys[3]!) }), 'ecdsap256');

      // The small route first: its cap must not become the big route's.
      ok(t, await small.request('/small', { 'sec-token-binding': sign(small, keys[0]!) }), 'ecdsap256');
      ok(t, await small.request('/small', { 'sec-token-binding': sign(small, keys[1]!) }), 'ecdsap256');
      for (const key of keys.slice(2)) ok(t, await small.request('/big', { 'sec-token-binding': sign(small, key) }), 'ecdsap256');
      refused(t, await small.request('/small', { 'sec-token-binding': sign(small, generateTokenBindingKey()) }), 'ERR_TB_TOO_MANY_MESSAGES');
    } finally {
      await Promise.all([conn.close(), small.close()]);
      await server.close();
    }
  });

  test(`${shape.name} on a plain server: each route's own maxHeaderLength, required and onInvalid`, async (t) => {
    const server = await shape.start({
      '/short': { maxHeaderLength: 64 },
      '/long': {},
      '/lenient': { onInvalid: 'ignore' },
      '/strict': { onInvalid: 'ignore', required: true },
    });
    const conn = await openConnection(server.port, { tls: 'TLSv1.3', http2: shape.http2 });
    try {
      const header = sign(conn, ec);
      ok(t, await conn.request('/long', { 'sec-token-binding': header }), 'ecdsap256');
      refused(t, await conn.request('/short', { 'sec-token-binding': header }), 'ERR_TB_HEADER_TOO_LARGE');
      ok(t, await conn.request('/lenient', { 'sec-token-binding': 'x' }), null);
      refused(t, await conn.request('/strict', { 'sec-token-binding': 'x' }), 'ERR_TB_HEADER_ENCODING');
      refused(t, await conn.request('/long', { 'sec-token-binding': 'x' }), 'ERR_TB_HEADER_ENCODING');
      ok(t, await conn.request('/lenient'), null);
      refused(t, await conn.request('/strict'), 'ERR_TB_HEADER_MISSING');
    } finally {
      await conn.close();
      await server.close();
    }
  });
}

/** A node:crypto backend that counts its signature checks. */
function countingBackend(): VerificationBackend & { calls: number } {
  const backend = {
    name: 'counting',
    calls: 0,
    verify: (...args: Parameters<VerificationBackend['verify']>) => {
      backend.calls++;
      return nodeBackend.verify(...args);
    },
  };
  return backend;
}

for (const shape of shapes.filter((s) => !s.http2)) {
  test(`${shape.name} behind tokbind's server: the server's verdict is reused only under the route's own options`, async (t) => {
    const backend = countingBackend();
    const server = await shape.start(
      {
        '/ec-only': { keyParameters: ['ecdsap256'] },
        '/both': { keyParameters: ['ecdsap256', 'rsa2048_pss'] },
        '/strict': { keyParameters: ['ecdsap256', 'rsa2048_pss'], required: true },
        '/lenient': { keyParameters: ['ecdsap256', 'rsa2048_pss'], onInvalid: 'ignore' },
        '/short': { keyParameters: ['ecdsap256', 'rsa2048_pss'], maxHeaderLength: 64 },
        '/counted': { keyParameters: ['ecdsap256', 'rsa2048_pss'], backend },
      },
      { keyParameters: ['ecdsap256', 'rsa2048_pss'], onInvalid: 'ignore' },
    );
    const conn = await openConnection(server.port, { tls: 'TLSv1.3' });
    try {
      ok(t, await conn.request('/server', { 'sec-token-binding': sign(conn, pss) }), 'rsa2048_pss');
      ok(t, await conn.request('/both', { 'sec-token-binding': sign(conn, pss) }), 'rsa2048_pss');
      // The server accepts RSA-PSS; this route does not.
      refused(t, await conn.request('/ec-only', { 'sec-token-binding': sign(conn, pss) }), 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
      ok(t, await conn.request('/ec-only', { 'sec-token-binding': sign(conn, ec) }), 'ecdsap256');

      // The server ignores an invalid header; a route that requires a binding, or does not ignore, refuses it.
      ok(t, await conn.request('/server', { 'sec-token-binding': 'x' }), null);
      ok(t, await conn.request('/lenient', { 'sec-token-binding': 'x' }), null);
      refused(t, await conn.request('/both', { 'sec-token-binding': 'x' }), 'ERR_TB_HEADER_ENCODING');
      refused(t, await conn.request('/strict', { 'sec-token-binding': 'x' }), 'ERR_TB_HEADER_ENCODING');
      refused(t, await conn.request('/strict'), 'ERR_TB_HEADER_MISSING');

      refused(t, await conn.request('/short', { 'sec-token-binding': sign(conn, ec) }), 'ERR_TB_HEADER_TOO_LARGE');

      // The route's own backend verifies (the server's node:crypto verdict is not its verdict), once per value.
      const counted = sign(conn, ec);
      ok(t, await conn.request('/server', { 'sec-token-binding': counted }), 'ecdsap256');
      t.is(backend.calls, 0);
      ok(t, await conn.request('/counted', { 'sec-token-binding': counted }), 'ecdsap256');
      ok(t, await conn.request('/counted', { 'sec-token-binding': counted }), 'ecdsap256');
      t.is(backend.calls, 1);
    } finally {
      await conn.close();
      await server.close();
    }
  });
}

test('express behind a trusted proxy: forwarded IDs meet each route its own keyParameters and required; nested glue reuses them', async (t) => {
  const { default: http } = await import('node:http');
  const { formatTokenBindingID } = await import('../../src/codec/message.js');
  const trustProxy = { addresses: ['127.0.0.1/32'] };
  const app = express();
  app.use(expressTokenBinding({ trustProxy, keyParameters: ['ecdsap256', 'rsa2048_pss'] }));
  app.get('/any', (req, res) => res.type('application/json').send(answer(req.tokenBinding)));
  app.get('/ec-only', expressTokenBinding({ trustProxy, keyParameters: ['ecdsap256'] }), (req, res) => res.type('application/json').send(answer(req.tokenBinding)));
  app.get('/strict', expressTokenBinding({ trustProxy, required: true }), (req, res) => res.type('application/json').send(answer(req.tokenBinding)));
  app.use(tokenBindingErrorHandler());
  const server = await listen(http.createServer(app));
  const get = (path: string, headers: Record<string, string>) =>
    new Promise<TestResponse>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: server.port, path, headers }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        })
        .on('error', reject);
    });
  try {
    const rsa = { 'sec-provided-token-binding-id': formatTokenBindingID(pss.id) };
    const p256 = { 'sec-provided-token-binding-id': formatTokenBindingID(ec.id) };
    ok(t, await get('/any', rsa), 'rsa2048_pss');
    refused(t, await get('/ec-only', rsa), 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
    ok(t, await get('/ec-only', p256), 'ecdsap256');
    refused(t, await get('/strict', {}), 'ERR_TB_HEADER_MISSING');
    ok(t, await get('/strict', p256), 'ecdsap256');
  } finally {
    await server.close();
  }
});

test("verifyForwardedRequest on tokbind's server: the server's verdict meets the caller's own keyParameters", async (t) => {
  const { verifyForwardedRequest } = await import('../../src/http/trust-proxy.js');
  const { isTokenBindingError } = await import('../../src/errors.js');
  const server = await listen(
    createServer({ key: tlsKey, cert, tokenBinding: { keyParameters: ['ecdsap256', 'rsa2048_pss'] } }, (req, res) => {
      verifyForwardedRequest(req, { trustProxy: { addresses: ['10.0.0.0/8'] }, keyParameters: ['ecdsap256'] }).then(
        (tb) => res.end(answer(tb)),
        (err: unknown) => {
          res.statusCode = 400;
          res.end(JSON.stringify({ code: isTokenBindingError(err) ? err.code : 'other' }));
        },
      );
    }),
  );
  const conn = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    refused(t, await conn.request('/', { 'sec-token-binding': sign(conn, pss) }), 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
    ok(t, await conn.request('/', { 'sec-token-binding': sign(conn, ec) }), 'ecdsap256');
  } finally {
    await conn.close();
    await server.close();
  }
});
