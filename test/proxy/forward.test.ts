/**
 * The client sidecar end to end: a plain node:http client (what curl or a Python program would
 * be) → the sidecar on 127.0.0.1 → real Token-Bound TLS → tokbind's own server.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import test from 'ava';
import { FileKeyStore } from '../../src/client/keystore.js';
import { formatTokenBindingID } from '../../src/codec/message.js';
import { createServer } from '../../src/http/server.js';
import { PROXY_CHANNEL_NAME, type ProxyEvent } from '../../src/proxy/events.js';
import { createForwarder, isLoopbackHost, startForwarder } from '../../src/proxy/forward.js';
import { listen, testCertificate } from '../_tls.js';

/** tokbind's server: /whoami shows the binding, /echo counts the body, /big streams `n` bytes. */
async function bindingServer() {
  let connections = 0;
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x');
    if (url.pathname === '/whoami') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ tokenBinding: req.tokenBinding ?? null, host: req.headers.host, te: req.headers['x-client'] ?? null }));
      return;
    }
    if (url.pathname === '/echo') {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => res.end(String(n)));
      return;
    }
    if (url.pathname === '/big') {
      const total = Number(url.searchParams.get('n'));
      res.writeHead(200, { 'content-length': total });
      Readable.from(
        (function* () {
          for (let sent = 0; sent < total; sent += 65536) yield Buffer.alloc(Math.min(65536, total - sent), 1);
        })(),
      ).pipe(res);
      return;
    }
    res.writeHead(404).end();
  });
  server.on('secureConnection', () => connections++);
  const listening = await listen(server);
  return { ...listening, connections: () => connections };
}

function plain(url: string, options: http.RequestOptions = {}, body?: Readable): Promise<{ status: number; body: Buffer; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body === undefined) req.end();
    else body.pipe(req);
  });
}

test.serial('a plain HTTP client gets Token Binding through the sidecar: /whoami shows the key of the store, the same on every request, over one reused connection', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-forward-'));
  const server = await bindingServer();
  const keyStorePath = join(dir, 'keys.json');
  const options = {
    target: `https://127.0.0.1:${server.port}`,
    port: 0,
    dispatcher: { keyStore: new FileKeyStore(keyStorePath), connect: { ca: testCertificate.ca, servername: 'localhost' } },
  };
  const sidecar = await startForwarder(options);
  const events: ProxyEvent[] = [];
  const onEvent = (e: unknown): void => void events.push(e as ProxyEvent);
  diagnosticsChannel.subscribe(PROXY_CHANNEL_NAME, onEvent);
  try {
    t.regex(sidecar.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await plain(`${sidecar.url}/whoami`, { headers: { 'x-client': 'curl-like', 'sec-token-binding': 'AAA' } });
      t.is(res.status, 200);
      const body = JSON.parse(res.body.toString()) as { tokenBinding: { provided: { id: string } } | null; host: string; te: string };
      t.is(body.host, `127.0.0.1:${server.port}`);
      t.is(body.te, 'curl-like');
      ids.push(body.tokenBinding!.provided.id);
    }
    const stored = await new FileKeyStore(keyStorePath).getKey('127.0.0.1', 'ecdsap256');
    t.deepEqual(ids, Array(3).fill(formatTokenBindingID(stored!.id)));
    t.is(server.connections(), 1);
    t.deepEqual(
      events.map((e) => [e.role, e.outcome, e.status]),
      Array(3).fill(['forward', 'ok', 200]),
    );
    // A new sidecar on the same key store is the same client.
    await sidecar.close();
    const again = await startForwarder(options);
    try {
      const res = await plain(`${again.url}/whoami`);
      t.is(JSON.parse(res.body.toString()).tokenBinding.provided.id, ids[0]);
    } finally {
      await again.close();
    }
  } finally {
    diagnosticsChannel.unsubscribe(PROXY_CHANNEL_NAME, onEvent);
    await sidecar.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('bodies stream both ways through the sidecar', async (t) => {
  const server = await bindingServer();
  const sidecar = await startForwarder({ target: `https://127.0.0.1:${server.port}`, port: 0, dispatcher: { connect: { ca: testCertificate.ca } } });
  try {
    const size = 8 * 1024 * 1024;
    const upload = await plain(
      `${sidecar.url}/echo`,
      { method: 'POST' },
      Readable.from(
        (function* () {
          for (let sent = 0; sent < size; sent += 65536) yield Buffer.alloc(65536, 2);
        })(),
      ),
    );
    t.is(upload.status, 200);
    t.is(upload.body.toString(), String(size));
    const download = await plain(`${sidecar.url}/big?n=${size}`);
    t.is(download.status, 200);
    t.is(download.body.length, size);
  } finally {
    await sidecar.close();
    await server.close();
  }
});

test('a target that cannot be reached is a 502 problem+json', async (t) => {
  const server = await bindingServer();
  const port = server.port;
  await server.close();
  const sidecar = await startForwarder({ target: `https://127.0.0.1:${port}`, port: 0 });
  try {
    const res = await plain(`${sidecar.url}/whoami`);
    t.is(res.status, 502);
    t.is(res.headers['content-type'], 'application/problem+json');
    t.is(JSON.parse(res.body.toString()).code, 'ERR_TB_UPSTREAM');
  } finally {
    await sidecar.close();
  }
});

test('the sidecar listens on loopback only unless allowRemote, and its target must be an https origin', async (t) => {
  for (const host of ['0.0.0.0', '::', '192.0.2.1', 'example.com']) {
    await t.throwsAsync(startForwarder({ target: 'https://127.0.0.1:1', host, port: 0 }), { instanceOf: TypeError }, host);
  }
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) t.true(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '10.0.0.1', '::', 'localhost.example']) t.false(isLoopbackHost(host), host);
  for (const target of ['http://127.0.0.1:1', 'https://127.0.0.1:1/path', 'nope']) {
    t.throws(() => createForwarder({ target }), { instanceOf: TypeError }, target);
  }
  t.throws(() => createForwarder(null as never), { instanceOf: TypeError });
});

test('only local programs are served: a foreign Host (DNS rebinding), a foreign Origin or a cross-site fetch gets 403 and never reaches the target', async (t) => {
  const server = await bindingServer();
  const sidecar = await startForwarder({ target: `https://127.0.0.1:${server.port}`, port: 0, dispatcher: { connect: { ca: testCertificate.ca } } });
  try {
    for (const headers of [
      { host: 'evil.example' },
      { host: `evil.example:${sidecar.port}` },
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
    ]) {
      const res = await plain(`${sidecar.url}/whoami`, { headers });
      t.is(res.status, 403, JSON.stringify(headers));
      t.is(JSON.parse(res.body.toString()).code, 'ERR_TB_CLIENT');
    }
    for (const headers of [{ origin: 'http://localhost:3000' }, { 'sec-fetch-site': 'none' }, { host: `localhost:${sidecar.port}` }, { host: `[::1]:${sidecar.port}` }]) {
      t.is((await plain(`${sidecar.url}/whoami`, { headers })).status, 200, JSON.stringify(headers));
    }
    t.is(server.connections(), 1);
    const upgrade = await plain(`${sidecar.url}/ws`, { headers: { host: 'evil.example', connection: 'upgrade', upgrade: 'websocket' } });
    t.is(upgrade.status, 403);
  } finally {
    await sidecar.close();
    await server.close();
  }
  const any = createForwarder({ target: 'https://127.0.0.1:1', accept: 'any' });
  await any.close();
  t.throws(() => createForwarder({ target: 'https://127.0.0.1:1', accept: 'everyone' as never }), { instanceOf: TypeError });
});
