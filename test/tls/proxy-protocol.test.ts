import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import test from 'ava';
import fc from 'fast-check';
import * as pp from 'proxy-protocol-js';
import { generateTokenBindingKey, createSecTokenBindingHeader } from '../../src/crypto/sign.js';
import { TokenBindingError } from '../../src/errors.js';
import { createServer } from '../../src/http/server.js';
import { exportTokenBindingKeyingMaterial } from '../../src/tls/ekm.js';
import {
  PROXY_PROTOCOL_V1_MAX_BYTES,
  PROXY_PROTOCOL_V2_MAX_BYTES,
  acceptProxyProtocol,
  frameProxyProtocolHeader,
  getProxiedPeer,
  parseProxyProtocolHeader,
} from '../../src/tls/proxy-protocol.js';
import { listen, testCertificate } from '../_tls.js';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

function v2(source: number[], sourcePort: number, destination: number[], destinationPort: number, command = pp.Command.PROXY): Uint8Array {
  const address =
    source.length === 4
      ? new pp.IPv4ProxyAddress(pp.IPv4Address.createFrom(source), sourcePort, pp.IPv4Address.createFrom(destination), destinationPort)
      : new pp.IPv6ProxyAddress(pp.IPv6Address.createFrom(source), sourcePort, pp.IPv6Address.createFrom(destination), destinationPort);
  return new pp.V2ProxyProtocol(command, pp.TransportProtocol.STREAM, address).build();
}

test('v1 headers built by proxy-protocol-js frame and parse to the same peer', (t) => {
  const line = new pp.V1ProxyProtocol(pp.INETProtocol.TCP4, new pp.Peer('192.0.2.7', 51000), new pp.Peer('127.0.0.1', 8443)).build();
  const bytes = ascii(line);
  t.is(frameProxyProtocolHeader(bytes), bytes.length);
  t.like(parseProxyProtocolHeader(bytes), { version: 1, command: 'proxy', remoteAddress: '192.0.2.7', remotePort: 51000, remoteFamily: 'IPv4', localPort: 8443 });
  const six = ascii(new pp.V1ProxyProtocol(pp.INETProtocol.TCP6, new pp.Peer('2001:db8::7', 1), new pp.Peer('::1', 443)).build());
  t.like(parseProxyProtocolHeader(six), { remoteAddress: '2001:db8::7', remoteFamily: 'IPv6', remotePort: 1 });
  t.like(parseProxyProtocolHeader(ascii('PROXY UNKNOWN\r\n')), { version: 1, command: 'local' });
});

test('v2 headers built by proxy-protocol-js frame and parse to the same peer (IPv4, IPv6, LOCAL)', (t) => {
  const four = v2([198, 51, 100, 9], 40000, [127, 0, 0, 1], 8443);
  t.is(frameProxyProtocolHeader(four), four.length);
  t.like(parseProxyProtocolHeader(four), { version: 2, command: 'proxy', remoteAddress: '198.51.100.9', remotePort: 40000, localAddress: '127.0.0.1' });
  const six = v2([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7], 5, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 443);
  t.like(parseProxyProtocolHeader(six), { remoteAddress: '2001:db8::7', remoteFamily: 'IPv6', localAddress: '::1' });
  t.like(parseProxyProtocolHeader(v2([10, 0, 0, 1], 1, [10, 0, 0, 2], 2, pp.Command.LOCAL)), { command: 'local' });
});

test('a header arriving a byte at a time is framed only once complete, at its exact length', (t) => {
  const headers = [ascii('PROXY TCP4 192.0.2.7 127.0.0.1 51000 8443\r\n'), v2([198, 51, 100, 9], 40000, [127, 0, 0, 1], 8443)];
  for (const header of headers) {
    const withTls = Uint8Array.from([...header, 0x16, 0x03, 0x01]);
    for (let n = 0; n < header.length; n++) t.is(frameProxyProtocolHeader(withTls.subarray(0, n)), 0, `prefix ${n}`);
    t.is(frameProxyProtocolHeader(withTls), header.length);
  }
});

test('anything that is not a valid header is refused with ERR_TB_PROXY_PROTOCOL', (t) => {
  const bad = [
    ascii('GET / HTTP/1.1\r\n'),
    Uint8Array.of(0x16, 0x03, 0x01, 0x00),
    ascii('PROXY TCP4 192.0.2.7 127.0.0.1 51000 8443\n'),
    ascii('PROXY ' + 'A'.repeat(PROXY_PROTOCOL_V1_MAX_BYTES)),
  ];
  for (const bytes of bad) t.throws(() => frameProxyProtocolHeader(bytes), { instanceOf: TokenBindingError, message: /PROXY/ }, Buffer.from(bytes).toString('latin1'));
  const oversized = v2([1, 2, 3, 4], 1, [5, 6, 7, 8], 2);
  oversized[14] = 0xff;
  oversized[15] = 0xff;
  t.throws(() => frameProxyProtocolHeader(oversized), { code: 'ERR_TB_PROXY_PROTOCOL' } as never);
  t.true(PROXY_PROTOCOL_V2_MAX_BYTES < 0xffff + 16);
  const unparsable = [
    'PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n',
    'PROXY TCP4 ::1 127.0.0.1 1 2\r\n',
    'PROXY TCP6 192.0.2.1 ::1 1 2\r\n',
    'PROXY TCP4 192.0.2.1 127.0.0.1 70000 2\r\n',
    'PROXY TCP4 192.0.2.1 127.0.0.1 01 2\r\n',
    'PROXY TCP5 192.0.2.1 127.0.0.1 1 2\r\n',
    'PROXY TCP4 192.0.2.1 127.0.0.1 1\r\n',
  ];
  for (const line of unparsable) {
    const error = t.throws(() => parseProxyProtocolHeader(ascii(line)), { instanceOf: TokenBindingError }, line);
    t.is(error?.code, 'ERR_TB_PROXY_PROTOCOL');
  }
  t.throws(() => frameProxyProtocolHeader(ascii('PROXY TCP4 1.2.3.4\r\n'), [2]), { instanceOf: TokenBindingError });
});

test('random bytes only ever frame to 0, a length within the caps, or ERR_TB_PROXY_PROTOCOL', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.boolean(), (tail, asV2) => {
      const bytes = asV2 ? Uint8Array.from([...v2([1, 2, 3, 4], 1, [5, 6, 7, 8], 2).subarray(0, 12), ...tail]) : Uint8Array.from([...ascii('PROXY '), ...tail]);
      try {
        const n = frameProxyProtocolHeader(bytes);
        if (n === 0) return true;
        if (n > bytes.length || n > PROXY_PROTOCOL_V2_MAX_BYTES) return false;
        try {
          parseProxyProtocolHeader(bytes.subarray(0, n));
        } catch (err) {
          return err instanceof TokenBindingError && err.code === 'ERR_TB_PROXY_PROTOCOL';
        }
        return true;
      } catch (err) {
        return err instanceof TokenBindingError && err.code === 'ERR_TB_PROXY_PROTOCOL';
      }
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

interface Seen {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly tokenBinding: unknown;
}

async function startBehindProxyProtocol(options: Parameters<typeof acceptProxyProtocol>[1] = {}) {
  const seen: Seen[] = [];
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert, tokenBinding: { required: true } }, (req: IncomingMessage, res: ServerResponse) => {
    seen.push({ remoteAddress: req.socket.remoteAddress, remotePort: req.socket.remotePort, tokenBinding: req.tokenBinding });
    res.end('ok');
  });
  server.on('tlsClientError', () => {});
  const front = acceptProxyProtocol(server, options);
  const errors: TokenBindingError[] = [];
  front.on('proxyProtocolError', (error: TokenBindingError) => errors.push(error));
  const listening = await listen(front);
  return { server, front, listening, seen, errors };
}

/**
 * Sends `header` and then TLS with one bound request. With `coalesce`, the header and the
 * ClientHello go out in ONE write (as a balancer may send them), so the server reads TLS bytes
 * in the same chunk as the header; otherwise the header is written on its own first.
 */
async function boundRequestThrough(port: number, header: Uint8Array, coalesce = false): Promise<string> {
  const raw = netConnect({ host: '127.0.0.1', port });
  await once(raw, 'connect');
  let transport: Duplex = raw;
  if (coalesce) {
    let pending: Uint8Array | undefined = header;
    transport = new Duplex({
      write(chunk: Buffer, _encoding, callback) {
        const out = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
        pending = undefined;
        raw.write(out, callback);
      },
      read() {},
      final(callback) {
        raw.end(callback);
      },
    });
    raw.on('data', (chunk: Buffer) => transport.push(chunk));
    raw.on('end', () => transport.push(null));
  } else {
    raw.write(header);
  }
  const secure = tls.connect({ socket: transport, servername: 'localhost', ca: testCertificate.ca });
  await once(secure, 'secureConnect');
  const key = generateTokenBindingKey();
  const binding = createSecTokenBindingHeader({ provided: key, ekm: exportTokenBindingKeyingMaterial(secure) });
  secure.write(`GET / HTTP/1.1\r\nhost: localhost\r\nsec-token-binding: ${binding}\r\nconnection: close\r\n\r\n`);
  let text = '';
  secure.setEncoding('utf8');
  secure.on('data', (chunk: string) => (text += chunk));
  await once(secure, 'end');
  secure.destroy();
  raw.destroy();
  return text;
}

test('behind acceptProxyProtocol, the request sees the header\'s client as its peer and Token Binding verifies', async (t) => {
  const { listening, seen, errors } = await startBehindProxyProtocol();
  t.teardown(() => listening.close());
  const v1Response = await boundRequestThrough(listening.port, ascii('PROXY TCP4 192.0.2.7 127.0.0.1 51000 8443\r\n'));
  t.regex(v1Response, /^HTTP\/1\.1 200/);
  const v2Response = await boundRequestThrough(listening.port, v2([198, 51, 100, 9], 40000, [127, 0, 0, 1], 8443));
  t.regex(v2Response, /^HTTP\/1\.1 200/);
  t.regex(await boundRequestThrough(listening.port, ascii('PROXY TCP6 2001:db8::7 ::1 51001 8443\r\n'), true), /^HTTP\/1\.1 200/);
  t.regex(await boundRequestThrough(listening.port, v2([203, 0, 113, 5], 40001, [127, 0, 0, 1], 8443), true), /^HTTP\/1\.1 200/);
  t.like(seen[0], { remoteAddress: '192.0.2.7', remotePort: 51000 });
  t.like(seen[1], { remoteAddress: '198.51.100.9', remotePort: 40000 });
  t.like(seen[2], { remoteAddress: '2001:db8::7', remotePort: 51001 });
  t.like(seen[3], { remoteAddress: '203.0.113.5', remotePort: 40001 });
  t.truthy((seen[0]!.tokenBinding as { provided?: unknown }).provided);
  t.deepEqual(errors, []);
});

test('a LOCAL header (balancer health check) keeps the socket\'s own peer', async (t) => {
  const { listening, seen } = await startBehindProxyProtocol();
  t.teardown(() => listening.close());
  t.regex(await boundRequestThrough(listening.port, v2([0, 0, 0, 0], 0, [0, 0, 0, 0], 0, pp.Command.LOCAL)), /^HTTP\/1\.1 200/);
  t.is(seen[0]!.remoteAddress, '127.0.0.1');
});

async function closedWithoutService(port: number, send: (socket: Socket) => void): Promise<string> {
  const raw = netConnect({ host: '127.0.0.1', port });
  raw.on('error', () => {});
  await once(raw, 'connect');
  send(raw);
  let text = '';
  raw.setEncoding('latin1');
  raw.on('data', (chunk: string) => (text += chunk));
  await once(raw, 'close');
  return text;
}

test('a connection without a header (TLS straight away, garbage, or nothing at all) is closed and reported', async (t) => {
  const { listening, errors, seen } = await startBehindProxyProtocol({ timeoutMs: 200 });
  t.teardown(() => listening.close());
  // TLS without a header: the ClientHello is not a PROXY header.
  const direct = tls.connect({ host: '127.0.0.1', port: listening.port, servername: 'localhost', ca: testCertificate.ca });
  const [error] = (await once(direct, 'error').catch((e: unknown) => [e])) as [Error];
  t.truthy(error);
  t.is(await closedWithoutService(listening.port, (s) => s.write('GET / HTTP/1.1\r\n\r\n')), '');
  // Silence: closed after the bounded wait.
  t.is(await closedWithoutService(listening.port, () => {}), '');
  // A header that stops half-way, then the peer half-closes.
  t.is(await closedWithoutService(listening.port, (s) => s.end('PROXY TCP4 192.0.2.7')), '');
  t.is(seen.length, 0);
  t.true(errors.length >= 4);
  t.true(errors.every((e) => e.code === 'ERR_TB_PROXY_PROTOCOL'));
  t.true(errors.some((e) => /in time/.test(e.message)));
});

test('a trickled header costs bounded work: at most the cap is ever kept or scanned', async (t) => {
  const { listening, seen } = await startBehindProxyProtocol();
  t.teardown(() => listening.close());
  const raw = netConnect({ host: '127.0.0.1', port: listening.port });
  raw.on('error', () => {});
  await once(raw, 'connect');
  raw.setNoDelay(true);
  // A v1 line that never ends, one byte per write: refused as soon as it passes the v1 cap.
  const line = 'PROXY ' + '1'.repeat(PROXY_PROTOCOL_V1_MAX_BYTES);
  for (const ch of line) {
    if (raw.destroyed) break;
    raw.write(ch);
    await new Promise((r) => setImmediate(r));
  }
  if (!raw.destroyed) await once(raw, 'close');
  t.is(seen.length, 0);
});

test('options are checked', (t) => {
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert }, () => {});
  t.throws(() => acceptProxyProtocol(server, { timeoutMs: 0 }), { instanceOf: TypeError });
  t.throws(() => acceptProxyProtocol(server, { versions: [] }), { instanceOf: TypeError });
  t.throws(() => acceptProxyProtocol(server, { versions: [3 as 1] }), { instanceOf: TypeError });
  t.is(getProxiedPeer(netConnect({ port: 9, host: '127.0.0.1' }).on('error', () => {})), undefined);
});

test('a socket handed to the front after it ended is dropped at once, not left to the timeout', async (t) => {
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert }, () => {});
  const front = acceptProxyProtocol(server, { timeoutMs: 60_000 });
  const errors: TokenBindingError[] = [];
  front.on('proxyProtocolError', (e: TokenBindingError) => errors.push(e));
  const listening = await listen(front);
  t.teardown(() => listening.close());
  const raw = netConnect({ host: '127.0.0.1', port: listening.port });
  raw.on('error', () => {});
  await once(raw, 'connect');
  raw.destroy();
  // Re-emitted by hand, as a wrapper that read from the socket first would.
  front.emit('connection', raw);
  t.is(errors.length, 1);
  t.regex(errors[0]!.message, /ended before its PROXY protocol header/);
});
