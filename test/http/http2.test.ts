/**
 * The binding-aware HTTP/2 server over real TLS on 127.0.0.1 (TLS 1.2 and 1.3): compat request
 * API and 'stream' listeners, per-session cache, rejected streams. Serial: the diagnostics channel
 * is process-wide.
 */
import test from 'ava';
import http2 from 'node:http2';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Http2ServerRequest, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { formatTokenBindingID } from '../../src/codec/message.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { createSecureServer } from '../../src/http/http2.js';
import type { TokenBindingServerOptions } from '../../src/http/options.js';
import type { TokenBindingResult } from '../../src/http/result.js';
import { getTokenBinding } from '../../src/http/server.js';
import { exportTokenBindingKeyingMaterial } from '../../src/tls/ekm.js';
import { connectTls, listen, testCertificate, type Listening } from '../_tls.js';
import { openConnection, type TlsVersion } from '../adapters/_client.js';
import { collectVerifyEvents } from '../_events.js';

interface Seen {
  readonly tokenBinding: TokenBindingResult | null | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
}

interface Running extends Listening {
  readonly requests: Seen[];
  /** What 'stream' listeners saw: the stream's headers and getTokenBinding(stream). */
  readonly streams: { headers: IncomingHttpHeaders; tokenBinding: TokenBindingResult | null }[];
}

async function start(tokenBinding: TokenBindingServerOptions = {}, allowHTTP1 = false): Promise<Running> {
  const requests: Seen[] = [];
  const streams: Running['streams'] = [];
  const server = createSecureServer(
    { key: testCertificate.key, cert: testCertificate.cert, allowHTTP1, tokenBinding },
    (req: Http2ServerRequest, res) => {
      requests.push({ tokenBinding: req.tokenBinding, headers: { ...req.headers }, rawHeaders: [...req.rawHeaders] });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ tokenBinding: req.tokenBinding }));
    },
  );
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    streams.push({ headers: { ...headers }, tokenBinding: getTokenBinding(stream) });
  });
  return { ...(await listen(server)), requests, streams };
}

const events = async <T>(fn: () => Promise<T>) => (await collectVerifyEvents(fn)).events;

const key = generateTokenBindingKey();
const sign = (connection: { ekm: Uint8Array }) => createSecTokenBindingHeader({ provided: key, ekm: connection.ekm });
const codeOf = (body: string) => (JSON.parse(body) as { code: string }).code;

for (const tls of ['TLSv1.3', 'TLSv1.2'] as TlsVersion[]) {
  test.serial(`${tls}: accepted, exposed to the compat handler and to 'stream' listeners, cached per session`, async (t) => {
    const server = await start();
    const connection = await openConnection(server.port, { tls, http2: true });
    try {
      t.is(connection.alpn, 'h2');
      const header = sign(connection);
      const seen = await events(async () => {
        for (let i = 0; i < 3; i++) {
          const response = await connection.request('/', { 'sec-token-binding': header });
          t.is(response.status, 200);
          t.like(JSON.parse(response.body), { tokenBinding: { provided: { id: formatTokenBindingID(key.id), keyParameters: 'ecdsap256' } } });
        }
      });
      // Each request of the compat API has its own socket object; the cache is the session's.
      t.deepEqual(seen.map((e) => [e.outcome, e.cached]), [['accepted', false], ['accepted', true], ['accepted', true]]);
      t.is(server.requests.length, 3);
      t.is(server.streams.length, 3);
      for (let i = 0; i < 3; i++) t.is(server.streams[i]!.tokenBinding as unknown, server.requests[i]!.tokenBinding);
      t.not(server.requests[0]!.tokenBinding, null);
    } finally {
      await connection.close();
      await server.close();
    }
  });

  test.serial(`${tls}: the same message on a new session is rejected`, async (t) => {
    const server = await start();
    const first = await openConnection(server.port, { tls, http2: true });
    const second = await openConnection(server.port, { tls, http2: true });
    try {
      const header = sign(first);
      t.is((await first.request('/', { 'sec-token-binding': header })).status, 200);
      const replay = await second.request('/', { 'sec-token-binding': header });
      t.is(replay.status, 400);
      t.is(codeOf(replay.body), 'ERR_TB_SIGNATURE_INVALID');
    } finally {
      await first.close();
      await second.close();
      await server.close();
    }
  });
}

test.serial('a rejected stream gets a 400 problem and reaches neither stream listeners nor the handler; the session stays usable', async (t) => {
  const server = await start();
  const connection = await openConnection(server.port, { tls: 'TLSv1.3', http2: true });
  try {
    const cases: [Record<string, string | string[]>, string][] = [
      [{ 'sec-token-binding': 'AAA' }, 'ERR_TB_MALFORMED'],
      [{ 'sec-token-binding': 'a+b' }, 'ERR_TB_HEADER_ENCODING'],
      [{ 'sec-token-binding': [sign(connection), sign(connection)] }, 'ERR_TB_HEADER_DUPLICATE'],
    ];
    for (const [headers, code] of cases) {
      const response = await connection.request('/', headers);
      t.is(response.status, 400);
      t.is(response.headers['content-type'], 'application/problem+json');
      t.is(codeOf(response.body), code);
    }
    t.is(server.requests.length, 0);
    t.is(server.streams.length, 0);
    t.is((await connection.request('/', { 'sec-token-binding': sign(connection) })).status, 200);
    t.is((await connection.request('/')).status, 200);
    t.is(server.requests[1]!.tokenBinding, null);
  } finally {
    await connection.close();
    await server.close();
  }
});

test.serial('spoofed TTRP headers are stripped before the stream listener and the handler', async (t) => {
  const server = await start();
  const connection = await openConnection(server.port, { tls: 'TLSv1.3', http2: true });
  try {
    const response = await connection.request('/', {
      'sec-token-binding': sign(connection),
      'sec-provided-token-binding-id': 'spoofed',
      'sec-referred-token-binding-id': 'spoofed',
      'sec-other-token-binding-id': '4d.spoofed',
      'x-kept': 'yes',
    });
    t.is(response.status, 200);
    const names = ['sec-provided-token-binding-id', 'sec-referred-token-binding-id', 'sec-other-token-binding-id'];
    for (const name of names) {
      t.false(name in server.streams[0]!.headers, name);
      t.false(name in server.requests[0]!.headers, name);
      t.false(server.requests[0]!.rawHeaders.includes(name), name);
    }
    t.is(server.requests[0]!.headers['x-kept'], 'yes');
  } finally {
    await connection.close();
    await server.close();
  }
});

test.serial('required: a stream without a header is refused; onRejectStream replaces the answer', async (t) => {
  const hooked: string[] = [];
  const server = await start({
    required: true,
    onRejectStream: (stream, headers, error) => {
      hooked.push(`${headers[':path']} ${error.code}`);
      stream.respond({ ':status': 401 });
      stream.end('bound token required');
    },
  });
  const connection = await openConnection(server.port, { tls: 'TLSv1.3', http2: true });
  try {
    const response = await connection.request('/private');
    t.is(response.status, 401);
    t.is(response.body, 'bound token required');
    t.deepEqual(hooked, ['/private ERR_TB_HEADER_MISSING']);
    t.is(server.requests.length, 0);
  } finally {
    await connection.close();
    await server.close();
  }
});

test.serial('required, default answer: 400 ERR_TB_HEADER_MISSING', async (t) => {
  const server = await start({ required: true });
  const connection = await openConnection(server.port, { tls: 'TLSv1.3', http2: true });
  try {
    const response = await connection.request('/');
    t.is(response.status, 400);
    t.is(codeOf(response.body), 'ERR_TB_HEADER_MISSING');
  } finally {
    await connection.close();
    await server.close();
  }
});

test.serial('allowHTTP1: HTTP/1.1 requests on the HTTP/2 server are verified too', async (t) => {
  const server = await start({}, true);
  const connection = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    t.is(connection.alpn, 'http/1.1');
    t.is(codeOf((await connection.request('/', { 'sec-token-binding': 'AAA' })).body), 'ERR_TB_MALFORMED');
    const ok = await connection.request('/', { 'sec-token-binding': sign(connection) });
    t.is(ok.status, 200);
    t.like(JSON.parse(ok.body), { tokenBinding: { provided: { id: formatTokenBindingID(key.id) } } });
  } finally {
    await connection.close();
    await server.close();
  }
});

test.serial('a client whose EKM does not match (HTTP/1.1 agent on its own socket) is refused', async (t) => {
  // The signature covers the EKM of another TLS connection: what a stolen header looks like.
  const server = await start({}, true);
  const other = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: exportTokenBindingKeyingMaterial(other) });
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: server.port, servername: 'localhost', ca: testCertificate.ca, headers: { 'sec-token-binding': header } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    t.is(status, 400);
  } finally {
    other.destroy();
    await server.close();
  }
});

/** One HTTP/2 stream with a body on its own session: status, whether 100 came first, the body. */
function h2Post(session: http2.ClientHttp2Session, headers: Record<string, string>, body: string): Promise<{ status: number; continued: boolean; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': '/', ...headers });
    let status = 0;
    let continued = false;
    const chunks: Buffer[] = [];
    stream.on('continue', () => {
      continued = true;
      stream.end(body);
    });
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve({ status, continued, body: Buffer.concat(chunks).toString('utf8') }));
    stream.on('error', reject);
    if (headers.expect === undefined) stream.end(body);
  });
}

test.serial('HTTP/2: a rejected stream with a body (and one expecting 100-continue) gets its 400 without 100; the session stays usable', async (t) => {
  const server = await start();
  const socket = await connectTls(server.port, { ALPNProtocols: ['h2'] });
  const session = http2.connect(`https://localhost:${server.port}`, { createConnection: () => socket });
  session.on('error', () => {});
  try {
    const big = 'x'.repeat(200_000);
    const refused = await h2Post(session, { 'sec-token-binding': 'AAA' }, big);
    t.is(refused.status, 400);
    t.is(codeOf(refused.body), 'ERR_TB_MALFORMED');
    const waiting = await h2Post(session, { 'sec-token-binding': 'AAA', expect: '100-continue' }, big);
    t.is(waiting.status, 400);
    t.false(waiting.continued);
    t.is(server.requests.length, 0);
    t.is(server.streams.length, 0);
    const header = createSecTokenBindingHeader({ provided: key, ekm: exportTokenBindingKeyingMaterial(socket) });
    const accepted = await h2Post(session, { 'sec-token-binding': header, expect: '100-continue' }, 'hello');
    t.is(accepted.status, 200);
    t.true(accepted.continued);
    t.like(JSON.parse(accepted.body), { tokenBinding: { provided: { id: formatTokenBindingID(key.id) } } });
    t.is(server.requests.length, 1);
  } finally {
    session.destroy();
    socket.destroy();
    await server.close();
  }
});

test.serial('HTTP/2: spoofed TTRP headers are stripped from trailers, for the compat request and trailers listeners', async (t) => {
  const compat: { trailers: Record<string, unknown>; raw: string[]; body: string }[] = [];
  const listened: { trailers: Record<string, unknown>; raw: unknown }[] = [];
  const server = createSecureServer({ key: testCertificate.key, cert: testCertificate.cert, tokenBinding: {} }, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      compat.push({ trailers: Object.fromEntries(Object.entries(req.trailers)), raw: [...req.rawTrailers], body });
      res.end('done');
    });
  });
  server.on('stream', (stream: ServerHttp2Stream) => {
    stream.on('trailers', (trailers: IncomingHttpHeaders, _flags: number, raw: unknown) => {
      listened.push({ trailers: Object.fromEntries(Object.entries(trailers)), raw: Array.isArray(raw) ? [...(raw as string[])] : raw });
    });
  });
  const listening = await listen(server);
  const socket = await connectTls(listening.port, { ALPNProtocols: ['h2'] });
  const session = http2.connect(`https://localhost:${listening.port}`, { createConnection: () => socket });
  session.on('error', () => {});
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: exportTokenBindingKeyingMaterial(socket) });
    const status = await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': '/', 'sec-token-binding': header }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'sec-provided-token-binding-id': 'spoofed', 'sec-other-token-binding-id': 'spoofed', 'x-kept': 'yes' }));
      let code = 0;
      stream.on('response', (h) => (code = Number(h[':status'])));
      stream.resume();
      stream.on('end', () => resolve(code));
      stream.on('error', reject);
      stream.end('hello');
    });
    t.is(status, 200);
    t.is(compat.length, 1);
    t.is(compat[0]!.body, 'hello');
    t.deepEqual(compat[0]!.trailers, { 'x-kept': 'yes' });
    t.deepEqual(compat[0]!.raw, ['x-kept', 'yes']);
    t.is(listened.length, 1);
    t.deepEqual(listened[0]!.trailers, { 'x-kept': 'yes' });
    t.deepEqual(listened[0]!.raw, ['x-kept', 'yes']);
  } finally {
    session.destroy();
    socket.destroy();
    await listening.close();
  }
});

test.serial('allowHTTP1: an HTTP/1.1 request expecting 100-continue is verified before 100 Continue', async (t) => {
  const server = await start({}, true);
  const refusedSocket = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  const socket = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  const exchange = (s: TLSSocket, header: string, until: RegExp): Promise<string> =>
    new Promise((resolve) => {
      let text = '';
      s.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (until.test(text)) resolve(text);
      });
      s.once('close', () => resolve(text));
      s.write(`POST / HTTP/1.1\r\nHost: localhost\r\nSec-Token-Binding: ${header}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n`);
    });
  try {
    const refused = await exchange(refusedSocket, 'AAA', /"code":"ERR_TB_MALFORMED"\}/);
    t.regex(refused, /^HTTP\/1\.1 400 /);
    t.notRegex(refused, /100 Continue/i);
    const header = createSecTokenBindingHeader({ provided: key, ekm: exportTokenBindingKeyingMaterial(socket) });
    const accepted = await exchange(socket, header, /"others":\[\]\}\}$/);
    t.regex(accepted, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
    t.is(server.requests.length, 1);
  } finally {
    refusedSocket.destroy();
    socket.destroy();
    await server.close();
  }
});

test.serial('createSecureServer refuses bad arguments with a TypeError', (t) => {
  const base = { key: testCertificate.key, cert: testCertificate.cert };
  t.throws(() => createSecureServer(null as never), { instanceOf: TypeError });
  t.throws(() => createSecureServer(base, 42 as never), { instanceOf: TypeError });
  t.throws(() => createSecureServer({ ...base, tokenBinding: { keyParameters: [] } }), { instanceOf: TypeError });
});
