/**
 * The federation flow end to end over real TLS: an identity provider on 127.0.0.1 and an app on
 * localhost (two key scopes), tokbind clients following the redirects, and every refusal.
 */
import test from 'ava';
import { decodeJwt } from 'jose';
import { fetch as undiciFetch } from 'undici';
import { TokenBindingDispatcher, tokbindFetch } from '../../src/client/dispatcher.js';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { tokenBindingScope } from '../../src/client/scope.js';
import { FEDERATION_CLIENT_ID, runFederationScenario, startFederationDemo, type FederationDemo } from '../../src/demo/federation.js';
import { nativeCodeChallenge } from '../../src/federation/index.js';

const keyStores = { victim: new MemoryKeyStore(), attacker: new MemoryKeyStore(), app: new MemoryKeyStore() };
let demo: FederationDemo;
let clients: Record<keyof typeof keyStores, TokenBindingDispatcher>;

test.before(async () => {
  // The app's back channel is the test's, so the test can redeem the app's refresh tokens as the app.
  demo = await startFederationDemo({ port: 0, backChannelKeyStore: keyStores.app });
  const connect = { ca: demo.cert };
  clients = {
    victim: new TokenBindingDispatcher({ keyStore: keyStores.victim, connect }),
    attacker: new TokenBindingDispatcher({ keyStore: keyStores.attacker, connect }),
    app: new TokenBindingDispatcher({ keyStore: keyStores.app, connect }),
  };
});

test.after.always(async () => {
  await Promise.all(Object.values(clients ?? {}).map((c) => c.close()));
  await demo?.close();
});

const form = (fields: Record<string, string>) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields).toString(),
});

test.serial('two servers on two key scopes', (t) => {
  t.is(tokenBindingScope(demo.idp), '127.0.0.1');
  t.is(tokenBindingScope(demo.app), 'localhost');
});

test.serial('the walkthrough: sign-in through the redirect, then the ID token, the code and the cookie refused to another client', async (t) => {
  const { ok, steps } = await runFederationScenario(demo);
  t.true(ok, JSON.stringify(steps.filter((s) => !s.ok)));
  t.is(steps.length, 5);
});

test.serial("the ID token is bound to the victim's key for the app, and the victim itself may present it", async (t) => {
  const signIn = await tokbindFetch(`${demo.app}/login?user=bob`, { dispatcher: clients.victim });
  t.is(signIn.status, 200);
  const body = (await signIn.json()) as { user: string; tbh: string };
  const victimAppKey = await keyStores.victim.getOrCreateKey('localhost', 'ecdsap256');
  const victimIdpKey = await keyStores.victim.getOrCreateKey('127.0.0.1', 'ecdsap256');
  const idToken = demo.leaked.idToken!;
  const claims = decodeJwt(idToken);
  t.deepEqual(claims.cnf, { tbh: nativeCodeChallenge(victimAppKey.id.raw) }, "cnf.tbh is the hash of the victim's ID for the app (the referred ID)");
  t.not(body.tbh, nativeCodeChallenge(victimIdpKey.id.raw));
  t.is(body.tbh, nativeCodeChallenge(victimAppKey.id.raw), 'the session is bound to the same ID');
  t.is(claims.aud, FEDERATION_CLIENT_ID);
  t.is(claims.iss, demo.idp);
  t.is(typeof claims.nonce, 'string');
  // Presented directly by its owner: accepted (so the attacker's refusal is the binding, nothing else).
  const own = await tokbindFetch(`${demo.app}/session`, { dispatcher: clients.victim, ...form({ id_token: idToken }) });
  t.is(own.status, 200);
  t.is(((await own.json()) as { user: string }).user, 'bob');
  const stolen = await tokbindFetch(`${demo.app}/session`, { dispatcher: clients.attacker, ...form({ id_token: idToken }) });
  t.is(stolen.status, 401);
  t.is(((await stolen.json()) as { code: string }).code, 'ERR_TB_CNF_MISMATCH');
  const garbage = await tokbindFetch(`${demo.app}/session`, { dispatcher: clients.attacker, ...form({ id_token: 'x.y.z' }) });
  t.is(((await garbage.json()) as { code: string }).code, 'ERR_TB_ID_TOKEN_INVALID');
});

test.serial('the provider refuses referred_tb without a referred binding: no bound code is issued', async (t) => {
  const login = await undiciFetch(`${demo.app}/login?user=carol`, { dispatcher: clients.victim, redirect: 'manual' });
  await login.body?.cancel();
  t.is(login.status, 302);
  t.is(login.headers.get('include-referred-token-binding-id'), 'true');
  const location = login.headers.get('location')!;
  t.is(new URL(location).searchParams.get('code_challenge_method'), 'referred_tb');
  // Followed without the referred binding (a client that ignores the header).
  const res = await undiciFetch(location, { dispatcher: clients.victim, redirect: 'manual' });
  t.is(res.status, 400);
  t.is(((await res.json()) as { code: string }).code, 'ERR_TB_BINDING_UNAVAILABLE');
});

async function authorize(params: Record<string, string>, dispatcher: TokenBindingDispatcher, referrer?: string): Promise<string> {
  const url = new URL(`${demo.idp}/authorize`);
  for (const [k, v] of Object.entries({ response_type: 'code', client_id: FEDERATION_CLIENT_ID, redirect_uri: `${demo.app}/callback`, state: 's', login_hint: 'dave', ...params })) url.searchParams.set(k, v);
  const res = await undiciFetch(url, { dispatcher: referrer === undefined ? dispatcher : dispatcher.referring(referrer), redirect: 'manual' });
  await res.body?.cancel();
  if (res.status !== 302) throw new Error(`authorize answered ${res.status}`);
  return new URL(res.headers.get('location')!).searchParams.get('code')!;
}

const tokenRequest = (fields: Record<string, string>) =>
  form({ client_id: FEDERATION_CLIENT_ID, client_secret: demo.clientSecret, redirect_uri: `${demo.app}/callback`, ...fields });

test.serial('referred_tb at the token endpoint: the right verifier redeems, another is invalid_grant, and the code is spent', async (t) => {
  const victimAppKey = await keyStores.victim.getOrCreateKey('localhost', 'ecdsap256');
  const attackerAppKey = await keyStores.attacker.getOrCreateKey('localhost', 'ecdsap256');
  const id = (raw: Uint8Array) => Buffer.from(raw).toString('base64url');
  const params = { code_challenge: 'referred_tb', code_challenge_method: 'referred_tb' };
  const code1 = await authorize(params, clients.victim, demo.app);
  const wrong = await tokbindFetch(`${demo.idp}/token`, { dispatcher: clients.attacker, ...tokenRequest({ grant_type: 'authorization_code', code: code1, code_verifier: id(attackerAppKey.id.raw) }) });
  t.is(wrong.status, 400);
  t.deepEqual(await wrong.json(), { error: 'invalid_grant', error_description: 'ERR_TB_CODE_BINDING_MISMATCH' });
  const replay = await tokbindFetch(`${demo.idp}/token`, { dispatcher: clients.app, ...tokenRequest({ grant_type: 'authorization_code', code: code1, code_verifier: id(victimAppKey.id.raw) }) });
  t.is(replay.status, 400, 'a code is spent by the first attempt');
  const code2 = await authorize(params, clients.victim, demo.app);
  const missing = await tokbindFetch(`${demo.idp}/token`, { dispatcher: clients.app, ...tokenRequest({ grant_type: 'authorization_code', code: code2 }) });
  t.deepEqual(await missing.json(), { error: 'invalid_grant', error_description: 'ERR_TB_CODE_VERIFIER_INVALID' });
  const code3 = await authorize(params, clients.victim, demo.app);
  const right = await tokbindFetch(`${demo.idp}/token`, { dispatcher: clients.app, ...tokenRequest({ grant_type: 'authorization_code', code: code3, code_verifier: id(victimAppKey.id.raw) }) });
  t.is(right.status, 200);
  const tokens = (await right.json()) as { id_token: string; refresh_token: string };
  t.deepEqual(decodeJwt(tokens.id_token).cnf, { tbh: nativeCodeChallenge(victimAppKey.id.raw) });

  // The refresh token is bound to the app's own connection (its provided ID at the provider).
  const mine = await tokbindFetch(`${demo.idp}/token`, { dispatcher: clients.app, ...tokenRequest({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }) });
  t.is(mine.status, 200);
  const appIdpKey = await keyStores.app.getOrCreateKey('127.0.0.1', 'ecdsap256');
  t.deepEqual(decodeJwt(((await mine.json()) as { access_token: string }).access_token).cnf, { tbh: nativeCodeChallenge(appIdpKey.id.raw) });
  const theirs = await tokbindFetch(`${demo.idp}/token`, { dispatcher: clients.attacker, ...tokenRequest({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }) });
  t.is(theirs.status, 400);
  t.deepEqual(await theirs.json(), { error: 'invalid_grant', error_description: 'ERR_TB_CNF_MISMATCH' });
});

test.serial('TB-S256 (a native app): the code redeems only over the Token Binding whose hash was the challenge', async (t) => {
  const nativeKey = await keyStores.victim.getOrCreateKey('127.0.0.1', 'ecdsap256');
  const params = { code_challenge: nativeCodeChallenge(nativeKey.id.raw), code_challenge_method: 'TB-S256' };
  const stolen = await authorize(params, clients.victim);
  const theirs = await tokbindFetch(`${demo.idp}/token`, { dispatcher: clients.attacker, ...tokenRequest({ grant_type: 'authorization_code', code: stolen }) });
  t.deepEqual(await theirs.json(), { error: 'invalid_grant', error_description: 'ERR_TB_CODE_BINDING_MISMATCH' });
  const code = await authorize(params, clients.victim);
  const mine = await tokbindFetch(`${demo.idp}/token`, { dispatcher: clients.victim, ...tokenRequest({ grant_type: 'authorization_code', code }) });
  t.is(mine.status, 200);
  t.deepEqual(decodeJwt(((await mine.json()) as { id_token: string }).id_token).cnf, { tbh: params.code_challenge });
  // A malformed challenge is refused at the authorization endpoint.
  await t.throwsAsync(authorize({ code_challenge: 'short', code_challenge_method: 'TB-S256' }, clients.victim), { message: /400/ });
  await t.throwsAsync(authorize({}, clients.victim), { message: /400/ }, 'this provider requires a Token Binding PKCE method');
});

test.serial('the provider publishes the drafts\' metadata and its keys', async (t) => {
  const meta = (await (await tokbindFetch(`${demo.idp}/.well-known/openid-configuration`, { dispatcher: clients.victim })).json()) as Record<string, unknown>;
  t.deepEqual(meta['id_token_token_binding_cnf_values_supported'], ['tbh']);
  t.deepEqual(meta['code_challenge_methods_supported'], ['referred_tb', 'TB-S256']);
  const jwks = (await (await tokbindFetch(`${demo.idp}/jwks`, { dispatcher: clients.victim })).json()) as { keys: Array<Record<string, unknown>> };
  t.is(jwks.keys.length, 1);
  t.false('d' in jwks.keys[0]!);
});

test.serial('the demo servers refuse what they do not know', async (t) => {
  const get = async (url: string, init: Parameters<typeof tokbindFetch>[1] = {}) => {
    const res = await tokbindFetch(url, { dispatcher: clients.attacker, ...init });
    return [res.status, ((await res.json()) as { error?: string }).error] as const;
  };
  t.deepEqual(await get(`${demo.idp}/nowhere`), [404, 'not_found']);
  t.deepEqual(await get(`${demo.app}/nowhere`), [404, 'not_found']);
  t.deepEqual(await get(`${demo.app}/login?user=not%20valid`), [400, 'invalid_user']);
  t.deepEqual(await get(`${demo.app}/callback?state=unknown&code=x`), [400, 'unknown_state']);
  t.deepEqual(await get(`${demo.app}/profile`), [401, 'not_logged_in']);
  t.deepEqual(await get(`${demo.idp}/authorize?client_id=other`), [400, 'invalid_request']);
  t.deepEqual(await get(`${demo.idp}/authorize?${new URLSearchParams({ client_id: FEDERATION_CLIENT_ID, redirect_uri: `${demo.app}/callback`, response_type: 'token', login_hint: 'eve' })}`), [400, 'invalid_request']);
  t.deepEqual(await get(`${demo.idp}/token`, form({ client_id: FEDERATION_CLIENT_ID, client_secret: 'wrong' })), [401, 'invalid_client']);
  t.deepEqual(await get(`${demo.idp}/token`, tokenRequest({ grant_type: 'password' })), [400, 'unsupported_grant_type']);
  t.deepEqual(await get(`${demo.idp}/token`, tokenRequest({ grant_type: 'authorization_code', code: 'never-issued' })), [400, 'invalid_grant']);
  t.deepEqual(await get(`${demo.idp}/token`, tokenRequest({ grant_type: 'refresh_token', refresh_token: 'never-issued' })), [400, 'invalid_grant']);
  t.deepEqual(await get(`${demo.idp}/token`, { ...form({}), body: 'x'.repeat(20_000) }), [400, 'invalid_request']);
});
