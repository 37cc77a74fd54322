/**
 * The verifier on tokbind's HTTP/2 server (compat API): the client certificate comes from the
 * session's socket, `htu` from `:authority`; and the framework-free function's edge cases on
 * requests shaped like Node's.
 */
import { X509Certificate } from 'node:crypto';
import http2 from 'node:http2';
import test from 'ava';
import { TokenBindingError } from '../../src/errors.js';
import { createSecureServer } from '../../src/http/http2.js';
import { certificateConfirmation } from '../../src/token/cnf.js';
import { sendAccessTokenChallenge } from '../../src/token/respond.js';
import { createAccessTokenVerifier, type AccessTokenRequest } from '../../src/token/verify.js';
import { createTestCertificate, listen, testCertificate } from '../_tls.js';
import { AUDIENCE, ISSUER, createIssuer, dpopKey, makeProof } from './_rs.js';
import { DpopSigner } from '../../src/client/dpop.js';

const issuer = await createIssuer();

test('HTTP/2: x5t#S256 from the session socket and DPoP htu from :authority', async (t) => {
  const verifier = createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: issuer.jwks });
  const server = createSecureServer({ key: testCertificate.key, cert: testCertificate.cert, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    verifier.verify(req).then(
      (token) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ cnf: token.method })),
      (err: TokenBindingError) => sendAccessTokenChallenge(res, verifier, err),
    );
  });
  const listening = await listen(server);
  const clientCert = await createTestCertificate({ commonName: 'h2-client', altNames: ['h2-client.test'] });
  const session = http2.connect(`https://127.0.0.1:${listening.port}`, { ca: testCertificate.ca, servername: 'localhost', cert: clientCert.cert, key: clientCert.key });
  try {
    const get = (headers: Record<string, string>): Promise<{ status: number; body: string; challenge: string | undefined }> =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':path': '/whoami', ...headers });
        let body = '';
        let status = 0;
        let challenge: string | undefined;
        stream.on('response', (h) => {
          status = Number(h[':status']);
          challenge = h['www-authenticate'] as string | undefined;
        });
        stream.setEncoding('utf8').on('data', (c: string) => (body += c));
        stream.on('end', () => resolve({ status, body, challenge }));
        stream.on('error', reject);
        stream.end();
      });
    const x5t = await issuer.mint({ cnf: certificateConfirmation(new X509Certificate(clientCert.cert).raw) });
    t.deepEqual(await get({ authorization: `Bearer ${x5t}` }), { status: 200, body: '{"cnf":"x5t#S256"}', challenge: undefined });
    const key = await dpopKey();
    const jkt = await issuer.mint({ cnf: { jkt: await new DpopSigner(key.privateKey).thumbprint() } });
    // The client names the server `localhost` (servername): that is its :authority.
    const ok = await get({ authorization: `DPoP ${jkt}`, dpop: await makeProof(key, { htm: 'GET', htu: `https://localhost:${listening.port}/whoami`, token: jkt }) });
    t.is(ok.status, 200, ok.body);
    const wrong = await get({ authorization: `DPoP ${jkt}`, dpop: await makeProof(key, { htm: 'GET', htu: `https://127.0.0.1:${listening.port}/whoami`, token: jkt }) });
    t.is(wrong.status, 401);
    t.regex(wrong.challenge ?? '', /^DPoP error="invalid_dpop_proof"/);
  } finally {
    session.close();
    await listening.close();
  }
});

function fakeRequest(headers: Record<string, string>, extra: Record<string, unknown> = {}): AccessTokenRequest {
  return { headers, rawHeaders: Object.entries(headers).flat(), method: 'GET', url: '/r?x', ...extra } as unknown as AccessTokenRequest;
}

test('framework-free edge cases: fixed origin, plain http, custom resolvers, huge tokens, key resolver failures', async (t) => {
  const key = await dpopKey();
  const jkt = await new DpopSigner(key.privateKey).thumbprint();
  const token = await issuer.mint({ cnf: { jkt } });
  const fixed = createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: issuer.jwks, origin: 'HTTPS://API.test:443/' });
  const proof = await makeProof(key, { htm: 'GET', htu: 'https://api.test/r', token });
  t.is((await fixed.verify(fakeRequest({ host: 'evil.test', authorization: `DPoP ${token}`, dpop: proof }))).method, 'jkt');
  // Without a fixed origin: Host on a plain (unencrypted) socket is an http: URI.
  const open = createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: issuer.jwks });
  const httpProof = await makeProof(key, { htm: 'GET', htu: 'http://h.test/r', token });
  t.is((await open.verify(fakeRequest({ host: 'h.test', authorization: `DPoP ${token}`, dpop: httpProof }, { socket: {} }))).method, 'jkt');
  const noHost = await open.verify(fakeRequest({ authorization: `DPoP ${token}`, dpop: await makeProof(key, { htm: 'GET', htu: 'http://h.test/r', token }) })).catch((e: TokenBindingError) => e.code);
  t.is(noHost, 'ERR_TB_DPOP_INVALID');
  // Custom certificate and Token Binding resolvers (a trusted proxy's Client-Cert, forwarded IDs).
  const der = new X509Certificate(testCertificate.cert).raw;
  const viaProxy = createAccessTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: issuer.jwks,
    clientCertificate: (req) => (req.headers['client-cert'] === 'trusted' ? der : undefined),
    tokenBinding: () => null,
  });
  const x5t = await issuer.mint({ cnf: certificateConfirmation(der) });
  t.is((await viaProxy.verify(fakeRequest({ authorization: `Bearer ${x5t}`, 'client-cert': 'trusted' }))).method, 'x5t#S256');
  t.is(await viaProxy.verify(fakeRequest({ authorization: `Bearer ${x5t}` })).catch((e: TokenBindingError) => e.code), 'ERR_TB_CNF_MISSING');
  t.is(await viaProxy.verify(fakeRequest({ authorization: `Bearer ${await issuer.mint({ cnf: { tbh: 'x' } })}` })).catch((e: TokenBindingError) => e.code), 'ERR_TB_CNF_MISSING');
  // A socket without getPeerCertificate (plain TCP): no certificate.
  t.is(await open.verify(fakeRequest({ authorization: `Bearer ${x5t}` }, { socket: {} })).catch((e: TokenBindingError) => e.code), 'ERR_TB_CNF_MISSING');
  // An oversized credential is malformed, not verified.
  t.is(await open.verify(fakeRequest({ authorization: `Bearer ${'a'.repeat(16_385)}` })).catch((e: TokenBindingError) => e.code), 'ERR_TB_TOKEN_REQUEST_INVALID');
  // A key resolver that fails (not a JOSE error): the JWKS is unavailable, 503.
  const failing = createAccessTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: async () => {
      throw new Error('network down');
    },
  });
  const err = await failing.verify(fakeRequest({ authorization: `Bearer ${x5t}` })).catch((e: TokenBindingError) => e);
  t.is((err as TokenBindingError).code, 'ERR_TB_JWKS_UNAVAILABLE');
  t.deepEqual(failing.challenge(err as TokenBindingError), { status: 503, headers: { 'retry-after': '5' } });
  // A shared replay cache that says full: refused, with Retry-After 1.
  const full = createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: issuer.jwks, origin: 'https://api.test', dpop: { replayCache: { remember: async () => 'full' as const } } });
  const fullErr = (await full.verify(fakeRequest({ authorization: `DPoP ${token}`, dpop: await makeProof(key, { htm: 'GET', htu: 'https://api.test/r', token }) })).catch((e: TokenBindingError) => e)) as TokenBindingError;
  t.is(fullErr.code, 'ERR_TB_DPOP_REPLAY_CACHE_FULL');
  t.deepEqual(full.challenge(fullErr), { status: 503, headers: { 'retry-after': '1' } });
  // A proof key that does not match its alg, an RSA jwk with an EC alg, a jwk that is not an object.
  for (const header of [{ jwk: { kty: 'RSA', n: 'AQAB', e: 'AQAB' } }, { jwk: 'x' }, { jwk: { kty: 'oct', k: 'x' } }, { jwk: { kty: 'EC', crv: 'P-256', x: '', y: 'y' } }]) {
    const bad = await makeProof(key, { htm: 'GET', htu: 'https://api.test/r', token }, header);
    t.is(await fixed.verify(fakeRequest({ authorization: `DPoP ${token}`, dpop: bad })).catch((e: TokenBindingError) => e.code), 'ERR_TB_DPOP_INVALID', JSON.stringify(header));
  }
});
