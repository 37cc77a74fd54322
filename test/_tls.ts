/**
 * Shared TLS test helpers: certificates generated at test time and real sockets on 127.0.0.1.
 *
 *   import { testCertificate, startTlsServer, connectTls, listen } from '../_tls.js'
 *
 * `testCertificate` is an EC P-256 self-signed certificate for `localhost` / `127.0.0.1`, made once
 * per process (this module uses top-level await). Trust it with `ca: testCertificate.ca`.
 */
import { createPrivateKey, webcrypto } from 'node:crypto';
import { once } from 'node:events';
import type { Server as NetServer, Socket } from 'node:net';
import { isIP } from 'node:net';
import tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { createSelfSignedCertificate } from '../src/tls/certificate.js';

export interface TestCertificateOptions {
  readonly commonName?: string;
  readonly altNames?: readonly string[];
  /** `ec` (P-256, default; @peculiar/x509 over WebCrypto) or `rsa` (2048; node:crypto key, node-forge). */
  readonly keyType?: 'ec' | 'rsa';
}

export interface TestCertificate {
  /** PEM private key (PKCS#8 for EC, PKCS#1 for RSA). */
  readonly key: string;
  /** PEM self-signed certificate. */
  readonly cert: string;
  /** The certificate to trust on the client side (the same PEM as `cert`). */
  readonly ca: string;
}

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const cache = new Map<string, Promise<TestCertificate>>();

/** A self-signed certificate, generated once per process for each distinct set of options. */
export function createTestCertificate(options: TestCertificateOptions = {}): Promise<TestCertificate> {
  const { commonName = 'localhost', altNames = ['localhost', '127.0.0.1'], keyType = 'ec' } = options;
  const cacheKey = JSON.stringify([commonName, altNames, keyType]);
  let cert = cache.get(cacheKey);
  if (cert === undefined) {
    cert =
      keyType === 'rsa'
        ? Promise.resolve(createSelfSignedCertificate({ commonName, altNames, days: 2 })).then((c) => ({ ...c, ca: c.cert }))
        : createEcCertificate(commonName, altNames);
    cache.set(cacheKey, cert);
  }
  return cert;
}

async function createEcCertificate(commonName: string, altNames: readonly string[]): Promise<TestCertificate> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01' + Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString('hex'),
    name: `CN=${commonName}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 2 * 86_400_000),
    signingAlgorithm: alg,
    keys: keys as unknown as x509.X509CertificateCreateSelfSignedParams['keys'],
    extensions: [
      new x509.BasicConstraintsExtension(false),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(altNames.map((n) => ({ type: isIP(n) !== 0 ? 'ip' : 'dns', value: n }))),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
  const pem = certificate.toString('pem');
  return { key, cert: pem, ca: pem };
}

/** The default EC P-256 certificate for `localhost` and `127.0.0.1`. */
export const testCertificate: TestCertificate = await createTestCertificate();

export interface Listening {
  readonly port: number;
  /** Stops listening and destroys every connection still open. */
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1:0. Works for net, tls, https, http and http2 servers. Open connections are
 * tracked (through 'connection') so `close()` never waits on a keep-alive socket.
 */
export async function listen(server: NetServer): Promise<Listening> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('server is not listening on TCP');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
  };
}

export interface TestTlsServer extends Listening {
  readonly server: tls.Server;
}

/**
 * Starts a tls.Server on 127.0.0.1:0 with {@link testCertificate} unless `key`/`cert` are given.
 * `onSecure` is attached to 'secureConnection'.
 */
export async function startTlsServer(
  options: tls.TlsOptions = {},
  onSecure?: (socket: TLSSocket) => void,
): Promise<TestTlsServer> {
  const server = tls.createServer({ key: testCertificate.key, cert: testCertificate.cert, ...options });
  if (onSecure !== undefined) server.on('secureConnection', onSecure);
  // A client that hangs up mid-handshake must not fail the test process.
  server.on('tlsClientError', () => {});
  const listening = await listen(server);
  return { server, port: listening.port, close: listening.close };
}

/**
 * Connects to 127.0.0.1:`port`, trusting {@link testCertificate}, and resolves after
 * 'secureConnect'. Rejects on a handshake error. Later socket errors are swallowed unless the
 * test listens for them itself.
 */
export function connectTls(port: number, options: tls.ConnectionOptions = {}): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: testCertificate.ca, ...options });
    const onError = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      socket.off('error', onError);
      // A reset while a test tears down must not crash the process; tests that care about
      // errors attach their own listener.
      socket.on('error', () => {});
      resolve(socket);
    });
  });
}

/** Resolves with the next `secureConnection` socket (serial tests only; else use {@link connectPair}). */
export function nextSecureConnection(server: tls.Server): Promise<TLSSocket> {
  return once(server, 'secureConnection').then(([socket]) => socket as TLSSocket);
}

export interface TlsPair {
  readonly client: TLSSocket;
  /** The server's side of the same connection (matched by port, so concurrent tests are safe). */
  readonly accepted: TLSSocket;
}

/** Connects like {@link connectTls} and also returns the server's socket for that connection. */
export async function connectPair(server: tls.Server, port: number, options: tls.ConnectionOptions = {}): Promise<TlsPair> {
  const seen = new Map<number | undefined, TLSSocket>();
  let wanted: number | undefined;
  let found!: (socket: TLSSocket) => void;
  const accepted = new Promise<TLSSocket>((resolve) => (found = resolve));
  const onSecure = (socket: TLSSocket): void => {
    if (wanted !== undefined && socket.remotePort === wanted) found(socket);
    else seen.set(socket.remotePort, socket);
  };
  server.on('secureConnection', onSecure);
  try {
    const client = await connectTls(port, options);
    wanted = client.localPort;
    const early = seen.get(wanted);
    if (early !== undefined) found(early);
    return { client, accepted: await accepted };
  } finally {
    server.off('secureConnection', onSecure);
  }
}
