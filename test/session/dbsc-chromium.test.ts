/**
 * DBSC against a REAL browser: Debian's Chromium 156 (software keys, no TPM) logs in to the demo
 * app (`tokbind demo --serve --dbsc`'s app, in process), registers, reads the profile, outlives
 * its 3-second bound cookie and refreshes; the cookies copied out of the browser into another
 * client (node https) stop working at expiry, that client cannot refresh (it has no key), and a
 * refresh proof signed with another key is refused and ends the session. Memory and Redis stores.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import https from 'node:https';
import test, { type ExecutionContext } from 'ava';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { createClient } from 'redis';
import { startDemoServer, type DemoSessionStore } from '../../src/demo/server.js';
import { SESSION_CHANNEL_NAME, type SessionEvent } from '../../src/session/index.js';
import { launchChromium, spkiHash, type BrowserCookie } from '../_chromium.js';
import { startRedis } from '../_redis.js';

const COOKIE_TTL = 3;
const BOUND_COOKIE = '__Host-tokbind-dbsc';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** The other client: node https, with the cookies it copied out of the browser. */
function thief(ca: string, url: string, method: string, cookies: readonly BrowserCookie[], headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca, headers: { cookie: cookies.map((c) => `${c.name}=${c.value}`).join('; '), ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function run(t: ExecutionContext, sessionStore: DemoSessionStore, redisUrl?: string): Promise<void> {
  const events: SessionEvent[] = [];
  const onEvent = (m: unknown): void => void events.push(m as SessionEvent);
  diagnosticsChannel.subscribe(SESSION_CHANNEL_NAME, onEvent);
  t.teardown(() => diagnosticsChannel.unsubscribe(SESSION_CHANNEL_NAME, onEvent));

  const server = await startDemoServer({
    port: 0,
    sessionStore,
    dbsc: { cookieTtlSeconds: COOKIE_TTL, refreshLimit: { max: 100, windowSeconds: 60 } },
  });
  t.teardown(() => server.close());
  const origin = server.url;
  const browser = await launchChromium(t, { trustSpki: [spkiHash(server.cert)] });
  const page = await browser.newPage();

  // 1. Login: the demo answers Secure-Session-Registration; Chromium registers a key.
  await page.navigate(`${origin}/login?user=alice`);
  t.deepEqual(JSON.parse(await page.bodyText()), { user: 'alice', tbh: null, dbsc: 'offered' });
  const created = await page.waitForDbscEvent((e) => e.creationEventDetails !== undefined, 15_000);
  t.true(created.succeeded, JSON.stringify(created));
  t.is(created.creationEventDetails!.fetchResult, 'Success');
  const dbscId = created.sessionId!;
  t.truthy(dbscId);
  t.true(events.some((e) => e.outcome === 'bound' && e.method === 'dbsc'));

  // 2. The profile, through the DBSC-bound session.
  // (Few navigations: Chromium signs at most 6 DBSC proofs per site per 9 minutes — its
  // kSigningQuota — and with a cookie this short it refreshes on nearly every request.)
  await page.navigate(`${origin}/whoami`);
  t.like(JSON.parse(await page.bodyText()), { tokenBinding: null, binding: 'dbsc' });

  if (redisUrl !== undefined) {
    // The record lives in Redis as plain JSON: the public key only.
    const sid = (await page.cookies(origin)).find((c) => c.name === 'sid')!;
    const id = decodeURIComponent(sid.value).slice(2).split('.')[0]!;
    const client = createClient({ url: redisUrl });
    await client.connect();
    t.teardown(() => client.quit().then(() => undefined, () => undefined));
    const stored = JSON.parse((await client.get(`tokbind-demo:${id}`))!) as { user: string; tokbind: Record<string, unknown> };
    t.is(stored.user, 'alice');
    t.like(stored.tokbind, { method: 'dbsc', sessionIdentifier: dbscId, alg: 'ES256' });
    t.like(stored.tokbind['jwk'], { kty: 'EC', crv: 'P-256' });
    t.false('d' in (stored.tokbind['jwk'] as object));
  }

  // 3. The cookies copied out of the browser work in another client, until the bound one expires.
  const copied = (await page.cookies(origin)).filter((c) => c.name === 'sid' || c.name === BOUND_COOKIE);
  t.is(copied.length, 2);
  const stolenBound = copied.find((c) => c.name === BOUND_COOKIE)!;
  const early = await thief(server.cert, `${origin}/profile`, 'GET', copied);
  t.is(early.status, 200, early.body);

  // 4. The browser outlives its bound cookie and refreshes (its request waits for the refresh).
  await sleep(Math.max(0, stolenBound.expires * 1000 - Date.now()) + 300);
  const mark = page.dbscEvents.length;
  await page.navigate(`${origin}/profile`);
  t.deepEqual(JSON.parse(await page.bodyText()), { user: 'alice' });
  const refreshed = await page.waitForDbscEvent((e) => e.refreshEventDetails !== undefined && e.succeeded, 10_000, mark);
  t.is(refreshed.refreshEventDetails!.refreshResult, 'Refreshed');
  const fresh = (await page.cookies(origin)).find((c) => c.name === BOUND_COOKIE)!;
  t.not(fresh.value, stolenBound.value);

  // 5. The thief's refresh: a challenge it cannot answer (no key); no cookie comes with it.
  const challenge = await thief(server.cert, `${origin}/tokbind/dbsc/refresh`, 'POST', copied, { 'sec-secure-session-id': dbscId });
  t.is(challenge.status, 403);
  t.regex(String(challenge.headers['secure-session-challenge']), new RegExp(`^"[^"]+";id="${dbscId}"$`));
  t.is(challenge.headers['set-cookie'], undefined);

  // 6. The thief's copy, past its expiry: refused like a Token Binding mismatch, the session destroyed.
  const late = await thief(server.cert, `${origin}/profile`, 'GET', copied);
  t.is(late.status, 401, late.body);
  t.is((JSON.parse(late.body) as { code: string }).code, 'ERR_TB_SESSION_BINDING_EXPIRED');
  t.like(events.at(-1), { outcome: 'rejected', method: 'dbsc', reason: 'expired', action: 'destroyed' });
  await page.navigate(`${origin}/profile`);
  t.like(JSON.parse(await page.bodyText()), { error: 'not_logged_in' });

  // 7. A forged refresh proof (signed with the thief's own key) is refused and ends the session.
  // On https://localhost: another site, so another signing quota in Chromium.
  const origin2 = `https://localhost:${server.port}`;
  const mark2 = page.dbscEvents.length;
  await page.navigate(`${origin2}/login?user=bob`);
  const second = await page.waitForDbscEvent((e) => e.creationEventDetails !== undefined && e.succeeded, 15_000, mark2);
  const secondId = second.sessionId!;
  // With a cookie this short Chromium refreshes right after registering, and such a refresh may
  // still be in flight when the forged proof destroys the session: its save must not bring the
  // session back (src/session/tombstones.ts; step 6 met the same race in CI).
  const stolen = (await page.cookies(origin2)).filter((c) => c.name === 'sid' || c.name === BOUND_COOKIE);
  const asked = await thief(server.cert, `${origin2}/tokbind/dbsc/refresh`, 'POST', stolen, { 'sec-secure-session-id': secondId });
  t.is(asked.status, 403);
  const jti = /^"([^"]+)"/.exec(String(asked.headers['secure-session-challenge']))![1]!;
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const forged = await new SignJWT({ jti })
    .setProtectedHeader({ alg: 'ES256', typ: 'dbsc+jwt', jwk: await exportJWK(publicKey) })
    .sign(privateKey);
  const before = events.length;
  const refused = await thief(server.cert, `${origin2}/tokbind/dbsc/refresh`, 'POST', stolen, {
    'sec-secure-session-id': secondId,
    'secure-session-response': forged,
  });
  t.is(refused.status, 200);
  t.deepEqual(JSON.parse(refused.body), { session_identifier: secondId, continue: false });
  t.is(refused.headers['set-cookie'], undefined);
  // (The browser's own refreshes may publish `accepted` meanwhile.)
  t.deepEqual(
    events.slice(before).filter((e) => e.outcome === 'rejected'),
    [{ outcome: 'rejected', method: 'dbsc', reason: 'mismatch', action: 'destroyed' }],
  );
  const after = await thief(server.cert, `${origin2}/profile`, 'GET', stolen);
  t.is(after.status, 401);
  await page.navigate(`${origin2}/profile`);
  t.like(JSON.parse(await page.bodyText()), { error: 'not_logged_in' });
}

test.serial('a real Chromium: DBSC registration, refresh, stolen cookie and forged proof (memory store)', async (t) => {
  t.timeout(45_000);
  await run(t, { kind: 'memory' });
});

test.serial('a real Chromium: the same through a Redis session store', async (t) => {
  t.timeout(45_000);
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  await run(t, { kind: 'redis', url: redis.url }, redis.url);
});
