/**
 * The self-signed certificates: src/tls/certificate.ts (RSA, node-forge) for the CLI and demo, and
 * the EC P-256 one test/_tls.ts makes with @peculiar/x509. Both must serve real TLS.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import test from 'ava';
import forge from 'node-forge';
import { createSelfSignedCertificate } from '../../src/tls/certificate.js';
import { connectPair, createTestCertificate, startTlsServer, testCertificate } from '../_tls.js';

test('createSelfSignedCertificate: RSA-2048, SHA-256, the names asked for, self-signed', (t) => {
  const { key, cert } = createSelfSignedCertificate({ commonName: 'tokbind.test', altNames: ['tokbind.test', '::1', '127.0.0.1'], days: 3 });
  const x = new X509Certificate(cert);
  const privateKey = createPrivateKey(key);
  t.is(privateKey.asymmetricKeyType, 'rsa');
  t.is(privateKey.asymmetricKeyDetails?.modulusLength, 2048);
  t.true(x.checkPrivateKey(privateKey));
  t.true(x.verify(x.publicKey), 'self-signed');
  t.is(forge.pki.certificateFromPem(cert).siginfo.algorithmOid, forge.pki.oids['sha256WithRSAEncryption']);
  t.is(x.subject, 'CN=tokbind.test');
  t.is(x.issuer, 'CN=tokbind.test');
  t.is(x.subjectAltName, 'DNS:tokbind.test, IP Address:0:0:0:0:0:0:0:1, IP Address:127.0.0.1');
  t.false(x.ca);
  const days = (Date.parse(x.validTo) - Date.parse(x.validFrom)) / 86_400_000;
  t.true(days > 2.9 && days < 3.1, `${days} days`);
  t.not(createSelfSignedCertificate().cert, cert, 'a fresh key and serial each time');
});

test('createSelfSignedCertificate: misuse is a TypeError', (t) => {
  t.throws(() => createSelfSignedCertificate({ commonName: '' }), { instanceOf: TypeError });
  t.throws(() => createSelfSignedCertificate({ altNames: [''] }), { instanceOf: TypeError });
  t.throws(() => createSelfSignedCertificate({ days: 0 }), { instanceOf: TypeError });
});

test('the EC test certificate and an RSA one both serve TLS 1.3 and 1.2 to a verifying client', async (t) => {
  const ec = new X509Certificate(testCertificate.cert);
  t.is(ec.publicKey.asymmetricKeyType, 'ec');
  t.is(ec.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1');
  t.is(testCertificate.ca, testCertificate.cert);
  const rsa = await createTestCertificate({ keyType: 'rsa' });
  t.is(await createTestCertificate({ keyType: 'rsa' }), rsa, 'cached per process');
  for (const c of [testCertificate, rsa]) {
    const srv = await startTlsServer({ key: c.key, cert: c.cert });
    try {
      for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
        const { client } = await connectPair(srv.server, srv.port, { ca: c.ca, maxVersion });
        t.true(client.authorized);
        client.destroy();
      }
    } finally {
      await srv.close();
    }
  }
});
