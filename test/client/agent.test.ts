import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { TokenBindingAgent, type TokenBindingRequestOptions } from '../../src/client/agent.js';
import { FileKeyStore, MemoryKeyStore } from '../../src/client/keystore.js';
import { isReferredTokenBindingRequested } from '../../src/client/referred.js';
import { tokenBindingScope } from '../../src/client/scope.js';
import { base64urlDecode, base64urlEncode } from '../../src/codec/base64url.js';
import { isTokenBindingError } from '../../src/errors.js';
import { testCertificate } from '../_tls.js';
import { SSL_OP_NO_EXTENDED_MASTER_SECRET, startCheckingServer, type SeenRequest } from './_server.js';

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

function request(url: string, options: TokenBindingRequestOptions & { body?: string } = {}): Promise<Reply> {
  const { body, ...rest } = options;
  return new Promise((resolve, reject) => {
    const req = https.request(url, { ca: testCertificate.ca, ...rest } as https.RequestOptions, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function newAgent(options: ConstructorParameters<typeof TokenBindingAgent>[0] = {}): TokenBindingAgent {
  return new TokenBindingAgent({ ca: testCertificate.ca, ...options });
}

test('the first request on a new connection is bound, and so are the next ones on it', async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const agent = newAgent();
  t.teardown(() => agent.destroy());
  for (let i = 0; i < 3; i++) t.is((await request(server.url(`/r${i}`), { agent })).status, 200);
  t.deepEqual(
    server.seen.map((s) => [s.path, s.connection, s.indexOnConnection, s.valid, s.headerCount]),
    [
      ['/r0', 1, 0, true, 1],
      ['/r1', 1, 1, true, 1],
      ['/r2', 1, 2, true, 1],
    ],
  );
  const key = await agent.binder.keyStore.getKey(tokenBindingScope('127.0.0.1'), 'ecdsap256');
  t.is(server.seen[0]!.provided, base64urlEncode(key!.id.raw));
  t.true(server.seen.every((s) => s.referred === null));
});

test('50 concurrent requests over a pool of 4 sockets: every one bound to its own connection', async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const agent = newAgent({ maxSockets: 4 });
  t.teardown(() => agent.destroy());
  const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => request(server.url(`/c${i}`), { agent })));
  t.true(replies.every((r) => r.status === 200));
  t.is(server.seen.length, 50);
  t.true(server.seen.every((s) => s.valid && s.headerCount === 1));
  const connections = new Set(server.seen.map((s) => s.connection));
  t.true(connections.size >= 2 && connections.size <= 4, `connections: ${connections.size}`);
  // Each connection's first request was bound too (verified against that connection's EKM).
  t.is(server.seen.filter((s) => s.indexOnConnection === 0).length, connections.size);
  t.is(new Set(server.seen.map((s) => s.provided)).size, 1);
});

test('a body written after the request was created, and RSA-PSS keys, work', async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const agent = newAgent({ keyParameters: 'rsa2048_pss' });
  t.teardown(() => agent.destroy());
  const reply = await new Promise<Reply>((resolve, reject) => {
    const req = https.request(server.url('/post'), { agent, method: 'POST', ca: testCertificate.ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.flushHeaders();
    req.write('hello ');
    setImmediate(() => req.end('world'));
  });
  t.is(reply.status, 200);
  const seen = JSON.parse(reply.body) as SeenRequest;
  t.true(seen.valid);
  t.is(seen.body, 'hello world');
  t.is(base64urlDecode(seen.provided!)[0], 1); // key_parameters rsa2048_pss
});

test('a request queued for a socket applies backpressure: a piped upload waits instead of filling memory', async (t) => {
  let releaseSlow: () => void = () => {};
  const slowHeld = new Promise<void>((resolve) => (releaseSlow = resolve));
  let slowArrived: () => void = () => {};
  const arrived = new Promise<void>((resolve) => (slowArrived = resolve));
  const server = await startCheckingServer({
    routes: {
      '/slow': (_req, res, seen) => {
        slowArrived();
        void slowHeld.then(() => res.writeHead(seen.valid ? 200 : 400).end('slow'));
      },
    },
  });
  t.teardown(() => server.close());
  // One socket: the upload waits in the agent's queue until /slow has been answered.
  const agent = newAgent({ maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const slow = request(server.url('/slow'), { agent });
  // Awaited below; a failed assertion before then must not leave it unhandled.
  slow.catch(() => {});
  await arrived;

  const total = 4 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let produced = 0;
  const source = new Readable({
    read() {
      if (produced >= total) return void this.push(null);
      produced += chunk.length;
      this.push(chunk);
    },
  });
  const upload = new Promise<Reply>((resolve, reject) => {
    const req = https.request(server.url('/upload'), { agent, method: 'POST', ca: testCertificate.ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    source.pipe(req);
  });
  upload.catch(() => {});

  // Until /slow is answered the upload has no socket: the source must stall at about one
  // high-water mark (16 KiB) plus the stream's own buffer, not run to the end.
  let last = -1;
  for (let i = 0; i < 100 && produced !== last && produced < total; i++) {
    last = produced;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.true(produced < total, `the whole upload (${produced} bytes) was buffered while waiting for a socket`);
  t.true(produced <= 256 * 1024, `${produced} bytes produced before the request had a socket`);
  t.deepEqual(server.seen.map((s) => s.path), ['/slow']);

  releaseSlow();
  t.is((await slow).status, 200);
  const reply = await upload;
  t.is(reply.status, 200);
  const seen = JSON.parse(reply.body) as SeenRequest;
  t.true(seen.valid);
  t.is(seen.body.length, total);
  t.is(produced, total);
});

test("the caller's own Sec-Token-Binding header is replaced, never sent twice", async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const agent = newAgent();
  t.teardown(() => agent.destroy());
  const reply = await request(server.url('/'), { agent, headers: { 'Sec-Token-Binding': 'AIkAAgBBQLgt' } });
  t.is(reply.status, 200);
  t.is(server.seen[0]!.headerCount, 1);
  t.true(server.seen[0]!.valid);
});

test('headers given as an array cannot be bound: ERR_TB_CLIENT, nothing sent', async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const agent = newAgent();
  t.teardown(() => agent.destroy());
  const err = await t.throwsAsync(() => request(server.url('/'), { agent, headers: ['x-a', '1'] as unknown as Record<string, string> }));
  t.true(isTokenBindingError(err, 'ERR_TB_CLIENT'));
  t.is(server.seen.length, 0);
});

test('TLS 1.2 without Extended Master Secret is refused with ERR_TB_TLS_CONDITIONS', async (t) => {
  const server = await startCheckingServer({ tls: { maxVersion: 'TLSv1.2', secureOptions: SSL_OP_NO_EXTENDED_MASTER_SECRET } });
  t.teardown(() => server.close());
  const agent = newAgent();
  t.teardown(() => agent.destroy());
  const err = await t.throwsAsync(() => request(server.url('/'), { agent }));
  t.true(isTokenBindingError(err, 'ERR_TB_TLS_CONDITIONS'), String(err));
  t.is(server.seen.length, 0);
});

test('TLS 1.2 without EMS and optional: true: the request goes out plain', async (t) => {
  const server = await startCheckingServer({ tls: { maxVersion: 'TLSv1.2', secureOptions: SSL_OP_NO_EXTENDED_MASTER_SECRET } });
  t.teardown(() => server.close());
  const agent = newAgent({ optional: true });
  t.teardown(() => agent.destroy());
  t.is((await request(server.url('/'), { agent })).status, 400);
  t.is(server.seen.length, 1);
  t.is(server.seen[0]!.headerCount, 0);
});

test('TLS 1.2 with EMS is bound, on resumed sessions too', async (t) => {
  const server = await startCheckingServer({ tls: { maxVersion: 'TLSv1.2' } });
  t.teardown(() => server.close());
  // No keep-alive: every request opens a connection, and the agent resumes its TLS session.
  const agent = newAgent({ keepAlive: false });
  t.teardown(() => agent.destroy());
  for (let i = 0; i < 3; i++) t.is((await request(server.url('/'), { agent })).status, 200);
  t.is(new Set(server.seen.map((s) => s.connection)).size, 3);
  t.true(server.seen.every((s) => s.valid));
  t.true(server.seen.slice(1).some((s) => s.resumed));
});

test('a corrupt key store fails the request with ERR_TB_KEY_STORE; an untrusted certificate with its TLS error', async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-agent-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'keys.json');
  await writeFile(path, '[]', { mode: 0o600 });
  const broken = newAgent({ keyStore: new FileKeyStore(path) });
  t.teardown(() => broken.destroy());
  t.true(isTokenBindingError(await t.throwsAsync(() => request(server.url('/'), { agent: broken })), 'ERR_TB_KEY_STORE'));
  const untrusting = new TokenBindingAgent();
  t.teardown(() => untrusting.destroy());
  const err = await t.throwsAsync(() => request(server.url('/'), { agent: untrusting, ca: undefined }));
  t.is((err as NodeJS.ErrnoException).code, 'DEPTH_ZERO_SELF_SIGNED_CERT');
  t.is(server.seen.length, 0);
});

test('referred binding across two hosts: only the request after the redirect carries it', async (t) => {
  const target = await startCheckingServer({
    routes: {
      '/authorize': (_req, res, seen) => {
        res.writeHead(302, { location: '/done' });
        res.end(JSON.stringify(seen));
      },
    },
  });
  t.teardown(() => target.close());
  const rp = await startCheckingServer({
    routes: {
      '/login': (_req, res) => {
        res.writeHead(302, { location: target.url('/authorize', '127.0.0.1'), 'include-referred-token-binding-id': 'True' });
        res.end();
      },
    },
  });
  t.teardown(() => rp.close());
  const agent = newAgent({ keyStore: new MemoryKeyStore() });
  t.teardown(() => agent.destroy());

  // node:https follows no redirects: the caller does, with the documented per-request option.
  const first = await request(rp.url('/login', 'localhost'), { agent });
  t.true(isReferredTokenBindingRequested(first.status, first.headers));
  const next = new URL(first.headers.location!, rp.url('/login', 'localhost'));
  const second = await request(next.href, { agent, referredTokenBinding: rp.url('/login', 'localhost') });
  t.is(second.status, 302);
  t.false(isReferredTokenBindingRequested(second.status, second.headers));
  await request(new URL(second.headers.location!, next).href, { agent });

  const rpSeen = rp.seen[0]!;
  const [authorize, done] = target.seen;
  t.true(rpSeen.valid && authorize!.valid && done!.valid);
  t.is(authorize!.referred, rpSeen.provided);
  t.not(authorize!.provided, rpSeen.provided);
  t.is(done!.referred, null);
  t.is(done!.provided, authorize!.provided);
});
