/**
 * The class "events that may already have fired" in the pre-TLS reader: a socket handed to an
 * inspecting server after it already ended (code that read from it first and re-emitted
 * 'connection') is dropped at once with a coded error, not left waiting for an 'end' that has
 * already happened until the timer fires.
 */
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import test from 'ava';
import type { TokenBindingError } from '../../src/errors.js';
import { CLIENT_HELLO_ERROR_EVENT, inspectClientHellos } from '../../src/tls/inspect.js';
import { listen, testCertificate } from '../_tls.js';

test('a socket that already ended is dropped when handed over, not at the timeout', async (t) => {
  const server = https.createServer({ key: testCertificate.key, cert: testCertificate.cert });
  const errors: TokenBindingError[] = [];
  inspectClientHellos(server, { timeoutMs: 600_000, onError: (err) => errors.push(err) });
  let handedOn = 0;
  server.on('secureConnection', () => handedOn++);

  // A plain TCP server that reads the whole (empty) stream before handing the socket over.
  const front = net.createServer();
  const frontListening = await listen(front);
  try {
    const accepted = once(front, 'connection').then(([s]) => s as net.Socket);
    const client = net.connect(frontListening.port, '127.0.0.1');
    const socket = await accepted;
    client.end();
    socket.resume();
    await once(socket, 'end');
    t.true(socket.readableEnded);

    const emitted: unknown[] = [];
    server.on(CLIENT_HELLO_ERROR_EVENT, (err: unknown) => emitted.push(err));
    server.emit('connection', socket);
    t.is(errors.length, 1, 'dropped synchronously, during the hand-over');
    t.is(errors[0]!.code, 'ERR_TB_CLIENT_HELLO');
    t.is(emitted.length, 1);
    t.true(socket.destroyed);
    t.is(handedOn, 0);
    client.destroy();
  } finally {
    await frontListening.close();
  }
});
