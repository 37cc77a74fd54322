/**
 * Never crash, never hang (issue 7), against a running server (`createServer` on 127.0.0.1 with
 * ClientHello inspection on): a 1 MiB header; thousands of random headers on one connection; a
 * ClientHello trickled a byte at a time, one that never finishes, one followed by silence
 * (`handshakeTimeout`), ones that lie about their length, bytes that are not TLS at all; clients
 * that disconnect mid-request and mid-handshake.
 * A good client makes valid Token Binding requests throughout, and must make progress while each
 * attack is in flight; every bad connection must be refused or closed (hang guards, not timing
 * assertions: the bounds are several times what the server is configured to allow).
 */
import { once } from 'node:events';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import test from 'ava';
import fc from 'fast-check';
import { generateTokenBindingKey } from '../../src/crypto/sign.js';
import type { TokenBindingErrorCode } from '../../src/errors.js';
import { hostileHeaderArb } from '../fuzz/_arbitraries.js';
import { codesText, printSummary } from '../fuzz/_fuzz.js';
import { testCertificate } from '../_tls.js';
import { GoodClient, RawHttpConnection, captureClientHello, closed, ekmOf, openTcp, sleep, within, type RawResponse } from './_net.js';
import { startServer } from './_server.js';
import { idOf, validHeader } from './_tb.js';

const HELLO_TIMEOUT_MS = 1500;
/** Far beyond what the server is configured to allow: reaching it means a hang. */
const GUARD_MS = 10_000;

const HANDSHAKE_TIMEOUT_MS = 2000;
const srv = await startServer(
  { inspectClientHello: { timeoutMs: HELLO_TIMEOUT_MS }, maxDistinctMessages: 100_000, maxSignaturesPerConnection: 1_000_000 },
  { handshakeTimeout: HANDSHAKE_TIMEOUT_MS },
);
const good = new GoodClient(srv.port).start();
const hello = await captureClientHello();
const numbers = { connections: 0, requests: 0, rejections: 0, closedByServer: 0 };
const codes = new Map<string, number>();

test.after.always(async () => {
  await good.stop();
  await srv.close();
  printSummary('hostile clients vs a running server', {
    'bad connections': numbers.connections,
    'bad requests': numbers.requests,
    '400s': numbers.rejections,
    'closed by server': numbers.closedByServer,
    'good requests': good.ok,
    'good failures': good.failures.length,
    crashes: 0,
  });
  printSummary('random headers on one connection', { codes: codesText(codes) });
});

function problemCode(res: RawResponse): TokenBindingErrorCode {
  return (JSON.parse(res.body) as { code: TokenBindingErrorCode }).code;
}

/** Waits for the server to close `socket`; counts it. */
async function serverCloses(socket: net.Socket, what: string): Promise<void> {
  await within(closed(socket), GUARD_MS, `${what}: server closes the connection`);
  numbers.closedByServer++;
}

test.serial('a 1 MiB header: refused by the HTTP layer (431) and the connection closed', async (t) => {
  const connection = await RawHttpConnection.open(srv.port);
  numbers.connections++;
  numbers.requests++;
  const attack = connection.request([['Sec-Token-Binding', 'A'.repeat(1 << 20)]]).then(
    (res) => res.status,
    (err: Error & { code?: string }) => err.code ?? err.message,
  );
  await good.progress(10, '1 MiB header');
  const outcome = await within(attack, GUARD_MS, '1 MiB header');
  // Node answers 431 and closes; the reset may beat the answer while 1 MiB is still being written.
  t.true(outcome === 431 || outcome === 'CLOSED', `outcome ${String(outcome)}`);
  await serverCloses(connection.socket, '1 MiB header');
});

test.serial('a 1 MiB header past a raised maxHeaderSize: tokbind caps it before decoding (ERR_TB_HEADER_TOO_LARGE)', async (t) => {
  const big = await startServer({}, { maxHeaderSize: 2 << 20 });
  try {
    const connection = await RawHttpConnection.open(big.port);
    numbers.connections++;
    for (const value of ['A'.repeat(1 << 20), '!'.repeat(1 << 20), '='.repeat(4097)]) {
      numbers.requests++;
      const res = await within(connection.request([['Sec-Token-Binding', value]]), GUARD_MS, 'large header');
      t.is(res.status, 400);
      // Junk that is not base64url still gets TOO_LARGE: the length is checked first.
      t.is(problemCode(res), 'ERR_TB_HEADER_TOO_LARGE');
      t.false(res.body.includes('AAAA') || res.body.includes('!!!!'), 'the header is not echoed');
      numbers.rejections++;
    }
    t.is(big.handled(), 0);
    await connection.close();
  } finally {
    await big.close();
  }
});

test.serial('3,000 random headers on one connection: each a 400 with a code, the connection stays up', async (t) => {
  // HTTP field values only (printable ASCII, space, tab): anything else is the HTTP parser's
  // business, and it would close the connection.
  const values = fc.sample(
    hostileHeaderArb.map((v) => v.replace(/[^\x20-\x7e\t]/g, '').replace(/,/g, '')),
    { numRuns: 3000, seed: 7 },
  );
  const connection = await RawHttpConnection.open(srv.port);
  numbers.connections++;
  for (const value of values) {
    numbers.requests++;
    const res = await within(connection.request([['Sec-Token-Binding', value]]), GUARD_MS, 'random header');
    if (res.status !== 400) t.fail(`status ${res.status} for ${JSON.stringify(value.slice(0, 60))}`);
    const code = problemCode(res);
    codes.set(code, (codes.get(code) ?? 0) + 1);
    numbers.rejections++;
  }
  t.false(connection.isClosed);
  // Still a working connection: a valid binding on it is accepted.
  const key = generateTokenBindingKey();
  const res = await connection.request([['Sec-Token-Binding', validHeader(key, connection.ekm)]]);
  t.is(res.status, 200);
  t.is((JSON.parse(res.body) as { id: string }).id, idOf(key));
  await connection.close();
  t.true(codes.size >= 3, codesText(codes));
});

/** A duplex over a TCP socket that writes one byte per event-loop turn until the handshake is done. */
class Trickle extends Duplex {
  trickling = true;
  writes = 0;

  constructor(readonly tcp: net.Socket) {
    super();
    tcp.setNoDelay(true);
    tcp.on('data', (chunk: Buffer) => this.push(chunk));
    tcp.on('end', () => this.push(null));
    tcp.on('close', () => this.destroy());
    tcp.on('error', (err) => this.destroy(err));
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.trickling) {
      this.tcp.write(chunk, callback);
      return;
    }
    let i = 0;
    const next = (): void => {
      if (i >= chunk.length || this.tcp.destroyed) return callback();
      this.writes++;
      this.tcp.write(chunk.subarray(i, ++i));
      setImmediate(next);
    };
    next();
  }

  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    this.tcp.destroy();
    callback(err);
  }
}

test.serial('a ClientHello trickled a byte at a time: the handshake completes and the binding verifies', async (t) => {
  const tcp = await openTcp(srv.port);
  numbers.connections++;
  const trickle = new Trickle(tcp);
  const socket = tls.connect({ socket: trickle, servername: 'localhost', ca: testCertificate.ca, ALPNProtocols: ['http/1.1'] });
  socket.on('error', () => {});
  await within(once(socket, 'secureConnect'), GUARD_MS, 'trickled handshake');
  trickle.trickling = false;
  t.true(trickle.writes >= 200, `${trickle.writes} one-byte writes`);
  const key = generateTokenBindingKey();
  const head = `GET / HTTP/1.1\r\nHost: localhost\r\nSec-Token-Binding: ${validHeader(key, ekmOf(socket))}\r\nConnection: close\r\n\r\n`;
  socket.write(head);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await within(once(socket, 'end'), GUARD_MS, 'trickled request');
  const text = Buffer.concat(chunks).toString();
  t.regex(text, /^HTTP\/1\.1 200/);
  t.true(text.includes(idOf(key)));
  socket.destroy();
});

test.serial('a ClientHello that never finishes: closed once the inspection time runs out', async (t) => {
  const sockets = await Promise.all([1, 5, hello.length >> 1, hello.length - 1].map(() => openTcp(srv.port)));
  numbers.connections += sockets.length;
  [1, 5, hello.length >> 1, hello.length - 1].forEach((n, i) => sockets[i]!.write(hello.subarray(0, n)));
  await good.progress(10, 'unfinished ClientHellos');
  for (const socket of sockets) await serverCloses(socket, 'unfinished ClientHello');
  t.pass();
});

test.serial('a whole ClientHello and then silence: TLS takes over, and handshakeTimeout closes it', async (t) => {
  const sockets = await Promise.all([0, 1, 2].map(() => openTcp(srv.port)));
  numbers.connections += sockets.length;
  for (const socket of sockets) socket.write(hello);
  await good.progress(10, 'stalled handshakes');
  for (const socket of sockets) await serverCloses(socket, 'stalled handshake');
  t.pass();
});

/** A record header with another length, the real ClientHello body behind it. */
function withRecordLength(length: number): Buffer {
  const out = Buffer.from(hello);
  out.writeUInt16BE(length, 3);
  return out;
}

/** The real record with the handshake message's u24 length replaced. */
function withHandshakeLength(length: number): Buffer {
  const out = Buffer.from(hello);
  out[6] = length >>> 16;
  out.writeUInt16BE(length & 0xffff, 7);
  return out;
}

test.serial('ClientHellos that lie about their length: closed (at once, or when the time runs out)', async (t) => {
  const lies = [
    withRecordLength(0xffff), // more than a record may hold
    withRecordLength(0), // an empty record
    withRecordLength(16384), // legal, but the bytes never come
    withHandshakeLength(0xffffff), // a 16 MiB handshake message: over maxBytes
    withHandshakeLength(hello.length - 5 - 4 + 1000), // longer than the record, the rest never comes
    withHandshakeLength(10), // shorter than the record: the parse fails
  ];
  const sockets = await Promise.all(lies.map(() => openTcp(srv.port)));
  numbers.connections += sockets.length;
  lies.forEach((bytes, i) => sockets[i]!.write(bytes));
  await good.progress(10, 'lying ClientHellos');
  for (const socket of sockets) await serverCloses(socket, 'lying ClientHello');
  t.pass();
});

test.serial('bytes that are not TLS: closed at once', async (t) => {
  const inputs = [
    Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'),
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
    Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01]), // an SSLv2-style hello
    Buffer.from([21, 3, 3, 0, 2, 2, 40]), // an alert record
    Buffer.alloc(64, 0),
  ];
  const sockets = await Promise.all(inputs.map(() => openTcp(srv.port)));
  numbers.connections += sockets.length;
  inputs.forEach((bytes, i) => sockets[i]!.write(bytes));
  await good.progress(5, 'non-TLS bytes');
  for (const socket of sockets) await serverCloses(socket, 'non-TLS bytes');
  t.pass();
});

test.serial('clients that disconnect mid-handshake and mid-request: the server carries on', async (t) => {
  const rounds = 40;
  for (let i = 0; i < rounds; i++) {
    // Mid-handshake: part of the ClientHello, then gone.
    const tcp = await openTcp(srv.port);
    tcp.write(hello.subarray(0, 1 + (i * 37) % (hello.length - 1)));
    tcp.destroy();
    // Mid-handshake after the ClientHello: the TLS layer has it, the client vanishes.
    const tcp2 = await openTcp(srv.port);
    tcp2.write(hello);
    await sleep(1);
    tcp2.destroy();
    // Mid-request: headers cut off, or a body announced and never sent.
    const connection = await RawHttpConnection.open(srv.port);
    const key = generateTokenBindingKey();
    const head = `GET / HTTP/1.1\r\nHost: localhost\r\nSec-Token-Binding: ${validHeader(key, connection.ekm)}\r\n`;
    connection.socket.write(i % 2 === 0 ? head.slice(0, 20 + (i % 50)) : `${head.replace('GET', 'POST')}Content-Length: 1000\r\n\r\nabc`);
    await sleep(1);
    await connection.close();
    numbers.connections += 3;
  }
  await good.progress(20, 'disconnects');
  // Every hostile connection is gone on the server side too: only the good client's remains.
  await within(
    (async () => {
      while ((await connectionCount()) > 1) await sleep(20);
    })(),
    GUARD_MS,
    'server-side connections released',
  );
  t.is(good.failures.length, 0, good.failures.join('; '));
  t.true(good.ok > 0);
});

function connectionCount(): Promise<number> {
  return new Promise((resolve, reject) => srv.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}
