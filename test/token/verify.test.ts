/**
 * The resource server end to end: tokbind's server over real TLS, jose-signed access tokens,
 * tokbind's own clients (Token Binding dispatcher, client certificates, DPoP signer) and
 * hand-made requests for everything a thief or a broken client would send.
 */
import { X509Certificate } from 'node:crypto';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { DpopSigner } from '../../src/client/dpop.js';
import { TokenBindingDispatcher, tokbindFetch } from '../../src/client/dispatcher.js';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { tokenBindingScope } from '../../src/client/scope.js';
import { tokenBindingConfirmation, certificateConfirmation } from '../../src/token/cnf.js';
import { createAccessTokenVerifier } from '../../src/token/verify.js';
import { createTestCertificate, listen, testCertificate } from '../_tls.js';
import { AUDIENCE, ISSUER, collectTokenEvents, createIssuer, dpopKey, makeProof, plainAgent, plainGet, startResourceServer } from './_rs.js';

const issuer = await createIssuer();
const certA = await createTestCertificate({ commonName: 'client-a', altNames: ['client-a.test'] });
const certB = await createTestCertificate({ commonName: 'client-b', altNames: ['client-b.test'] });
const thumbA = certificateConfirmation(new X509Certificate(certA.cert).raw)['x5t#S256'];

const ALGS = 'algs="ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512 EdDSA Ed25519"';

function tbClient(tls: { cert?: string; key?: string } = {}): { keyStore: MemoryKeyStore; dispatcher: TokenBindingDispatcher } {
  const keyStore = new MemoryKeyStore();
  return { keyStore, dispatcher: new TokenBindingDispatcher({ keyStore, connect: { ca: testCertificate.ca, servername: 'localhost', ...tls } }) };
}

async function tbhFor(keyStore: MemoryKeyStore, url: string): Promise<string> {
  const key = await keyStore.getOrCreateKey(tokenBindingScope(url), 'ecdsap256');
  return tokenBindingConfirmation(key.id).tbh;
}

async function json(res: Response | import('undici').Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

test.serial('cnf.tbh: the bound client is accepted; a thief with another Token Binding key, or none, is refused', async (t) => {
  const rs = await startResourceServer({ jwks: issuer.jwks });
  const victim = tbClient();
  const thief = tbClient();
  const plain = plainAgent();
  try {
    const token = await issuer.mint({ cnf: { tbh: await tbhFor(victim.keyStore, rs.url) } });
    const { result, events } = await collectTokenEvents(async () => {
      const ok = await tokbindFetch(`${rs.url}/whoami`, { dispatcher: victim.dispatcher, accessToken: token });
      const stolen = await tokbindFetch(`${rs.url}/whoami`, { dispatcher: thief.dispatcher, accessToken: token });
      const unbound = await plainGet(`${rs.url}/whoami`, { authorization: `Bearer ${token}` }, plain);
      return { ok: [ok.status, await json(ok)] as const, stolen: [stolen.status, stolen.headers.get('www-authenticate'), await json(stolen)] as const, unbound };
    });
    t.deepEqual(result.ok, [200, { sub: 'alice', method: 'tbh', scheme: 'Bearer' }]);
    t.is(result.stolen[0], 401);
    t.is(result.stolen[1], 'Bearer error="invalid_token"');
    t.like(result.stolen[2], { code: 'ERR_TB_CNF_MISMATCH', status: 401 });
    t.is(result.unbound.status, 401);
    t.is(result.unbound.json['code'], 'ERR_TB_CNF_MISSING');
    t.deepEqual(events, [
      { outcome: 'accepted', method: 'tbh', stolen: false },
      { outcome: 'rejected', method: 'tbh', code: 'ERR_TB_CNF_MISMATCH', stolen: true },
      { outcome: 'rejected', method: 'tbh', code: 'ERR_TB_CNF_MISSING', stolen: false },
    ]);
    // Nothing of the token or a key in the refusal.
    t.false(JSON.stringify(result.stolen).includes(token.slice(-20)));
  } finally {
    await Promise.all([victim.dispatcher.close(), thief.dispatcher.close(), plain.close()]);
    await rs.close();
  }
});

test.serial('cnf.x5t#S256: accepted with the certificate it is bound to; refused without one or with another', async (t) => {
  const rs = await startResourceServer({ jwks: issuer.jwks });
  const withA = tbClient({ cert: certA.cert, key: certA.key });
  const withB = plainAgent({ cert: certB.cert, key: certB.key });
  const without = plainAgent();
  try {
    const token = await issuer.mint({ cnf: { 'x5t#S256': thumbA } });
    const { result, events } = await collectTokenEvents(async () => ({
      ok: await tokbindFetch(`${rs.url}/whoami`, { dispatcher: withA.dispatcher, accessToken: token }).then(async (r) => [r.status, await json(r)]),
      other: await plainGet(`${rs.url}/whoami`, { authorization: `Bearer ${token}` }, withB),
      none: await plainGet(`${rs.url}/whoami`, { authorization: `Bearer ${token}` }, without),
    }));
    t.deepEqual(result.ok, [200, { sub: 'alice', method: 'x5t#S256', scheme: 'Bearer' }]);
    t.is(result.other.status, 401);
    t.is(result.other.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
    t.is(result.other.json['code'], 'ERR_TB_CNF_MISMATCH');
    t.is(result.none.json['code'], 'ERR_TB_CNF_MISSING');
    t.deepEqual(
      events.map((e) => [e.outcome, e.method, e.code, e.stolen]),
      [
        ['accepted', 'x5t#S256', undefined, false],
        ['rejected', 'x5t#S256', 'ERR_TB_CNF_MISMATCH', true],
        ['rejected', 'x5t#S256', 'ERR_TB_CNF_MISSING', false],
      ],
    );
  } finally {
    await Promise.all([withA.dispatcher.close(), withB.close(), without.close()]);
    await rs.close();
  }
});

test.serial('cnf.jkt: tokbindFetch with a DPoP signer is accepted; another key, a bearer use and a replay are refused', async (t) => {
  const rs = await startResourceServer({ jwks: issuer.jwks });
  const client = tbClient();
  const plain = plainAgent();
  try {
    const signer = await DpopSigner.fromKeyStore(client.keyStore);
    t.is((await DpopSigner.fromKeyStore(client.keyStore)).publicJwk.x, signer.publicJwk.x, 'the key store keeps the DPoP key');
    const token = await issuer.mint({ cnf: { jkt: await signer.thumbprint() } });
    const other = await dpopKey();
    const url = `${rs.url}/whoami`;
    const proof = await signer.proof({ method: 'GET', url, accessToken: token });
    const { result, events } = await collectTokenEvents(async () => ({
      ok: await tokbindFetch(url, { dispatcher: client.dispatcher, accessToken: token, dpop: signer }).then(async (r) => [r.status, await json(r)]),
      otherKey: await plainGet(url, { authorization: `DPoP ${token}`, dpop: await makeProof(other, { htm: 'GET', htu: url, token }) }, plain),
      asBearer: await plainGet(url, { authorization: `Bearer ${token}` }, plain),
      first: await plainGet(url, { authorization: `DPoP ${token}`, dpop: proof }, plain),
      replay: await plainGet(url, { authorization: `DPoP ${token}`, dpop: proof }, plain),
    }));
    t.deepEqual(result.ok, [200, { sub: 'alice', method: 'jkt', scheme: 'DPoP' }]);
    t.is(result.otherKey.status, 401);
    t.is(result.otherKey.headers.get('www-authenticate'), `DPoP error="invalid_token", ${ALGS}`);
    t.is(result.otherKey.json['code'], 'ERR_TB_CNF_MISMATCH');
    t.is(result.asBearer.headers.get('www-authenticate'), `DPoP error="invalid_token", ${ALGS}`);
    t.is(result.asBearer.json['code'], 'ERR_TB_CNF_MISSING');
    t.is(result.first.status, 200);
    t.is(result.replay.status, 401);
    t.is(result.replay.headers.get('www-authenticate'), `DPoP error="invalid_dpop_proof", ${ALGS}`);
    t.is(result.replay.json['code'], 'ERR_TB_DPOP_REPLAYED');
    t.deepEqual(
      events.map((e) => [e.outcome, e.code, e.stolen]),
      [
        ['accepted', undefined, false],
        ['rejected', 'ERR_TB_CNF_MISMATCH', true],
        ['rejected', 'ERR_TB_CNF_MISSING', false],
        ['accepted', undefined, false],
        ['rejected', 'ERR_TB_DPOP_REPLAYED', true],
      ],
    );
    t.true(events.every((e) => e.method === 'jkt'));
  } finally {
    await Promise.all([client.dispatcher.close(), plain.close()]);
    await rs.close();
  }
});

test.serial('DPoP proofs: wrong htu, htm, ath, typ, alg, a private jwk, iat out of window and duplicated headers are refused', async (t) => {
  const rs = await startResourceServer({ jwks: issuer.jwks, dpop: { maxAge: 60, clockTolerance: 5 } });
  const plain = plainAgent();
  try {
    const key = await dpopKey();
    const token = await issuer.mint({ cnf: { jkt: await new DpopSigner(key.privateKey).thumbprint() } });
    const url = `${rs.url}/whoami`;
    const now = Math.floor(Date.now() / 1000);
    const send = async (dpop: string, method = 'GET', path = '/whoami'): Promise<Awaited<ReturnType<typeof plainGet>>> =>
      plainGet(`${rs.url}${path}`, { authorization: `DPoP ${token}`, dpop }, plain, method);
    const privateJwk = { ...key.jwk, d: (key.privateKey.export({ format: 'jwk' }) as { d: string }).d };
    const cases: [string, Promise<string>, string?, string?][] = [
      ['htu of another path', makeProof(key, { htm: 'GET', htu: `${rs.url}/other`, token })],
      ['htu of another origin', makeProof(key, { htm: 'GET', htu: `https://127.0.0.2:${rs.port}/whoami`, token })],
      ['htm POST on a GET', makeProof(key, { htm: 'POST', htu: url, token })],
      ['htm get (case matters)', makeProof(key, { htm: 'get', htu: url, token })],
      ['ath of another token', makeProof(key, { htm: 'GET', htu: url, token: `${token}x` })],
      ['no ath', makeProof(key, { htm: 'GET', htu: url })],
      ['iat too old', makeProof(key, { htm: 'GET', htu: url, token, iat: now - 120 })],
      ['iat in the future', makeProof(key, { htm: 'GET', htu: url, token, iat: now + 60 })],
      ['no jti', makeProof(key, { htm: 'GET', htu: url, token, jti: undefined })],
      ['jti too long', makeProof(key, { htm: 'GET', htu: url, token, jti: 'x'.repeat(129) })],
      ['typ JWT', makeProof(key, { htm: 'GET', htu: url, token }, { typ: 'JWT' })],
      ['private jwk', makeProof(key, { htm: 'GET', htu: url, token }, { jwk: privateJwk })],
      ['not a JWS', Promise.resolve('not-a-proof')],
    ];
    for (const [name, proof] of cases) {
      const res = await send(await proof);
      t.is(res.status, 401, name);
      t.is(res.json['code'], 'ERR_TB_DPOP_INVALID', name);
      t.is(res.headers.get('www-authenticate'), `DPoP error="invalid_dpop_proof", ${ALGS}`, name);
    }
    // htu normalisation: scheme and host case, the default port, a query and a fragment do not matter.
    const normal = await send(await makeProof(key, { htm: 'GET', htu: `HTTPS://127.0.0.1:${rs.port}/who%61mi?x=1#f`, token }), 'GET', '/whoami?y=2');
    t.is(normal.status, 200);
    // Two DPoP headers: refused.
    const raw = await makeProof(key, { htm: 'GET', htu: url, token });
    const twice = await new Promise<unknown>((resolve, reject) => {
      import('node:https').then(({ request }) => {
        const req = request(url, { ca: testCertificate.ca, servername: 'localhost', headers: [['host', `127.0.0.1:${rs.port}`], ['authorization', `DPoP ${token}`], ['dpop', raw], ['dpop', raw]].flat() as unknown as Record<string, string> }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(body === '' ? 0 : ((JSON.parse(body) as { code: string }).code as unknown as number)));
        });
        req.on('error', reject);
        req.end();
      }, reject);
    });
    t.is(twice, 'ERR_TB_DPOP_INVALID');
    const missing = await plainGet(url, { authorization: `DPoP ${token}` }, plain);
    t.is(missing.json['code'], 'ERR_TB_DPOP_INVALID');
  } finally {
    await plain.close();
    await rs.close();
  }
});

test.serial('DPoP nonces: use_dpop_nonce with DPoP-Nonce, and tokbindFetch retries once with it', async (t) => {
  const rs = await startResourceServer({ jwks: issuer.jwks, dpop: { nonce: true } });
  const client = tbClient();
  const plain = plainAgent();
  try {
    const signer = await DpopSigner.fromKeyStore(client.keyStore);
    const token = await issuer.mint({ cnf: { jkt: await signer.thumbprint() } });
    const url = `${rs.url}/whoami`;
    const manual = await plainGet(url, { authorization: `DPoP ${token}`, dpop: await signer.proof({ method: 'GET', url, accessToken: token }) }, plain);
    t.is(manual.status, 401);
    t.is(manual.headers.get('www-authenticate'), `DPoP error="use_dpop_nonce", ${ALGS}`);
    t.regex(manual.headers.get('dpop-nonce') ?? '', /^[A-Za-z0-9_-]{27}$/);
    const wrong = await plainGet(url, { authorization: `DPoP ${token}`, dpop: await signer.proof({ method: 'GET', url, accessToken: token, nonce: 'A'.repeat(27) }) }, plain);
    t.is(wrong.json['code'], 'ERR_TB_DPOP_NONCE');
    const { result, events } = await collectTokenEvents(async () => {
      const res = await tokbindFetch(url, { dispatcher: client.dispatcher, accessToken: token, dpop: signer });
      return { status: res.status, nonce: res.headers.get('dpop-nonce'), body: await json(res) };
    });
    t.is(result.status, 200);
    t.is(result.nonce, manual.headers.get('dpop-nonce'));
    t.deepEqual(
      events.map((e) => [e.outcome, e.code]),
      [
        ['rejected', 'ERR_TB_DPOP_NONCE'],
        ['accepted', undefined],
      ],
    );
    // The signer keeps the nonce: the next request needs no retry.
    const { events: again } = await collectTokenEvents(async () => (await tokbindFetch(url, { dispatcher: client.dispatcher, accessToken: token, dpop: signer })).text());
    t.deepEqual(again.map((e) => e.outcome), ['accepted']);
  } finally {
    await Promise.all([client.dispatcher.close(), plain.close()]);
    await rs.close();
  }
});

test.serial('unsupported cnf methods, unbound tokens and invalid tokens are refused with invalid_token', async (t) => {
  const rs = await startResourceServer({ jwks: issuer.jwks, methods: ['tbh', 'x5t#S256'] });
  const lax = await startResourceServer({ jwks: issuer.jwks, requireBinding: false });
  const plain = plainAgent();
  const other = await createIssuer();
  try {
    const now = Math.floor(Date.now() / 1000);
    const get = async (server: { url: string }, token: string): Promise<Awaited<ReturnType<typeof plainGet>>> =>
      plainGet(`${server.url}/whoami`, { authorization: `Bearer ${token}` }, plain);
    const cases: [string, string, string][] = [
      ['cnf.jwk', await issuer.mint({ cnf: { jwk: { kty: 'EC' } } }), 'ERR_TB_CNF_UNSUPPORTED'],
      ['cnf.jkt where DPoP is off', await issuer.mint({ cnf: { jkt: 'abc' } }), 'ERR_TB_CNF_UNSUPPORTED'],
      ['two methods', await issuer.mint({ cnf: { tbh: 'a', 'x5t#S256': 'b' } }), 'ERR_TB_CNF_UNSUPPORTED'],
      ['empty cnf', await issuer.mint({ cnf: {} }), 'ERR_TB_CNF_UNSUPPORTED'],
      ['cnf a string', await issuer.mint({ cnf: 'tbh' }), 'ERR_TB_TOKEN_INVALID'],
      ['tbh a number', await issuer.mint({ cnf: { tbh: 7 } }), 'ERR_TB_TOKEN_INVALID'],
      ['unbound', await issuer.mint({}), 'ERR_TB_TOKEN_UNBOUND'],
      ['other issuer key', await other.mint({}, { kid: issuer.kid }), 'ERR_TB_TOKEN_INVALID'],
      ['unknown kid', await other.mint({}), 'ERR_TB_TOKEN_INVALID'],
      ['wrong iss', await issuer.mint({}, { iss: 'https://evil.test' }), 'ERR_TB_TOKEN_INVALID'],
      ['wrong aud', await issuer.mint({}, { aud: 'https://other.test' }), 'ERR_TB_TOKEN_INVALID'],
      ['expired beyond the tolerance', await issuer.mint({}, { exp: now - 31 }), 'ERR_TB_TOKEN_INVALID'],
      ['not a JWT', 'abc.def.ghi', 'ERR_TB_TOKEN_INVALID'],
    ];
    for (const [name, token, code] of cases) {
      const res = await get(rs, token);
      t.is(res.status, 401, name);
      t.is(res.json['code'], code, name);
      t.is(res.headers.get('www-authenticate'), 'Bearer error="invalid_token"', name);
    }
    // Within the clock tolerance an expired token still passes jose; it is refused for being unbound only.
    t.is((await get(rs, await issuer.mint({}, { exp: now - 5 }))).json['code'], 'ERR_TB_TOKEN_UNBOUND');
    // requireBinding: false accepts a bearer token, still checks a bound one.
    t.deepEqual((await get(lax, await issuer.mint({}))).json, { sub: 'alice', method: null, scheme: 'Bearer' });
    t.is((await get(lax, await issuer.mint({ cnf: { tbh: 'x' } }))).json['code'], 'ERR_TB_CNF_MISSING');
    const lone = await plainGet(`${lax.url}/whoami`, { authorization: `DPoP ${await issuer.mint({})}`, dpop: 'x' }, plain);
    t.is(lone.json['code'], 'ERR_TB_TOKEN_UNBOUND');
    t.is(lone.headers.get('www-authenticate'), `DPoP error="invalid_token", ${ALGS}`);
  } finally {
    await plain.close();
    await Promise.all([rs.close(), lax.close()]);
  }
});

test.serial('a missing token gets a bare challenge; a malformed request gets invalid_request', async (t) => {
  const rs = await startResourceServer({ jwks: issuer.jwks });
  const noDpop = await startResourceServer({ jwks: issuer.jwks, methods: ['tbh'] });
  const plain = plainAgent();
  try {
    const missing = await plainGet(`${rs.url}/whoami`, {}, plain);
    t.is(missing.status, 401);
    t.is(missing.headers.get('www-authenticate'), `Bearer, DPoP ${ALGS}`);
    t.is(missing.json['code'], 'ERR_TB_TOKEN_MISSING');
    t.is((await plainGet(`${noDpop.url}/whoami`, {}, plain)).headers.get('www-authenticate'), 'Bearer');
    t.is((await plainGet(`${rs.url}/whoami`, { authorization: 'Basic YTpi' }, plain)).json['code'], 'ERR_TB_TOKEN_MISSING');
    for (const authorization of ['Bearer', 'Bearer ', 'Bearer a b', 'Bearer ä']) {
      const res = await plainGet(`${rs.url}/whoami`, { authorization }, plain);
      t.is(res.status, 400, authorization);
      t.is(res.headers.get('www-authenticate'), 'Bearer error="invalid_request"', authorization);
      t.is(res.json['code'], 'ERR_TB_TOKEN_REQUEST_INVALID');
    }
    const tbhToken = await issuer.mint({ cnf: { tbh: 'x' } });
    const asDpop = await plainGet(`${rs.url}/whoami`, { authorization: `DPoP ${tbhToken}` }, plain);
    t.is(asDpop.status, 400);
    t.is(asDpop.headers.get('www-authenticate'), `DPoP error="invalid_request", ${ALGS}`);
  } finally {
    await plain.close();
    await Promise.all([rs.close(), noDpop.close()]);
  }
});

test.serial('JWKS from a file, an object and a URL (served over http by a local server); unusable JWKS fail closed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tokbind-jwks-'));
  const file = join(dir, 'jwks.json');
  writeFileSync(file, JSON.stringify(issuer.jwks));
  let served = 0;
  const jwksServer = http.createServer((req, res) => {
    served++;
    if (req.url === '/jwks') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(issuer.jwks));
    res.writeHead(500).end();
  });
  const jwksListening = await listen(jwksServer);
  const base = `http://127.0.0.1:${jwksListening.port}`;
  const victim = tbClient();
  const servers = await Promise.all([
    startResourceServer({ jwks: file }),
    startResourceServer({ jwks: issuer.jwks }),
    startResourceServer({ jwks: new URL(`${base}/jwks`) }),
  ]);
  const broken = await startResourceServer({ jwks: new URL(`${base}/broken`) });
  const plain = plainAgent();
  try {
    for (const rs of servers) {
      const token = await issuer.mint({ cnf: { tbh: await tbhFor(victim.keyStore, rs.url) } });
      const res = await tokbindFetch(`${rs.url}/whoami`, { dispatcher: victim.dispatcher, accessToken: token });
      t.is(res.status, 200);
      t.like(await json(res), { method: 'tbh' });
    }
    t.true(served >= 1);
    const res = await plainGet(`${broken.url}/whoami`, { authorization: `Bearer ${await issuer.mint({})}` }, plain);
    t.is(res.status, 503);
    t.is(res.json['code'], 'ERR_TB_JWKS_UNAVAILABLE');
    t.is(res.headers.get('www-authenticate'), null);

    writeFileSync(file, '{"keys": [');
    t.throws(() => startResourceServerSync(file), { code: 'ERR_TB_JWKS_UNAVAILABLE' } as never);
    writeFileSync(file, JSON.stringify({ keys: [{ ...issuer.jwks.keys[0], d: 'secret' }] }));
    t.throws(() => startResourceServerSync(file), { code: 'ERR_TB_JWKS_UNAVAILABLE' } as never);
    t.throws(() => startResourceServerSync({ keys: [] } as never), { code: 'ERR_TB_JWKS_UNAVAILABLE' } as never);
    t.throws(() => startResourceServerSync(join(dir, 'absent.json')), { code: 'ERR_TB_JWKS_UNAVAILABLE' } as never);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await Promise.all([victim.dispatcher.close(), plain.close()]);
    await Promise.all([...servers, broken].map((s) => s.close()));
    await jwksListening.close();
  }
});

function startResourceServerSync(jwks: string | import('jose').JSONWebKeySet): unknown {
  return createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks });
}
