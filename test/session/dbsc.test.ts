/**
 * DBSC, unit level and over real TLS: the proof checks with jose-made proofs (wrong typ, wrong or
 * expired or replayed jti, wrong key, alg none / HS256, a private or weak embedded key), the
 * bound-cookie verdicts, and the endpoints on Express + express-session (tokbind's server) driven
 * by a software DBSC client (jose keys): registration, refresh challenge and proof, replays, the
 * rate limit, a failed proof ending the session, a Token Binding client on the same login.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import express from 'express';
import session from 'express-session';
import { SignJWT, UnsecuredJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { TokenBindingAgent } from '../../src/client/agent.js';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { isTokenBindingError } from '../../src/errors.js';
import { createServer } from '../../src/http/server.js';
import {
  SESSION_CHANNEL_NAME,
  deviceBoundSessions,
  readSessionBinding,
  sessionBinding,
  tokenBindingSessionMethod,
  type DbscSessionBinding,
  type DeviceBoundSessionOptions,
  type SessionEvent,
} from '../../src/session/index.js';
import { testCertificate } from '../_tls.js';

const SECRET = 'x'.repeat(40);

interface Key {
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

async function es256(): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { privateKey, jwk: await exportJWK(publicKey) };
}

function proof(key: Key, jti: string, header: Record<string, unknown> = {}, alg = 'ES256'): Promise<string> {
  return new SignJWT({ jti }).setProtectedHeader({ alg, typ: 'dbsc+jwt', jwk: key.jwk, ...header }).sign(key.privateKey);
}

async function rejects(t: import('ava').ExecutionContext, promise: Promise<unknown>, code: string): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  t.true(isTokenBindingError(err), String(err));
  t.is((err as { code: string }).code, code);
}

function clock(start = 1_800_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

test('registration proofs: valid ES256 and RS256 accepted; typ, jti, expiry, alg none / HS256, private and weak keys refused', async (t) => {
  const c = clock();
  const dbsc = deviceBoundSessions({ secret: SECRET, now: c.now });
  const key = await es256();
  const jti = dbsc.issueChallenge('register', 'sid-1');
  const ok = await dbsc.verifyRegistration(await proof(key, jti), 'sid-1');
  t.is(ok.alg, 'ES256');
  t.deepEqual(ok.jwk, { kty: 'EC', crv: 'P-256', x: key.jwk.x!, y: key.jwk.y! });

  const rsa = await generateKeyPair('RS256', { modulusLength: 2048 });
  const rsaJwk = await exportJWK(rsa.publicKey);
  const rsaOk = await dbsc.verifyRegistration(await proof({ privateKey: rsa.privateKey, jwk: rsaJwk }, jti, {}, 'RS256'), 'sid-1');
  t.is(rsaOk.alg, 'RS256');
  t.deepEqual(Object.keys(rsaOk.jwk).sort(), ['e', 'kty', 'n']);

  await rejects(t, dbsc.verifyRegistration(await proof(key, jti, { typ: 'jwt' }), 'sid-1'), 'ERR_TB_DBSC_PROOF_INVALID');
  await rejects(t, dbsc.verifyRegistration(await proof(key, jti, { typ: undefined }), 'sid-1'), 'ERR_TB_DBSC_PROOF_INVALID');
  // A challenge for another session, a made-up one, a refresh challenge, a tampered one.
  await rejects(t, dbsc.verifyRegistration(await proof(key, jti), 'sid-2'), 'ERR_TB_DBSC_CHALLENGE_INVALID');
  await rejects(t, dbsc.verifyRegistration(await proof(key, 'made-up'), 'sid-1'), 'ERR_TB_DBSC_CHALLENGE_INVALID');
  await rejects(t, dbsc.verifyRegistration(await proof(key, dbsc.issueChallenge('refresh', 'sid-1')), 'sid-1'), 'ERR_TB_DBSC_CHALLENGE_INVALID');
  const [nonce, expiry, tag] = jti.split('.') as [string, string, string];
  const later = (parseInt(expiry, 36) + 3_600_000).toString(36);
  await rejects(t, dbsc.verifyRegistration(await proof(key, `${nonce}.${later}.${tag}`), 'sid-1'), 'ERR_TB_DBSC_CHALLENGE_INVALID');
  await rejects(t, dbsc.verifyRegistration(await proof(key, 42 as unknown as string), 'sid-1'), 'ERR_TB_DBSC_CHALLENGE_INVALID');
  // The key of another: signed by one key, the header names another.
  const other = await es256();
  await rejects(t, dbsc.verifyRegistration(await proof(key, jti, { jwk: other.jwk }), 'sid-1'), 'ERR_TB_DBSC_PROOF_INVALID');
  // alg none, HS256, an algorithm not allowed, a private key in the header, a 1024-bit RSA key.
  const none = new UnsecuredJWT({ jti }).encode();
  await rejects(t, dbsc.verifyRegistration(none, 'sid-1'), 'ERR_TB_DBSC_PROOF_INVALID');
  const hs = await new SignJWT({ jti }).setProtectedHeader({ alg: 'HS256', typ: 'dbsc+jwt', jwk: key.jwk }).sign(new Uint8Array(32));
  await rejects(t, dbsc.verifyRegistration(hs, 'sid-1'), 'ERR_TB_DBSC_PROOF_INVALID');
  const esOnly = deviceBoundSessions({ secret: SECRET, now: c.now, algorithms: ['ES256'] });
  await rejects(t, esOnly.verifyRegistration(await proof({ privateKey: rsa.privateKey, jwk: rsaJwk }, esOnly.issueChallenge('register', 's'), {}, 'RS256'), 's'), 'ERR_TB_DBSC_PROOF_INVALID');
  const priv = await generateKeyPair('ES256', { extractable: true });
  const privJwk = await exportJWK(priv.privateKey);
  await rejects(t, dbsc.verifyRegistration(await proof({ privateKey: priv.privateKey, jwk: privJwk }, jti), 'sid-1'), 'ERR_TB_DBSC_PROOF_INVALID');
  // jose refuses to make or use RSA keys under 2048 bits: sign one by hand.
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const weakJwk = weak.publicKey.export({ format: 'jwk' });
  const input = `${Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'dbsc+jwt', jwk: weakJwk })).toString('base64url')}.${Buffer.from(JSON.stringify({ jti })).toString('base64url')}`;
  const weakJwt = `${input}.${sign('sha256', Buffer.from(input), weak.privateKey).toString('base64url')}`;
  await rejects(t, dbsc.verifyRegistration(weakJwt, 'sid-1'), 'ERR_TB_DBSC_PROOF_INVALID');
  // Not a JWS at all.
  await rejects(t, dbsc.verifyRegistration('not a jwt', 'sid-1'), 'ERR_TB_DBSC_PROOF_INVALID');
  await rejects(t, dbsc.verifyRegistration('a'.repeat(9000), 'sid-1'), 'ERR_TB_DBSC_PROOF_INVALID');
  await rejects(t, dbsc.verifyRegistration('a.b.c', 'sid-1'), 'ERR_TB_DBSC_PROOF_INVALID');
  // Expired: the clock passes the challenge's lifetime (120 s by default).
  c.advance(121_000);
  await rejects(t, dbsc.verifyRegistration(await proof(key, jti), 'sid-1'), 'ERR_TB_DBSC_CHALLENGE_INVALID');
});

test('refresh proofs: verified against the STORED key only; wrong key, registration challenge, recorded replays refused', async (t) => {
  const c = clock();
  const dbsc = deviceBoundSessions({ secret: SECRET, now: c.now });
  const key = await es256();
  const record: DbscSessionBinding = {
    method: 'dbsc',
    boundAt: c.now(),
    sessionIdentifier: 'dbsc-1',
    alg: 'ES256',
    jwk: { kty: 'EC', crv: 'P-256', x: key.jwk.x!, y: key.jwk.y! },
    used: [],
    refreshedAt: c.now(),
  };
  const jti = dbsc.issueChallenge('refresh', 'dbsc-1');
  // Chromium sends no jwk on refresh; a header jwk (the thief's own) is never used.
  const good = await new SignJWT({ jti }).setProtectedHeader({ alg: 'ES256', typ: 'dbsc+jwt' }).sign(key.privateKey);
  const verified = await dbsc.verifyRefresh(good, record);
  t.is(verified.challenge, jti.split('.').slice(0, 2).join('.'));
  const thief = await es256();
  await rejects(t, dbsc.verifyRefresh(await proof(thief, jti), record), 'ERR_TB_DBSC_PROOF_INVALID');
  await rejects(t, dbsc.verifyRefresh(await proof(key, jti, { typ: 'JWT' }), record), 'ERR_TB_DBSC_PROOF_INVALID');
  await rejects(t, dbsc.verifyRefresh(good, { ...record, used: [verified.challenge] }), 'ERR_TB_DBSC_CHALLENGE_INVALID');
  await rejects(t, dbsc.verifyRefresh(good, { ...record, sessionIdentifier: 'dbsc-2' }), 'ERR_TB_DBSC_CHALLENGE_INVALID');
  await rejects(t, dbsc.verifyRefresh(await proof(key, dbsc.issueChallenge('register', 'dbsc-1')), record), 'ERR_TB_DBSC_CHALLENGE_INVALID');
  await rejects(t, dbsc.verifyRefresh(good, { ...record, alg: 'RS256' }), 'ERR_TB_DBSC_PROOF_INVALID');
  const esOnly = deviceBoundSessions({ secret: SECRET, now: c.now, algorithms: ['ES256'] });
  await rejects(t, esOnly.verifyRefresh(good, { ...record, alg: 'RS256' }), 'ERR_TB_DBSC_PROOF_INVALID');
});

test('the bound cookie: match, expired, missing (unbound during the registration grace), forged or another session: mismatch', (t) => {
  const c = clock();
  const dbsc = deviceBoundSessions({ secret: SECRET, now: c.now, cookieTtlSeconds: 60 });
  const record = { method: 'dbsc' as const, boundAt: c.now(), sessionIdentifier: 'id-1', alg: 'ES256' as const, jwk: { kty: 'EC' }, used: [], refreshedAt: c.now() };
  const check = (cookie: string | undefined, r: object = record): string =>
    dbsc.method.check(r as DbscSessionBinding, { tokenBinding: null, raw: { headers: cookie === undefined ? {} : { cookie } } as never });
  const value = dbsc.issueCookie(record);
  t.is(check(`a=b; __Host-tokbind-dbsc=${value}`), 'match');
  t.is(check(undefined), 'unbound');
  t.is(check(`__Host-tokbind-dbsc=garbage; __Host-tokbind-dbsc=${value}`), 'match');
  t.is(check(`__Host-tokbind-dbsc=${value}`, { ...record, sessionIdentifier: 'id-2' }), 'mismatch');
  t.is(check('__Host-tokbind-dbsc=nodot'), 'mismatch');
  t.is(check(`__Host-tokbind-dbsc=${value.slice(0, -2)}xx`), 'mismatch');
  t.is(check('noequals; other=1'), 'unbound');
  t.is(check(`__Host-tokbind-dbsc=${value}`, { method: 'dbsc', boundAt: 0 }), 'mismatch');
  c.advance(11_000);
  t.is(check(undefined), 'missing-binding');
  c.advance(50_000);
  t.is(check(`__Host-tokbind-dbsc=${value}`), 'expired');
  const other = deviceBoundSessions({ secret: 'y'.repeat(40), now: c.now });
  t.is(other.method.check(record, { tokenBinding: null, raw: { headers: { cookie: `__Host-tokbind-dbsc=${other.issueCookie(record)}` } } as never }), 'match');
  t.is(check(`__Host-tokbind-dbsc=${other.issueCookie(record)}`), 'mismatch');
});

test('options are checked', (t) => {
  const bad: DeviceBoundSessionOptions[] = [
    { secret: 'short' },
    { registrationPath: 'relative' },
    { refreshPath: '/a"b' },
    { registrationPath: '/same', refreshPath: '/same' },
    { cookieName: 'bad name' },
    { cookieTtlSeconds: 0 },
    { challengeTtlSeconds: 1.5 },
    { algorithms: [] },
    { algorithms: ['HS256' as 'ES256'] },
    { refreshLimit: { max: 0, windowSeconds: 60 } },
    { onFailedProof: 'ignore' as 'reject' },
    { allowedRefreshInitiators: [1 as unknown as string] },
    { registrationGraceSeconds: -1 },
    { now: 5 as unknown as () => number },
  ];
  for (const options of bad) t.throws(() => deviceBoundSessions(options), { instanceOf: TypeError }, JSON.stringify(options));
  t.throws(() => deviceBoundSessions(null as unknown as DeviceBoundSessionOptions), { instanceOf: TypeError });
  t.is(deviceBoundSessions().cookieName, '__Host-tokbind-dbsc');
});

// ---------------------------------------------------------------- over real TLS

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly json: Record<string, unknown>;
}

/** A software DBSC client: a cookie jar and a key, over node https (no Token Binding, or a TokenBindingAgent). */
class SoftwareBrowser {
  readonly jar = new Map<string, string>();
  key: Key | undefined;
  constructor(
    readonly origin: string,
    readonly agent: https.Agent | false = false,
  ) {}
  request(path: string, method = 'GET', headers: Record<string, string> = {}): Promise<Reply> {
    const cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    return new Promise((resolve, reject) => {
      const req = https.request(
        this.origin + path,
        { method, agent: this.agent, ca: testCertificate.ca, headers: { ...(cookie === '' ? {} : { cookie }), 'content-length': '0', ...headers } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => {
            for (const line of res.headers['set-cookie'] ?? []) {
              const [pair] = line.split(';', 1) as [string];
              const eq = pair.indexOf('=');
              this.jar.set(pair.slice(0, eq), pair.slice(eq + 1));
            }
            let json: Record<string, unknown> = {};
            try {
              json = JSON.parse(text) as Record<string, unknown>;
            } catch {
              json = { text };
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
          });
        },
      );
      req.on('error', reject);
      req.end();
    });
  }
  /** Answers a Secure-Session-Registration header as Chromium does. */
  async register(header: string): Promise<Reply> {
    const m = /^\(([^)]*)\);path="([^"]+)";challenge="([^"]+)"$/.exec(header);
    if (m === null) throw new Error(`bad registration header ${header}`);
    this.key = await es256();
    return this.request(m[2]!, 'POST', { 'secure-session-response': await proof(this.key, m[3]!) });
  }
  /** A refresh round trip: challenge, then the signed answer (or `token` as given). */
  async refresh(id: string, sign: (jti: string) => Promise<string> = (jti) => this.sign(jti)): Promise<{ challenge: Reply; answer: Reply; jwt: string }> {
    const challenge = await this.request('/tokbind/dbsc/refresh', 'POST', { 'sec-secure-session-id': id });
    const m = /^"([^"]+)";id="([^"]+)"$/.exec(String(challenge.headers['secure-session-challenge']));
    if (m === null) return { challenge, answer: challenge, jwt: '' };
    const jwt = await sign(m[1]!);
    const answer = await this.request('/tokbind/dbsc/refresh', 'POST', { 'sec-secure-session-id': id, 'secure-session-response': jwt });
    return { challenge, answer, jwt };
  }
  sign(jti: string): Promise<string> {
    return new SignJWT({ jti }).setProtectedHeader({ alg: 'ES256', typ: 'dbsc+jwt' }).sign(this.key!.privateKey);
  }
}

async function startExpress(
  t: import('ava').ExecutionContext,
  options: DeviceBoundSessionOptions,
  policy: 'optional' | 'required' = 'required',
  store: session.Store = new session.MemoryStore(),
) {
  const dbsc = deviceBoundSessions({ secret: SECRET, ...options });
  const app = express();
  app.use(session({ secret: SECRET, store, resave: false, saveUninitialized: false, cookie: { secure: true, httpOnly: true } }));
  app.use(dbsc.middleware);
  app.use(sessionBinding({ policy, methods: [tokenBindingSessionMethod, dbsc.method] }));
  app.post('/login', (req, res, next) => {
    dbsc.bindOrOffer(req, res).then((how) => {
      (req.session as unknown as Record<string, unknown>)['user'] = 'alice';
      res.json({ how });
    }, next);
  });
  app.get('/profile', (req, res) => {
    const s = req.session as unknown as Record<string, unknown> | undefined;
    if (s?.['user'] === undefined) return void res.status(401).json({ error: 'not_logged_in' });
    res.json({ user: s['user'], binding: readSessionBinding(s)?.method ?? null });
  });
  const { key, cert } = testCertificate;
  const server = createServer({ key, cert, tokenBinding: { required: false } }, app);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { origin: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, store, dbsc };
}

function collect(t: import('ava').ExecutionContext): SessionEvent[] {
  const events: SessionEvent[] = [];
  const on = (m: unknown): void => void events.push(m as SessionEvent);
  diagnosticsChannel.subscribe(SESSION_CHANNEL_NAME, on);
  t.teardown(() => diagnosticsChannel.unsubscribe(SESSION_CHANNEL_NAME, on));
  return events;
}

test.serial('Express: login offers DBSC, registration binds the session, refresh renews the cookie, replays and forged proofs end it', async (t) => {
  const c = clock(Date.now());
  const events = collect(t);
  const first = await startExpress(t, { now: c.now, cookieTtlSeconds: 60 });
  const { origin } = first;
  const browser = new SoftwareBrowser(origin);
  const login = await browser.request('/login', 'POST');
  t.is(login.status, 200);
  t.deepEqual(login.json, { how: 'dbsc-offered' });
  const header = String(login.headers['secure-session-registration']);
  t.regex(header, /^\(ES256 RS256\);path="\/tokbind\/dbsc\/register";challenge="[A-Za-z0-9_-]+\.[0-9a-z]+\.[A-Za-z0-9_-]+"$/);
  // Unbound until registration: `required` refuses it (401 unbound) and keeps it.
  const before = await browser.request('/profile');
  t.is(before.status, 401);
  t.is(before.json['code'], 'ERR_TB_SESSION_UNBOUND');

  const registered = await browser.register(header);
  t.is(registered.status, 200, JSON.stringify(registered.json));
  const config = registered.json as { session_identifier: string };
  t.like(registered.json, {
    refresh_url: '/tokbind/dbsc/refresh',
    scope: { include_site: false, scope_specification: [] },
    credentials: [{ type: 'cookie', name: '__Host-tokbind-dbsc', attributes: 'Path=/; Secure; HttpOnly; SameSite=Lax' }],
    allowed_refresh_initiators: [],
    continue: true,
  });
  t.regex(String(registered.headers['set-cookie']), /^__Host-tokbind-dbsc=[^;]+; Max-Age=60; Path=\/; Secure; HttpOnly; SameSite=Lax/);
  t.true(events.some((e) => e.outcome === 'bound' && e.method === 'dbsc'));
  t.deepEqual((await browser.request('/profile')).json, { user: 'alice', binding: 'dbsc' });
  // Without the bound cookie just after registration (the browser's requests in flight): unbound
  // under `required` (401, kept), not a theft signal.
  const withoutCookie = new SoftwareBrowser(origin);
  withoutCookie.jar.set('connect.sid', browser.jar.get('connect.sid')!);
  const inFlight = await withoutCookie.request('/profile');
  t.is(inFlight.status, 401);
  t.is(inFlight.json['code'], 'ERR_TB_SESSION_UNBOUND');
  t.is((await browser.request('/profile')).status, 200);

  // The registration JWT replayed: refused, the session kept.
  const replayedRegistration = await browser.request('/tokbind/dbsc/register', 'POST', {
    'secure-session-response': await proof(browser.key!, /challenge="([^"]+)"/.exec(header)![1]!),
  });
  t.is(replayedRegistration.status, 400);
  t.is(replayedRegistration.json['code'], 'ERR_TB_DBSC_CHALLENGE_INVALID');
  t.is((await browser.request('/profile')).status, 200);
  // The same JWT to a second process sharing the store and secret (its replay cache is empty):
  // refused all the same, the session being bound already.
  const second = await startExpress(t, { now: c.now, cookieTtlSeconds: 60 }, 'required', first.store);
  const elsewhere = new SoftwareBrowser(second.origin);
  for (const [k, v] of browser.jar) elsewhere.jar.set(k, v);
  const replayedElsewhere = await elsewhere.request('/tokbind/dbsc/register', 'POST', {
    'secure-session-response': await proof(browser.key!, /challenge="([^"]+)"/.exec(header)![1]!),
  });
  t.is(replayedElsewhere.status, 400);
  t.is(replayedElsewhere.json['code'], 'ERR_TB_DBSC_CHALLENGE_INVALID');
  t.deepEqual((await elsewhere.request('/profile')).json, { user: 'alice', binding: 'dbsc' });

  // Past the cookie's lifetime: refused as expired unless refreshed.
  const stolenCopy = new Map(browser.jar);
  c.advance(61_000);
  const { challenge, answer, jwt } = await browser.refresh(config.session_identifier);
  t.is(challenge.status, 403);
  t.regex(String(challenge.headers['secure-session-challenge']), new RegExp(`^"[^"]+";id="${config.session_identifier}"$`));
  t.is(answer.status, 200);
  t.like(answer.json, { session_identifier: config.session_identifier, continue: true });
  t.deepEqual((await browser.request('/profile')).json, { user: 'alice', binding: 'dbsc' });

  // The identical refresh JWT again (Chromium resends one for a repeated challenge): refused,
  // the session ended and destroyed.
  const mark = events.length;
  const replay = await browser.request('/tokbind/dbsc/refresh', 'POST', { 'sec-secure-session-id': config.session_identifier, 'secure-session-response': jwt });
  t.deepEqual(replay.json, { session_identifier: config.session_identifier, continue: false });
  t.deepEqual(events.slice(mark), [{ outcome: 'rejected', method: 'dbsc', reason: 'mismatch', action: 'destroyed' }]);
  t.like((await browser.request('/profile')).json, { error: 'not_logged_in' });
  // The stale copy: no session any more.
  const thief = new SoftwareBrowser(origin);
  for (const [k, v] of stolenCopy) thief.jar.set(k, v);
  t.is((await thief.request('/profile')).status, 401);
  const unknown = await thief.request('/tokbind/dbsc/refresh', 'POST', { 'sec-secure-session-id': config.session_identifier });
  t.deepEqual(unknown.json, { session_identifier: config.session_identifier, continue: false });
});

test.serial('Express: an expired cookie is refused and destroys the session; refreshes are rate-limited', async (t) => {
  const c = clock(Date.now());
  const events = collect(t);
  const { origin } = await startExpress(t, { now: c.now, cookieTtlSeconds: 60, refreshLimit: { max: 3, windowSeconds: 60 }, onFailedProof: 'destroy' }, 'optional');
  const browser = new SoftwareBrowser(origin);
  const login = await browser.request('/login', 'POST');
  const id = (await browser.register(String(login.headers['secure-session-registration']))).json['session_identifier'] as string;
  // The rate limit: 3 refresh requests per window, then 429 (the session kept).
  t.is((await browser.request('/tokbind/dbsc/refresh', 'POST', { 'sec-secure-session-id': id })).status, 403);
  const round = await browser.refresh(id);
  t.is(round.answer.status, 200);
  const limited = await browser.request('/tokbind/dbsc/refresh', 'POST', { 'sec-secure-session-id': id });
  t.is(limited.status, 429);
  t.is(limited.json['code'], 'ERR_TB_DBSC_RATE_LIMITED');
  c.advance(30_000);
  t.is((await browser.request('/profile')).status, 200);
  c.advance(31_000);
  t.is((await browser.refresh(id)).answer.status, 200);

  // The thief with the cookies but no key: its refresh gets a challenge it signs with its own key.
  const thief = new SoftwareBrowser(origin);
  for (const [k, v] of browser.jar) thief.jar.set(k, v);
  t.is((await thief.request('/profile')).status, 200);
  c.advance(61_000);
  const mark = events.length;
  const late = await thief.request('/profile');
  t.is(late.status, 401);
  t.is(late.json['code'], 'ERR_TB_SESSION_BINDING_EXPIRED');
  t.deepEqual(events.slice(mark), [{ outcome: 'rejected', method: 'dbsc', reason: 'expired', action: 'destroyed' }]);
  t.like((await browser.request('/profile')).json, { error: 'not_logged_in' });
  t.is((await browser.request('/tokbind/dbsc/register', 'GET')).status, 405);
  // A fresh session (express-session makes one per request) holds no challenge: the proof is missing.
  t.is((await new SoftwareBrowser(origin).request('/tokbind/dbsc/register', 'POST')).json['code'], 'ERR_TB_DBSC_PROOF_INVALID');
  const dup = await browser.request('/tokbind/dbsc/register', 'POST', { 'secure-session-response': 'a.b.c' });
  t.is(dup.json['code'], 'ERR_TB_DBSC_PROOF_INVALID');
  t.is((await browser.request('/tokbind/dbsc/refresh', 'POST')).json['code'], 'ERR_TB_DBSC_SESSION_UNKNOWN');
});

test.serial('Express: a forged refresh proof with onFailedProof reject ends DBSC but keeps the session; a Token Binding client is bound by Token Binding', async (t) => {
  const events = collect(t);
  const { origin, store } = await startExpress(t, { onFailedProof: 'reject' }, 'optional');
  const browser = new SoftwareBrowser(origin);
  const login = await browser.request('/login', 'POST');
  const bad = await browser.request('/tokbind/dbsc/register', 'POST', { 'secure-session-response': 'x.y.z' });
  t.is(bad.status, 400);
  t.is(bad.json['code'], 'ERR_TB_DBSC_PROOF_INVALID');
  const id = (await browser.register(String(login.headers['secure-session-registration']))).json['session_identifier'] as string;
  const thiefKey = await es256();
  const mark = events.length;
  const forged = await browser.refresh(id, (jti) => proof(thiefKey, jti));
  t.deepEqual(forged.answer.json, { session_identifier: id, continue: false });
  t.deepEqual(events.slice(mark), [{ outcome: 'rejected', method: 'dbsc', reason: 'mismatch', action: 'rejected' }]);
  const sids = await new Promise<Record<string, unknown>>((resolve, reject) => store.all!((err, all) => (err ? reject(err) : resolve((all ?? {}) as Record<string, unknown>))));
  t.is(Object.keys(sids).length, 1);

  // A client with Token Binding on the same login: bound by Token Binding, no DBSC offer.
  const agent = new TokenBindingAgent({ keyStore: new MemoryKeyStore(), ca: testCertificate.ca });
  t.teardown(() => agent.destroy());
  const tb = new SoftwareBrowser(origin, agent);
  const tbLogin = await tb.request('/login', 'POST');
  t.deepEqual(tbLogin.json, { how: 'token-binding' });
  t.is(tbLogin.headers['secure-session-registration'], undefined);
  t.deepEqual((await tb.request('/profile')).json, { user: 'alice', binding: 'token-binding' });
  t.throws(() => deviceBoundSessions().offer({} as never, {} as never), { instanceOf: TypeError });
});

test('without a session library, the endpoints answer 401 ERR_TB_DBSC_SESSION_UNKNOWN and other paths pass', async (t) => {
  const dbsc = deviceBoundSessions({ secret: SECRET });
  const server = http.createServer((req, res) => {
    dbsc.middleware(req, res, (err) => {
      res.statusCode = err === undefined ? 204 : 500;
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;
  const call = (path: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path, method: 'POST' }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += String(d)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
  const reg = await call('/tokbind/dbsc/register?x=1');
  t.is(reg.status, 401);
  t.is((JSON.parse(reg.body) as { code: string }).code, 'ERR_TB_DBSC_SESSION_UNKNOWN');
  t.is((await call('/other')).status, 204);
});

test.serial('Fastify + @fastify/session: login offers DBSC, registration, refresh, a forged proof ends the session', async (t) => {
  const { default: Fastify } = await import('fastify');
  const { default: fastifyCookie } = await import('@fastify/cookie');
  const { default: fastifySession } = await import('@fastify/session');
  const { fastifyDeviceBoundSessions, fastifySessionBinding } = await import('../../src/session/index.js');
  const events = collect(t);
  const dbsc = deviceBoundSessions({ secret: SECRET });
  const { key, cert } = testCertificate;
  const app = Fastify({ serverFactory: (handler) => createServer({ key, cert, tokenBinding: { required: false } }, handler), forceCloseConnections: true });
  await app.register(fastifyCookie);
  await app.register(fastifySession, { secret: SECRET, saveUninitialized: false, cookie: { secure: true, httpOnly: true } });
  await app.register(fastifyDeviceBoundSessions, { dbsc });
  await app.register(fastifySessionBinding, { policy: 'required', methods: [tokenBindingSessionMethod, dbsc.method] });
  app.post('/login', async (request, reply) => {
    const how = await dbsc.bindOrOffer(request, reply.raw);
    request.session.set('user' as never, 'alice' as never);
    return { how };
  });
  app.get('/profile', async (request) => {
    const data = request.session as unknown as Record<string, unknown>;
    return { user: data['user'] ?? null, binding: readSessionBinding(data)?.method ?? null };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  const origin = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  const browser = new SoftwareBrowser(origin);
  const login = await browser.request('/login', 'POST');
  t.deepEqual(login.json, { how: 'dbsc-offered' });
  const registered = await browser.register(String(login.headers['secure-session-registration']));
  t.is(registered.status, 200, JSON.stringify(registered.json));
  t.true(browser.jar.has('__Host-tokbind-dbsc'));
  t.true(browser.jar.has('sessionId'));
  const id = registered.json['session_identifier'] as string;
  t.deepEqual((await browser.request('/profile')).json, { user: 'alice', binding: 'dbsc' });
  const round = await browser.refresh(id);
  t.is(round.challenge.status, 403);
  t.is(round.answer.status, 200);
  t.deepEqual((await browser.request('/profile')).json, { user: 'alice', binding: 'dbsc' });
  const thiefKey = await es256();
  const mark = events.length;
  const forged = await browser.refresh(id, (jti) => proof(thiefKey, jti));
  t.deepEqual(forged.answer.json, { session_identifier: id, continue: false });
  t.deepEqual(events.slice(mark), [{ outcome: 'rejected', method: 'dbsc', reason: 'mismatch', action: 'destroyed' }]);
  t.deepEqual((await browser.request('/profile')).json, { user: null, binding: null });
  const unknown = await browser.request('/tokbind/dbsc/refresh', 'POST', { 'sec-secure-session-id': id });
  t.deepEqual(unknown.json, { session_identifier: id, continue: false });
});

test('the Fastify plugin refuses to register without a DBSC instance', async (t) => {
  const { default: Fastify } = await import('fastify');
  const { default: fastifyCookie } = await import('@fastify/cookie');
  const { default: fastifySession } = await import('@fastify/session');
  const { fastifyDeviceBoundSessions } = await import('../../src/session/index.js');
  const app = Fastify();
  await app.register(fastifyCookie);
  await app.register(fastifySession, { secret: SECRET });
  await t.throwsAsync(async () => {
    await app.register(fastifyDeviceBoundSessions, {} as never);
    await app.ready();
  }, { instanceOf: TypeError });
  await app.close();
});
