/**
 * The Express middleware and the Fastify plugin on plain Node https servers with tokbind's
 * adapters, driven by tokbind's agent (bearer token, `accessTokenHeaders`) and fetch (DPoP).
 */
import https from 'node:https';
import test from 'ava';
import express from 'express';
import Fastify from 'fastify';
import { TokenBindingAgent } from '../../src/client/agent.js';
import { TokenBindingDispatcher, tokbindFetch } from '../../src/client/dispatcher.js';
import { DpopSigner, accessTokenHeaders } from '../../src/client/dpop.js';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { tokenBindingScope } from '../../src/client/scope.js';
import { tokenBinding as expressTokenBinding } from '../../src/adapters/express.js';
import { tokenBinding as fastifyTokenBinding } from '../../src/adapters/fastify.js';
import { tokenBindingConfirmation } from '../../src/token/cnf.js';
import { accessToken as expressAccessToken } from '../../src/token/express.js';
import { accessToken as fastifyAccessToken, createAccessTokenHook } from '../../src/token/fastify.js';
import { createAccessTokenVerifier } from '../../src/token/verify.js';
import { listen, testCertificate } from '../_tls.js';
import { AUDIENCE, ISSUER, collectTokenEvents, createIssuer, plainAgent, plainGet } from './_rs.js';

const issuer = await createIssuer();
const options = { issuer: ISSUER, audience: AUDIENCE, jwks: issuer.jwks, dpop: { nonce: true } } as const;

function agentGet(url: string, agent: https.Agent, headers: Record<string, string>): Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { agent, headers }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) as Record<string, unknown> }));
      })
      .on('error', reject);
  });
}

async function startExpress(): Promise<{ url: string; close(): Promise<void> }> {
  const app = express();
  app.use(expressTokenBinding());
  app.use('/api', expressAccessToken(options));
  app.use('/open', expressAccessToken({ verifier: createAccessTokenVerifier(options), requireToken: false }));
  const route = (req: express.Request, res: express.Response): void => void res.json({ sub: req.accessToken?.payload.sub ?? null, method: req.accessToken?.method ?? null });
  app.get('/api/me', route);
  app.get('/open/me', route);
  const server = https.createServer({ key: testCertificate.key, cert: testCertificate.cert }, app);
  const listening = await listen(server);
  return { url: `https://127.0.0.1:${listening.port}`, close: listening.close };
}

async function startFastify(): Promise<{ url: string; close(): Promise<void> }> {
  const app = Fastify({ https: { key: testCertificate.key, cert: testCertificate.cert } });
  await app.register(fastifyTokenBinding);
  await app.register(async (api) => {
    await api.register(fastifyAccessToken, options);
    api.get('/api/me', async (request) => ({ sub: request.accessToken?.payload.sub ?? null, method: request.accessToken?.method ?? null }));
  });
  await app.register(async (open) => {
    open.decorateRequest('accessToken', null);
    open.addHook('onRequest', createAccessTokenHook({ ...options, requireToken: false }));
    open.get('/open/me', async (request) => ({ sub: request.accessToken?.payload.sub ?? null, method: request.accessToken?.method ?? null }));
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening');
  return { url: `https://127.0.0.1:${address.port}`, close: () => app.close() };
}

for (const [name, start] of [
  ['express', startExpress],
  ['fastify', startFastify],
] as const) {
  test(`${name}: tbh through the agent and jkt through fetch are accepted; refusals carry the RFC challenge`, async (t) => {
    const server = await start();
    const keyStore = new MemoryKeyStore();
    const agent = new TokenBindingAgent({ keyStore, ca: testCertificate.ca });
    const dispatcher = new TokenBindingDispatcher({ keyStore, connect: { ca: testCertificate.ca, servername: 'localhost' } });
    const plain = plainAgent();
    try {
      const key = await keyStore.getOrCreateKey(tokenBindingScope(server.url), 'ecdsap256');
      const tbhToken = await issuer.mint({ cnf: tokenBindingConfirmation(key.id) });
      const url = `${server.url}/api/me`;
      const bound = await agentGet(url, agent, await accessTokenHeaders(tbhToken, { method: 'GET', url }));
      t.is(bound.status, 200);
      t.deepEqual(bound.body, { sub: 'alice', method: 'tbh' });

      const stolen = await plainGet(url, { authorization: `Bearer ${tbhToken}` }, plain);
      t.is(stolen.status, 401);
      t.is(stolen.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
      t.is(stolen.headers.get('content-type'), 'application/problem+json');
      t.is(stolen.json['code'], 'ERR_TB_CNF_MISSING');

      const signer = await DpopSigner.fromKeyStore(keyStore);
      const jktToken = await issuer.mint({ cnf: { jkt: await signer.thumbprint() } });
      const viaFetch = await tokbindFetch(url, { dispatcher, accessToken: jktToken, dpop: signer });
      t.is(viaFetch.status, 200);
      t.deepEqual(await viaFetch.json(), { sub: 'alice', method: 'jkt' });
      t.regex(viaFetch.headers.get('dpop-nonce') ?? '', /^[A-Za-z0-9_-]{27}$/);
      const viaAgent = await agentGet(url, agent, await accessTokenHeaders(jktToken, { method: 'GET', url, dpop: signer }));
      t.is(viaAgent.status, 200);

      const missing = await plainGet(url, {}, plain);
      t.is(missing.status, 401);
      t.regex(missing.headers.get('www-authenticate') ?? '', /^Bearer, DPoP algs="ES256 /);
      // Optional: no token passes with null, a presented one is still checked.
      t.deepEqual((await plainGet(`${server.url}/open/me`, {}, plain)).json, { sub: null, method: null });
      t.is((await plainGet(`${server.url}/open/me`, { authorization: `Bearer ${tbhToken}` }, plain)).json['code'], 'ERR_TB_CNF_MISSING');
    } finally {
      agent.destroy();
      await Promise.all([dispatcher.close(), plain.close()]);
      await server.close();
    }
  });
}

test('glue options are checked at setup', async (t) => {
  t.throws(() => expressAccessToken(null as never), { instanceOf: TypeError });
  t.throws(() => expressAccessToken({ ...options, requireToken: 'no' as never }), { instanceOf: TypeError });
  t.throws(() => createAccessTokenHook({ verifier: {} as never }), { instanceOf: TypeError });
  const app = Fastify();
  await t.throwsAsync(app.register(fastifyAccessToken, { ...options, issuer: '' }).ready(), { instanceOf: TypeError });
  await accessTokenHeaders('t', { method: 'GET', url: 'https://x.test/' }).then((h) => t.deepEqual(h, { authorization: 'Bearer t' }));
  await t.throwsAsync(accessTokenHeaders('', { method: 'GET', url: 'https://x.test/' }), { instanceOf: TypeError });
});

test.serial('a missing token is published as a rejection only where a token is required', async (t) => {
  const server = await startExpress();
  const plain = plainAgent();
  try {
    const { events } = await collectTokenEvents(async () => {
      await plainGet(`${server.url}/api/me`, {}, plain);
      await plainGet(`${server.url}/open/me`, {}, plain);
    });
    t.deepEqual(events, [{ outcome: 'rejected', method: null, code: 'ERR_TB_TOKEN_MISSING', stolen: false }]);
  } finally {
    await plain.close();
    await server.close();
  }
});
