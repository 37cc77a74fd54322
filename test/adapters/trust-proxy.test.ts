/**
 * Trusted forwarding on the backend: Express and Fastify behind the real `tokbind/proxy` (real
 * TLS in front, plain HTTP behind), with and without the signed assertion; forged, expired and
 * replayed assertions and forwarded headers from a peer that is not the proxy.
 */
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import test from 'ava';
import express from 'express';
import Fastify from 'fastify';
import { SignJWT } from 'jose';
import { tokenBinding, tokenBindingErrorHandler } from '../../src/adapters/express.js';
import { tokenBinding as fastifyTokenBinding } from '../../src/adapters/fastify.js';
import { formatTokenBindingID } from '../../src/codec/message.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { FORWARDING_ASSERTION_TYPE, createForwardingSigner } from '../../src/http/assertion.js';
import { FORWARDED_HEADER_NAMES } from '../../src/http/forwarded.js';
import type { TrustProxyOptions } from '../../src/http/trust-proxy.js';
import { verifyTokenBindingHeader } from '../../src/http/verify.js';
import { listen } from '../_tls.js';
import { startTestProxy } from '../proxy/_setup.js';
import { openConnection } from './_client.js';

const clientKey = generateTokenBindingKey();
const providedID = formatTokenBindingID(clientKey.id);
const proxyKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const forger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const proxyPublicJwk = proxyKey.publicKey.export({ format: 'jwk' });

interface Seen {
  readonly tokenBinding: unknown;
  readonly forwardedHeaders: string[];
}

function seen(req: http.IncomingMessage & { tokenBinding?: unknown }): Seen {
  return {
    tokenBinding: req.tokenBinding ?? null,
    forwardedHeaders: req.rawHeaders.filter((_, i) => i % 2 === 0 && FORWARDED_HEADER_NAMES.has(req.rawHeaders[i]!.toLowerCase())),
  };
}

function expressBackend(trustProxy: TrustProxyOptions): http.Server {
  const app = express();
  app.use(tokenBinding({ trustProxy }));
  app.all('/{*path}', (req, res) => res.json(seen(req)));
  app.use(tokenBindingErrorHandler());
  return http.createServer(app);
}

async function fastifyBackend(trustProxy: TrustProxyOptions): Promise<{ port: number; close(): Promise<void> }> {
  const app = Fastify();
  await app.register(fastifyTokenBinding, { trustProxy });
  app.all('/*', async (request) => seen(request.raw));
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { port: (app.server.address() as { port: number }).port, close: () => app.close() };
}

/** A plain HTTP request from 127.0.0.1, straight to the backend (as anything on its network could send). */
function direct(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end();
  });
}

const trustedWithKey: TrustProxyOptions = { addresses: ['127.0.0.0/8'], key: proxyPublicJwk };

for (const framework of ['express', 'fastify'] as const) {
  const start = async (trust: TrustProxyOptions) => {
    if (framework === 'fastify') return fastifyBackend(trust);
    return listen(expressBackend(trust));
  };

  test(`${framework} behind tokbind proxy with a forward key: req.tokenBinding is the direct verdict; unbound stays null`, async (t) => {
    const backend = await start(trustedWithKey);
    const proxy = await startTestProxy(`http://127.0.0.1:${backend.port}`, { forwardKey: proxyKey.privateKey.export({ format: 'jwk' }) });
    const conn = await openConnection(proxy.port, { tls: 'TLSv1.3' });
    try {
      const header = createSecTokenBindingHeader({ provided: clientKey, ekm: conn.ekm });
      const res = await conn.request('/me?x=1', { 'sec-token-binding': header });
      t.is(res.status, 200, res.body);
      const body = JSON.parse(res.body) as Seen;
      const directVerdict = verifyTokenBindingHeader(header, { ekm: conn.ekm, negotiatedKeyParameters: [2] });
      t.deepEqual(body.tokenBinding, JSON.parse(JSON.stringify(directVerdict)));
      const unbound = await conn.request('/me');
      t.is(unbound.status, 200);
      t.is((JSON.parse(unbound.body) as Seen).tokenBinding, null);
    } finally {
      await conn.close();
      await proxy.close();
      await backend.close();
    }
  });

  test(`${framework} with trustProxy.key: forged, missing, expired and replayed-to-another-path assertions are refused`, async (t) => {
    const backend = await start(trustedWithKey);
    try {
      const claims = { htm: 'GET', htp: '/me', provided: providedID, referred: null, other: null };
      const forged = await createForwardingSigner(forger.privateKey).sign(claims);
      const now = Math.floor(Date.now() / 1000);
      const expired = await new SignJWT({ ...claims })
        .setProtectedHeader({ alg: 'ES256', typ: FORWARDING_ASSERTION_TYPE })
        .setIssuedAt(now - 600)
        .setExpirationTime(now - 570)
        .setJti('expired-one')
        .sign(proxyKey.privateKey);
      const genuine = await createForwardingSigner(proxyKey.privateKey).sign(claims);
      const send = (path: string, assertion?: string) =>
        direct(backend.port, path, {
          'sec-provided-token-binding-id': providedID,
          ...(assertion === undefined ? {} : { 'sec-token-binding-assertion': assertion }),
        });
      for (const [assertion, path] of [
        [forged, '/me'],
        [undefined, '/me'],
        [expired, '/me'],
        [genuine, '/admin'],
      ] as const) {
        const res = await send(path, assertion);
        t.is(res.status, 400);
        t.is(res.body['code'], 'ERR_TB_FORWARDED_ASSERTION');
      }
      const accepted = await send('/me', genuine);
      t.is(accepted.status, 200);
      t.is((accepted.body['tokenBinding'] as { provided: { id: string } }).provided.id, providedID);
      const replayed = await send('/me', genuine);
      t.is(replayed.status, 400);
      t.is(replayed.body['code'], 'ERR_TB_FORWARDED_ASSERTION');
      // Malformed forwarded IDs are refused even with a valid assertion.
      const bad = await direct(backend.port, '/me', { 'sec-provided-token-binding-id': 'AgBB' });
      t.is(bad.status, 400);
      t.is(bad.body['code'], 'ERR_TB_FORWARDED_MALFORMED');
    } finally {
      await backend.close();
    }
  });

  test(`${framework} with trustProxy: forwarded headers from a peer that is not the proxy are stripped, not believed`, async (t) => {
    const backend = await start({ addresses: ['10.0.0.0/8', 'fd00::/8'] });
    try {
      const res = await direct(backend.port, '/me', {
        'Sec-Provided-Token-Binding-ID': providedID,
        'sec-other-token-binding-id': `4d.${providedID}`,
        'Sec-Token-Binding-Assertion': 'x',
      });
      t.is(res.status, 200);
      t.deepEqual(res.body, { tokenBinding: null, forwardedHeaders: [] });
    } finally {
      await backend.close();
    }
  });
}

test('express with trustProxy and no key: the trusted address alone is believed; Sec-Token-Binding beside forwarded IDs is refused', async (t) => {
  const backend = await listen(expressBackend({ addresses: ['127.0.0.1', '::ffff:127.0.0.1'] }));
  try {
    const ok = await direct(backend.port, '/me', { 'sec-provided-token-binding-id': providedID });
    t.is(ok.status, 200);
    t.is((ok.body['tokenBinding'] as { provided: { id: string } }).provided.id, providedID);
    const both = await direct(backend.port, '/me', { 'sec-provided-token-binding-id': providedID, 'sec-token-binding': 'AAA' });
    t.is(both.status, 400);
    t.is(both.body['code'], 'ERR_TB_FORWARDED_MALFORMED');
    // No forwarded header at all: an ordinary request, verified as a direct one.
    const plain = await direct(backend.port, '/me', {});
    t.deepEqual(plain.body, { tokenBinding: null, forwardedHeaders: [] });
  } finally {
    await backend.close();
  }
});

test('trustProxy options are checked at setup', async (t) => {
  for (const trustProxy of [
    { addresses: [] },
    { addresses: ['not-an-ip'] },
    { addresses: ['10.0.0.0/33'] },
    { addresses: ['::/129'] },
    { addresses: ['10.0.0.0/x'] },
    { addresses: [5] },
    { addresses: ['10.0.0.1'], key: { kty: 'oct', k: 'AA' } },
  ]) {
    t.throws(() => tokenBinding({ trustProxy: trustProxy as never }), { instanceOf: TypeError });
  }
  const app = Fastify();
  await t.throwsAsync(app.register(fastifyTokenBinding, { trustProxy: { addresses: ['nope'] } }).ready(), { instanceOf: TypeError });
});
