/**
 * The binding-aware HTTPS server over real TLS on 127.0.0.1, TLS 1.2 and 1.3, HTTP/1.1. The
 * client side signs with crypto's signing API over its own socket's EKM.
 *
 * Serial: the metrics and the diagnostics channel are process-wide.
 */
import test from 'ava';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { formatTokenBindingID } from '../../src/codec/message.js';
import { tokenBindingHash } from '../../src/crypto/hash.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { formatPrometheusMetrics, getMetricsSnapshot } from '../../src/http/metrics.js';
import type { TokenBindingServerOptions } from '../../src/http/options.js';
import { createServer, getTokenBinding } from '../../src/http/server.js';
import { exportTokenBindingKeyingMaterial } from '../../src/tls/ekm.js';
import { connectTls, listen, testCertificate, type Listening } from '../_tls.js';
import { openConnection, type TestConnection, type TlsVersion } from '../adapters/_client.js';
import { collectVerifyEvents } from '../_events.js';

interface Seen {
  tokenBinding: unknown;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  headersDistinct: IncomingMessage['headersDistinct'];
}

interface Running extends Listening {
  readonly seen: Seen[];
  readonly server: ReturnType<typeof createServer>;
}

/** A tokbind server whose handler records what it saw and answers with req.tokenBinding. */
async function start(tokenBinding: TokenBindingServerOptions = {}): Promise<Running> {
  const seen: Seen[] = [];
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert, tokenBinding }, (req, res) => {
    seen.push({ tokenBinding: req.tokenBinding, headers: req.headers, rawHeaders: [...req.rawHeaders], headersDistinct: req.headersDistinct });
    t_assertSame(req);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ tokenBinding: req.tokenBinding }));
  });
  const listening = await listen(server);
  return { ...listening, seen, server };
}

/** req.tokenBinding and getTokenBinding(req) are the same object. */
function t_assertSame(req: IncomingMessage): void {
  if (getTokenBinding(req) !== (req.tokenBinding ?? null)) throw new Error('getTokenBinding disagrees with req.tokenBinding');
}

const events = collectVerifyEvents;

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
}

const key = generateTokenBindingKey('ecdsap256');
const sign = (connection: { ekm: Uint8Array }) => createSecTokenBindingHeader({ provided: key, ekm: connection.ekm });

const VERSIONS: readonly TlsVersion[] = ['TLSv1.3', 'TLSv1.2'];

for (const tls of VERSIONS) {
  test.serial(`${tls}: a valid binding is accepted and exposed as req.tokenBinding`, async (t) => {
    const server = await start();
    const connection = await openConnection(server.port, { tls });
    try {
      t.is(connection.protocol, tls);
      const response = await connection.request('/', { 'sec-token-binding': sign(connection) });
      t.is(response.status, 200);
      const body = JSON.parse(response.body) as { tokenBinding: Record<string, unknown> };
      t.deepEqual(body.tokenBinding, {
        provided: { id: formatTokenBindingID(key.id), hash: tokenBindingHash(key.id), keyParameters: 'ecdsap256' },
        referred: null,
        others: [],
      });
      const seen = server.seen[0]!.tokenBinding as { provided: { raw: Uint8Array } };
      t.deepEqual(seen.provided.raw, key.id.raw);
      t.true(Object.isFrozen(seen));
    } finally {
      await connection.close();
      await server.close();
    }
  });

  test.serial(`${tls}: the same message on the same connection comes from the cache`, async (t) => {
    const server = await start();
    const connection = await openConnection(server.port, { tls });
    try {
      const header = sign(connection);
      const { events: seen } = await events(async () => {
        t.is((await connection.request('/', { 'sec-token-binding': header })).status, 200);
        t.is((await connection.request('/', { 'sec-token-binding': header })).status, 200);
        t.is((await connection.request('/', { 'sec-token-binding': header })).status, 200);
      });
      t.deepEqual(
        seen.map((e) => [e.outcome, e.cached, e.keyParameters]),
        [
          ['accepted', false, 'ecdsap256'],
          ['accepted', true, 'ecdsap256'],
          ['accepted', true, 'ecdsap256'],
        ],
      );
      // The cached result is the very same frozen object.
      t.is(server.seen[1]!.tokenBinding, server.seen[0]!.tokenBinding);
    } finally {
      await connection.close();
      await server.close();
    }
  });

  test.serial(`${tls}: the same message on a new connection is rejected (its EKM differs)`, async (t) => {
    const server = await start();
    const first = await openConnection(server.port, { tls });
    const second = await openConnection(server.port, { tls });
    try {
      const header = sign(first);
      t.is((await first.request('/', { 'sec-token-binding': header })).status, 200);
      const replay = await second.request('/', { 'sec-token-binding': header });
      t.is(replay.status, 400);
      t.is((JSON.parse(replay.body) as Problem).code, 'ERR_TB_SIGNATURE_INVALID');
      t.is(server.seen.length, 1);
    } finally {
      await first.close();
      await second.close();
      await server.close();
    }
  });
}

test.serial('two Sec-Token-Binding headers: 400 ERR_TB_HEADER_DUPLICATE, handler never runs', async (t) => {
  const server = await start();
  const connection = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    const header = sign(connection);
    const response = await connection.request('/', { 'sec-token-binding': [header, header] });
    t.is(response.status, 400);
    t.is((JSON.parse(response.body) as Problem).code, 'ERR_TB_HEADER_DUPLICATE');
    t.is(server.seen.length, 0);
  } finally {
    await connection.close();
    await server.close();
  }
});

test.serial('malformed values: 400 with the code of what is wrong', async (t) => {
  const server = await start({ maxHeaderLength: 300 });
  const connection = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    const cases: [string, string][] = [
      ['AAA', 'ERR_TB_MALFORMED'],
      ['AAAA', 'ERR_TB_MALFORMED'],
      ['not*base64url', 'ERR_TB_HEADER_ENCODING'],
      ['A'.repeat(301), 'ERR_TB_HEADER_TOO_LARGE'],
    ];
    for (const [value, code] of cases) {
      const response = await connection.request('/', { 'sec-token-binding': value });
      t.is(response.status, 400, value);
      t.is(response.headers['content-type'], 'application/problem+json');
      t.is((JSON.parse(response.body) as Problem).code, code, value);
    }
    t.is(server.seen.length, 0);
  } finally {
    await connection.close();
    await server.close();
  }
});

test.serial('no header: null when not required, 400 ERR_TB_HEADER_MISSING when required', async (t) => {
  const optional = await start();
  const required = await start({ required: true });
  const a = await openConnection(optional.port, { tls: 'TLSv1.3' });
  const b = await openConnection(required.port, { tls: 'TLSv1.3' });
  try {
    const { result, events: seen } = await events(() => a.request('/'));
    t.is(result.status, 200);
    t.deepEqual(JSON.parse(result.body), { tokenBinding: null });
    t.is(optional.seen[0]!.tokenBinding, null);
    t.deepEqual(seen.map((e) => e.outcome), ['absent']);

    const missing = await b.request('/');
    t.is(missing.status, 400);
    t.like(JSON.parse(missing.body) as Problem, { code: 'ERR_TB_HEADER_MISSING', status: 400 });
    t.is(required.seen.length, 0);
  } finally {
    await a.close();
    await b.close();
    await optional.close();
    await required.close();
  }
});

test.serial('spoofed TTRP headers are stripped from headers, rawHeaders and headersDistinct', async (t) => {
  const server = await start();
  const connection = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    const response = await connection.request('/', {
      'sec-token-binding': sign(connection),
      'Sec-Provided-Token-Binding-ID': 'AgBBQPusDOl2NCshBN3KqvA5Te7UB97ZDaWPn5q9rxdQAeq1jYjxKCrCm3DngLv-052rD1FVSJB4Y0IX8zQpkW0j30U',
      'sec-referred-token-binding-id': 'spoofed',
      'SEC-OTHER-TOKEN-BINDING-ID': '4d.spoofed',
      'x-kept': 'yes',
    });
    t.is(response.status, 200);
    const seen = server.seen[0]!;
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const name of ['sec-provided-token-binding-id', 'sec-referred-token-binding-id', 'sec-other-token-binding-id']) {
      t.false(name in seen.headers, name);
      t.false(name in seen.headersDistinct, name);
      t.false(names.includes(name), name);
    }
    t.is(seen.headers['x-kept'], 'yes');
    t.deepEqual(seen.headersDistinct['x-kept'], ['yes']);
    t.true(names.includes('sec-token-binding'));
  } finally {
    await connection.close();
    await server.close();
  }
});

test.serial('spoofed TTRP headers are stripped on requests without Sec-Token-Binding too', async (t) => {
  const server = await start();
  const connection = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    t.is((await connection.request('/', { 'sec-provided-token-binding-id': 'spoofed' })).status, 200);
    t.false('sec-provided-token-binding-id' in server.seen[0]!.headers);
    t.is(server.seen[0]!.tokenBinding, null);
  } finally {
    await connection.close();
    await server.close();
  }
});

test.serial('spoofed TTRP headers are stripped from the trailers of a chunked request too', async (t) => {
  const trailers: { trailers: Record<string, unknown>; distinct: Record<string, unknown>; raw: string[]; body: string; tokenBinding: unknown }[] = [];
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert, tokenBinding: {} }, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      trailers.push({ trailers: { ...req.trailers }, distinct: { ...req.trailersDistinct }, raw: [...req.rawTrailers], body, tokenBinding: req.tokenBinding });
      res.end('done');
    });
  });
  const listening = await listen(server);
  const socket = await connectTls(listening.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: clientEkm(socket) });
    const chunked = (tb: string) =>
      `POST / HTTP/1.1\r\nHost: localhost\r\n${tb}Transfer-Encoding: chunked\r\nTrailer: Sec-Provided-Token-Binding-ID, X-Kept\r\n\r\n` +
      '5\r\nhello\r\n0\r\nSec-Provided-Token-Binding-ID: spoofed\r\nsec-referred-token-binding-id: spoofed\r\nX-Kept: yes\r\n\r\n';
    t.regex(await raw(socket, chunked(`Sec-Token-Binding: ${header}\r\n`), /\r\n\r\n(4\r\n)?done/), /^HTTP\/1\.1 200 /);
    t.regex(await raw(socket, chunked(''), /\r\n\r\n(4\r\n)?done/), /^HTTP\/1\.1 200 /);
    t.is(trailers.length, 2);
    t.not(trailers[0]!.tokenBinding, null);
    t.is(trailers[1]!.tokenBinding, null);
    for (const seen of trailers) {
      t.is(seen.body, 'hello');
      t.deepEqual(seen.trailers, { 'x-kept': 'yes' });
      t.deepEqual(seen.distinct, { 'x-kept': ['yes'] });
      t.deepEqual(seen.raw, ['X-Kept', 'yes']);
    }
  } finally {
    socket.destroy();
    await listening.close();
  }
});

test.serial('a keep-alive connection stays usable after a 400; the problem body holds no key material', async (t) => {
  const server = await start();
  // The test client fails if the server closed the connection and a new one were needed.
  const connection = await openConnection(server.port, { tls: 'TLSv1.2' });
  try {
    const valid = sign(connection);
    const other = generateTokenBindingKey();
    // A well-formed message signed over the wrong EKM: the header carries a real key and ID.
    const wrong = createSecTokenBindingHeader({ provided: other, ekm: new Uint8Array(32) });
    const rejected = await connection.request('/', { 'sec-token-binding': wrong });
    t.is(rejected.status, 400);
    t.not(rejected.headers.connection, 'close');
    const problem = JSON.parse(rejected.body) as Problem;
    t.deepEqual(Object.keys(problem).sort(), ['code', 'detail', 'status', 'title', 'type']);
    t.like(problem, { status: 400, code: 'ERR_TB_SIGNATURE_INVALID', type: 'urn:tokbind:error:ERR_TB_SIGNATURE_INVALID' });
    for (const secret of [wrong, formatTokenBindingID(other.id), tokenBindingHash(other.id), wrong.slice(10, 40)]) {
      t.false(rejected.body.includes(secret));
    }
    t.false(/\bat\s.+:\d+:\d+/.test(rejected.body), 'no stack trace');
    t.is(rejected.headers['cache-control'], 'no-store');

    t.is((await connection.request('/', { 'sec-token-binding': valid })).status, 200);
    t.is((await connection.request('/')).status, 200);
  } finally {
    await connection.close();
    await server.close();
  }
});

/** Writes one raw HTTP/1.1 request on a TLS socket and resolves with everything until close or `until`. */
async function raw(socket: TLSSocket, request: string, until: RegExp): Promise<string> {
  let text = '';
  const done = new Promise<void>((resolve) => {
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (until.test(text)) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('close', () => resolve());
  });
  socket.write(request);
  await done;
  return text;
}

test.serial('a rejected request with a body closes the connection instead of reading the body', async (t) => {
  const server = await start();
  const socket = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const closed = once(socket, 'close');
    const text = await raw(
      socket,
      'POST / HTTP/1.1\r\nHost: localhost\r\nSec-Token-Binding: AAA\r\nContent-Length: 100000\r\n\r\npartial',
      /"code":"ERR_TB_MALFORMED"\}/,
    );
    t.regex(text, /^HTTP\/1\.1 400 /);
    t.regex(text, /\r\nconnection: close\r\n/i);
    await closed;
    t.is(server.seen.length, 0);
  } finally {
    socket.destroy();
    await server.close();
  }
});

/** The EKM of a raw client socket, taken with Node's API (no context). */
function clientEkm(socket: TLSSocket): Uint8Array {
  const exportNoContext = socket.exportKeyingMaterial as (length: number, label: string) => Buffer;
  return new Uint8Array(exportNoContext.call(socket, 32, 'EXPORTER-Token-Binding'));
}

const expectHead = (header: string | null, length: number): string =>
  `POST / HTTP/1.1\r\nHost: localhost\r\n${header === null ? '' : `Sec-Token-Binding: ${header}\r\n`}Expect: 100-continue\r\nContent-Length: ${length}\r\n\r\n`;

test.serial('Expect: 100-continue with a refused binding: a final 400, never 100 Continue', async (t) => {
  const server = await start();
  const socket = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const text = await raw(socket, expectHead('AAA', 100_000), /"code":"ERR_TB_MALFORMED"\}/);
    t.regex(text, /^HTTP\/1\.1 400 /);
    t.notRegex(text, /100 Continue/i);
    t.is(server.seen.length, 0);
  } finally {
    socket.destroy();
    await server.close();
  }
});

test.serial('Expect: 100-continue with a valid binding: 100 Continue after verification, then the handler; verified once', async (t) => {
  const server = await start();
  const socket = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: clientEkm(socket) });
    // The test handler answers without reading the body: the whole exchange is on the wire
    // before the body would be sent.
    const { result: text, events: seen } = await events(() => raw(socket, expectHead(header, 5), /"others":\[\]\}\}$/));
    t.regex(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
    t.is(server.seen.length, 1);
    t.is((server.seen[0]!.tokenBinding as { provided: { hash: string } }).provided.hash, tokenBindingHash(key.id));
    t.deepEqual(seen.map((e) => e.outcome), ['accepted']);
  } finally {
    socket.destroy();
    await server.close();
  }
});

test.serial('Expect: 100-continue without a header (not required): 100 Continue, then the handler with null', async (t) => {
  const server = await start();
  const socket = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const text = await raw(socket, expectHead(null, 2), /\{"tokenBinding":null\}$/);
    t.regex(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
    t.is(server.seen.length, 1);
    t.is(server.seen[0]!.tokenBinding, null);
  } finally {
    socket.destroy();
    await server.close();
  }
});

test.serial("Expect: 100-continue with the application's own 'checkContinue' listener: it decides, with the verdict in hand", async (t) => {
  const server = await start();
  const decided: unknown[] = [];
  server.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    decided.push(req.tokenBinding);
    if (req.headers['x-too-large'] !== undefined) {
      res.writeHead(413, { connection: 'close' }).end();
      return;
    }
    res.writeContinue();
    server.server.emit('request', req, res);
  });
  const socket = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  const second = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: clientEkm(socket) });
    const { result: text, events: seen } = await events(() => raw(socket, expectHead(header, 5), /"others":\[\]\}\}$/));
    t.regex(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
    t.is(server.seen.length, 1, 'the handler ran once');
    t.deepEqual(seen.map((e) => e.outcome), ['accepted'], 'verified once');
    t.is(decided.length, 1);
    t.is(decided[0], server.seen[0]!.tokenBinding);

    const head = expectHead(createSecTokenBindingHeader({ provided: key, ekm: clientEkm(second) }), 5).replace('Host: localhost\r\n', 'Host: localhost\r\nX-Too-Large: 1\r\n');
    const refused = await raw(second, head, /^HTTP\/1\.1 413 [^]*\r\n\r\n/);
    t.notRegex(refused, /100 Continue/i);
    t.is(server.seen.length, 1, 'the application refused it: no handler');
    t.is(decided.length, 2);
  } finally {
    socket.destroy();
    second.destroy();
    await server.close();
  }
});

test.serial('case-variant duplicate headers are counted from rawHeaders', async (t) => {
  const server = await start();
  const socket = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const ekm = exportTokenBindingKeyingMaterial(socket);
    const header = createSecTokenBindingHeader({ provided: key, ekm });
    const text = await raw(
      socket,
      `GET / HTTP/1.1\r\nHost: localhost\r\nSec-Token-Binding: ${header}\r\nsec-token-binding: ${header}\r\n\r\n`,
      /\}$/,
    );
    t.regex(text, /^HTTP\/1\.1 400 /);
    t.regex(text, /"code":"ERR_TB_HEADER_DUPLICATE"/);
    // Keep-alive: a bodiless rejected request leaves the connection open for the next one.
    const next = await raw(socket, `GET / HTTP/1.1\r\nHost: localhost\r\nSec-Token-Binding: ${header}\r\n\r\n`, /\}$/);
    t.regex(next, /^HTTP\/1\.1 200 /);
  } finally {
    socket.destroy();
    await server.close();
  }
});

test.serial('TLS 1.2 without Extended Master Secret: a header is refused (ERR_TB_TLS_CONDITIONS), counted by reason', async (t) => {
  const server = await start();
  const before = getMetricsSnapshot().tlsConditionsUnmet['no-ems'] ?? 0;
  // SSL_OP_NO_EXTENDED_MASTER_SECRET (OpenSSL 3.0: bit 0); Node does not export the constant.
  const socket = await connectTls(server.port, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', secureOptions: 1, ALPNProtocols: ['http/1.1'] });
  try {
    const ekm = exportTokenBindingKeyingMaterial(socket);
    const header = createSecTokenBindingHeader({ provided: key, ekm });
    const text = await raw(socket, `GET / HTTP/1.1\r\nHost: localhost\r\nSec-Token-Binding: ${header}\r\n\r\n`, /\}$/);
    t.regex(text, /^HTTP\/1\.1 400 /);
    t.regex(text, /"code":"ERR_TB_TLS_CONDITIONS"/);
    t.is(getMetricsSnapshot().tlsConditionsUnmet['no-ems'], before + 1);
    // Without a header the request is served: Token Binding is simply not in use here.
    const plain = await raw(socket, 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n', /\}$/);
    t.regex(plain, /^HTTP\/1\.1 200 /);
    t.regex(plain, /\{"tokenBinding":null\}$/);
  } finally {
    socket.destroy();
    await server.close();
  }
});

test.serial('RSA key parameters are opt-in', async (t) => {
  const rsa = generateTokenBindingKey('rsa2048_pss');
  const strict = await start();
  const lenient = await start({ keyParameters: ['ecdsap256', 'rsa2048_pss'] });
  const a = await openConnection(strict.port, { tls: 'TLSv1.3' });
  const b = await openConnection(lenient.port, { tls: 'TLSv1.3' });
  try {
    const refused = await a.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: rsa, ekm: a.ekm }) });
    t.is(refused.status, 400);
    t.is((JSON.parse(refused.body) as Problem).code, 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
    const accepted = await b.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: rsa, ekm: b.ekm }) });
    t.is(accepted.status, 200);
    t.like(JSON.parse(accepted.body), { tokenBinding: { provided: { keyParameters: 'rsa2048_pss', hash: tokenBindingHash(rsa.id) } } });
  } finally {
    await a.close();
    await b.close();
    await strict.close();
    await lenient.close();
  }
});

test.serial('more distinct messages than maxDistinctMessages on one connection: ERR_TB_TOO_MANY_MESSAGES', async (t) => {
  const server = await start({ maxDistinctMessages: 2 });
  const connection = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    // ECDSA signatures are randomized: each call is a distinct, valid header.
    const [h1, h2, h3] = [sign(connection), sign(connection), sign(connection)];
    t.is((await connection.request('/', { 'sec-token-binding': h1 })).status, 200);
    t.is((await connection.request('/', { 'sec-token-binding': h2 })).status, 200);
    const third = await connection.request('/', { 'sec-token-binding': h3 });
    t.is(third.status, 400);
    t.is((JSON.parse(third.body) as Problem).code, 'ERR_TB_TOO_MANY_MESSAGES');
    // Values already verified keep working.
    t.is((await connection.request('/', { 'sec-token-binding': h1 })).status, 200);
  } finally {
    await connection.close();
    await server.close();
  }
});

test.serial('a cached failure is not re-verified on the same connection', async (t) => {
  const server = await start();
  const connection = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    const wrong = createSecTokenBindingHeader({ provided: key, ekm: new Uint8Array(32) });
    const { events: seen } = await events(async () => {
      t.is((await connection.request('/', { 'sec-token-binding': wrong })).status, 400);
      t.is((await connection.request('/', { 'sec-token-binding': wrong })).status, 400);
    });
    t.deepEqual(
      seen.map((e) => [e.outcome, e.code, e.cached]),
      [
        ['rejected', 'ERR_TB_SIGNATURE_INVALID', false],
        ['rejected', 'ERR_TB_SIGNATURE_INVALID', true],
      ],
    );
  } finally {
    await connection.close();
    await server.close();
  }
});

test.serial('onReject replaces the response; onInvalid: ignore lets the request through unbound', async (t) => {
  const hooked: string[] = [];
  const custom = await start({
    onReject: (_req, res, error) => {
      hooked.push(error.code);
      (res as ServerResponse).writeHead(403, { 'content-type': 'text/plain' }).end('nope');
    },
  });
  const ignoring = await start({ onInvalid: 'ignore' });
  const a = await openConnection(custom.port, { tls: 'TLSv1.3' });
  const b = await openConnection(ignoring.port, { tls: 'TLSv1.3' });
  try {
    const rejected = await a.request('/', { 'sec-token-binding': 'AAA' });
    t.is(rejected.status, 403);
    t.is(rejected.body, 'nope');
    t.deepEqual(hooked, ['ERR_TB_MALFORMED']);
    t.is(custom.seen.length, 0);

    const ignored = await b.request('/', { 'sec-token-binding': 'AAA' });
    t.is(ignored.status, 200);
    t.deepEqual(JSON.parse(ignored.body), { tokenBinding: null });
  } finally {
    await a.close();
    await b.close();
    await custom.close();
    await ignoring.close();
  }
});

test.serial("listeners added later with server.on('request') are covered too", async (t) => {
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert });
  let handled = 0;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handled++;
    res.end(JSON.stringify(req.tokenBinding));
  });
  const listening = await listen(server);
  const connection: TestConnection = await openConnection(listening.port, { tls: 'TLSv1.3' });
  try {
    t.is((await connection.request('/', { 'sec-token-binding': 'AAA' })).status, 400);
    t.is(handled, 0);
    const ok = await connection.request('/', { 'sec-token-binding': sign(connection) });
    t.is(ok.status, 200);
    t.is((JSON.parse(ok.body) as { provided: { id: string } }).provided.id, formatTokenBindingID(key.id));
  } finally {
    await connection.close();
    await listening.close();
  }
});

test.serial("'upgrade' requests are verified before the listener gets the socket", async (t) => {
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert });
  const upgraded: unknown[] = [];
  server.on('upgrade', (req: IncomingMessage, socket: TLSSocket) => {
    upgraded.push(req.tokenBinding);
    socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n');
  });
  const listening = await listen(server);
  const bad = await connectTls(listening.port, { ALPNProtocols: ['http/1.1'] });
  const good = await connectTls(listening.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const upgrade = 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: test\r\n';
    const refused = await raw(bad, `${upgrade}Sec-Token-Binding: AAA\r\n\r\n`, /\}$/);
    t.regex(refused, /^HTTP\/1\.1 400 /);
    t.regex(refused, /"code":"ERR_TB_MALFORMED"/);
    t.deepEqual(upgraded, []);

    const ekm = exportTokenBindingKeyingMaterial(good);
    const switched = await raw(good, `${upgrade}Sec-Token-Binding: ${createSecTokenBindingHeader({ provided: key, ekm })}\r\n\r\n`, /\r\n\r\n$/);
    t.regex(switched, /^HTTP\/1\.1 101 /);
    t.is(upgraded.length, 1);
    t.like(upgraded[0], { provided: { id: formatTokenBindingID(key.id) } });
  } finally {
    bad.destroy();
    good.destroy();
    await listening.close();
  }
});

test.serial('createServer refuses bad options with a TypeError', (t) => {
  const base = { key: testCertificate.key, cert: testCertificate.cert };
  t.throws(() => createServer({ ...base, tokenBinding: { keyParameters: ['ecdsa'] as never } }), { instanceOf: TypeError });
  t.throws(() => createServer({ ...base, tokenBinding: { keyParameters: [88] } }), { instanceOf: TypeError });
  t.throws(() => createServer({ ...base, tokenBinding: { maxHeaderLength: 0 } }), { instanceOf: TypeError });
  t.throws(() => createServer({ ...base, tokenBinding: { onInvalid: 'drop' as never } }), { instanceOf: TypeError });
  t.throws(() => createServer(base, 'handler' as never), { instanceOf: TypeError });
});

test.serial('the metrics snapshot and the Prometheus text reflect the traffic', async (t) => {
  const server = await start();
  const connection = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    const before = getMetricsSnapshot();
    const header = sign(connection);
    await connection.request('/', { 'sec-token-binding': header });
    await connection.request('/', { 'sec-token-binding': header });
    await connection.request('/', { 'sec-token-binding': 'AAA' });
    await connection.request('/');
    const after = getMetricsSnapshot();
    t.deepEqual(
      {
        accepted: after.verifications.accepted - before.verifications.accepted,
        rejected: after.verifications.rejected - before.verifications.rejected,
        absent: after.verifications.absent - before.verifications.absent,
        malformed: (after.rejections.ERR_TB_MALFORMED ?? 0) - (before.rejections.ERR_TB_MALFORMED ?? 0),
        hits: after.cache.hits - before.cache.hits,
        misses: after.cache.misses - before.cache.misses,
        timed: after.latency.count - before.latency.count,
      },
      { accepted: 2, rejected: 1, absent: 1, malformed: 1, hits: 1, misses: 2, timed: 2 },
    );
    const text = formatPrometheusMetrics();
    t.true(text.includes(`tokbind_verifications_total{outcome="accepted"} ${after.verifications.accepted}\n`));
    t.true(text.includes(`tokbind_rejections_total{code="ERR_TB_MALFORMED"} ${after.rejections.ERR_TB_MALFORMED}\n`));
    t.true(text.includes(`tokbind_verification_duration_seconds_count ${after.latency.count}\n`));
  } finally {
    await connection.close();
    await server.close();
  }
});

test.serial('inspectClientHello: the pre-TLS reader hands connections on, bindings still verify', async (t) => {
  const server = await start({ inspectClientHello: { timeoutMs: 2000 } });
  try {
    for (const tls of VERSIONS) {
      const connection = await openConnection(server.port, { tls });
      try {
        // Node clients cannot offer extension 24: the configured key parameters apply.
        const response = await connection.request('/', { 'sec-token-binding': sign(connection) });
        t.is(response.status, 200, tls);
        t.like(JSON.parse(response.body), { tokenBinding: { provided: { keyParameters: 'ecdsap256' } } });
      } finally {
        await connection.close();
      }
    }
  } finally {
    await server.close();
  }
});
