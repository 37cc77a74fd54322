import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

/** Options for {@link createSelfSignedCertificate}. */
export interface SelfSignedCertificateOptions {
  /** Subject and issuer common name. Default `localhost`. */
  readonly commonName?: string;
  /** subjectAltName entries: IP literals become iPAddress names, the rest dNSName. */
  readonly altNames?: readonly string[];
  /** Validity in days from now. Default 365. */
  readonly days?: number;
}

/** A PEM private key and the PEM certificate it signed (which is also its own trust anchor). */
export interface SelfSignedCertificate {
  readonly key: string;
  readonly cert: string;
}

/**
 * Builds a self-signed RSA-2048 / SHA-256 X.509 certificate for the demo server, `tokbind serve`
 * and tests. The key comes from node:crypto (forge's pure-JS RSA key generation takes seconds);
 * node-forge only assembles and signs the certificate. Not for production use.
 *
 * @example
 * ```ts
 * const { key, cert } = createSelfSignedCertificate({ altNames: ['localhost', '127.0.0.1'] })
 * https.createServer({ key, cert }, handler)
 * ```
 */
export function createSelfSignedCertificate(options: SelfSignedCertificateOptions = {}): SelfSignedCertificate {
  const { commonName = 'localhost', altNames = ['localhost', '127.0.0.1'], days = 365 } = options;
  if (typeof commonName !== 'string' || commonName.length === 0) throw new TypeError('commonName must be a non-empty string');
  if (!Array.isArray(altNames) || !altNames.every((n) => typeof n === 'string' && n.length > 0)) {
    throw new TypeError('altNames must be an array of non-empty strings');
  }
  if (!Number.isInteger(days) || days < 1) throw new TypeError('days must be a positive integer');

  // PEM straight from the generator: no KeyObject export (see generateTokenBindingKey on why).
  const { privateKey: keyPem, publicKey: publicKeyPem } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const forgeKey = forge.pki.privateKeyFromPem(keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  // A positive serial: clear the top bit so the DER INTEGER is not read as negative.
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  cert.serialNumber = serial.toString('hex');
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60_000); // tolerate small clock skew between peers
  cert.validity.notAfter = new Date(now + days * 86_400_000);
  const name = [{ name: 'commonName', value: commonName }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    {
      name: 'subjectAltName',
      altNames: altNames.map((n) => (isIP(n) !== 0 ? { type: 7, ip: n } : { type: 2, value: n })),
    },
  ]);
  cert.sign(forgeKey as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { key: keyPem, cert: forge.pki.certificateToPem(cert) };
}
