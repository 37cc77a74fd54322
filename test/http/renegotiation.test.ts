/**
 * Issue 11, item 6: renegotiation stays refused after the secure context is replaced. Node's
 * `server.setSecureContext(options)` builds the new context from `options` alone, so a routine
 * certificate rotation used to drop `SSL_OP_NO_RENEGOTIATION`: a TLS 1.2 client's
 * `renegotiate()` then succeeded and the EKM changed under tokbind's cached one. Real servers,
 * real TLS 1.2 clients on 127.0.0.1; after the attempt the connection must be closed and the
 * server-side EKM must be the first one.
 */
import { once } from 'node:events';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import https from 'node:https';
import tls from 'node:tls';
import test from 'ava';
import { createSecureServer } from '../../src/http/http2.js';
import { attachTokenBinding } from '../../src/http/attach.js';
import { createServer } from '../../src/http/server.js';
import { keepRenegotiationRefused, withRenegotiationRefused } from '../../src/tls/conditions.js';
import { exportTokenBindingKeyingMaterial } from '../../src/tls/ekm.js';
import { createTestCertificate, listen, testCertificate } from '../_tls.js';
import { within } from '../reliability/_net.js';

/** The rotated certificate: another key pair for the same name, made at test time. */
const rotated = await createTestCertificate({ commonName: 'rotated.localhost', altNames: ['localhost', '127.0.0.1', 'other.localhost'] });

interface Attempt {
  readonly renegotiated: boolean;
  readonly clientErrors: readonly string[];
  readonly ekmChanged: boolean;
  readonly closed: boolean;
}

/**
 * Connects a TLS 1.2 client, asks for a renegotiation and reports what happened: whether it
 * succeeded, the client's error codes, whether the server-side EKM changed, and whether the
 * connection was closed (within a hang guard).
 */
async function attemptRenegotiation(server: TlsServer, port: number, options: tls.ConnectionOptions = {}): Promise<Attempt> {
  const accepted = once(server, 'secureConnection').then(([s]) => s as TLSSocket);
  const client = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [testCertificate.ca, rotated.ca], maxVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'], ...options });
  const clientErrors: string[] = [];
  client.on('error', (err: NodeJS.ErrnoException) => clientErrors.push(err.code ?? err.message));
  // Reading, so that the server's answer to the renegotiation (an alert) is processed.
  client.resume();
  await once(client, 'secureConnect');
  const serverSide = await accepted;
  serverSide.on('error', () => {});
  const before = Buffer.from(exportTokenBindingKeyingMaterial(serverSide));
  const closed = new Promise<'closed'>((resolve) => client.once('close', () => resolve('closed')));
  const renegotiated = new Promise<'renegotiated'>((resolve) => client.renegotiate({}, (err) => err === null && resolve('renegotiated')));
  const first = await within(Promise.race([closed, renegotiated]), 10_000, 'renegotiation attempt');
  let ekmChanged = false;
  if (first === 'renegotiated') {
    ekmChanged = !Buffer.from(exportTokenBindingKeyingMaterial(serverSide)).equals(before);
    client.destroy();
  }
  return { renegotiated: first === 'renegotiated', clientErrors, ekmChanged, closed: first === 'closed' };
}

test('control: a plain https server after setSecureContext lets a TLS 1.2 client renegotiate, and the EKM changes', async (t) => {
  const server = https.createServer(withRenegotiationRefused({ key: testCertificate.key, cert: testCertificate.cert }), (_req, res) => res.end());
  const { port, close } = await listen(server);
  try {
    server.setSecureContext({ key: rotated.key, cert: rotated.cert });
    const attempt = await attemptRenegotiation(server, port);
    t.true(attempt.renegotiated, 'Node drops SSL_OP_NO_RENEGOTIATION on setSecureContext');
    t.true(attempt.ekmChanged);
  } finally {
    await close();
  }
});

const servers = {
  createServer: () => createServer({ key: testCertificate.key, cert: testCertificate.cert }, (_req, res) => res.end('ok')),
  'createSecureServer (allowHTTP1)': () =>
    createSecureServer({ key: testCertificate.key, cert: testCertificate.cert, allowHTTP1: true }, (_req, res) => res.end('ok')),
};

for (const [name, make] of Object.entries(servers)) {
  test(`${name}: after setSecureContext a TLS 1.2 renegotiation is refused and the connection closed`, async (t) => {
    const server = make();
    const { port, close } = await listen(server);
    try {
      server.setSecureContext({ key: rotated.key, cert: rotated.cert });
      const attempt = await attemptRenegotiation(server, port);
      t.false(attempt.renegotiated);
      t.false(attempt.ekmChanged);
      t.true(attempt.closed, 'the connection is closed after the attempt');
      // Who notices first varies: the client's ERR_SSL_NO_RENEGOTIATION, or the server's close.
      t.true(attempt.clientErrors.every((c) => c === 'ERR_SSL_NO_RENEGOTIATION'), attempt.clientErrors.join(', '));
      // A second rotation, with secureOptions of its own: still refused.
      server.setSecureContext({ key: testCertificate.key, cert: testCertificate.cert, secureOptions: 0 });
      const again = await attemptRenegotiation(server, port);
      t.false(again.renegotiated);
      t.true(again.closed);
    } finally {
      await close();
    }
  });
}

test('createServer: a connection on an SNI context added without the refusal still cannot renegotiate', async (t) => {
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert }, (_req, res) => res.end('ok'));
  server.addContext('other.localhost', tls.createSecureContext({ key: rotated.key, cert: rotated.cert }));
  const { port, close } = await listen(server);
  try {
    const attempt = await attemptRenegotiation(server, port, { servername: 'other.localhost', checkServerIdentity: () => undefined });
    t.false(attempt.renegotiated);
    t.false(attempt.ekmChanged);
    t.true(attempt.closed);
  } finally {
    await close();
  }
});

test('keepRenegotiationRefused: a raw tls.Server created without the refusal closes a renegotiating connection; idempotent; misuse', async (t) => {
  const server = tls.createServer({ key: testCertificate.key, cert: testCertificate.cert });
  keepRenegotiationRefused(server);
  keepRenegotiationRefused(server);
  t.is(server.listeners('secureConnection').length, 1, 'installed once');
  // An https server destroys a socket on a TLS error; a raw tls.Server leaves that to its owner.
  server.on('secureConnection', (socket: TLSSocket) => socket.on('error', () => socket.destroy()));
  const { port, close } = await listen(server);
  try {
    const attempt = await attemptRenegotiation(server, port);
    t.false(attempt.renegotiated, 'disableRenegotiation() stops the handshake that started');
    t.true(attempt.closed);
  } finally {
    await close();
  }
  t.throws(() => keepRenegotiationRefused({} as TlsServer), { instanceOf: TypeError });
  t.throws(() => keepRenegotiationRefused(null as unknown as TlsServer), { instanceOf: TypeError });
});

test('createServer: a renegotiation on an SNI context without the refusal, under an application clientError listener that keeps sockets, still closes the connection', async (t) => {
  // An SNICallback context made by the application lacks SSL_OP_NO_RENEGOTIATION; the per-socket
  // refusal then only raises an error, which a 'clientError' listener could swallow.
  const sni = tls.createSecureContext({ key: rotated.key, cert: rotated.cert });
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert, SNICallback: (_name, cb) => cb(null, sni) }, (_req, res) => res.end('ok'));
  server.on('clientError', () => {});
  const { port, close } = await listen(server);
  try {
    const attempt = await attemptRenegotiation(server, port, { servername: 'other.localhost' });
    t.false(attempt.renegotiated);
    t.false(attempt.ekmChanged);
    t.true(attempt.closed);
  } finally {
    await close();
  }
});

test('attachTokenBinding on an https server created without the refusal: a renegotiation closes the connection, even under a clientError listener that keeps sockets', async (t) => {
  const server = attachTokenBinding(https.createServer({ key: testCertificate.key, cert: testCertificate.cert }, (_req, res) => res.end('ok')));
  server.on('clientError', () => {});
  // Node's own listener and tokbind's fact capture, which also refuses renegotiation on the
  // connection: one listener of tokbind's per connection, not two.
  const plain = https.createServer().listeners('secureConnection').length;
  t.is(server.listeners('secureConnection').length, plain + 1);
  const { port, close } = await listen(server);
  try {
    const attempt = await attemptRenegotiation(server, port);
    t.false(attempt.renegotiated);
    t.false(attempt.ekmChanged);
    t.true(attempt.closed);
  } finally {
    await close();
  }
});
