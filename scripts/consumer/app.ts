/**
 * A consumer of the packed tokbind, as an application writes it (README's snippets): copied into a
 * scratch project by scripts/check-package.js, type-checked there without skipLibCheck
 * (nodenext and bundler), compiled and run. Not part of this repository's build.
 *
 * Type assertions fail the compile; runtime checks exit non-zero with the reason.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { fetch } from 'undici';
import {
  createServer,
  createSelfSignedCertificate,
  MemoryKeyStore,
  TokenBindingAgent,
  TokenBindingDispatcher,
  type TokenBindingResult,
} from 'tokbind';
import { tokenBinding, tokenBindingErrorHandler } from 'tokbind/express';
import { tokenBinding as tokenBindingPlugin } from 'tokbind/fastify';
import { entryPoints } from './exports.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(value: T): T {
  return value;
}

// The README's promises, checked by the compiler. A plain IncomingMessage may not have met tokbind
// (undefined); in Express and Fastify handlers behind the middleware/plugin it is set.
assertType<Equal<IncomingMessage['tokenBinding'], TokenBindingResult | null | undefined>>(true);
assertType<Equal<express.Request['tokenBinding'], TokenBindingResult | null>>(true);

const { key, cert } = createSelfSignedCertificate();
const tbh = (id: string): string => createHash('sha256').update(Buffer.from(id, 'base64url')).digest('base64url');

interface Seen {
  readonly status: number;
  readonly body: { readonly id?: string | null; readonly tbh?: string | null; readonly code?: string };
}

function get(url: string, options: https.RequestOptions): Promise<Seen> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca: cert, servername: 'localhost', ...options }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Seen['body'] });
          } catch (err) {
            reject(err);
          }
        });
      })
      .on('error', reject);
  });
}

function urlOf(server: { address(): AddressInfo | string | null }): string {
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object', 'server not listening on TCP');
  return `https://127.0.0.1:${address.port}`;
}

// Every export path loads and exports something.
for (const [specifier, module] of Object.entries(entryPoints)) {
  assert.ok(Object.keys(module).length > 0, `${specifier} exports nothing`);
}

// 1. createServer with a plain handler.
const plain = createServer({ key, cert, tokenBinding: { keyParameters: ['ecdsap256'] } }, (req, res) => {
  const binding = req.tokenBinding;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ id: binding?.provided.id ?? null, tbh: binding?.provided.hash ?? null }));
});
plain.listen(0, '127.0.0.1');
await once(plain, 'listening');

// 2. Express on createServer, the middleware and its error handler.
const app = express();
app.use(tokenBinding());
app.get('/', (req, res) => {
  assertType<Equal<typeof req.tokenBinding, TokenBindingResult | null>>(true);
  res.json({ id: req.tokenBinding?.provided.id ?? null, tbh: req.tokenBinding?.provided.hash ?? null });
});
app.use('/api', tokenBinding({ required: true }));
app.get('/api/me', (req, res) => res.json({ id: req.tokenBinding!.provided.id, tbh: req.tokenBinding!.provided.hash }));
app.use(tokenBindingErrorHandler());
const expressServer = createServer({ key, cert, tokenBinding: {} }, app);
expressServer.listen(0, '127.0.0.1');
await once(expressServer, 'listening');

// 3. Fastify with createServer as its serverFactory, and the plugin.
const fastify = Fastify({
  serverFactory: (handler) => createServer({ key, cert, tokenBinding: {} }, handler),
  forceCloseConnections: true,
});
await fastify.register(tokenBindingPlugin);
fastify.get('/', async (request) => {
  assertType<Equal<typeof request.tokenBinding, TokenBindingResult | null>>(true);
  return { id: request.tokenBinding?.provided.id ?? null, tbh: request.tokenBinding?.provided.hash ?? null };
});
await fastify.listen({ port: 0, host: '127.0.0.1' });

const servers = { 'createServer': urlOf(plain), 'express': urlOf(expressServer), 'fastify': urlOf(fastify.server) };
const keyStore = new MemoryKeyStore();
const agent = new TokenBindingAgent({ keyStore, ca: cert });
const dispatcher = new TokenBindingDispatcher({ keyStore, connect: { ca: cert, servername: 'localhost' } });
try {
  let id: string | undefined;
  for (const [name, url] of Object.entries(servers)) {
    const bound = await get(`${url}/`, { agent });
    assert.equal(bound.status, 200, `${name}: bound request answered ${bound.status}`);
    assert.ok(typeof bound.body.id === 'string' && bound.body.id.length > 0, `${name}: req.tokenBinding was not set for a bound request`);
    assert.equal(bound.body.tbh, tbh(bound.body.id), `${name}: provided.hash is not SHA-256 of the ID`);
    // One key per scope (127.0.0.1): the same client presents the same ID to every server.
    id ??= bound.body.id;
    assert.equal(bound.body.id, id, `${name}: the client's ID changed between servers`);

    const unbound = await get(`${url}/`, { agent: false });
    assert.equal(unbound.status, 200, `${name}: request without a binding answered ${unbound.status}`);
    assert.equal(unbound.body.id, null, `${name}: req.tokenBinding is not null without Sec-Token-Binding`);

    const forged = await get(`${url}/`, { agent: false, headers: { 'sec-token-binding': 'AIkAAgBBQ' } });
    assert.equal(forged.status, 400, `${name}: a malformed Sec-Token-Binding answered ${forged.status}`);
    assert.match(forged.body.code ?? '', /^ERR_TB_/, `${name}: the 400 carries no tokbind error code`);

    const viaFetch = await fetch(`${url}/`, { dispatcher });
    assert.equal(viaFetch.status, 200, `${name}: undici fetch with the dispatcher answered ${viaFetch.status}`);
    assert.equal(((await viaFetch.json()) as Seen['body']).id, id, `${name}: the dispatcher presented another ID`);
    console.log(`${name}: bound ${id.slice(0, 12)}…, unbound null, malformed 400 ${forged.body.code}, fetch bound`);
  }
  const required = await get(`${servers.express}/api/me`, { agent: false });
  assert.equal(required.status, 400, `express: /api/me without a binding answered ${required.status}`);
  assert.equal(required.body.code, 'ERR_TB_HEADER_MISSING');
  console.log('express: required binding missing → 400 ERR_TB_HEADER_MISSING');
} finally {
  agent.destroy();
  await dispatcher.close();
  await fastify.close();
  plain.closeAllConnections();
  expressServer.closeAllConnections();
  await Promise.all([new Promise((r) => plain.close(r)), new Promise((r) => expressServer.close(r))]);
}
