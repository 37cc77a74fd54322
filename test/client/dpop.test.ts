/** The client's DPoP signer and tokbindFetch's token handling over real TLS. */
import { createPrivateKey, generateKeyPairSync, hash, type KeyObject } from 'node:crypto';
import test from 'ava';
import { decodeJwt, decodeProtectedHeader, EmbeddedJWK, jwtVerify } from 'jose';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DPOP_KEY_SCOPE_PREFIX, DpopSigner } from '../../src/client/dpop.js';
import { FileKeyStore } from '../../src/client/keystore.js';
import { TokenBindingDispatcher, tokbindFetch } from '../../src/client/dispatcher.js';
import { createServer } from '../../src/http/server.js';
import { listen, testCertificate } from '../_tls.js';

/**
 * A private key re-imported from DER: exporting a JWK from a KeyObject that generateKeyPairSync
 * returned can deadlock Node 20.20 (see bench/lib/keys.ts).
 */
function key(type: 'ec' | 'ed25519' | 'rsa' | 'x25519', namedCurve?: string): KeyObject {
  const pair = type === 'ec' ? generateKeyPairSync('ec', { namedCurve: namedCurve! }) : type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : type === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('x25519');
  return createPrivateKey({ key: pair.privateKey.export({ format: 'der', type: 'pkcs8' }), format: 'der', type: 'pkcs8' });
}

test('DpopSigner: proofs jose verifies, with htm, htu without query, ath, a fresh jti and the learnt nonce', async (t) => {
  const signer = new DpopSigner(key('ec', 'P-256'));
  t.is(signer.alg, 'ES256');
  t.false('d' in signer.publicJwk);
  const url = 'https://API.example:443/r?q=1#f';
  const a = await signer.proof({ method: 'post', url, accessToken: 'tok' });
  const b = await signer.proof({ method: 'post', url, accessToken: 'tok' });
  const { payload, protectedHeader } = await jwtVerify(a, EmbeddedJWK, { typ: 'dpop+jwt' });
  t.is(protectedHeader.alg, 'ES256');
  t.like(payload, { htm: 'POST', htu: 'https://api.example/r', ath: hash('sha256', 'tok', 'base64url') });
  t.not(decodeJwt(a).jti, decodeJwt(b).jti);
  t.is(payload.nonce, undefined);
  signer.rememberNonce('https://api.example/other', 'n-1');
  signer.rememberNonce('https://api.example/', '');
  t.is(signer.nonceFor(url), 'n-1');
  t.is(decodeJwt(await signer.proof({ method: 'GET', url })).nonce, 'n-1');
  t.is(decodeJwt(await signer.proof({ method: 'GET', url: 'https://other.example/' })).nonce, undefined);
  t.is(await signer.thumbprint(), await signer.thumbprint());
  await t.throwsAsync(signer.proof({ method: '', url }), { instanceOf: TypeError });

  t.is(new DpopSigner(key('ed25519')).alg, 'EdDSA');
  const rsa = new DpopSigner(key('rsa'));
  t.is(rsa.alg, 'PS256');
  t.is(decodeProtectedHeader(await rsa.proof({ method: 'GET', url })).alg, 'PS256');
  t.is(new DpopSigner(key('ec', 'P-384')).alg, 'ES384');
  t.is(new DpopSigner(key('ec', 'P-521')).alg, 'ES512');
  t.throws(() => new DpopSigner(key('ec', 'secp256k1')), { instanceOf: TypeError });
  t.throws(() => new DpopSigner(key('x25519')), { instanceOf: TypeError });
  t.throws(() => new DpopSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey), { instanceOf: TypeError });
  await t.throwsAsync(DpopSigner.fromKeyStore({} as never, ''), { instanceOf: TypeError });
});

test('tokbindFetch sends the token and proof to the token origin only: a redirect elsewhere carries neither', async (t) => {
  const seen: { host: string; authorization: string | null; dpop: string | null }[] = [];
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert }, (req, res) => {
    seen.push({ host: req.headers.host ?? '', authorization: req.headers.authorization ?? null, dpop: (req.headers.dpop as string | undefined) ?? null });
    if (req.url === '/start') return void res.writeHead(302, { location: `https://localhost:${port}/landing` }).end();
    res.writeHead(200).end('ok');
  });
  const listening = await listen(server);
  const port = listening.port;
  const dispatcher = new TokenBindingDispatcher({ connect: { ca: testCertificate.ca } });
  try {
    const signer = new DpopSigner(key('ec', 'P-256'));
    const res = await tokbindFetch(`https://127.0.0.1:${port}/start`, { dispatcher, accessToken: 'tok', dpop: signer });
    t.is(await res.text(), 'ok');
    t.is(seen.length, 2);
    t.is(seen[0]!.authorization, 'DPoP tok');
    t.like(decodeJwt(seen[0]!.dpop!), { htm: 'GET', htu: `https://127.0.0.1:${port}/start` });
    t.deepEqual(seen[1], { host: `localhost:${port}`, authorization: null, dpop: null });
    await t.throwsAsync(tokbindFetch(`https://127.0.0.1:${port}/`, { dispatcher, accessToken: 'tok', headers: { authorization: 'Basic x' } }), { instanceOf: TypeError });
    await t.throwsAsync(tokbindFetch(`https://127.0.0.1:${port}/`, { dispatcher, accessToken: '' }), { instanceOf: TypeError });
    await t.throwsAsync(tokbindFetch(`https://127.0.0.1:${port}/`, { dispatcher, dpop: {} as never }), { instanceOf: TypeError });
  } finally {
    await dispatcher.close();
    await listening.close();
  }
});

test('DpopSigner.fromKeyStore: the DPoP key persists in a FileKeyStore beside the Token Binding keys, under dpop:<name>', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-dpop-ks-'));
  try {
    const path = join(dir, 'keys.json');
    const first = await DpopSigner.fromKeyStore(new FileKeyStore(path));
    const again = await DpopSigner.fromKeyStore(new FileKeyStore(path));
    const other = await DpopSigner.fromKeyStore(new FileKeyStore(path), 'second');
    t.is(await again.thumbprint(), await first.thumbprint());
    t.not(await other.thumbprint(), await first.thumbprint());
    t.deepEqual((await new FileKeyStore(path).list()).map((k) => k.scope).sort(), [`${DPOP_KEY_SCOPE_PREFIX}default`, `${DPOP_KEY_SCOPE_PREFIX}second`]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
