/**
 * watchRenegotiation on real server sockets: a client renegotiation attempt is noticed (and
 * refused by the server's options); an observer that throws never breaks the TLS machinery; a
 * socket without Node's TLS handle is reported as not watchable.
 */
import { once } from 'node:events';
import tls, { type TLSSocket } from 'node:tls';
import test from 'ava';
import { withRenegotiationRefused } from '../../src/tls/conditions.js';
import { watchRenegotiation } from '../../src/tls/renegotiation.js';
import { listen, testCertificate } from '../_tls.js';

test('an attempt is noticed; a throwing observer is contained; the refusal still happens', async (t) => {
  let attempts = 0;
  const server = tls.createServer(withRenegotiationRefused({ key: testCertificate.key, cert: testCertificate.cert, maxVersion: 'TLSv1.2' }), (socket: TLSSocket) => {
    socket.on('error', () => {});
    t.true(
      watchRenegotiation(socket, () => {
        attempts++;
        throw new Error('observer bug');
      }),
    );
  });
  const listening = await listen(server);
  t.teardown(() => listening.close());
  const client = tls.connect({ host: '127.0.0.1', port: listening.port, servername: 'localhost', ca: testCertificate.ca });
  await once(client, 'secureConnect');
  const errors: string[] = [];
  const failed = new Promise<void>((resolve) =>
    client.on('error', (err: NodeJS.ErrnoException) => {
      errors.push(err.code ?? err.message);
      resolve();
    }),
  );
  client.renegotiate({}, () => {});
  await failed;
  client.destroy();
  t.is(attempts, 1);
  t.true(errors.includes('ERR_SSL_NO_RENEGOTIATION'), errors.join(','));
});

test('a socket without a TLS handle cannot be watched', (t) => {
  t.false(watchRenegotiation({} as TLSSocket, () => {}));
  t.false(watchRenegotiation({ _handle: null } as unknown as TLSSocket, () => {}));
  t.false(watchRenegotiation({ _handle: {} } as unknown as TLSSocket, () => {}));
});
