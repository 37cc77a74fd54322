/**
 * `tokbind serve --jwks …` through the real binary: tokbind's clients with an access token bound
 * each way (Token Binding, DPoP, client certificate), thieves and broken requests refused with
 * the RFC 6750 / RFC 9449 challenge, usage and JWKS errors.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { fetch } from 'undici';
import { DpopSigner } from '../../src/client/dpop.js';
import { TokenBindingDispatcher, tokbindFetch } from '../../src/client/dispatcher.js';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { tokenBindingScope } from '../../src/client/scope.js';
import { certificateConfirmation, tokenBindingConfirmation } from '../../src/token/cnf.js';
import { connectTls, createTestCertificate } from '../_tls.js';
import { AUDIENCE, ISSUER, createIssuer, plainAgent, plainGet } from '../token/_rs.js';
import { runBin, spawnBin } from './_bin.js';

const issuer = await createIssuer();
const dir = mkdtempSync(join(tmpdir(), 'tokbind-serve-jwks-'));
const jwksFile = join(dir, 'jwks.json');
writeFileSync(jwksFile, JSON.stringify(issuer.jwks));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

const ALGS = 'algs="ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512 EdDSA Ed25519"';

async function startServe(t: import('ava').ExecutionContext, args: string[]): Promise<{ url: string; ca: string }> {
  const child = spawnBin(['serve', '--port', '0', '--jwks', jwksFile, '--issuer', ISSUER, '--audience', AUDIENCE, ...args]);
  t.teardown(() => void child.kill('SIGTERM'));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const match = /^listening on https:\/\/127\.0\.0\.1:(\d+)\n/.exec(out);
      if (match !== null) resolve(Number(match[1]));
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}`)));
  });
  const probe = await connectTls(port, { rejectUnauthorized: false });
  const ca = new X509Certificate(probe.getPeerCertificate().raw).toString();
  probe.destroy();
  return { url: `https://127.0.0.1:${port}`, ca };
}

test('serve --jwks --require-token --client-certs request: tbh, jkt and x5t#S256 tokens of their own clients accepted, others refused', async (t) => {
  const { url, ca } = await startServe(t, ['--require-token', '--client-certs', 'request']);
  const clientCert = await createTestCertificate({ commonName: 'serve-client', altNames: ['serve-client.test'] });
  const keyStore = new MemoryKeyStore();
  const dispatcher = new TokenBindingDispatcher({ keyStore, connect: { ca, servername: 'localhost', cert: clientCert.cert, key: clientCert.key } });
  const thief = new TokenBindingDispatcher({ connect: { ca, servername: 'localhost' } });
  const plain = plainAgent({ ca });
  t.teardown(() => Promise.all([dispatcher.close(), thief.close(), plain.close()]).then(() => undefined));
  const whoami = `${url}/whoami`;

  const key = await keyStore.getOrCreateKey(tokenBindingScope(url), 'ecdsap256');
  const tbhToken = await issuer.mint({ cnf: tokenBindingConfirmation(key.id) });
  const tbh = await tokbindFetch(whoami, { dispatcher, accessToken: tbhToken });
  t.is(tbh.status, 200);
  t.deepEqual(await tbh.json(), {
    tokenBinding: { provided: { id: Buffer.from(key.id.raw).toString('base64url'), hash: tokenBindingConfirmation(key.id).tbh, keyParameters: 'ecdsap256' }, referred: null, others: [] },
    token: { sub: 'alice', cnf: 'tbh' },
  });

  const signer = await DpopSigner.fromKeyStore(keyStore);
  const jktToken = await issuer.mint({ cnf: { jkt: await signer.thumbprint() } }, {});
  const jkt = await tokbindFetch(whoami, { dispatcher, accessToken: jktToken, dpop: signer });
  t.is(jkt.status, 200);
  t.like(await jkt.json(), { token: { sub: 'alice', cnf: 'jkt' } });

  const x5tToken = await issuer.mint({ cnf: certificateConfirmation(new X509Certificate(clientCert.cert).raw) });
  const x5t = await tokbindFetch(whoami, { dispatcher, accessToken: x5tToken });
  t.like(await x5t.json(), { token: { sub: 'alice', cnf: 'x5t#S256' } });

  // Thieves: each token from another client.
  const cases = [
    [tbhToken, undefined, 'ERR_TB_CNF_MISMATCH'],
    [x5tToken, undefined, 'ERR_TB_CNF_MISSING'],
    [jktToken, await DpopSigner.fromKeyStore(new MemoryKeyStore()), 'ERR_TB_CNF_MISMATCH'],
  ] as const;
  for (const [token, dpop, code] of cases) {
    const res = await tokbindFetch(whoami, { dispatcher: thief, accessToken: token, ...(dpop === undefined ? {} : { dpop }) });
    t.is(res.status, 401);
    t.is(res.headers.get('www-authenticate'), dpop === undefined ? 'Bearer error="invalid_token"' : `DPoP error="invalid_token", ${ALGS}`);
    t.is(((await res.json()) as { code: string }).code, code);
  }
  // A replayed proof, a missing token, an invalid one.
  const proof = await signer.proof({ method: 'GET', url: whoami, accessToken: jktToken });
  t.is((await plainGet(whoami, { authorization: `DPoP ${jktToken}`, dpop: proof }, plain)).status, 200);
  const replay = await plainGet(whoami, { authorization: `DPoP ${jktToken}`, dpop: proof }, plain);
  t.is(replay.status, 401);
  t.is(replay.headers.get('www-authenticate'), `DPoP error="invalid_dpop_proof", ${ALGS}`);
  const missing = await plainGet(whoami, {}, plain);
  t.is(missing.status, 401);
  t.is(missing.headers.get('www-authenticate'), `Bearer, DPoP ${ALGS}`);
  const invalid = await plainGet(whoami, { authorization: `Bearer ${tbhToken.slice(0, -4)}AAAA` }, plain);
  t.is(invalid.status, 401);
  t.is(invalid.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
  t.is(invalid.json['code'], 'ERR_TB_TOKEN_INVALID');
  // /metrics stays open; other paths need the token too.
  const metrics = await fetch(`${url}/metrics`, { dispatcher: plain });
  t.is(metrics.status, 200);
  t.regex(await metrics.text(), /tokbind_/);
  t.is((await plainGet(`${url}/nothing`, {}, plain)).status, 401);
  t.is((await tokbindFetch(`${url}/nothing`, { dispatcher, accessToken: tbhToken })).status, 404);
});

test('serve --jwks without --require-token: no token passes with token null; a presented one is checked', async (t) => {
  const { url, ca } = await startServe(t, []);
  const plain = plainAgent({ ca });
  t.teardown(() => plain.close());
  const none = await plainGet(`${url}/whoami`, {}, plain);
  t.is(none.status, 200);
  t.deepEqual(none.json, { tokenBinding: null, token: null });
  const unbound = await plainGet(`${url}/whoami`, { authorization: `Bearer ${await issuer.mint({})}` }, plain);
  t.is(unbound.status, 401);
  t.is(unbound.json['code'], 'ERR_TB_TOKEN_UNBOUND');
});

test('serve: token options are usage errors without --jwks or its companions; an unusable JWKS exits 1 with its code', async (t) => {
  for (const args of [
    ['--issuer', ISSUER],
    ['--require-token'],
    ['--audience', AUDIENCE],
    ['--jwks', jwksFile, '--issuer', ISSUER],
    ['--jwks', jwksFile, '--audience', AUDIENCE],
    ['--client-certs', 'require'],
    ['--jwks', jwksFile, '--issuer', ISSUER, '--audience', AUDIENCE, '--workers', '2'],
  ]) {
    const run = await runBin(['serve', '--port', '0', ...args]);
    t.is(run.code, 2, args.join(' '));
  }
  writeFileSync(join(dir, 'bad.json'), '{"keys":[{"kty":"EC","d":"x"}]}');
  const bad = await runBin(['serve', '--port', '0', '--jwks', join(dir, 'bad.json'), '--issuer', ISSUER, '--audience', AUDIENCE]);
  t.is(bad.code, 1);
  t.is((JSON.parse(bad.stderr) as { error: { code: string } }).error.code, 'ERR_TB_JWKS_UNAVAILABLE');
  const help = await runBin(['serve', '--help']);
  t.is(help.code, 0);
  for (const option of ['--jwks FILE', '--issuer ISS', '--audience AUD', '--require-token', '--client-certs']) t.true(help.stdout.includes(option), option);
});
