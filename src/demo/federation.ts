/**
 * The federation demo (`tokbind demo --federation`): an identity provider on `127.0.0.1` and an
 * application on `localhost` — two key scopes, so the client holds one Token Binding key for
 * each — built on tokbind/federation and tokbind/session. A tokbind client signs in through the
 * redirect (the application asks for a referred binding, the provider binds the code with
 * `referred_tb` and the ID token to the referred ID, the application checks `cnf.tbh` against
 * its own connection and binds the session); then three attacks are refused.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import session from 'express-session';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { fetch as undiciFetch } from 'undici';
import { TokenBindingDispatcher, tokbindFetch } from '../client/dispatcher.js';
import { MemoryKeyStore, type TokenBindingKeyStore } from '../client/keystore.js';
import { isTokenBindingError } from '../errors.js';
import { sendProblem } from '../http/problem.js';
import { createServer } from '../http/server.js';
import { sessionBinding, sessionErrorStatus } from '../session/index.js';
import { createSelfSignedCertificate } from '../tls/certificate.js';
import {
  bindAuthorizationCode,
  bindRefreshToken,
  checkAuthorizationCodeBinding,
  checkRefreshTokenBinding,
  completeSignIn,
  createIdTokenVerifier,
  federationTokenBinding,
  providerTokenBindingMetadata,
  redirectToSignIn,
  referredTokenBindingCodeVerifier,
  signIdToken,
  type CodeBinding,
  type RefreshTokenBinding,
} from '../federation/index.js';
import { signTokenBoundJwt } from '../token/issue.js';
import { runMiddleware, type Middleware } from './middleware.js';
import type { DemoStep } from './scenario.js';

/** The client the application is registered as at the provider. */
export const FEDERATION_CLIENT_ID = 'demo-app';

const MAX_BODY_BYTES = 16 * 1024;
const CODE_TTL_MS = 60_000;
const USER = /^[A-Za-z0-9_.-]{1,32}$/;

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function refuse(res: ServerResponse, err: unknown, status?: number): void {
  if (!isTokenBindingError(err)) throw err;
  sendProblem(res, err, status ?? (err.code.startsWith('ERR_TB_SESSION') ? sessionErrorStatus(err.code) : 401));
}

interface StoredCode {
  readonly clientId: string;
  readonly redirectUri: string;
  readonly user: string;
  readonly nonce: string | undefined;
  readonly binding: CodeBinding;
  readonly expires: number;
}

interface StoredRefreshToken {
  readonly user: string;
  readonly clientId: string;
  readonly binding: RefreshTokenBinding;
}

/** Options of {@link startFederationDemo}. */
export interface FederationDemoOptions {
  /** The application's port (0: a free one). The provider always takes a free one. */
  readonly port?: number | undefined;
  /** The keys of the application's client for the token endpoint (tests share them to redeem its refresh tokens). Default: its own. */
  readonly backChannelKeyStore?: TokenBindingKeyStore | undefined;
}

/** The two running servers and what the scenario (and tests) need to reach them. */
export interface FederationDemo {
  /** `https://127.0.0.1:PORT`: the identity provider (authorize, token, jwks, metadata). */
  readonly idp: string;
  /** `https://localhost:PORT`: the application (login, callback, session, profile). */
  readonly app: string;
  /** The self-signed certificate both serve (for clients' `ca`). */
  readonly cert: string;
  /** The last ID token the application received: what the demo "leaks" to show a replay failing. */
  readonly leaked: { idToken: string | null; code: string | null };
  /** The provider's stores, which the application owns (the helpers store nothing). */
  readonly codes: Map<string, StoredCode>;
  readonly refreshTokens: Map<string, StoredRefreshToken>;
  /** The application's client secret at the provider (client_secret_post). */
  readonly clientSecret: string;
  close(): Promise<void>;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * Starts the provider and the application.
 *
 * @example
 * ```ts
 * const demo = await startFederationDemo({ port: 0 })
 * await tokbindFetch(`${demo.app}/login?user=alice`, { dispatcher })
 * ```
 */
export async function startFederationDemo(options: FederationDemoOptions = {}): Promise<FederationDemo> {
  const { port = 0 } = options;
  const tls = createSelfSignedCertificate({ altNames: ['localhost', '127.0.0.1'], days: 2 });
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'demo-1', alg: 'ES256', use: 'sig' };
  const codes = new Map<string, StoredCode>();
  const refreshTokens = new Map<string, StoredRefreshToken>();
  const leaked: FederationDemo['leaked'] = { idToken: null, code: null };

  const idpServer = createServer({ key: tls.key, cert: tls.cert });
  const appServer = createServer({ key: tls.key, cert: tls.cert });
  const idpPort = await listen(idpServer, 0, '127.0.0.1');
  // `localhost`, not 127.0.0.1: another key scope for the client (see tokenBindingScope).
  const appPort = await listen(appServer, port, 'localhost').catch(async (err: unknown) => {
    await closeServer(idpServer);
    throw err;
  });
  const idp = `https://127.0.0.1:${idpPort}`;
  const app = `https://localhost:${appPort}`;
  const redirectUri = `${app}/callback`;
  const clientSecret = randomBytes(24).toString('base64url');
  const sign = { key: privateKey, alg: 'ES256', kid: 'demo-1', issuer: idp };

  // ---- the identity provider ----
  async function provider(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', idp);
    if (url.pathname === '/.well-known/openid-configuration') {
      return send(res, 200, {
        issuer: idp,
        authorization_endpoint: `${idp}/authorize`,
        token_endpoint: `${idp}/token`,
        jwks_uri: `${idp}/jwks`,
        ...providerTokenBindingMetadata(),
      });
    }
    if (url.pathname === '/jwks') return send(res, 200, { keys: [jwk] });
    if (url.pathname === '/authorize' && req.method === 'GET') {
      const q = url.searchParams;
      if (q.get('client_id') !== FEDERATION_CLIENT_ID || q.get('redirect_uri') !== redirectUri) return send(res, 400, { error: 'invalid_request' });
      // A real provider authenticates the user here; the demo takes the hint.
      const user = q.get('login_hint') ?? '';
      if (!USER.test(user) || q.get('response_type') !== 'code') return send(res, 400, { error: 'invalid_request' });
      let binding: CodeBinding | null;
      try {
        binding = bindAuthorizationCode(Object.fromEntries(q), federationTokenBinding(req), { required: true });
      } catch (err) {
        return refuse(res, err, 400);
      }
      const code = randomBytes(24).toString('base64url');
      codes.set(code, { clientId: FEDERATION_CLIENT_ID, redirectUri, user, nonce: q.get('nonce') ?? undefined, binding: binding!, expires: Date.now() + CODE_TTL_MS });
      const back = new URL(redirectUri);
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state') ?? '');
      res.writeHead(302, { location: back.href, 'content-length': 0 });
      return void res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      const form = await readForm(req);
      if (form === null) return send(res, 400, { error: 'invalid_request' });
      if (form.get('client_id') !== FEDERATION_CLIENT_ID || form.get('client_secret') !== clientSecret) return send(res, 401, { error: 'invalid_client' });
      if (form.get('grant_type') === 'authorization_code') {
        const code = form.get('code') ?? '';
        const stored = codes.get(code);
        codes.delete(code); // spent on the first attempt, good or bad (RFC 6749 §4.1.2)
        if (stored === undefined || stored.expires < Date.now() || stored.redirectUri !== form.get('redirect_uri')) return send(res, 400, { error: 'invalid_grant' });
        let id: Uint8Array;
        try {
          id = checkAuthorizationCodeBinding(stored.binding, { codeVerifier: form.get('code_verifier'), tokenBinding: federationTokenBinding(req) });
        } catch (err) {
          if (!isTokenBindingError(err)) throw err;
          return send(res, 400, { error: 'invalid_grant', error_description: err.code });
        }
        const idToken = await signIdToken({}, { ...sign, tokenBindingID: id, audience: stored.clientId, subject: stored.user, nonce: stored.nonce });
        const body: Record<string, unknown> = { token_type: 'Bearer', id_token: idToken };
        const tb = federationTokenBinding(req);
        if (tb !== null) {
          const refreshToken = randomBytes(24).toString('base64url');
          refreshTokens.set(refreshToken, { user: stored.user, clientId: stored.clientId, binding: bindRefreshToken(tb) });
          body['refresh_token'] = refreshToken;
        }
        return send(res, 200, body);
      }
      if (form.get('grant_type') === 'refresh_token') {
        const stored = refreshTokens.get(form.get('refresh_token') ?? '');
        if (stored === undefined) return send(res, 400, { error: 'invalid_grant' });
        const tb = federationTokenBinding(req);
        try {
          checkRefreshTokenBinding(stored.binding, tb);
        } catch (err) {
          if (!isTokenBindingError(err)) throw err;
          return send(res, 400, { error: 'invalid_grant', error_description: err.code });
        }
        const accessToken = await signTokenBoundJwt({ scope: 'openid' }, { ...sign, tokenBindingID: tb!.provided, audience: idp, subject: stored.user, typ: 'at+jwt' });
        return send(res, 200, { token_type: 'Bearer', access_token: accessToken, expires_in: 300 });
      }
      return send(res, 400, { error: 'unsupported_grant_type' });
    }
    return send(res, 404, { error: 'not_found' });
  }

  // ---- the application (relying party) ----
  const sessions = session({
    name: 'sid',
    secret: randomBytes(32).toString('base64url'),
    resave: false,
    saveUninitialized: false,
    cookie: { secure: true, httpOnly: true, sameSite: 'lax', path: '/', maxAge: 30 * 60 * 1000 },
  }) as unknown as Middleware;
  const checkBinding = sessionBinding({ policy: 'required' }) as unknown as Middleware;
  const idTokens = createIdTokenVerifier({ issuer: idp, clientId: FEDERATION_CLIENT_ID, jwks: { keys: [jwk] } });
  /** state → nonce of sign-ins under way: the application's own state. */
  const pending = new Map<string, string>();
  // The application's own client for the token endpoint (its connection is bound too: refresh tokens bind to it).
  const backChannel = new TokenBindingDispatcher({ keyStore: options.backChannelKeyStore ?? new MemoryKeyStore(), connect: { ca: tls.cert } });

  async function application(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!(await runMiddleware(sessions, req, res)) || !(await runMiddleware(checkBinding, req, res))) return;
    const data = (req as { session?: { user?: string } }).session;
    const url = new URL(req.url ?? '/', app);
    if (url.pathname === '/login' && req.method === 'GET') {
      const user = url.searchParams.get('user') ?? '';
      if (!USER.test(user)) return send(res, 400, { error: 'invalid_user' });
      const state = randomBytes(16).toString('base64url');
      const nonce = randomBytes(16).toString('base64url');
      pending.set(state, nonce);
      if (pending.size > 10_000) pending.delete(pending.keys().next().value as string);
      redirectToSignIn(res, { authorizationEndpoint: `${idp}/authorize`, clientId: FEDERATION_CLIENT_ID, redirectUri, state, nonce, extra: { login_hint: user } });
      return;
    }
    if (url.pathname === '/callback' && req.method === 'GET') {
      const state = url.searchParams.get('state') ?? '';
      const nonce = pending.get(state);
      if (nonce === undefined) return send(res, 400, { error: 'unknown_state' });
      pending.delete(state);
      leaked.code = url.searchParams.get('code');
      let verifier: string;
      try {
        verifier = referredTokenBindingCodeVerifier(federationTokenBinding(req));
      } catch (err) {
        return refuse(res, err);
      }
      const answer = await tokbindFetch(`${idp}/token`, {
        dispatcher: backChannel,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: url.searchParams.get('code') ?? '',
          redirect_uri: redirectUri,
          client_id: FEDERATION_CLIENT_ID,
          client_secret: clientSecret,
          code_verifier: verifier,
        }).toString(),
      });
      const tokens = (await answer.json()) as { id_token?: string; error?: string; error_description?: string };
      if (answer.status !== 200 || typeof tokens.id_token !== 'string') {
        return send(res, 401, { error: 'sign_in_failed', detail: `the provider refused the code: ${tokens.error ?? answer.status} ${tokens.error_description ?? ''}`.trim() });
      }
      leaked.idToken = tokens.id_token;
      return signIn(req, res, tokens.id_token, nonce);
    }
    if (url.pathname === '/session' && req.method === 'POST') {
      // An ID token presented directly (as a native or single-page client does): its cnf.tbh is the only thing stopping a replay.
      const form = await readForm(req);
      return signIn(req, res, form?.get('id_token') ?? '', undefined);
    }
    if (url.pathname === '/profile' && req.method === 'GET') {
      if (data?.user === undefined) return send(res, 401, { error: 'not_logged_in' });
      return send(res, 200, { user: data.user });
    }
    return send(res, 404, { error: 'not_found' });
  }

  async function signIn(req: IncomingMessage, res: ServerResponse, idToken: string, nonce: string | undefined): Promise<void> {
    let user: string;
    let tbh: string;
    try {
      const done = await completeSignIn(req, idTokens, idToken, nonce);
      user = String(done.payload.sub);
      tbh = done.binding.tbh as string;
    } catch (err) {
      return refuse(res, err);
    }
    (req as { session?: { user?: string } }).session!.user = user;
    send(res, 200, { user, tbh });
  }

  const guard = (handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>) => (req: IncomingMessage, res: ServerResponse) => {
    handler(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: 'internal' });
      else res.destroy(err as Error);
    });
  };
  idpServer.on('request', guard(provider));
  appServer.on('request', guard(application));

  return {
    idp,
    app,
    cert: tls.cert,
    leaked,
    codes,
    refreshTokens,
    clientSecret,
    async close() {
      await Promise.all([closeServer(idpServer), closeServer(appServer), backChannel.close()]);
    },
  };
}

/** Options of {@link runFederationScenario}. */
export interface FederationScenarioOptions {
  readonly onStep?: (step: DemoStep) => void;
  readonly user?: string;
}

function cookieOf(res: Response): string | null {
  const cookie = res.headers.getSetCookie().find((c) => c.startsWith('sid='));
  return cookie === undefined ? null : cookie.split(';')[0]!;
}

async function describe(res: Response): Promise<{ status: number; code: string | null; body: Record<string, unknown> }> {
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  const code = typeof body['code'] === 'string' ? body['code'] : typeof body['error'] === 'string' ? body['error'] : null;
  return { status: res.status, code, body };
}

/**
 * The walkthrough: a victim signs in through the redirect, then an attacker (another client,
 * its own keys) tries the victim's ID token, a fresh authorization code of the victim's, and
 * the victim's session cookie. `ok` only when every step behaved as described.
 */
export async function runFederationScenario(demo: FederationDemo, options: FederationScenarioOptions = {}): Promise<{ ok: boolean; steps: DemoStep[] }> {
  const { onStep, user = 'alice' } = options;
  const steps: DemoStep[] = [];
  const connect = { ca: demo.cert };
  const victim = new TokenBindingDispatcher({ keyStore: new MemoryKeyStore(), connect });
  const attacker = new TokenBindingDispatcher({ keyStore: new MemoryKeyStore(), connect });
  const record = (step: Omit<DemoStep, 'ok' | 'notes'> & { ok: boolean; notes?: string[] }): void => {
    const full: DemoStep = { notes: [], ...step };
    steps.push(full);
    onStep?.(full);
  };
  try {
    // 1. Sign in: app → 302 + Include-Referred-Token-Binding-ID → provider (referred binding) → 302 → app/callback.
    const signIn = await tokbindFetch(`${demo.app}/login?user=${encodeURIComponent(user)}`, { dispatcher: victim });
    const cookie = cookieOf(signIn);
    const signedIn = await describe(signIn);
    record({
      actor: 'victim',
      action: `GET ${demo.app}/login → ${demo.idp}/authorize → ${demo.app}/callback`,
      outcome: `${signedIn.status} ${JSON.stringify({ user: signedIn.body['user'] })}`,
      expected: `200 {"user":"${user}"}`,
      why: 'the ID token is bound to the referred ID: cnf.tbh = the hash of the ID this connection proves',
      ok: signedIn.status === 200 && signedIn.body['user'] === user && cookie !== null,
      notes: [`session bound to tbh ${String(signedIn.body['tbh'])}`],
    });
    const profile = cookie === null ? null : await describe(await tokbindFetch(`${demo.app}/profile`, { dispatcher: victim, headers: { cookie } }));
    record({
      actor: 'victim',
      action: 'GET /profile with the session cookie',
      outcome: profile === null ? 'no cookie' : `${profile.status} ${JSON.stringify(profile.body)}`,
      expected: `200 {"user":"${user}"}`,
      why: 'the session is bound to the same Token Binding ID',
      ok: profile?.status === 200 && profile.body['user'] === user,
    });

    // 2. The ID token replayed by another client.
    const idToken = demo.leaked.idToken ?? '';
    const replay = await describe(
      await tokbindFetch(`${demo.app}/session`, {
        dispatcher: attacker,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ id_token: idToken }).toString(),
      }),
    );
    record({
      actor: 'attacker',
      action: "POST /session with the victim's ID token (leaked from a log)",
      outcome: `${replay.status} ${replay.code}`,
      expected: '401 ERR_TB_CNF_MISMATCH',
      why: "cnf.tbh is the victim's ID; the attacker's connection proves another",
      ok: replay.status === 401 && replay.code === 'ERR_TB_CNF_MISMATCH',
    });

    // 3. The authorization code redeemed by another client: the victim starts a sign-in, the code is intercepted.
    const login = await undiciFetch(`${demo.app}/login?user=${encodeURIComponent(user)}`, { dispatcher: victim, redirect: 'manual' });
    await login.body?.cancel();
    const authorize = await undiciFetch(login.headers.get('location') ?? demo.idp, { dispatcher: victim.referring(demo.app), redirect: 'manual' });
    await authorize.body?.cancel();
    const callback = authorize.headers.get('location');
    const stolen = callback === null ? null : await describe(await tokbindFetch(callback, { dispatcher: attacker }));
    record({
      actor: 'attacker',
      action: "GET /callback with the victim's intercepted code",
      outcome: stolen === null ? `${authorize.status} (no code)` : `${stolen.status} ${stolen.code}`,
      expected: '401 sign_in_failed (invalid_grant)',
      why: "the code is bound (referred_tb) to the victim's ID; the code_verifier is the attacker's",
      ok: stolen?.status === 401 && stolen.code === 'sign_in_failed' && String(stolen.body['detail']).includes('ERR_TB_CODE_BINDING_MISMATCH'),
    });

    // 4. The application's session cookie stolen.
    const theft = cookie === null ? null : await describe(await tokbindFetch(`${demo.app}/profile`, { dispatcher: attacker, headers: { cookie } }));
    record({
      actor: 'attacker',
      action: "GET /profile with the victim's session cookie",
      outcome: theft === null ? 'no cookie' : `${theft.status} ${theft.code}`,
      expected: '403 ERR_TB_SESSION_BINDING_MISMATCH',
      why: "the session is bound to the victim's ID (and now destroyed: a stolen cookie is a theft signal)",
      ok: theft?.status === 403 && theft.code === 'ERR_TB_SESSION_BINDING_MISMATCH',
    });
  } finally {
    await Promise.all([victim.close(), attacker.close()]);
  }
  return { ok: steps.length === 5 && steps.every((s) => s.ok), steps };
}

