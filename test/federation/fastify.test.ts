/** tokbind/federation on Fastify (@fastify/session): completeSignIn takes Fastify's request, over real TLS. */
import { randomBytes } from 'node:crypto';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import test from 'ava';
import Fastify from 'fastify';
import { exportJWK, generateKeyPair } from 'jose';
import { TokenBindingDispatcher, tokbindFetch } from '../../src/client/dispatcher.js';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { isTokenBindingError } from '../../src/errors.js';
import { completeSignIn, createIdTokenVerifier, federationTokenBinding, signIdToken } from '../../src/federation/index.js';
import { createServer } from '../../src/http/server.js';
import { fastifySessionBinding, sessionErrorStatus } from '../../src/session/index.js';
import { testCertificate } from '../_tls.js';

declare module 'fastify' {
  interface Session {
    user?: string;
  }
}

test('a Fastify relying party: the ID token signs in its own client only, and the session is bound', async (t) => {
  const issuer = 'https://127.0.0.1:1';
  const signing = await generateKeyPair('ES256');
  const jwks = { keys: [{ ...(await exportJWK(signing.publicKey)), kid: 'k1', alg: 'ES256' }] };
  const idTokens = createIdTokenVerifier({ issuer, clientId: 'app', jwks });
  const app = Fastify({ serverFactory: (handler) => createServer({ key: testCertificate.key, cert: testCertificate.cert }, handler), forceCloseConnections: true });
  await app.register(fastifyCookie);
  await app.register(fastifySession, { secret: randomBytes(32).toString('hex'), saveUninitialized: false, cookie: { secure: true, httpOnly: true } });
  await app.register(fastifySessionBinding, { policy: 'required' });
  app.post<{ Body: { id_token?: string } }>('/session', async (request, reply) => {
    t.not(federationTokenBinding(request), null);
    try {
      const { payload } = await completeSignIn(request, idTokens, request.body?.id_token ?? '');
      request.session.set('user', String(payload.sub));
      return { user: payload.sub };
    } catch (err) {
      if (!isTokenBindingError(err)) throw err;
      return reply.code(err.code.startsWith('ERR_TB_SESSION') ? sessionErrorStatus(err.code) : 401).send({ code: err.code });
    }
  });
  app.get('/profile', async (request, reply) => {
    const user = request.session.get('user');
    return user === undefined ? reply.code(401).send({ error: 'not_logged_in' }) : { user };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `https://localhost:${(app.server.address() as { port: number }).port}`;
  const connect = { ca: testCertificate.ca };
  const victimKeys = new MemoryKeyStore();
  const victim = new TokenBindingDispatcher({ keyStore: victimKeys, connect });
  const thief = new TokenBindingDispatcher({ keyStore: new MemoryKeyStore(), connect });
  try {
    // What a provider would issue from the victim's referred binding: bound to its key for this app.
    const referred = await victimKeys.getOrCreateKey('localhost', 'ecdsap256');
    const idToken = await signIdToken({}, { tokenBindingID: referred.id, key: signing.privateKey, alg: 'ES256', kid: 'k1', issuer, audience: 'app', subject: 'alice' });
    const post = (dispatcher: TokenBindingDispatcher, headers: Record<string, string> = {}) =>
      tokbindFetch(`${url}/session`, { dispatcher, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ id_token: idToken }) });
    const replay = await post(thief);
    t.deepEqual([replay.status, await replay.json()], [401, { code: 'ERR_TB_CNF_MISMATCH' }]);
    const signIn = await post(victim);
    t.deepEqual([signIn.status, await signIn.json()], [200, { user: 'alice' }]);
    const cookie = signIn.headers.getSetCookie()[0]!.split(';', 1)[0]!;
    t.deepEqual(await (await tokbindFetch(`${url}/profile`, { dispatcher: victim, headers: { cookie } })).json(), { user: 'alice' });
    const stolen = await tokbindFetch(`${url}/profile`, { dispatcher: thief, headers: { cookie } });
    t.is(stolen.status, 403);
  } finally {
    await Promise.all([victim.close(), thief.close()]);
    await app.close();
  }
});
