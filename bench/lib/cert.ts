/**
 * The benchmark's server certificate: ECDSA P-256, self-signed, made with @peculiar/x509 over
 * WebCrypto. Handshake-bound figures depend on the certificate's key type (an RSA-2048 handshake
 * costs several times more and would flatter a ratio), so every report names it.
 */
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

export interface BenchCertificate {
  /** PKCS#8 PEM. */
  readonly key: string;
  /** PEM; also the trust anchor (self-signed). */
  readonly cert: string;
  /** Printed and recorded beside handshake-bound figures. */
  readonly description: string;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

/** `ec`: ECDSA P-256 (the default for every figure); `rsa`: RSA-2048 (the shape many deployments run). */
export async function createBenchCertificate(type: 'ec' | 'rsa' = 'ec'): Promise<BenchCertificate> {
  const alg =
    type === 'ec'
      ? { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
      : { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  // @peculiar/x509 types its provider with the DOM's Crypto; Node's webcrypto is that object.
  const crypto = webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0];
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: 'CN=localhost',
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 2 * 86_400_000),
      signingAlgorithm: alg,
      keys: keys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'],
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(type === 'ec' ? x509.KeyUsageFlags.digitalSignature : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          { type: 'dns', value: 'localhost' },
          { type: 'ip', value: '127.0.0.1' },
        ]),
      ],
    },
    crypto,
  );
  const key = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return {
    key: pem('PRIVATE KEY', key),
    cert: cert.toString('pem') + '\n',
    description: `${type === 'ec' ? 'ECDSA P-256' : 'RSA-2048'} self-signed (@peculiar/x509), TLS 1.3, no session resumption`,
  };
}
