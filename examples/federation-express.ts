/**
 * Token-bound sign-in across two sites with Express 5 (tokbind/federation): an identity provider
 * on 127.0.0.1 and an application on localhost (two key scopes for the client).
 *
 * - The app's `GET /login` redirects with `Include-Referred-Token-Binding-ID: true` and the
 *   `referred_tb` PKCE pair (`redirectToSignIn`).
 * - The provider's `GET /authorize` binds the code to the referred ID (`bindAuthorizationCode`);
 *   `POST /token` checks the verifier (`checkAuthorizationCodeBinding`) and signs an ID token
 *   whose `cnf.tbh` is that ID (`signIdToken`).
 * - The app's `GET /callback` sends the provided ID it sees as `code_verifier`
 *   (`referredTokenBindingCodeVerifier`), then `completeSignIn` checks `cnf.tbh` against this
 *   connection and binds the session (tokbind/session).
 *
 *   npm run build && node dist/examples/federation-express.js
 *
 * In your application: `import { … } from 'tokbind/federation'`. This file imports from the
 * source tree so that it is type-checked with the library.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import express from 'express';
import session from 'express-session';
import { exportJWK, generateKeyPair } from 'jose';
import { TokenBindingDispatcher, createServer, isTokenBindingError, tokbindFetch } from '../src/index.js';
import {
  bindAuthorizationCode,
  checkAuthorizationCodeBinding,
  completeSignIn,
  createIdTokenVerifier,
  redirectToSignIn,
  referredTokenBindingCodeVerifier,
  signIdToken,
  type CodeBinding,
} from '../src/federation/index.js';
import { sessionBinding } from '../src/session/index.js';
// Only for running this file directly: a throwaway self-signed certificate.
import { createSelfSignedCertificate } from '../src/tls/certificate.js';

declare module 'express-session' {
  interface SessionData {
    user: string;
  }
}

export interface ExampleOptions {
  /** PEM key and certificate, valid for localhost and 127.0.0.1. */
  readonly key: string;
  readonly cert: string;
}

export interface ExampleHandle {
  readonly idp: string;
  readonly app: string;
  close(): Promise<void>;
}

async function listen(server: Server, host: string): Promise<number> {
  server.listen(0, host);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

export async function start({ key, cert }: ExampleOptions): Promise<ExampleHandle> {
  const idpServer = createServer({ key, cert });
  const appServer = createServer({ key, cert });
  const idp = `https://127.0.0.1:${await listen(idpServer, '127.0.0.1')}`;
  const app = `https://localhost:${await listen(appServer, 'localhost')}`;
  const clientId = 'app';
  const redirectUri = `${app}/callback`;

  // ---- identity provider ----
  const signing = await generateKeyPair('ES256');
  const jwks = { keys: [{ ...(await exportJWK(signing.publicKey)), kid: 'k1', alg: 'ES256' }] };
  const codes = new Map<string, { user: string; nonce: string; binding: CodeBinding }>(); // the provider's own store
  const provider = express();
  provider.get('/authorize', (req, res) => {
    const q = req.query as Record<string, string>;
    if (q['client_id'] !== clientId || q['redirect_uri'] !== redirectUri) return void res.status(400).json({ error: 'invalid_request' });
    try {
      const binding = bindAuthorizationCode(q, req.tokenBinding, { required: true })!; // bound to the referred ID
      const code = randomBytes(24).toString('base64url');
      codes.set(code, { user: q['login_hint'] ?? 'alice', nonce: q['nonce'] ?? '', binding });
      res.redirect(302, `${redirectUri}?${new URLSearchParams({ code, state: q['state'] ?? '' })}`);
    } catch (err) {
      if (isTokenBindingError(err)) return void res.status(400).json({ error: 'invalid_request', code: err.code });
      throw err;
    }
  });
  provider.post('/token', express.urlencoded({ extended: false }), async (req, res) => {
    const stored = codes.get(req.body.code);
    codes.delete(req.body.code); // spent on the first attempt
    if (stored === undefined) return void res.status(400).json({ error: 'invalid_grant' });
    try {
      const tokenBindingID = checkAuthorizationCodeBinding(stored.binding, { codeVerifier: req.body.code_verifier, tokenBinding: req.tokenBinding });
      const idToken = await signIdToken({}, { tokenBindingID, key: signing.privateKey, alg: 'ES256', kid: 'k1', issuer: idp, audience: clientId, subject: stored.user, nonce: stored.nonce });
      res.json({ token_type: 'Bearer', id_token: idToken });
    } catch (err) {
      if (isTokenBindingError(err)) return void res.status(400).json({ error: 'invalid_grant' });
      throw err;
    }
  });
  idpServer.on('request', provider);

  // ---- application (relying party) ----
  const pending = new Map<string, string>(); // state → nonce: the app's own store
  const idTokens = createIdTokenVerifier({ issuer: idp, clientId, jwks });
  const backChannel = new TokenBindingDispatcher({ connect: { ca: cert } });
  const rp = express();
  rp.use(session({ secret: randomBytes(32).toString('hex'), resave: false, saveUninitialized: false, cookie: { secure: true, httpOnly: true, sameSite: 'lax' } }));
  rp.use(sessionBinding({ policy: 'required' }));
  rp.get('/login', (req, res) => {
    const state = randomBytes(16).toString('base64url');
    const nonce = randomBytes(16).toString('base64url');
    pending.set(state, nonce);
    const user = typeof req.query['user'] === 'string' ? req.query['user'] : 'alice';
    redirectToSignIn(res, { authorizationEndpoint: `${idp}/authorize`, clientId, redirectUri, state, nonce, extra: { login_hint: user } });
  });
  rp.get('/callback', async (req, res) => {
    const nonce = pending.get(String(req.query['state']));
    pending.delete(String(req.query['state']));
    if (nonce === undefined) return void res.status(400).json({ error: 'unknown_state' });
    try {
      const body = new URLSearchParams({ grant_type: 'authorization_code', code: String(req.query['code']), redirect_uri: redirectUri, code_verifier: referredTokenBindingCodeVerifier(req.tokenBinding) });
      const answer = await tokbindFetch(`${idp}/token`, { dispatcher: backChannel, method: 'POST', body });
      const tokens = (await answer.json()) as { id_token?: string };
      if (tokens.id_token === undefined) return void res.status(401).json({ error: 'sign_in_failed' });
      const { payload } = await completeSignIn(req, idTokens, tokens.id_token, nonce); // cnf.tbh = this connection's ID; session bound
      req.session.user = String(payload.sub);
      res.json({ user: req.session.user });
    } catch (err) {
      if (isTokenBindingError(err)) return void res.status(401).json({ code: err.code });
      throw err;
    }
  });
  rp.get('/profile', (req, res) => {
    if (req.session.user === undefined) return void res.status(401).json({ error: 'not_logged_in' });
    res.json({ user: req.session.user });
  });
  appServer.on('request', rp);

  const close = (server: Server) =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return { idp, app, close: async () => void (await Promise.all([close(idpServer), close(appServer), backChannel.close()])) };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const tls = createSelfSignedCertificate({ altNames: ['localhost', '127.0.0.1'] });
  const handle = await start(tls);
  console.log(`identity provider ${handle.idp}, app ${handle.app}: sign in with GET ${handle.app}/login?user=alice (Ctrl-C to stop)`);
  process.once('SIGINT', () => void handle.close());
}
