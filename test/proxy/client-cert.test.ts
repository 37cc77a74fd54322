/**
 * RFC 8705 certificate-bound tokens behind `tokbind proxy`: the proxy asks TLS clients for a
 * certificate and forwards it as RFC 9440 `Client-Cert`; the backend (plain HTTP) checks
 * `cnf["x5t#S256"]` against it — reading the header only from the trusted proxy's address.
 * A client's own `Client-Cert` never gets through.
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import type { TokenBindingError } from '../../src/errors.js';
import { clientCertificateFromTrustedProxy, formatClientCertHeader } from '../../src/http/client-cert.js';
import { createProxy } from '../../src/proxy/server.js';
import { certificateConfirmation } from '../../src/token/cnf.js';
import { sendAccessTokenChallenge } from '../../src/token/respond.js';
import { createAccessTokenVerifier } from '../../src/token/verify.js';
import { createTestCertificate, listen, testCertificate } from '../_tls.js';
import { AUDIENCE, ISSUER, createIssuer } from '../token/_rs.js';

const issuer = await createIssuer();

async function rig(trusted: readonly string[], http2 = false) {
  const seen: (string | undefined)[] = [];
  const verifier = createAccessTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: issuer.jwks,
    clientCertificate: clientCertificateFromTrustedProxy({ addresses: trusted }),
  });
  const backend = http.createServer((req, res) => {
    seen.push(req.headers['client-cert'] as string | undefined);
    verifier.verify(req).then(
      (token) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ cnf: token.method })),
      (err: TokenBindingError) => sendAccessTokenChallenge(res, verifier, err),
    );
  });
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  const proxy = createProxy({
    upstream: `http://127.0.0.1:${(backend.address() as AddressInfo).port}`,
    key: testCertificate.key,
    cert: testCertificate.cert,
    http2,
    tls: { requestCert: true, rejectUnauthorized: false },
  });
  const front = await listen(proxy.server);
  return {
    port: front.port,
    seen,
    close: async () => {
      await front.close();
      await proxy.close();
      backend.closeAllConnections();
      backend.close();
    },
  };
}

function call(port: number, options: { token: string; cert?: { key: string; cert: string }; headers?: Record<string, string> }): Promise<{ status: number; body: string; challenge: string | undefined }> {
  return new Promise((resolve, reject) => {
    https
      .get(
        {
          host: '127.0.0.1',
          port,
          path: '/api',
          agent: false,
          ca: testCertificate.ca,
          servername: 'localhost',
          headers: { authorization: `Bearer ${options.token}`, ...options.headers },
          ...(options.cert === undefined ? {} : { key: options.cert.key, cert: options.cert.cert }),
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (s: string) => (body += s));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, challenge: res.headers['www-authenticate'] as string | undefined }));
        },
      )
      .on('error', reject);
  });
}

test('behind tokbind proxy, a certificate-bound token works for its certificate only; a client-sent Client-Cert is stripped', async (t) => {
  const { port, seen, close } = await rig(['127.0.0.1']);
  t.teardown(close);
  const owner = await createTestCertificate({ commonName: 'owner', altNames: ['owner.test'] });
  const thief = await createTestCertificate({ commonName: 'thief', altNames: ['thief.test'] });
  const ownerDer = new Uint8Array(new X509Certificate(owner.cert).raw);
  const token = await issuer.mint({ cnf: certificateConfirmation(ownerDer) });

  t.deepEqual(await call(port, { token, cert: owner }), { status: 200, body: '{"cnf":"x5t#S256"}', challenge: undefined });
  t.is(seen.at(-1), formatClientCertHeader(ownerDer), 'the proxy forwarded the client certificate as RFC 9440 Client-Cert');

  const stolen = await call(port, { token, cert: thief });
  t.is(stolen.status, 401);
  t.regex(stolen.challenge ?? '', /^Bearer error="invalid_token"/);

  const none = await call(port, { token });
  t.is(none.status, 401);
  t.is(seen.at(-1), undefined, 'no certificate, no Client-Cert');

  // A client without the certificate sends the owner's as a header (every case, twice): stripped.
  const forged = await call(port, { token, headers: { 'Client-Cert': formatClientCertHeader(ownerDer), 'CLIENT-CERT-CHAIN': formatClientCertHeader(ownerDer) } });
  t.is(forged.status, 401);
  t.is(seen.at(-1), undefined);
  const forgedWithOwn = await call(port, { token, cert: thief, headers: { 'client-cert': formatClientCertHeader(ownerDer) } });
  t.is(forgedWithOwn.status, 401);
  t.is(seen.at(-1), formatClientCertHeader(new Uint8Array(new X509Certificate(thief.cert).raw)));
});

test('a backend that does not trust the proxy\'s address ignores its Client-Cert', async (t) => {
  const { port, close } = await rig(['10.0.0.0/8']);
  t.teardown(close);
  const owner = await createTestCertificate({ commonName: 'owner2', altNames: ['owner2.test'] });
  const token = await issuer.mint({ cnf: certificateConfirmation(new Uint8Array(new X509Certificate(owner.cert).raw)) });
  t.is((await call(port, { token, cert: owner })).status, 401);
});

test('an HTTP/2 front forwards the connection\'s certificate on every stream of the session', async (t) => {
  const { port, seen, close } = await rig(['127.0.0.1'], true);
  t.teardown(close);
  const owner = await createTestCertificate({ commonName: 'owner3', altNames: ['owner3.test'] });
  const ownerDer = new Uint8Array(new X509Certificate(owner.cert).raw);
  const token = await issuer.mint({ cnf: certificateConfirmation(ownerDer) });
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: testCertificate.ca, servername: 'localhost', key: owner.key, cert: owner.cert });
  t.teardown(() => session.close());
  const get = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const stream = session.request({ ':path': '/api', authorization: `Bearer ${token}` });
      stream.on('response', (headers) => resolve(Number(headers[':status'])));
      stream.on('error', reject);
      stream.resume();
      stream.end();
    });
  t.deepEqual(await Promise.all([get(), get(), get()]), [200, 200, 200]);
  t.deepEqual(seen, Array(3).fill(formatClientCertHeader(ownerDer)));
});
