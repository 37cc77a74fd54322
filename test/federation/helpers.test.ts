/** tokbind/federation's pure helpers: code bindings, refresh tokens, ID tokens, metadata. Every fail-closed path. */
import test from 'ava';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
import { generateTokenBindingKey } from '../../src/crypto/sign.js';
import { createVerifiedID, type TokenBindingResult } from '../../src/http/result.js';
import {
  TokenBindingMetadataNames,
  authorizationRequestUrl,
  bindAuthorizationCode,
  bindRefreshToken,
  checkAuthorizationCodeBinding,
  checkRefreshTokenBinding,
  clientTokenBindingMetadata,
  createIdTokenVerifier,
  federationTokenBinding,
  issueReferredAccessToken,
  issueReferredIdToken,
  nativeCodeChallenge,
  providerTokenBindingMetadata,
  referredTokenBindingCodeVerifier,
  signIdToken,
  type CodeBinding,
} from '../../src/federation/index.js';
import { createAccessTokenVerifier } from '../../src/token/verify.js';

const browserForApp = createVerifiedID(generateTokenBindingKey('ecdsap256').id); // the browser's ID for the app
const browserForIdp = createVerifiedID(generateTokenBindingKey('ecdsap256').id); // the browser's ID for the provider
const attackerID = createVerifiedID(generateTokenBindingKey('ecdsap256').id);
/** What the provider sees on the redirected authorization request. */
const atProvider: TokenBindingResult = { provided: browserForIdp, referred: browserForApp, others: [] };
/** What the app sees when the browser comes back. */
const atApp: TokenBindingResult = { provided: browserForApp, referred: null, others: [] };
const attacker: TokenBindingResult = { provided: attackerID, referred: null, others: [] };
const noReferred: TokenBindingResult = { provided: browserForIdp, referred: null, others: [] };

const issuer = 'https://127.0.0.1:9443';
const clientId = 'app';
const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
const sign = { key: privateKey, alg: 'ES256', kid: 'k1', issuer, audience: clientId, subject: 'alice' };
const verifier = createIdTokenVerifier({ issuer, clientId, jwks: { keys: [jwk] } });
const code = (err: unknown): string | undefined => (err as { code?: string }).code;

test('referred_tb (web-server clients): the code is bound to the referred ID; the code_verifier is the provided ID the client saw', (t) => {
  const binding = bindAuthorizationCode({ code_challenge: 'referred_tb', code_challenge_method: 'referred_tb' }, atProvider);
  t.deepEqual(binding, { method: 'referred_tb', id: browserForApp.id });
  // JSON in, JSON out: any store works.
  const stored = JSON.parse(JSON.stringify(binding)) as CodeBinding;
  const verifierAtApp = referredTokenBindingCodeVerifier(atApp);
  t.is(verifierAtApp, browserForApp.id);
  t.deepEqual(checkAuthorizationCodeBinding(stored, { codeVerifier: verifierAtApp }), browserForApp.raw);
  // Redeemed by another client: its own provided ID as verifier.
  t.throws(() => checkAuthorizationCodeBinding(stored, { codeVerifier: referredTokenBindingCodeVerifier(attacker) }), { code: 'ERR_TB_CODE_BINDING_MISMATCH' });
  t.throws(() => checkAuthorizationCodeBinding(stored, { codeVerifier: browserForIdp.id }), { code: 'ERR_TB_CODE_BINDING_MISMATCH' });
  for (const codeVerifier of [undefined, null, '', 'not base64url!', '====']) {
    t.throws(() => checkAuthorizationCodeBinding(stored, { codeVerifier }), { code: 'ERR_TB_CODE_VERIFIER_INVALID' }, String(codeVerifier));
  }
  t.throws(() => referredTokenBindingCodeVerifier(null), { code: 'ERR_TB_BINDING_UNAVAILABLE' });
});

test('referred_tb: refused without the literal challenge, and without a referred binding (no bound code is issued)', (t) => {
  t.throws(() => bindAuthorizationCode({ code_challenge: 'abc', code_challenge_method: 'referred_tb' }, atProvider), { code: 'ERR_TB_PKCE_INVALID' });
  t.throws(() => bindAuthorizationCode({ code_challenge_method: 'referred_tb' }, atProvider), { code: 'ERR_TB_PKCE_INVALID' });
  t.throws(() => bindAuthorizationCode({ code_challenge: 'referred_tb', code_challenge_method: 'referred_tb' }, noReferred), { code: 'ERR_TB_BINDING_UNAVAILABLE' });
  t.throws(() => bindAuthorizationCode({ code_challenge: 'referred_tb', code_challenge_method: 'referred_tb' }, null), { code: 'ERR_TB_BINDING_UNAVAILABLE' });
});

test('TB-S256 (native apps): the challenge is the hash of the ID used at the token endpoint, proven by its Sec-Token-Binding', (t) => {
  const challenge = nativeCodeChallenge(browserForIdp.raw);
  t.is(challenge, browserForIdp.hash);
  const binding = bindAuthorizationCode({ code_challenge: challenge, code_challenge_method: 'TB-S256' }, noReferred)!;
  t.deepEqual(binding, { method: 'TB-S256', challenge });
  t.deepEqual(checkAuthorizationCodeBinding(binding, { tokenBinding: noReferred }), browserForIdp.raw);
  t.throws(() => checkAuthorizationCodeBinding(binding, { tokenBinding: attacker }), { code: 'ERR_TB_CODE_BINDING_MISMATCH' });
  // A code_verifier does not stand in for the Token Binding.
  t.throws(() => checkAuthorizationCodeBinding(binding, { codeVerifier: browserForIdp.id, tokenBinding: null }), { code: 'ERR_TB_CNF_MISSING' });
  for (const bad of ['', 'short', `${challenge}x`, challenge.replace(/./, '+')]) {
    t.throws(() => bindAuthorizationCode({ code_challenge: bad, code_challenge_method: 'TB-S256' }, noReferred), { code: 'ERR_TB_PKCE_INVALID' }, bad);
  }
  t.throws(() => nativeCodeChallenge(new Uint8Array(0)), { instanceOf: TypeError });
});

test('no Token Binding PKCE method: null for the application to handle, refused where required; tampered records fail closed', (t) => {
  t.is(bindAuthorizationCode({}, atProvider), null);
  t.is(bindAuthorizationCode({ code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' }, atProvider), null);
  t.throws(() => bindAuthorizationCode({}, atProvider, { required: true }), { code: 'ERR_TB_PKCE_INVALID' });
  t.throws(() => bindAuthorizationCode({ code_challenge_method: 'S256' }, atProvider, { required: true }), { code: 'ERR_TB_PKCE_INVALID' });
  t.throws(() => bindAuthorizationCode(null as never, atProvider), { instanceOf: TypeError });
  for (const record of [null, {}, { method: 'referred_tb' }, { method: 'TB-S256', challenge: 1 }, { method: 'S256', challenge: 'x' }]) {
    t.throws(() => checkAuthorizationCodeBinding(record as never, { codeVerifier: browserForApp.id, tokenBinding: atApp }), { code: 'ERR_TB_CODE_BINDING_MISMATCH' });
  }
  t.throws(() => checkAuthorizationCodeBinding({ method: 'referred_tb', id: browserForApp.id }, null as never), { instanceOf: TypeError });
});

test('refresh tokens are bound to the provided ID of the client that redeems them', (t) => {
  const binding = bindRefreshToken(noReferred);
  t.deepEqual(binding, { tbh: browserForIdp.hash });
  t.notThrows(() => checkRefreshTokenBinding(binding, noReferred));
  t.throws(() => checkRefreshTokenBinding(binding, attacker), { code: 'ERR_TB_CNF_MISMATCH' });
  t.throws(() => checkRefreshTokenBinding(binding, null), { code: 'ERR_TB_CNF_MISSING' });
  t.throws(() => checkRefreshTokenBinding({ tbh: '' }, noReferred), { code: 'ERR_TB_CNF_MISMATCH' });
  t.throws(() => checkRefreshTokenBinding(null as never, noReferred), { code: 'ERR_TB_CNF_MISMATCH' });
  t.throws(() => bindRefreshToken(null), { code: 'ERR_TB_BINDING_UNAVAILABLE' });
});

test('an ID token issued from the referred request verifies at the app over the browser, and at no other client', async (t) => {
  const req = { tokenBinding: atProvider } as never;
  const idToken = await issueReferredIdToken(req, { auth_time: 1 }, { ...sign, nonce: 'n-1' });
  const verified = await verifier.verify(idToken, atApp, 'n-1');
  t.is(verified.method, 'tbh');
  t.is(verified.payload.sub, 'alice');
  t.deepEqual(verified.payload.cnf, { tbh: browserForApp.hash });
  // Present and wrong: always refused, whatever requireBinding says.
  await t.throwsAsync(verifier.verify(idToken, attacker, 'n-1'), { code: 'ERR_TB_CNF_MISMATCH' });
  const lax = createIdTokenVerifier({ issuer, clientId, jwks: { keys: [jwk] }, requireBinding: false });
  await t.throwsAsync(lax.verify(idToken, attacker), { code: 'ERR_TB_CNF_MISMATCH' });
  await t.throwsAsync(lax.verify(idToken, atProvider), { code: 'ERR_TB_CNF_MISMATCH' }, 'the provider-side ID is not the one the app sees');
  await t.throwsAsync(verifier.verify(idToken, null, 'n-1'), { code: 'ERR_TB_CNF_MISSING' });
  await t.throwsAsync(verifier.verify(idToken, atApp, 'another nonce'), { code: 'ERR_TB_ID_TOKEN_INVALID' });
  // From a request without a referred binding: no bound token is issued.
  await t.throwsAsync(issueReferredIdToken({ tokenBinding: noReferred } as never, {}, sign), { code: 'ERR_TB_BINDING_UNAVAILABLE' });
  await t.throwsAsync(issueReferredIdToken({} as never, {}, sign), { instanceOf: TypeError });
  t.throws(() => federationTokenBinding({ raw: {} } as never), { instanceOf: TypeError });
  t.is(federationTokenBinding({ raw: { tokenBinding: null } } as never), null, 'a Fastify request reads request.raw');
});

test('a missing cnf is refused unless binding is optional; another method, or two, always', async (t) => {
  const unbound = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(issuer).setAudience(clientId).setSubject('alice').setIssuedAt().setExpirationTime('5m').sign(privateKey);
  await t.throwsAsync(verifier.verify(unbound, atApp), { code: 'ERR_TB_TOKEN_UNBOUND' });
  const lax = createIdTokenVerifier({ issuer, clientId, jwks: { keys: [jwk] }, requireBinding: false });
  t.is((await lax.verify(unbound, atApp)).method, null);
  for (const cnf of [{ jkt: 'x'.repeat(43) }, { tbh: browserForApp.hash, jkt: 'x' }, 'tbh', { tbh: 5 }]) {
    const token = await new SignJWT({ cnf }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(issuer).setAudience(clientId).setSubject('alice').setIssuedAt().setExpirationTime('5m').sign(privateKey);
    const err = await t.throwsAsync(lax.verify(token, atApp));
    t.true(['ERR_TB_CNF_UNSUPPORTED', 'ERR_TB_TOKEN_INVALID'].includes(code(err) ?? ''), JSON.stringify(cnf));
  }
});

test('bad issuer, audience, expiry, algorithm, azp, signature: ERR_TB_ID_TOKEN_INVALID naming the claim', async (t) => {
  const base = { tokenBindingID: browserForApp, key: privateKey, alg: 'ES256', kid: 'k1', subject: 'alice' };
  const cases: Array<[string, Promise<string>, string]> = [
    ['issuer', signIdToken({}, { ...base, issuer: 'https://evil.example', audience: clientId }), 'iss'],
    ['audience', signIdToken({}, { ...base, issuer, audience: 'another-client' }), 'aud'],
    ['expired', signIdToken({}, { ...base, issuer, audience: clientId, expiresIn: -3600 }), 'exp'],
    ['azp', signIdToken({ azp: 'another-client' }, { ...base, issuer, audience: clientId }), 'azp'],
    ['two audiences, no azp', signIdToken({}, { ...base, issuer, audience: [clientId, 'other'] }), 'azp'],
  ];
  for (const [name, token, field] of cases) {
    const err = await t.throwsAsync(verifier.verify(await token, atApp), { code: 'ERR_TB_ID_TOKEN_INVALID' }, name);
    t.is((err?.cause as { field?: string }).field, field, name);
  }
  const other = await generateKeyPair('ES256');
  const forged = await signIdToken({}, { ...base, key: other.privateKey, issuer, audience: clientId });
  await t.throwsAsync(verifier.verify(forged, atApp), { code: 'ERR_TB_ID_TOKEN_INVALID' });
  const hs = await new SignJWT({ cnf: { tbh: browserForApp.hash } }).setProtectedHeader({ alg: 'HS256' }).setIssuer(issuer).setAudience(clientId).setSubject('a').setIssuedAt().setExpirationTime('5m').sign(new Uint8Array(32));
  await t.throwsAsync(verifier.verify(hs, atApp), { code: 'ERR_TB_ID_TOKEN_INVALID' });
  await t.throwsAsync(verifier.verify('', atApp), { code: 'ERR_TB_ID_TOKEN_INVALID' });
  await t.throwsAsync(verifier.verify('a.b.c', atApp), { code: 'ERR_TB_ID_TOKEN_INVALID' });
  // An error never carries the token.
  const err = await t.throwsAsync(verifier.verify(await cases[0]![1], atApp));
  t.false(JSON.stringify({ m: err?.message, c: err?.cause }).includes('eyJ'));
  const azpOk = await signIdToken({ azp: clientId }, { ...base, issuer, audience: [clientId, 'other'] });
  t.is((await verifier.verify(azpOk, atApp)).method, 'tbh');
});

test('option and argument errors are TypeErrors', async (t) => {
  t.throws(() => createIdTokenVerifier(null as never), { instanceOf: TypeError });
  t.throws(() => createIdTokenVerifier({ issuer: '', clientId, jwks: { keys: [jwk] } }), { instanceOf: TypeError });
  t.throws(() => createIdTokenVerifier({ issuer, clientId, jwks: 'file.json' as never }), { instanceOf: TypeError });
  t.throws(() => createIdTokenVerifier({ issuer, clientId, jwks: { keys: [jwk] }, algorithms: ['HS256'] }), { instanceOf: TypeError });
  t.throws(() => createIdTokenVerifier({ issuer, clientId, jwks: { keys: [jwk] }, requireBinding: 'yes' as never }), { instanceOf: TypeError });
  t.throws(() => createIdTokenVerifier({ issuer, clientId, jwks: { keys: [jwk] }, clockTolerance: -1 }), { instanceOf: TypeError });
  t.truthy(createIdTokenVerifier({ issuer, clientId, jwks: new URL(`${issuer}/jwks`) }));
  await t.throwsAsync(verifier.verify('a.b.c', atApp, '' as never), { code: 'ERR_TB_ID_TOKEN_INVALID' });
  t.throws(() => signIdToken({}, null as never), { instanceOf: TypeError });
  t.throws(() => signIdToken({}, { ...sign, tokenBindingID: browserForApp, issuer: '' }), { instanceOf: TypeError });
  t.throws(() => signIdToken({}, { ...sign, tokenBindingID: browserForApp, audience: [] }), { instanceOf: TypeError });
  t.throws(() => signIdToken({}, { ...sign, tokenBindingID: browserForApp, nonce: '' }), { instanceOf: TypeError });
});

test('an access token issued for the server the client came from verifies there with tokbind/token', async (t) => {
  const accessToken = await issueReferredAccessToken({ tokenBinding: atProvider } as never, { scope: 'read' }, { ...sign, audience: 'https://api.example', typ: 'at+jwt' });
  const rs = createAccessTokenVerifier({ issuer, audience: 'https://api.example', jwks: { keys: [jwk] } });
  const request = (tb: TokenBindingResult) => ({ headers: { authorization: `Bearer ${accessToken}` }, rawHeaders: ['authorization', `Bearer ${accessToken}`], method: 'GET', url: '/', socket: {}, tokenBinding: tb }) as never;
  t.is((await rs.verify(request(atApp))).method, 'tbh');
  await t.throwsAsync(rs.verify(request(attacker)), { code: 'ERR_TB_CNF_MISMATCH' });
  await t.throwsAsync(issueReferredAccessToken({ tokenBinding: noReferred } as never, {}, sign), { code: 'ERR_TB_BINDING_UNAVAILABLE' });
});

test('the authorization request carries the referred_tb PKCE pair; metadata names are the drafts\'', (t) => {
  const url = authorizationRequestUrl({ authorizationEndpoint: `${issuer}/authorize?x=1`, clientId, redirectUri: 'https://localhost/cb', state: 's', nonce: 'n', extra: { login_hint: 'alice', client_id: 'forged' } });
  t.deepEqual(Object.fromEntries(url.searchParams), {
    x: '1',
    login_hint: 'alice',
    client_id: clientId,
    response_type: 'code',
    scope: 'openid',
    redirect_uri: 'https://localhost/cb',
    state: 's',
    nonce: 'n',
    code_challenge: 'referred_tb',
    code_challenge_method: 'referred_tb',
  });
  const plain = authorizationRequestUrl({ authorizationEndpoint: issuer, clientId, redirectUri: 'https://localhost/cb', state: 's', referredTokenBindingPkce: false });
  t.false(plain.searchParams.has('code_challenge'));
  t.throws(() => authorizationRequestUrl({ authorizationEndpoint: 'http://idp.example/authorize', clientId, redirectUri: 'x', state: 's' }), { instanceOf: TypeError });
  t.throws(() => authorizationRequestUrl({ authorizationEndpoint: issuer, clientId, redirectUri: 'x', state: '' }), { instanceOf: TypeError });
  t.throws(() => authorizationRequestUrl(null as never), { instanceOf: TypeError });
  t.deepEqual(Object.values(TokenBindingMetadataNames).sort(), [
    'as_access_token_token_binding_supported',
    'as_refresh_token_token_binding_supported',
    'client_access_token_token_binding_supported',
    'client_refresh_token_token_binding_supported',
    'id_token_token_binding_cnf',
    'id_token_token_binding_cnf_values_supported',
  ]);
  t.deepEqual(providerTokenBindingMetadata(), {
    id_token_token_binding_cnf_values_supported: ['tbh'],
    as_access_token_token_binding_supported: true,
    as_refresh_token_token_binding_supported: true,
    code_challenge_methods_supported: ['referred_tb', 'TB-S256'],
  });
  t.deepEqual(clientTokenBindingMetadata(), {
    id_token_token_binding_cnf: 'tbh',
    client_access_token_token_binding_supported: true,
    client_refresh_token_token_binding_supported: true,
  });
});
