/**
 * tokbind/session and tokbind/token unchanged behind the proxy: a plain-HTTP Express backend with express-session,
 * `tokenBinding({ trustProxy })` and `sessionBinding()`, reached only through `tokbind/proxy`
 * (with a signed assertion). A session bound through the proxy holds for its client and is
 * refused with a stolen cookie from another.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import test from 'ava';
import express from 'express';
import session from 'express-session';
import { tokenBinding } from '../../src/adapters/express.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { bindSession, sessionBinding } from '../../src/session/index.js';
import { accessToken } from '../../src/token/express.js';
import { signTokenBoundJwt } from '../../src/token/index.js';
import { listen } from '../_tls.js';
import { openConnection } from '../adapters/_client.js';
import { startTestProxy } from './_setup.js';

declare module 'express-session' {
  interface SessionData {
    user: string;
  }
}

test('a session bound through the proxy holds for its client; its cookie is refused from another client', async (t) => {
  const proxyKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const app = express();
  // Secure cookies behind a TLS-terminating proxy: X-Forwarded-Proto from the loopback proxy counts.
  app.set('trust proxy', 'loopback');
  app.use(tokenBinding({ trustProxy: { addresses: ['127.0.0.1'], key: proxyKey.publicKey.export({ format: 'jwk' }) } }));
  app.use(session({ secret: randomBytes(16).toString('hex'), resave: false, saveUninitialized: false, cookie: { secure: true } }));
  app.use(sessionBinding({ policy: 'required' }));
  // The test client sends GETs; a real login would be a POST.
  app.all('/login', async (req, res) => {
    await bindSession(req);
    req.session.user = 'alice';
    res.json({ ok: true });
  });
  app.get('/me', (req, res) => res.json({ user: req.session.user ?? null, tbh: req.tokenBinding?.provided.hash ?? null }));
  const backend = await listen(http.createServer(app));
  const proxy = await startTestProxy(`http://127.0.0.1:${backend.port}`, { forwardKey: proxyKey.privateKey });
  const alice = await openConnection(proxy.port, { tls: 'TLSv1.3' });
  const mallory = await openConnection(proxy.port, { tls: 'TLSv1.3' });
  const aliceKey = generateTokenBindingKey();
  const malloryKey = generateTokenBindingKey();
  try {
    const asAlice = { 'sec-token-binding': createSecTokenBindingHeader({ provided: aliceKey, ekm: alice.ekm }) };
    const login = await alice.request('/login', asAlice);
    t.is(login.status, 200, login.body);
    const setCookie = login.headers['set-cookie'];
    t.truthy(setCookie);
    t.regex(setCookie![0]!, /; Secure/i);
    const cookie = setCookie![0]!.split(';', 1)[0]!;
    const me = await alice.request('/me', { ...asAlice, cookie });
    t.is(me.status, 200);
    t.is(JSON.parse(me.body).user, 'alice');
    const stolen = await mallory.request('/me', { 'sec-token-binding': createSecTokenBindingHeader({ provided: malloryKey, ekm: mallory.ekm }), cookie });
    t.is(stolen.status, 403);
    t.is(JSON.parse(stolen.body).code, 'ERR_TB_SESSION_BINDING_MISMATCH');
  } finally {
    await alice.close();
    await mallory.close();
    await proxy.close();
    await backend.close();
  }
});

test('tokbind/token unchanged behind the proxy: a cnf.tbh-bound access token is accepted from its client and refused from another', async (t) => {
  const proxyKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const issuerKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...issuerKey.publicKey.export({ format: 'jwk' }), kid: 'as-1', alg: 'ES256', use: 'sig' };
  const app = express();
  app.use(tokenBinding({ trustProxy: { addresses: ['127.0.0.1'], key: proxyKey.publicKey } }));
  app.use(accessToken({ issuer: 'https://as.example', audience: 'api', jwks: { keys: [jwk] } }));
  app.get('/api/me', (req, res) => res.json({ sub: req.accessToken?.payload.sub ?? null }));
  const backend = await listen(http.createServer(app));
  const proxy = await startTestProxy(`http://127.0.0.1:${backend.port}`, { forwardKey: proxyKey.privateKey });
  const alice = await openConnection(proxy.port, { tls: 'TLSv1.3' });
  const mallory = await openConnection(proxy.port, { tls: 'TLSv1.3' });
  const aliceKey = generateTokenBindingKey();
  try {
    const token = await signTokenBoundJwt(
      { scope: 'read' },
      { tokenBindingID: aliceKey.id, key: issuerKey.privateKey, alg: 'ES256', kid: 'as-1', issuer: 'https://as.example', audience: 'api', subject: 'alice' },
    );
    const ok = await alice.request('/api/me', {
      'sec-token-binding': createSecTokenBindingHeader({ provided: aliceKey, ekm: alice.ekm }),
      authorization: `Bearer ${token}`,
    });
    t.is(ok.status, 200, ok.body);
    t.is(JSON.parse(ok.body).sub, 'alice');
    const stolen = await mallory.request('/api/me', {
      'sec-token-binding': createSecTokenBindingHeader({ provided: generateTokenBindingKey(), ekm: mallory.ekm }),
      authorization: `Bearer ${token}`,
    });
    t.is(stolen.status, 401);
    t.regex(String(stolen.headers['www-authenticate']), /invalid_token/);
  } finally {
    await alice.close();
    await mallory.close();
    await proxy.close();
    await backend.close();
  }
});
