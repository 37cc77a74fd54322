/**
 * exportTokenBindingKeyingMaterial on real TLS connections over 127.0.0.1.
 */
import { once } from 'node:events';
import tls from 'node:tls';
import test from 'ava';
import { isTokenBindingError } from '../../src/errors.js';
import { exportTokenBindingKeyingMaterial } from '../../src/tls/ekm.js';
import { connectPair, connectTls, startTlsServer, type TestTlsServer } from '../_tls.js';

let server: TestTlsServer;
test.before(async () => {
  server = await startTlsServer();
});
test.after.always(() => server.close());

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  test(`${version}: server and client export the same 32 bytes`, async (t) => {
    const { client, accepted: serverSide } = await connectPair(server.server, server.port, { minVersion: version, maxVersion: version });
    t.is(serverSide.getProtocol(), version);
    const a = exportTokenBindingKeyingMaterial(serverSide);
    const b = exportTokenBindingKeyingMaterial(client);
    t.true(a instanceof Uint8Array);
    t.is(a.length, 32);
    t.deepEqual(Buffer.from(a), Buffer.from(b));
    t.deepEqual(Buffer.from(a), serverSide.exportKeyingMaterial(32, 'EXPORTER-Token-Binding', undefined as unknown as Buffer));
    // RFC 5705 tells "no context" from "empty context" on TLS 1.2; TLS 1.3 (RFC 8446 §7.5) does not.
    const emptyContext = serverSide.exportKeyingMaterial(32, 'EXPORTER-Token-Binding', Buffer.alloc(0));
    t.is(Buffer.from(a).equals(emptyContext), version === 'TLSv1.3');
    client.destroy();
  });
}

test('each connection has its own EKM', async (t) => {
  const one = await connectTls(server.port);
  const two = await connectTls(server.port);
  t.notDeepEqual(Buffer.from(exportTokenBindingKeyingMaterial(one)), Buffer.from(exportTokenBindingKeyingMaterial(two)));
  one.destroy();
  two.destroy();
});

test('before the handshake completes: ERR_TB_EKM_UNAVAILABLE', async (t) => {
  const client = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost' });
  client.on('error', () => {});
  const err = t.throws(() => exportTokenBindingKeyingMaterial(client));
  t.true(isTokenBindingError(err, 'ERR_TB_EKM_UNAVAILABLE'));
  client.destroy();
  await once(client, 'close');
});

test('after the connection closes: ERR_TB_EKM_UNAVAILABLE on both sides', async (t) => {
  const { client, accepted: serverSide } = await connectPair(server.server, server.port);
  const closed = once(serverSide, 'close');
  client.destroy();
  await closed;
  for (const socket of [client, serverSide]) {
    const err = t.throws(() => exportTokenBindingKeyingMaterial(socket));
    t.true(isTokenBindingError(err, 'ERR_TB_EKM_UNAVAILABLE'));
  }
});

test('not a socket: TypeError', (t) => {
  t.throws(() => exportTokenBindingKeyingMaterial({} as tls.TLSSocket), { instanceOf: TypeError });
  t.throws(() => exportTokenBindingKeyingMaterial(null as unknown as tls.TLSSocket), { instanceOf: TypeError });
});
