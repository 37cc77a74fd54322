import test from 'ava';
import { fetch } from 'undici';
import { TokenBindingDispatcher, tokbindFetch, type TokenBindingDispatcherOptions } from '../../src/client/dispatcher.js';
import { isReferredTokenBindingRequested } from '../../src/client/referred.js';
import { tokenBindingScope } from '../../src/client/scope.js';
import { base64urlEncode } from '../../src/codec/base64url.js';
import { isTokenBindingError } from '../../src/errors.js';
import { testCertificate } from '../_tls.js';
import { SSL_OP_NO_EXTENDED_MASTER_SECRET, startCheckingServer, type SeenRequest } from './_server.js';

function newDispatcher(t: { teardown(fn: () => Promise<void>): void }, options: TokenBindingDispatcherOptions = {}): TokenBindingDispatcher {
  const dispatcher = new TokenBindingDispatcher({ ...options, connect: { ca: testCertificate.ca, ...(options.connect as object) } });
  t.teardown(() => dispatcher.destroy());
  return dispatcher;
}

/** The TokenBindingError behind a rejected fetch ("fetch failed" carries it as its cause). */
function causeOf(err: unknown): unknown {
  let e = err;
  while (e instanceof Error && !isTokenBindingError(e) && e.cause !== undefined) e = e.cause;
  return e;
}

test('fetch: the first request on a new connection is bound, and so are the next ones on it', async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const dispatcher = newDispatcher(t);
  for (let i = 0; i < 3; i++) {
    const res = await fetch(server.url(`/r${i}`), { dispatcher });
    t.is(res.status, 200);
    await res.arrayBuffer();
  }
  t.deepEqual(
    server.seen.map((s) => [s.path, s.connection, s.indexOnConnection, s.valid, s.headerCount]),
    [
      ['/r0', 1, 0, true, 1],
      ['/r1', 1, 1, true, 1],
      ['/r2', 1, 2, true, 1],
    ],
  );
  const key = await dispatcher.binder.keyStore.getKey(tokenBindingScope('127.0.0.1'), 'ecdsap256');
  t.is(server.seen[0]!.provided, base64urlEncode(key!.id.raw));
});

test('fetch: 50 concurrent requests over 4 connections, each bound to the connection it travels on', async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const dispatcher = newDispatcher(t, { connections: 4 });
  const statuses = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const res = await fetch(server.url(`/c${i}`), { dispatcher, method: i % 5 === 0 ? 'POST' : 'GET', ...(i % 5 === 0 ? { body: `body ${i}` } : {}) });
      await res.arrayBuffer();
      return res.status;
    }),
  );
  t.true(statuses.every((s) => s === 200));
  t.is(server.seen.length, 50);
  t.true(server.seen.every((s) => s.valid && s.headerCount === 1));
  const connections = new Set(server.seen.map((s) => s.connection));
  t.true(connections.size >= 2 && connections.size <= 4, `connections: ${connections.size}`);
  t.is(server.seen.filter((s) => s.indexOnConnection === 0).length, connections.size);
  t.deepEqual(server.seen.filter((s) => s.method === 'POST').map((s) => s.body).sort(), Array.from({ length: 10 }, (_, i) => `body ${i * 5}`).sort());
});

test('fetch: a server that closes the connection after every response still gets bound requests', async (t) => {
  const server = await startCheckingServer({
    routes: {
      '/close': (_req, res, seen) => {
        res.writeHead(seen.valid ? 200 : 400, { connection: 'close' });
        res.end(JSON.stringify(seen));
      },
    },
  });
  t.teardown(() => server.close());
  const dispatcher = newDispatcher(t, { connections: 2 });
  const statuses = await Promise.all(
    Array.from({ length: 12 }, async () => {
      const res = await fetch(server.url('/close'), { dispatcher });
      await res.arrayBuffer();
      return res.status;
    }),
  );
  t.deepEqual(statuses, Array(12).fill(200));
  t.true(server.seen.every((s) => s.valid && s.indexOnConnection === 0));
  t.is(new Set(server.seen.map((s) => s.connection)).size, 12);
});

test("fetch: the caller's own Sec-Token-Binding header is replaced", async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const dispatcher = newDispatcher(t);
  const res = await fetch(server.url('/'), { dispatcher, headers: { 'sec-token-binding': 'AIkAAgBBQLgt', 'x-other': 'kept' } });
  t.is(res.status, 200);
  t.is(server.seen[0]!.headerCount, 1);
});

test('fetch: TLS 1.2 without Extended Master Secret is refused with ERR_TB_TLS_CONDITIONS', async (t) => {
  const server = await startCheckingServer({ tls: { maxVersion: 'TLSv1.2', secureOptions: SSL_OP_NO_EXTENDED_MASTER_SECRET } });
  t.teardown(() => server.close());
  const dispatcher = newDispatcher(t);
  const err = await t.throwsAsync(() => fetch(server.url('/'), { dispatcher }));
  t.true(isTokenBindingError(causeOf(err), 'ERR_TB_TLS_CONDITIONS'), String(causeOf(err)));
  t.is(server.seen.length, 0);
});

test('fetch: TLS 1.2 without EMS and optional: true goes out plain; TLS 1.2 with EMS is bound', async (t) => {
  const noEms = await startCheckingServer({ tls: { maxVersion: 'TLSv1.2', secureOptions: SSL_OP_NO_EXTENDED_MASTER_SECRET } });
  t.teardown(() => noEms.close());
  const ems = await startCheckingServer({ tls: { maxVersion: 'TLSv1.2' } });
  t.teardown(() => ems.close());
  const dispatcher = newDispatcher(t, { optional: true });
  t.is((await fetch(noEms.url('/'), { dispatcher })).status, 400);
  t.is(noEms.seen[0]!.headerCount, 0);
  // Connection: close makes every request a new connection, on a resumed TLS session.
  for (let i = 0; i < 3; i++) t.is((await fetch(ems.url('/'), { dispatcher, headers: { connection: 'close' } })).status, 200);
  t.true(ems.seen.every((s) => s.valid));
  t.is(new Set(ems.seen.map((s) => s.connection)).size, 3);
  t.true(ems.seen.slice(1).some((s) => s.resumed));
});

test('fetch: plain http is refused, or sent without the header when optional', async (t) => {
  const server = await startCheckingServer({ plain: true });
  t.teardown(() => server.close());
  const strict = newDispatcher(t);
  const err = await t.throwsAsync(() => fetch(server.url('/'), { dispatcher: strict }));
  t.true(isTokenBindingError(causeOf(err), 'ERR_TB_TLS_CONDITIONS'));
  t.is(server.seen.length, 0);
  const optional = newDispatcher(t, { optional: true });
  t.is((await fetch(server.url('/'), { dispatcher: optional })).status, 400);
  t.is(server.seen[0]!.headerCount, 0);
});

async function federation(includeHeader: string | null) {
  const target = await startCheckingServer({
    routes: {
      '/authorize': (_req, res) => {
        res.writeHead(302, { location: '/done' });
        res.end();
      },
    },
  });
  const rp = await startCheckingServer({
    routes: {
      '/login': (_req, res) => {
        res.writeHead(302, {
          location: target.url('/authorize', '127.0.0.1'),
          ...(includeHeader === null ? {} : { 'include-referred-token-binding-id': includeHeader }),
        });
        res.end();
      },
    },
  });
  return { target, rp, close: () => Promise.all([target.close(), rp.close()]).then(() => {}) };
}

test('tokbindFetch: the request after a redirect asking for it carries a referred binding, across two hosts', async (t) => {
  const { target, rp, close } = await federation('TRUE');
  t.teardown(close);
  const dispatcher = newDispatcher(t);
  const res = await tokbindFetch(rp.url('/login', 'localhost'), { dispatcher });
  t.is(res.status, 200);
  t.is(new URL(res.url).pathname, '/done');

  const login = rp.seen[0]!;
  const [authorize, done] = target.seen as [SeenRequest, SeenRequest];
  t.true(login.valid && authorize.valid && done.valid);
  // The referred ID is the one the client uses with the redirecting server (scope localhost),
  // signed over the new connection's EKM (the checking server verified every binding).
  t.is(authorize.referred, login.provided);
  t.not(authorize.provided, login.provided);
  const rpKey = await dispatcher.binder.keyStore.getKey('localhost', 'ecdsap256');
  t.is(login.provided, base64urlEncode(rpKey!.id.raw));
  // Only that one request.
  t.is(done.referred, null);
  t.is(done.provided, authorize.provided);
});

test('tokbindFetch: without Include-Referred-Token-Binding-ID: true no referred binding is sent', async (t) => {
  for (const header of [null, 'false', 'yes']) {
    const { target, close } = await federation(header);
    const dispatcher = new TokenBindingDispatcher({ connect: { ca: testCertificate.ca } });
    try {
      const res = await tokbindFetch(target.url('/authorize'), { dispatcher });
      t.is(res.status, 200);
      t.true(target.seen.every((s) => s.valid && s.referred === null), String(header));
    } finally {
      await dispatcher.destroy();
      await close();
    }
  }
});

test('fetch with referring(): the manual way to send one referred binding', async (t) => {
  const { target, rp, close } = await federation('true');
  t.teardown(close);
  const dispatcher = newDispatcher(t);
  const loginUrl = rp.url('/login', 'localhost');
  const first = await fetch(loginUrl, { dispatcher, redirect: 'manual' });
  t.true(isReferredTokenBindingRequested(first.status, first.headers));
  const second = await fetch(new URL(first.headers.get('location')!, loginUrl), { dispatcher: dispatcher.referring(loginUrl), redirect: 'manual' });
  t.is(second.status, 302);
  t.is(target.seen[0]!.referred, rp.seen[0]!.provided);
  t.true(target.seen[0]!.valid);
});

test('tokbindFetch: redirect rules — 303 turns POST into GET, 307 re-sends the body, limits apply', async (t) => {
  const server = await startCheckingServer({
    routes: {
      '/see-other': (_req, res) => {
        res.writeHead(303, { location: '/' });
        res.end();
      },
      '/temporary': (_req, res) => {
        res.writeHead(307, { location: '/' });
        res.end();
      },
      '/loop': (_req, res) => {
        res.writeHead(302, { location: '/loop' });
        res.end();
      },
    },
  });
  t.teardown(() => server.close());
  const dispatcher = newDispatcher(t);
  await (await tokbindFetch(server.url('/see-other'), { dispatcher, method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } })).arrayBuffer();
  t.deepEqual(server.seen.slice(-1).map((s) => [s.method, s.body]), [['GET', '']]);
  await (await tokbindFetch(server.url('/temporary'), { dispatcher, method: 'POST', body: 'again' })).arrayBuffer();
  t.deepEqual(server.seen.slice(-1).map((s) => [s.method, s.body]), [['POST', 'again']]);
  const err = await t.throwsAsync(() => tokbindFetch(server.url('/loop'), { dispatcher, maxRedirections: 3 }));
  t.true(isTokenBindingError(err, 'ERR_TB_CLIENT'));
  const manual = await tokbindFetch(server.url('/loop'), { dispatcher, redirect: 'manual' });
  t.is(manual.status, 302);
  t.true(server.seen.every((s) => s.valid));
});
