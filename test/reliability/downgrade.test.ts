/**
 * Downgrades refused (issue 7), on real TLS connections to `createServer`: TLS 1.2 without
 * Extended Master Secret, TLS 1.1 and 1.0 (OpenSSL 3 only speaks them at security level 0, so
 * both sides are configured with `ciphers: 'DEFAULT@SECLEVEL=0'`), a client-initiated
 * renegotiation, and a message replayed on another connection. Each client signs a correct
 * binding over the EKM of its own connection, so the only thing wrong is the downgrade. A good
 * client keeps getting 200s on its own connection throughout.
 */
import { once } from 'node:events';
import tls from 'node:tls';
import test from 'ava';
import { generateTokenBindingKey } from '../../src/crypto/sign.js';
import { hasExtendedMasterSecret } from '../../src/tls/session.js';
import { printSummary } from '../fuzz/_fuzz.js';
import { startTlsServer, testCertificate } from '../_tls.js';
import { GoodClient, RawHttpConnection, closed, ekmOf, within, type RawResponse } from './_net.js';
import { startServer } from './_server.js';
import { idOf, validHeader } from './_tb.js';

/**
 * OpenSSL 3's SSL_OP_NO_EXTENDED_MASTER_SECRET (bit 0; node:crypto does not export it). The
 * tests check the connection really lacks EMS before drawing any conclusion.
 */
const SSL_OP_NO_EXTENDED_MASTER_SECRET = 1;
const LEGACY = { minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;

const srv = await startServer({}, LEGACY);
const good = new GoodClient(srv.port).start();
const tally = { connections: 0, refused: 0, accepted: 0 };

test.after.always(async () => {
  await good.stop();
  await srv.close();
  printSummary('downgrades', {
    'downgraded connections': tally.connections,
    refused: tally.refused,
    'controls accepted': tally.accepted,
    'good requests': good.ok,
    'good failures': good.failures.length,
  });
});

const code = (res: RawResponse): string => (JSON.parse(res.body) as { code: string }).code;

/** Opens a connection with `options`, sends a binding correctly signed over its EKM. */
async function bindOver(options: tls.ConnectionOptions): Promise<{ connection: RawHttpConnection; res: RawResponse; key: ReturnType<typeof generateTokenBindingKey> }> {
  const connection = await RawHttpConnection.open(srv.port, options);
  tally.connections++;
  const key = generateTokenBindingKey();
  const res = await within(connection.request([['Sec-Token-Binding', validHeader(key, connection.ekm)]]), 10_000, 'request');
  return { connection, res, key };
}

test('control: TLS 1.3 and TLS 1.2 with EMS are accepted', async (t) => {
  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    const { connection, res, key } = await bindOver({ minVersion: version, maxVersion: version });
    t.is(connection.socket.getProtocol(), version);
    t.is(res.status, 200, `${version}: ${res.body}`);
    t.is((JSON.parse(res.body) as { id: string }).id, idOf(key));
    tally.connections--;
    tally.accepted++;
    await connection.close();
  }
});

test('TLS 1.2 without Extended Master Secret: refused with ERR_TB_TLS_CONDITIONS', async (t) => {
  const { connection, res } = await bindOver({ maxVersion: 'TLSv1.2', secureOptions: SSL_OP_NO_EXTENDED_MASTER_SECRET });
  t.is(connection.socket.getProtocol(), 'TLSv1.2');
  t.is(hasExtendedMasterSecret(connection.socket), false, 'the client really negotiated no EMS');
  t.is(res.status, 400);
  t.is(code(res), 'ERR_TB_TLS_CONDITIONS');
  tally.refused++;
  // Refused on every request of the connection, not only the first.
  const again = await connection.request([['Sec-Token-Binding', validHeader(generateTokenBindingKey(), connection.ekm)]]);
  t.is(code(again), 'ERR_TB_TLS_CONDITIONS');
  // A request without the header is not Token Binding's business: it goes through, unbound.
  const plain = await connection.request();
  t.is(plain.status, 200);
  t.is((JSON.parse(plain.body) as { id: null }).id, null);
  await connection.close();
});

test('TLS 1.2 on a server that refuses EMS: refused with ERR_TB_TLS_CONDITIONS', async (t) => {
  const noEms = await startServer({}, { secureOptions: SSL_OP_NO_EXTENDED_MASTER_SECRET });
  try {
    const connection = await RawHttpConnection.open(noEms.port, { maxVersion: 'TLSv1.2' });
    tally.connections++;
    const res = await connection.request([['Sec-Token-Binding', validHeader(generateTokenBindingKey(), connection.ekm)]]);
    t.is(code(res), 'ERR_TB_TLS_CONDITIONS');
    tally.refused++;
    await connection.close();
  } finally {
    await noEms.close();
  }
});

for (const version of ['TLSv1.1', 'TLSv1'] as const) {
  test(`${version}: refused with ERR_TB_TLS_CONDITIONS (even with EMS)`, async (t) => {
    const { connection, res } = await bindOver({ ...LEGACY, minVersion: version, maxVersion: version });
    t.is(connection.socket.getProtocol(), version, 'OpenSSL negotiated the old version at SECLEVEL=0');
    t.is(hasExtendedMasterSecret(connection.socket), true, 'EMS is there: the version alone is refused');
    t.is(res.status, 400);
    t.is(code(res), 'ERR_TB_TLS_CONDITIONS');
    tally.refused++;
    await connection.close();
  });
}

test('a client-initiated renegotiation is refused; the other connections carry on', async (t) => {
  const before = good.ok;
  const { connection, res } = await bindOver({ maxVersion: 'TLSv1.2' });
  t.is(res.status, 200);
  const errors: string[] = [];
  connection.socket.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
  connection.socket.renegotiate({}, (err) => {
    if (err) errors.push((err as NodeJS.ErrnoException).code ?? err.message);
  });
  await within(closed(connection.socket), 10_000, 'renegotiating connection closes');
  // The server closes the connection as the renegotiation starts (disableRenegotiation); the
  // client may or may not have read the no_renegotiation alert by then.
  t.true(errors.every((e) => e === 'ERR_SSL_NO_RENEGOTIATION'), errors.join(', '));
  tally.refused++;
  await good.progress(10, 'renegotiation');
  t.true(good.ok > before);
  t.is(good.failures.length, 0, good.failures.join('; '));
});

test('control: without the refusal, a renegotiation succeeds and changes the EKM (why it is refused)', async (t) => {
  const plain = await startTlsServer({ maxVersion: 'TLSv1.2' });
  try {
    const socket = tls.connect({ host: '127.0.0.1', port: plain.port, servername: 'localhost', ca: testCertificate.ca });
    await once(socket, 'secureConnect');
    const before = ekmOf(socket);
    await new Promise<void>((resolve, reject) => socket.renegotiate({}, (err) => (err ? reject(err) : resolve())));
    t.false(Buffer.from(before).equals(ekmOf(socket)));
    socket.destroy();
  } finally {
    await plain.close();
  }
});

test('the same message on another connection is rejected (ERR_TB_SIGNATURE_INVALID), before and after it was cached', async (t) => {
  const key = generateTokenBindingKey();
  const a = await RawHttpConnection.open(srv.port);
  const b = await RawHttpConnection.open(srv.port);
  const c = await RawHttpConnection.open(srv.port, { maxVersion: 'TLSv1.2' });
  tally.connections += 2;
  const header = validHeader(key, a.ekm);
  const onB = await b.request([['Sec-Token-Binding', header]]);
  t.is(code(onB), 'ERR_TB_SIGNATURE_INVALID');
  t.is((await a.request([['Sec-Token-Binding', header]])).status, 200);
  // A's verdict is cached on A; B and C must still verify it against their own EKM.
  for (const other of [b, c]) {
    const res = await other.request([['Sec-Token-Binding', header]]);
    t.is(res.status, 400);
    t.is(code(res), 'ERR_TB_SIGNATURE_INVALID');
    tally.refused++;
  }
  t.is((await a.request([['Sec-Token-Binding', header]])).status, 200);
  await Promise.all([a.close(), b.close(), c.close()]);
});
