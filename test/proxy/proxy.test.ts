/**
 * `tokbind/proxy` end to end: a real Token Binding client (raw TLS, tokbind's agent, HTTP/2) →
 * the proxy on 127.0.0.1 (real TLS, test certificate) → a real node:http upstream that records
 * what reaches it.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import test from 'ava';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { TokenBindingAgent } from '../../src/client/agent.js';
import { encodeSecTokenBindingHeader } from '../../src/codec/header.js';
import { encodeTokenBindingMessage, formatTokenBindingID } from '../../src/codec/message.js';
import { createSecTokenBindingHeader, generateTokenBindingKey, signTokenBinding } from '../../src/crypto/sign.js';
import { parseForwardedTokenBindingHeaders } from '../../src/http/forwarded.js';
import { verifyTokenBindingHeader } from '../../src/http/verify.js';
import { PROXY_CHANNEL_NAME, createProxy, type ProxyEvent } from '../../src/proxy/index.js';
import { connectTls, listen, testCertificate } from '../_tls.js';
import { openConnection } from '../adapters/_client.js';
import { rawConnection, rawValues, startTestProxy, startUpstream } from './_setup.js';
import diagnosticsChannel from 'node:diagnostics_channel';

const key = generateTokenBindingKey();
const referredKey = generateTokenBindingKey();
const otherKey = generateTokenBindingKey();
const providedID = formatTokenBindingID(key.id);

/** Collects `tokbind:proxy` events while `fn` runs. */
async function proxyEvents(fn: (events: readonly ProxyEvent[]) => Promise<void>): Promise<ProxyEvent[]> {
  const events: ProxyEvent[] = [];
  const listener = (event: unknown): void => void events.push(event as ProxyEvent);
  diagnosticsChannel.subscribe(PROXY_CHANNEL_NAME, listener);
  try {
    await fn(events);
  } finally {
    diagnosticsChannel.unsubscribe(PROXY_CHANNEL_NAME, listener);
  }
  return events;
}

test.serial('a valid binding is forwarded with exactly the TTRP headers, Forwarded/X-Forwarded-*, over one kept-alive upstream connection', async (t) => {
  const upstream = await startUpstream();
  const proxy = await startTestProxy(upstream.url);
  const conn = await openConnection(proxy.port, { tls: 'TLSv1.3' });
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: conn.ekm });
    const events = await proxyEvents(async () => {
      for (let i = 0; i < 3; i++) {
        const res = await conn.request(`/a/${i}?q=1`, { 'sec-token-binding': header });
        t.is(res.status, 200);
        t.deepEqual(JSON.parse(res.body), { method: 'GET', url: `/a/${i}?q=1`, bodyBytes: 0 });
      }
    });
    t.is(upstream.received.length, 3);
    for (const got of upstream.received) {
      t.deepEqual(rawValues(got.rawHeaders, 'sec-provided-token-binding-id'), [providedID]);
      t.deepEqual(rawValues(got.rawHeaders, 'sec-referred-token-binding-id'), []);
      t.deepEqual(rawValues(got.rawHeaders, 'sec-other-token-binding-id'), []);
      t.deepEqual(rawValues(got.rawHeaders, 'sec-token-binding'), []);
      t.deepEqual(rawValues(got.rawHeaders, 'sec-token-binding-assertion'), []);
      const host = got.headers.host!;
      t.deepEqual(rawValues(got.rawHeaders, 'forwarded'), [`for=127.0.0.1;proto=https;host="${host}"`]);
      t.deepEqual(rawValues(got.rawHeaders, 'x-forwarded-for'), ['127.0.0.1']);
      t.deepEqual(rawValues(got.rawHeaders, 'x-forwarded-proto'), ['https']);
      t.deepEqual(rawValues(got.rawHeaders, 'x-forwarded-host'), [host]);
    }
    // Upstream keep-alive: three requests, one connection.
    t.is(upstream.connections(), 1);
    t.deepEqual(
      events.map((e) => [e.role, e.outcome, e.status]),
      [
        ['proxy', 'ok', 200],
        ['proxy', 'ok', 200],
        ['proxy', 'ok', 200],
      ],
    );
    t.true(events.every((e) => typeof e.durationSeconds === 'number' && e.durationSeconds >= 0 && e.code === undefined));
  } finally {
    await conn.close();
    await proxy.close();
    await upstream.close();
  }
});

test('referred and other-type bindings: Sec-Referred-Token-Binding-ID and the type-prefixed Sec-Other-Token-Binding-ID, read back to the direct verdict', async (t) => {
  const upstream = await startUpstream();
  const proxy = await startTestProxy(upstream.url);
  const conn = await openConnection(proxy.port, { tls: 'TLSv1.3' });
  try {
    const message = encodeTokenBindingMessage({
      bindings: [signTokenBinding(key, 0, conn.ekm), signTokenBinding(referredKey, 1, conn.ekm), signTokenBinding(otherKey, 77, conn.ekm)],
    });
    const header = encodeSecTokenBindingHeader(message);
    const res = await conn.request('/federated', { 'sec-token-binding': header });
    t.is(res.status, 200);
    const got = upstream.received[0]!;
    t.deepEqual(rawValues(got.rawHeaders, 'sec-provided-token-binding-id'), [providedID]);
    t.deepEqual(rawValues(got.rawHeaders, 'sec-referred-token-binding-id'), [formatTokenBindingID(referredKey.id)]);
    t.deepEqual(rawValues(got.rawHeaders, 'sec-other-token-binding-id'), [`4d.${formatTokenBindingID(otherKey.id)}`]);
    // What a backend reads back is what a direct connection would have given.
    const direct = verifyTokenBindingHeader(header, { ekm: conn.ekm, negotiatedKeyParameters: [2] });
    const forwarded = parseForwardedTokenBindingHeaders({
      provided: got.headers['sec-provided-token-binding-id'] as string,
      referred: got.headers['sec-referred-token-binding-id'] as string,
      other: got.headers['sec-other-token-binding-id'] as string,
    });
    t.is(JSON.stringify(forwarded), JSON.stringify(direct));
    t.is(forwarded!.provided.hash, createHash('sha256').update(key.id.raw).digest('base64url'));
  } finally {
    await conn.close();
    await proxy.close();
    await upstream.close();
  }
});

test('an invalid or (under required) missing binding gets 400 problem+json and never reaches the upstream', async (t) => {
  const upstream = await startUpstream();
  const proxy = await startTestProxy(upstream.url, { tokenBinding: { required: true } });
  try {
    const cases: [Record<string, string>, string][] = [
      [{ 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: new Uint8Array(32) }) }, 'ERR_TB_SIGNATURE_INVALID'],
      [{ 'sec-token-binding': 'AAA' }, 'ERR_TB_MALFORMED'],
      [{}, 'ERR_TB_HEADER_MISSING'],
    ];
    for (const [headers, code] of cases) {
      for (const h2 of [false, true]) {
        const conn = await openConnection(proxy.port, { tls: 'TLSv1.3', http2: h2 });
        try {
          const res = await conn.request('/secret', headers);
          t.is(res.status, 400, code);
          t.is(res.headers['content-type'], 'application/problem+json');
          t.is(JSON.parse(res.body).code, code);
        } finally {
          await conn.close();
        }
      }
    }
    // A refused upgrade does not reach it either.
    const raw = await rawConnection(proxy.port);
    const answer = await raw.exchange(
      'GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-Token-Binding: AAA\r\n\r\n',
    );
    t.regex(answer, /^HTTP\/1\.1 400 /);
    t.is(upstream.received.length, 0);
    t.is(upstream.connections(), 0);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test('spoofed Sec-*-Token-Binding-ID headers (any case, duplicated, in trailers), the assertion header, hop-by-hop and forwarding headers never reach the upstream', async (t) => {
  const upstream = await startUpstream();
  const proxy = await startTestProxy(upstream.url);
  const raw = await rawConnection(proxy.port);
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: raw.ekm });
    const request =
      'POST /spoof HTTP/1.1\r\n' +
      'Host: localhost\r\n' +
      `Sec-Token-Binding: ${header}\r\n` +
      'SEC-PROVIDED-TOKEN-BINDING-ID: evil1\r\n' +
      'sec-provided-token-binding-id: evil2\r\n' +
      'Sec-Referred-Token-Binding-Id: evil3\r\n' +
      'sec-other-token-binding-id: 4d.evil4\r\n' +
      'Sec-Token-Binding-Assertion: evil5\r\n' +
      'Connection: keep-alive, X-Hop\r\n' +
      'X-Hop: evil6\r\n' +
      'Keep-Alive: timeout=5\r\n' +
      'Proxy-Connection: keep-alive\r\n' +
      'TE: trailers\r\n' +
      'X-Forwarded-For: 6.6.6.6\r\n' +
      'Forwarded: for=6.6.6.6\r\n' +
      'X-Forwarded-Host: evil.example\r\n' +
      'X-End-To-End: kept\r\n' +
      'Trailer: Sec-Referred-Token-Binding-ID, Sec-Other-Token-Binding-ID\r\n' +
      'Transfer-Encoding: chunked\r\n' +
      '\r\n' +
      '5\r\nhello\r\n0\r\n' +
      'Sec-Referred-Token-Binding-ID: evil7\r\n' +
      'sec-other-token-binding-id: 4d.evil8\r\n' +
      '\r\n';
    const answer = await raw.exchange(request, /\r\n\r\n\{.*\}$/s);
    t.regex(answer, /^HTTP\/1\.1 200 /);
    const got = upstream.received[0]!;
    t.is(got.bodyBytes, 5);
    t.deepEqual(rawValues(got.rawHeaders, 'sec-provided-token-binding-id'), [providedID]);
    for (const name of ['sec-referred-token-binding-id', 'sec-other-token-binding-id', 'sec-token-binding-assertion', 'sec-token-binding']) {
      t.deepEqual(rawValues(got.rawHeaders, name), [], name);
    }
    for (const name of ['x-hop', 'keep-alive', 'proxy-connection', 'te', 'trailer']) t.deepEqual(rawValues(got.rawHeaders, name), [], name);
    t.deepEqual(rawValues(got.rawHeaders, 'x-forwarded-for'), ['127.0.0.1']);
    t.deepEqual(rawValues(got.rawHeaders, 'forwarded'), ['for=127.0.0.1;proto=https;host="localhost"']);
    t.deepEqual(rawValues(got.rawHeaders, 'x-forwarded-host'), ['localhost']);
    t.deepEqual(rawValues(got.rawHeaders, 'x-end-to-end'), ['kept']);
    t.deepEqual(got.rawTrailers, []);
    t.false([...got.rawHeaders, ...got.rawTrailers].some((v) => v.includes('evil')));
  } finally {
    raw.close();
    await proxy.close();
    await upstream.close();
  }
});

test('HTTP/2 front: verified streams are forwarded (Host from :authority), spoofed headers and trailers stripped; the response streams back', async (t) => {
  const upstream = await startUpstream((_req, res, received) => {
    res.writeHead(201, { 'x-up': 'yes', connection: 'keep-alive', 'keep-alive': 'timeout=5' });
    res.end(`got ${received.bodyBytes}`);
  });
  const proxy = await startTestProxy(upstream.url);
  const socket = await connectTls(proxy.port, { ALPNProtocols: ['h2'] });
  const exportNoContext = socket.exportKeyingMaterial as (length: number, label: string) => Buffer;
  const ekm = new Uint8Array(exportNoContext.call(socket, 32, 'EXPORTER-Token-Binding'));
  const session = http2.connect(`https://localhost:${proxy.port}`, { createConnection: () => socket });
  session.on('error', () => {});
  try {
    t.is(socket.alpnProtocol, 'h2');
    const stream = session.request(
      {
        ':method': 'POST',
        ':path': '/h2?x=1',
        'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm }),
        'Sec-Provided-Token-Binding-ID': 'evil1',
      },
      { waitForTrailers: true },
    );
    stream.on('wantTrailers', () => stream.sendTrailers({ 'sec-referred-token-binding-id': 'evil2' }));
    stream.end('h2 body');
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders & { ':status'?: number }];
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    t.is(headers[':status'], 201);
    t.is(headers['x-up'], 'yes');
    t.is(headers['keep-alive'], undefined);
    t.is(Buffer.concat(chunks).toString(), 'got 7');
    const got = upstream.received[0]!;
    t.is(got.url, '/h2?x=1');
    t.is(got.headers.host, `localhost:${proxy.port}`);
    t.deepEqual(rawValues(got.rawHeaders, 'sec-provided-token-binding-id'), [providedID]);
    t.false([...got.rawHeaders, ...got.rawTrailers].some((v) => v.includes('evil')));
    t.false(got.rawHeaders.some((name) => name.startsWith(':')));
  } finally {
    session.destroy();
    socket.destroy();
    await proxy.close();
    await upstream.close();
  }
});

test("the upstream's 3xx Include-Referred-Token-Binding-ID and every end-to-end header pass through untouched", async (t) => {
  const upstream = await startUpstream((_req, res) => {
    res.setHeader('set-cookie', ['a=1; Secure', 'b=2; Secure']);
    res.writeHead(302, 'Found Elsewhere', {
      location: 'https://idp.example/authorize',
      'include-referred-token-binding-id': 'true',
      'content-length': '0',
    });
    res.end();
  });
  const proxy = await startTestProxy(upstream.url, { http2: false });
  const raw = await rawConnection(proxy.port);
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: raw.ekm });
    const answer = await raw.exchange(`GET /login HTTP/1.1\r\nHost: localhost\r\nSec-Token-Binding: ${header}\r\n\r\n`, /\r\n\r\n$/);
    t.regex(answer, /^HTTP\/1\.1 302 Found Elsewhere\r\n/);
    t.regex(answer, /\r\ninclude-referred-token-binding-id: true\r\n/i);
    t.regex(answer, /\r\nlocation: https:\/\/idp\.example\/authorize\r\n/i);
    t.regex(answer, /\r\nset-cookie: a=1; Secure\r\nset-cookie: b=2; Secure\r\n/i);
  } finally {
    raw.close();
    await proxy.close();
    await upstream.close();
  }
});

test.serial('an unreachable upstream is a 502 problem+json and an error event with the cause code', async (t) => {
  const upstream = await startUpstream();
  const port = upstream.port;
  await upstream.close();
  const proxy = await startTestProxy(`http://127.0.0.1:${port}`);
  const conn = await openConnection(proxy.port, { tls: 'TLSv1.3' });
  try {
    let res!: Awaited<ReturnType<typeof conn.request>>;
    const events = await proxyEvents(async () => {
      res = await conn.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) });
    });
    t.is(res.status, 502);
    t.is(res.headers['content-type'], 'application/problem+json');
    t.is(JSON.parse(res.body).code, 'ERR_TB_UPSTREAM');
    t.deepEqual(
      events.map((e) => [e.role, e.outcome, e.status, e.code]),
      [['proxy', 'error', 502, 'ECONNREFUSED']],
    );
  } finally {
    await conn.close();
    await proxy.close();
  }
});

test('a clientAddress hook that throws: the request is cut, never forwarded, and the proxy serves the next one', async (t) => {
  const upstream = await startUpstream();
  let calls = 0;
  const proxy = await startTestProxy(upstream.url, {
    clientAddress: () => {
      if (++calls === 1) throw new Error('the hook broke');
      return '192.0.2.7';
    },
  });
  try {
    const first = await openConnection(proxy.port, { tls: 'TLSv1.3' });
    await t.throwsAsync(first.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: first.ekm }) }));
    await first.close().catch(() => undefined);
    t.is(upstream.received.length, 0);
    const second = await openConnection(proxy.port, { tls: 'TLSv1.3' });
    const res = await second.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: second.ekm }) });
    await second.close();
    t.is(res.status, 200);
    t.deepEqual(rawValues(upstream.received[0]!.rawHeaders, 'x-forwarded-for'), ['192.0.2.7']);
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

/** Repeats `chunk` until `total` bytes, counting what was pulled. */
function counted(total: number, chunk: Buffer, onPull: (sent: number) => void): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const piece = chunk.subarray(0, Math.min(chunk.length, total - sent));
      sent += piece.length;
      onPull(sent);
      this.push(piece);
    },
  });
}

const BIG = 96 * 1024 * 1024;
/** Far below BIG: a proxy that buffered instead of pacing would hold most of BIG at once. */
const IN_FLIGHT_BOUND = 40 * 1024 * 1024;

test('a large upload streams with backpressure: the bytes in flight stay bounded while the upstream reads slowly', async (t) => {
  let received = 0;
  let sent = 0;
  let maxInFlight = 0;
  const upstream = await startUpstream(undefined, (req, res) => {
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      req.pause();
      setTimeout(() => req.resume(), 1);
    });
    req.on('end', () => res.end(String(received)));
  });
  const proxy = await startTestProxy(upstream.url);
  const agent = new TokenBindingAgent({ ca: testCertificate.ca, keyStore: new MemoryKeyStore() });
  try {
    const req = https.request({ host: '127.0.0.1', servername: 'localhost', port: proxy.port, method: 'POST', path: '/upload', agent });
    const response = once(req, 'response') as Promise<[http.IncomingMessage]>;
    await pipeline(
      counted(BIG, Buffer.alloc(64 * 1024, 7), (n) => {
        sent = n;
        maxInFlight = Math.max(maxInFlight, sent - received);
      }),
      req,
    );
    const [res] = await response;
    let body = '';
    for await (const chunk of res) body += chunk;
    t.is(res.statusCode, 200);
    t.is(body, String(BIG));
    t.log(`at most ${maxInFlight} bytes in flight`);
    t.true(maxInFlight < IN_FLIGHT_BOUND, `at most ${maxInFlight} bytes in flight`);
  } finally {
    agent.destroy();
    await proxy.close();
    await upstream.close();
  }
});

test('a large download streams with backpressure: the bytes in flight stay bounded while the client reads slowly', async (t) => {
  let written = 0;
  let received = 0;
  let maxInFlight = 0;
  const upstream = await startUpstream(undefined, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG });
    void pipeline(
      counted(BIG, Buffer.alloc(64 * 1024, 9), (n) => {
        written = n;
        maxInFlight = Math.max(maxInFlight, written - received);
      }),
      res,
    ).catch(() => {});
  });
  const proxy = await startTestProxy(upstream.url);
  const agent = new TokenBindingAgent({ ca: testCertificate.ca, keyStore: new MemoryKeyStore() });
  try {
    const req = https.get({ host: '127.0.0.1', servername: 'localhost', port: proxy.port, path: '/download', agent });
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    t.is(res.statusCode, 200);
    await new Promise<void>((resolve, reject) => {
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        res.pause();
        setTimeout(() => res.resume(), 1);
      });
      res.on('end', resolve);
      res.on('error', reject);
    });
    t.is(received, BIG);
    t.log(`at most ${maxInFlight} bytes in flight`);
    t.true(maxInFlight < IN_FLIGHT_BOUND, `at most ${maxInFlight} bytes in flight`);
  } finally {
    agent.destroy();
    await proxy.close();
    await upstream.close();
  }
});

/** A minimal RFC 6455 frame: FIN + text, masked when from a client. */
function frame(text: string, mask: boolean): Buffer {
  const payload = Buffer.from(text);
  if (payload.length > 125) throw new Error('test frames are short');
  if (!mask) return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
  const key = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ key[i % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), key, masked]);
}

function unframe(bytes: Buffer): string {
  const length = bytes[1]! & 0x7f;
  if ((bytes[1]! & 0x80) === 0) return bytes.subarray(2, 2 + length).toString();
  const key = bytes.subarray(2, 6);
  return Buffer.from(bytes.subarray(6, 6 + length).map((b, i) => b ^ key[i % 4]!)).toString();
}

test('a WebSocket upgrade is verified, forwarded with the binding headers, and relays frames both ways', async (t) => {
  const upgrades: string[][] = [];
  const upstreamServer = http.createServer();
  upstreamServer.on('upgrade', (req: http.IncomingMessage, socket) => {
    upgrades.push([...req.rawHeaders]);
    const accept = createHash('sha1')
      .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.on('data', (bytes: Buffer) => socket.write(frame(`echo ${unframe(bytes)}`, false)));
  });
  const up = await listen(upstreamServer);
  const proxy = await startTestProxy(`http://127.0.0.1:${up.port}`);
  const raw = await rawConnection(proxy.port);
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: raw.ekm });
    const head = await raw.exchange(
      'GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-Token-Binding: ${header}\r\nSec-Provided-Token-Binding-ID: evil\r\n\r\n`,
      /\r\n\r\n$/,
    );
    t.regex(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    t.regex(head, /\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i);
    const [reply] = (await Promise.all([once(raw.socket, 'data'), raw.socket.write(frame('hello', true))])) as [[Buffer], boolean];
    t.is(unframe(reply[0]), 'echo hello');
    t.is(upgrades.length, 1);
    t.deepEqual(rawValues(upgrades[0]!, 'sec-provided-token-binding-id'), [providedID]);
    t.deepEqual(rawValues(upgrades[0]!, 'sec-token-binding'), []);
    t.deepEqual(rawValues(upgrades[0]!, 'sec-websocket-key'), ['dGhlIHNhbXBsZSBub25jZQ==']);
  } finally {
    raw.close();
    await proxy.close();
    await up.close();
  }
});

test('createProxy checks its options', (t) => {
  const base = { key: testCertificate.key, cert: testCertificate.cert };
  t.throws(() => createProxy({ ...base, upstream: 'ftp://127.0.0.1' }), { instanceOf: TypeError });
  t.throws(() => createProxy({ ...base, upstream: 'http://127.0.0.1:1/prefix' }), { instanceOf: TypeError });
  t.throws(() => createProxy({ ...base, upstream: 'not a url' }), { instanceOf: TypeError });
  t.throws(() => createProxy({ ...base, upstream: 'http://127.0.0.1:1', connections: 0 }), { instanceOf: TypeError });
  t.throws(() => createProxy({ ...base, upstream: 'http://127.0.0.1:1', forwardKey: 'not a key' }));
  t.throws(() => createProxy(null as never), { instanceOf: TypeError });
});

test.serial('an upstream that fails mid-response cuts the client connection (a truncated body never looks complete)', async (t) => {
  const upstream = await startUpstream(undefined, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-length': 1000 });
    res.write('partial');
    setImmediate(() => res.socket?.destroy());
  });
  const proxy = await startTestProxy(upstream.url, { http2: false });
  const raw = await rawConnection(proxy.port);
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: raw.ekm });
    let answer = '';
    const events = await proxyEvents(async () => {
      answer = await raw.exchange(`GET /cut HTTP/1.1\r\nHost: localhost\r\nSec-Token-Binding: ${header}\r\n\r\n`);
    });
    t.regex(answer, /^HTTP\/1\.1 200 /);
    t.true(answer.endsWith('partial'));
    t.deepEqual(
      events.map((e) => [e.outcome, e.status]),
      [['error', 200]],
    );
    t.is(typeof events[0]!.code, 'string');
  } finally {
    raw.close();
    await proxy.close();
    await upstream.close();
  }
});

test.serial('a client that goes away mid-response aborts the upstream request', async (t) => {
  let upstreamClosed!: () => void;
  const closed = new Promise<void>((resolve) => (upstreamClosed = resolve));
  const upstream = await startUpstream(undefined, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain' });
    const timer = setInterval(() => res.write('tick\n'), 5);
    res.on('close', () => {
      clearInterval(timer);
      if (!res.writableFinished) upstreamClosed();
    });
  });
  const proxy = await startTestProxy(upstream.url, { http2: false });
  const raw = await rawConnection(proxy.port);
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: raw.ekm });
    const events = await proxyEvents(async (seen) => {
      await raw.exchange(`GET /stream HTTP/1.1\r\nHost: localhost\r\nSec-Token-Binding: ${header}\r\n\r\n`, /tick/);
      raw.close();
      // The upstream sees its response cut before it ended.
      await closed;
      while (seen.length === 0) await new Promise((resolve) => setImmediate(resolve));
    });
    t.deepEqual(
      events.map((e) => [e.outcome, e.status, e.code]),
      [['error', 200, 'UND_ERR_ABORTED']],
    );
  } finally {
    await proxy.close();
    await upstream.close();
  }
});

test.serial('an upgrade the upstream cannot take is a 502 and an error event', async (t) => {
  const upstream = await startUpstream();
  const port = upstream.port;
  await upstream.close();
  const proxy = await startTestProxy(`http://127.0.0.1:${port}`);
  const raw = await rawConnection(proxy.port);
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: raw.ekm });
    let answer = '';
    const events = await proxyEvents(async () => {
      answer = await raw.exchange(
        'GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-Token-Binding: ${header}\r\n\r\n`,
      );
    });
    t.regex(answer, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
    t.regex(answer, /"code":"ERR_TB_UPSTREAM"/);
    t.deepEqual(
      events.map((e) => [e.outcome, e.status, e.code]),
      [['error', 502, 'ECONNREFUSED']],
    );
  } finally {
    raw.close();
    await proxy.close();
  }
});

test('behind an L4 balancer (proxyProtocol): the PROXY header names the client in Forwarded / X-Forwarded-For; a connection without one never reaches the upstream', async (t) => {
  const upstream = await startUpstream();
  const proxy = await startTestProxy(upstream.url, { proxyProtocol: true });
  const tcp = net.connect(proxy.port, '127.0.0.1');
  await once(tcp, 'connect');
  tcp.write('PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n');
  const socket = tls.connect({ socket: tcp, servername: 'localhost', ca: testCertificate.ca, ALPNProtocols: ['http/1.1'] });
  await once(socket, 'secureConnect');
  try {
    const exportNoContext = socket.exportKeyingMaterial as (length: number, label: string) => Buffer;
    const ekm = new Uint8Array(exportNoContext.call(socket, 32, 'EXPORTER-Token-Binding'));
    const header = createSecTokenBindingHeader({ provided: key, ekm });
    socket.write(`GET /behind-lb HTTP/1.1\r\nHost: app.example\r\nSec-Token-Binding: ${header}\r\nConnection: close\r\n\r\n`);
    let answer = '';
    for await (const chunk of socket) answer += (chunk as Buffer).toString();
    t.regex(answer, /^HTTP\/1\.1 200 /);
    const got = upstream.received[0]!;
    t.deepEqual(rawValues(got.rawHeaders, 'x-forwarded-for'), ['203.0.113.7']);
    t.deepEqual(rawValues(got.rawHeaders, 'forwarded'), ['for=203.0.113.7;proto=https;host="app.example"']);
    t.deepEqual(rawValues(got.rawHeaders, 'sec-provided-token-binding-id'), [providedID]);
    // Straight TLS, no PROXY header: the connection is closed before any request.
    await t.throwsAsync(connectTls(proxy.port));
    t.is(upstream.received.length, 1);
  } finally {
    socket.destroy();
    await proxy.close();
    await upstream.close();
  }
});
