/**
 * `attachTokenBinding(server, options)`: tokbind's handling installed on a server the application
 * made — 'request', 'checkContinue', 'upgrade' (a real WebSocket opening handshake, RFC 6455 §4),
 * 'connect' and HTTP/2 'stream' verified as tokbind's own servers do; idempotent; renegotiation
 * refused. Real TLS on 127.0.0.1, raw requests where Node's client would not send them.
 *
 * Serial: the diagnostics channel is process-wide.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import test from 'ava';
import express from 'express';
import { tokenBinding as expressTokenBinding, tokenBindingErrorHandler } from '../../src/adapters/express.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { attachTokenBinding } from '../../src/http/attach.js';
import * as root from '../../src/index.js';
import { createServer, getTokenBinding } from '../../src/http/server.js';
import { connectTls, listen, testCertificate } from '../_tls.js';
import { openConnection } from '../adapters/_client.js';
import { collectVerifyEvents } from '../_events.js';
import { clientEkm, raw } from './_raw.js';

const { key: tlsKey, cert } = testCertificate;
const key = generateTokenBindingKey();
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const TTRP = ['sec-provided-token-binding-id', 'sec-referred-token-binding-id', 'sec-other-token-binding-id'];

const accept = (wsKey: string) => createHash('sha1').update(wsKey + GUID).digest('base64');
const ttrpIn = (req: IncomingMessage) => [
  ...Object.keys(req.headers).filter((n) => TTRP.includes(n)),
  ...req.rawHeaders.filter((_, i) => i % 2 === 0 && TTRP.includes(req.rawHeaders[i]!.toLowerCase())),
];

interface Upgraded {
  tokenBinding: unknown;
  ttrp: string[];
}

/** A plain https.Server with Express routes behind the middleware, a WebSocket endpoint, and tokbind attached. */
async function start(options: Parameters<typeof attachTokenBinding>[1] = {}) {
  const app = express();
  app.use(expressTokenBinding());
  app.get('/', (req, res) => res.json({ tbh: req.tokenBinding?.provided.hash ?? null }));
  app.use(tokenBindingErrorHandler());
  const server = https.createServer({ key: tlsKey, cert }, app);
  const upgraded: Upgraded[] = [];
  // Added before attachTokenBinding: covered all the same.
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    upgraded.push({ tokenBinding: req.tokenBinding, ttrp: ttrpIn(req) });
    const wsKey = String(req.headers['sec-websocket-key']);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(wsKey)}\r\n\r\n`);
    // One unmasked text frame (RFC 6455 §5.2) telling the client what the server saw.
    const payload = Buffer.from(`tbh=${req.tokenBinding?.provided.hash ?? 'none'}`);
    socket.end(Buffer.concat([Buffer.from([0x81, payload.length]), payload]));
  });
  t_same(attachTokenBinding(server, options), server);
  const listening = await listen(server);
  return { ...listening, server, upgraded };
}

function t_same(a: unknown, b: unknown): void {
  if (a !== b) throw new Error('attachTokenBinding must return the server');
}

const wsUpgrade = (extra: string) => {
  const wsKey = randomBytes(16).toString('base64');
  return {
    wsKey,
    request: `GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${wsKey}\r\n${extra}\r\n`,
  };
};

test.serial('exported from the http layer and the package root', (t) => {
  t.is(root.attachTokenBinding, attachTokenBinding);
});

test.serial('a WebSocket upgrade on a plain https.Server: verified, TTRP headers stripped, the binding reaches the upgrade listener', async (t) => {
  const server = await start();
  const socket = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: clientEkm(socket) });
    const { wsKey, request } = wsUpgrade(`Sec-Token-Binding: ${header}\r\nSec-Provided-Token-Binding-ID: spoofed\r\nsec-other-token-binding-id: spoofed\r\n`);
    const response = await raw(socket, request, /tbh=[^\r\n]{43}$/);
    t.regex(response, /^HTTP\/1\.1 101 /);
    t.true(response.includes(`Sec-WebSocket-Accept: ${accept(wsKey)}\r\n`));
    const hash = createHash('sha256').update(key.id.raw).digest('base64url');
    t.true(response.endsWith(`\x81${String.fromCharCode(4 + hash.length)}tbh=${hash}`));
    t.is(server.upgraded.length, 1);
    t.like(server.upgraded[0]!.tokenBinding, { provided: { hash } });
    t.deepEqual(server.upgraded[0]!.ttrp, []);
  } finally {
    socket.destroy();
    await server.close();
  }
});

test.serial('an invalid binding on an upgrade: a raw 400 problem+json on the socket, the listener never runs', async (t) => {
  const server = await start();
  const socket = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const closed = once(socket, 'close');
    const response = await raw(socket, wsUpgrade('Sec-Token-Binding: AAA\r\n').request, /\}$/);
    t.regex(response, /^HTTP\/1\.1 400 /);
    t.regex(response, /\r\ncontent-type: application\/problem\+json\r\n/i);
    t.regex(response, /"code":"ERR_TB_MALFORMED"/);
    await closed;
    t.deepEqual(server.upgraded, []);
  } finally {
    socket.destroy();
    await server.close();
  }
});

test.serial('required: an upgrade without a binding, or with garbage under onInvalid ignore, is refused', async (t) => {
  const server = await start({ required: true, onInvalid: 'ignore' });
  const missing = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  const garbage = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  try {
    t.regex(await raw(missing, wsUpgrade('').request, /\}$/), /^HTTP\/1\.1 400 [^]*"code":"ERR_TB_HEADER_MISSING"/);
    t.regex(await raw(garbage, wsUpgrade('Sec-Token-Binding: x\r\n').request, /\}$/), /^HTTP\/1\.1 400 [^]*"code":"ERR_TB_HEADER_ENCODING"/);
    t.deepEqual(server.upgraded, []);
  } finally {
    missing.destroy();
    garbage.destroy();
    await server.close();
  }
});

test.serial("'connect' requests are verified too", async (t) => {
  const server = https.createServer({ key: tlsKey, cert });
  const seen: unknown[] = [];
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    seen.push(req.tokenBinding);
    socket.end('HTTP/1.1 200 Connection Established\r\n\r\n');
  });
  attachTokenBinding(server);
  const listening = await listen(server);
  const bad = await connectTls(listening.port, { ALPNProtocols: ['http/1.1'] });
  const good = await connectTls(listening.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const connect = 'CONNECT upstream.test:443 HTTP/1.1\r\nHost: upstream.test:443\r\n';
    t.regex(await raw(bad, `${connect}Sec-Token-Binding: AAA\r\n\r\n`, /\}$/), /^HTTP\/1\.1 400 [^]*"code":"ERR_TB_MALFORMED"/);
    t.deepEqual(seen, []);
    const header = createSecTokenBindingHeader({ provided: key, ekm: clientEkm(good) });
    t.regex(await raw(good, `${connect}Sec-Token-Binding: ${header}\r\n\r\n`, /\r\n\r\n$/), /^HTTP\/1\.1 200 /);
    t.is(seen.length, 1);
    t.not(seen[0], null);
  } finally {
    bad.destroy();
    good.destroy();
    await listening.close();
  }
});

test.serial('requests: the middleware behind it reuses the verdict (one verification); 100-continue waits for verification', async (t) => {
  const server = await start();
  const conn = await openConnection(server.port, { tls: 'TLSv1.3' });
  const socket = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const { events } = await collectVerifyEvents(async () => {
      const res = await conn.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) });
      t.is(res.status, 200);
      t.not(JSON.parse(res.body).tbh, null);
    });
    t.deepEqual(
      events.map((e) => e.outcome),
      ['accepted'],
    );
    const response = await raw(socket, 'POST / HTTP/1.1\r\nHost: localhost\r\nSec-Token-Binding: AAA\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n', /\}$/);
    t.regex(response, /^HTTP\/1\.1 400 /);
    t.false(response.includes('100 Continue'));
  } finally {
    await conn.close();
    socket.destroy();
    await server.close();
  }
});

test.serial('an HTTP/2 secure server: streams verified before stream and request listeners', async (t) => {
  const server = http2.createSecureServer({ key: tlsKey, cert });
  const streams: unknown[] = [];
  server.on('stream', (stream) => streams.push(getTokenBinding(stream)));
  server.on('request', (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ tokenBinding: req.tokenBinding ?? 'unset', ttrp: Object.keys(req.headers).filter((n) => TTRP.includes(n)) }));
  });
  attachTokenBinding(server, { required: true });
  const listening = await listen(server);
  const conn = await openConnection(listening.port, { tls: 'TLSv1.3', http2: true });
  try {
    const bad = await conn.request('/', { 'sec-token-binding': 'AAA' });
    t.is(bad.status, 400);
    t.is(JSON.parse(bad.body).code, 'ERR_TB_MALFORMED');
    t.is(JSON.parse((await conn.request('/')).body).code, 'ERR_TB_HEADER_MISSING');
    t.deepEqual(streams, []);
    const good = await conn.request('/', {
      'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }),
      'sec-provided-token-binding-id': 'spoofed',
    });
    t.is(good.status, 200);
    const body = JSON.parse(good.body);
    t.like(body.tokenBinding, { provided: { keyParameters: 'ecdsap256' } });
    t.deepEqual(body.ttrp, []);
    t.is(streams.length, 1);
    t.deepEqual(JSON.parse(JSON.stringify(streams[0])), body.tokenBinding);
  } finally {
    await conn.close();
    await listening.close();
  }
});

test.serial('idempotent: a second call with equal options does nothing; other options, a plain HTTP server, bad options: TypeError', async (t) => {
  const server = https.createServer({ key: tlsKey, cert }, (req, res) => res.end(String(req.tokenBinding === null)));
  attachTokenBinding(server, { required: false });
  t.is(attachTokenBinding(server, { required: false }), server);
  t.is(attachTokenBinding(server, {}), server);
  t.throws(() => attachTokenBinding(server, { required: true }), { instanceOf: TypeError });
  t.throws(() => attachTokenBinding(server, { keyParameters: ['rsa2048_pss'] }), { instanceOf: TypeError });
  t.throws(() => attachTokenBinding(http.createServer() as never), { instanceOf: TypeError });
  t.throws(() => attachTokenBinding(null as never), { instanceOf: TypeError });
  t.throws(() => attachTokenBinding(https.createServer(), { onInvalid: 'maybe' as never }), { instanceOf: TypeError });
  const own = createServer({ key: tlsKey, cert, tokenBinding: { maxDistinctMessages: 4 } });
  t.is(attachTokenBinding(own, { maxDistinctMessages: 4 }), own);
  t.throws(() => attachTokenBinding(own, { maxDistinctMessages: 5 }), { instanceOf: TypeError });

  const listening = await listen(server);
  const conn = await openConnection(listening.port, { tls: 'TLSv1.3' });
  try {
    const { events } = await collectVerifyEvents(async () => {
      t.is((await conn.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) })).body, 'false');
    });
    t.is(events.length, 1, 'verified once, not once per call');
  } finally {
    await conn.close();
    await listening.close();
  }
});

/**
 * Asks for a TLS 1.2 renegotiation. 'renegotiated': it completed and the connection still answers
 * a request; 'closed': the server closed its side (observed on the server's socket: the client's
 * renegotiating socket does not always notice the peer went away).
 */
async function renegotiate(server: https.Server, port: number): Promise<'renegotiated' | 'closed'> {
  const accepted = once(server, 'secureConnection').then(([s]) => s as TLSSocket);
  const socket: TLSSocket = await connectTls(port, { maxVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] });
  const serverSide = await accepted;
  try {
    const closed = new Promise<'closed'>((resolve) => serverSide.once('close', () => resolve('closed')));
    const answered = new Promise<'renegotiated'>((resolve) => {
      socket.renegotiate({ rejectUnauthorized: false }, (err) => {
        if (err) return;
        socket.once('data', () => resolve('renegotiated'));
        socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
      });
    });
    return await Promise.race([closed, answered]);
  } finally {
    socket.destroy();
  }
}

test.serial("renegotiation is refused on an attached server: the connection is closed, even with the application's own 'clientError' listener (a plain server allows it)", async (t) => {
  const plain = https.createServer({ key: tlsKey, cert }, (_req, res) => res.end('ok'));
  const attached = https.createServer({ key: tlsKey, cert }, (_req, res) => res.end('ok'));
  attachTokenBinding(attached);
  const [a, b] = await Promise.all([listen(plain), listen(attached)]);
  try {
    t.is(await renegotiate(plain, a.port), 'renegotiated', 'the probe can tell');
    const refused = once(attached, 'clientError');
    t.is(await renegotiate(attached, b.port), 'closed');
    t.is((await refused)[0].code, 'ERR_TLS_RENEGOTIATION_DISABLED');
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test.serial('a connection accepted before attachTokenBinding is verified with facts taken at its first request', async (t) => {
  const server = https.createServer({ key: tlsKey, cert }, (req, res) => res.end(JSON.stringify({ tb: req.tokenBinding ?? 'unset' })));
  const listening = await listen(server);
  const conn = await openConnection(listening.port, { tls: 'TLSv1.3' });
  try {
    t.is(JSON.parse((await conn.request('/')).body).tb, 'unset', 'not attached yet');
    attachTokenBinding(server);
    const res = await conn.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) });
    t.like(JSON.parse(res.body).tb, { provided: { keyParameters: 'ecdsap256' } });
    t.is((await conn.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: new Uint8Array(32) }) })).status, 400);
  } finally {
    await conn.close();
    await listening.close();
  }
});

test.serial("Fastify's own https server: attachTokenBinding(app.server) covers WebSocket upgrades, the plugin reuses the verdict", async (t) => {
  const { default: Fastify } = await import('fastify');
  const { tokenBinding: fastifyTokenBinding } = await import('../../src/adapters/fastify.js');
  const app = Fastify({ https: { key: tlsKey, cert }, forceCloseConnections: true });
  attachTokenBinding(app.server, { required: true });
  await app.register(fastifyTokenBinding, { required: true });
  app.get('/', async (request) => ({ kp: request.tokenBinding?.provided.keyParameters ?? null }));
  const upgraded: unknown[] = [];
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    upgraded.push(req.tokenBinding);
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(String(req.headers['sec-websocket-key']))}\r\n\r\n`);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  const conn = await openConnection(address.port, { tls: 'TLSv1.3' });
  const ws = await connectTls(address.port, { ALPNProtocols: ['http/1.1'] });
  const refused = await connectTls(address.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const { events } = await collectVerifyEvents(async () => {
      const res = await conn.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) });
      t.deepEqual(JSON.parse(res.body), { kp: 'ecdsap256' });
    });
    t.is(events.length, 1);
    t.regex(await raw(refused, wsUpgrade('').request, /\}$/), /^HTTP\/1\.1 400 [^]*"code":"ERR_TB_HEADER_MISSING"/);
    const header = createSecTokenBindingHeader({ provided: key, ekm: clientEkm(ws) });
    t.regex(await raw(ws, wsUpgrade(`Sec-Token-Binding: ${header}\r\n`).request, /\r\n\r\n$/), /^HTTP\/1\.1 101 /);
    t.is(upgraded.length, 1);
    t.not(upgraded[0], null);
  } finally {
    ws.destroy();
    refused.destroy();
    await conn.close();
    await app.close();
  }
});
