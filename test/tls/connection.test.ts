/**
 * Connection facts and the per-connection verification cache, on real TLS, HTTPS and HTTP/2
 * connections over 127.0.0.1.
 */
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import test from 'ava';
import { encodeTokenBindingExtension } from '../../src/codec/extension.js';
import { isTokenBindingError } from '../../src/errors.js';
import { parseClientHello } from '../../src/tls/client-hello.js';
import {
  acceptedKeyParameters,
  captureConnectionFacts,
  getConnectionFacts,
  getConnectionState,
  lookupVerification,
  rememberVerification,
  type ConnectionFacts,
  type ConnectionState,
} from '../../src/tls/connection.js';
import { inspectClientHellos } from '../../src/tls/inspect.js';
import { connectPair, listen, startTlsServer, testCertificate, type TestTlsServer } from '../_tls.js';
import { buildClientHello, captureNodeClientHello, spliceExtension } from './_hello.js';

let server: TestTlsServer;
test.before(async () => {
  server = await startTlsServer();
  // Each concurrent connectPair listens for its own 'secureConnection'.
  server.server.setMaxListeners(32);
});
test.after.always(() => server.close());

const ekmOf = (socket: TLSSocket) => socket.exportKeyingMaterial(32, 'EXPORTER-Token-Binding', undefined as unknown as Buffer);

test('captured once at secureConnection: eligible TLS 1.3 with the EKM and the configured key parameters', async (t) => {
  const { client, accepted } = await connectPair(server.server, server.port);
  const facts = captureConnectionFacts(accepted, { keyParameters: [2, 1] });
  t.like(facts, { protocol: 'TLSv1.3', extendedMasterSecret: true, eligible: true, clientHello: null, negotiatedKeyParameters: [2, 1] });
  t.false('ineligibleReason' in facts);
  t.deepEqual(Buffer.from(facts.ekm!), ekmOf(client));
  t.true(Object.isFrozen(facts));
  t.is(captureConnectionFacts(accepted, { keyParameters: [0] }), facts, 'a second capture returns the first');
  t.is(getConnectionFacts(accepted), facts);
  client.destroy();
});

test('TLS 1.2 without EMS: ineligible, nothing negotiated', async (t) => {
  const { client, accepted } = await connectPair(server.server, server.port, { maxVersion: 'TLSv1.2', secureOptions: 0x1 });
  const facts = captureConnectionFacts(accepted, { keyParameters: [2] });
  t.like(facts, { protocol: 'TLSv1.2', extendedMasterSecret: false, eligible: false, ineligibleReason: 'no-ems', negotiatedKeyParameters: [] });
  t.is(facts.ekm?.length, 32, 'the EKM is still taken');
  client.destroy();
});

test('the facts outlive the connection; nothing is computed after close', async (t) => {
  const { client, accepted } = await connectPair(server.server, server.port);
  const facts = captureConnectionFacts(accepted);
  t.is(facts.negotiatedKeyParameters, null, 'no configured list');
  const closed = new Promise((resolve) => accepted.once('close', resolve));
  client.destroy();
  await closed;
  t.is(getConnectionFacts(accepted), facts);

  const late = await connectPair(server.server, server.port);
  const lateClosed = new Promise((resolve) => late.accepted.once('close', resolve));
  late.client.destroy();
  await lateClosed;
  t.is(getConnectionFacts(late.accepted), null, 'never captured, now closed');
  t.is(getConnectionState(late.accepted), null);
});

test('misuse: TypeError', async (t) => {
  t.throws(() => captureConnectionFacts({} as TLSSocket), { instanceOf: TypeError });
  t.throws(() => getConnectionFacts(null as unknown as TLSSocket), { instanceOf: TypeError });
  const { client, accepted } = await connectPair(server.server, server.port);
  t.throws(() => captureConnectionFacts(accepted, { keyParameters: [256] }), { instanceOf: TypeError });
  t.throws(() => captureConnectionFacts(accepted, { maxDistinctMessages: 0 }), { instanceOf: TypeError });
  client.destroy();
});

test('an in-band offer is negotiated by RFC 8472 rules; no common parameter: none', async (t) => {
  const { message } = await captureNodeClientHello();
  const offer = (keyParameters: number[]) =>
    parseClientHello(spliceExtension(message, 24, encodeTokenBindingExtension({ version: { major: 1, minor: 0 }, keyParameters })));
  const cases: [number[], number[], number[]][] = [
    [[0, 1, 2], [2, 0], [2]], // the server's preference wins
    [[0, 1], [2, 0], [0]],
    [[1], [2, 0], []],
  ];
  for (const [offered, configured, expected] of cases) {
    const { client, accepted } = await connectPair(server.server, server.port);
    const facts = captureConnectionFacts(accepted, { clientHello: offer(offered), keyParameters: configured });
    t.deepEqual(facts.negotiatedKeyParameters, expected, `${offered} vs ${configured}`);
    t.deepEqual(facts.clientHello?.tokenBinding?.keyParameters, offered);
    client.destroy();
  }
});

test('TLS 1.2 in-band offer without renegotiation indication: not negotiated (RFC 8472 §5)', async (t) => {
  const { client, accepted } = await connectPair(server.server, server.port, { maxVersion: 'TLSv1.2' });
  const hello = parseClientHello(
    buildClientHello({ cipherSuites: [0xc02b], extensions: [[23, new Uint8Array(0)], [24, Uint8Array.of(1, 0, 1, 2)]] }),
  );
  const facts = captureConnectionFacts(accepted, { clientHello: hello, keyParameters: [2] });
  t.true(facts.eligible);
  t.deepEqual(facts.negotiatedKeyParameters, []);
  client.destroy();
});

test('verification cache: hits, a cap on distinct values, per connection', async (t) => {
  const one = await connectPair(server.server, server.port);
  const two = await connectPair(server.server, server.port);
  captureConnectionFacts(one.accepted, { maxDistinctMessages: 3 });
  const state = getConnectionState(one.accepted)!;
  t.is(state.maxDistinctMessages, 3);
  t.is(lookupVerification(state, 'a'), undefined);
  rememberVerification(state, 'a', { ok: 1 });
  rememberVerification(state, 'a', { ok: 2 });
  rememberVerification(state, 'b', false);
  rememberVerification(state, 'c', 'x');
  t.is(state.distinct, 3);
  t.deepEqual(lookupVerification(state, 'a'), { ok: 2 });
  t.is(lookupVerification(state, 'b'), false);
  const miss = t.throws(() => lookupVerification(state, 'd'));
  t.true(isTokenBindingError(miss, 'ERR_TB_TOO_MANY_MESSAGES'));
  const add = t.throws(() => rememberVerification(state, 'd', true));
  t.true(isTokenBindingError(add, 'ERR_TB_TOO_MANY_MESSAGES'));
  t.is(lookupVerification(state, 'c'), 'x', 'known values still hit after the cap');
  t.throws(() => rememberVerification(state, 'e', undefined), { instanceOf: TypeError });

  const other: ConnectionState = getConnectionState(two.accepted)!;
  t.not(other, state);
  t.is(other.maxDistinctMessages, 8, 'default cap');
  t.is(lookupVerification(other, 'a'), undefined, 'a message verified on one connection is unknown on another');
  one.client.destroy();
  two.client.destroy();
});

test('HTTPS keep-alive: computed lazily from req.socket, one record for every request', async (t) => {
  const seen: ConnectionFacts[] = [];
  const states: ConnectionState[] = [];
  const app = https.createServer({ key: testCertificate.key, cert: testCertificate.cert }, (req, res) => {
    seen.push(getConnectionFacts(req.socket as TLSSocket, { keyParameters: [2] })!);
    states.push(getConnectionState(req.socket as TLSSocket)!);
    res.end('ok');
  });
  const l = await listen(app);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: testCertificate.ca });
  const get = () =>
    new Promise<string>((resolve, reject) =>
      https.get({ host: '127.0.0.1', port: l.port, servername: 'localhost', agent }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d)).on('end', () => resolve(body));
      }).on('error', reject),
    );
  try {
    t.is(await get(), 'ok');
    t.is(await get(), 'ok');
    t.is(seen.length, 2);
    t.is(seen[0], seen[1]);
    t.is(states[0], states[1]);
    t.like(seen[0], { eligible: true, negotiatedKeyParameters: [2] });
  } finally {
    agent.destroy();
    await l.close();
  }
});

test('plain HTTP socket: no facts', async (t) => {
  let facts: ConnectionFacts | null | undefined;
  const app = http.createServer((req, res) => {
    facts = getConnectionFacts(req.socket as TLSSocket);
    res.end();
  });
  const l = await listen(app);
  try {
    await new Promise((resolve, reject) => http.get({ host: '127.0.0.1', port: l.port, agent: false }, resolve).on('error', reject));
    t.is(facts, null);
  } finally {
    await l.close();
  }
});

test('HTTP/2: the facts captured at secureConnection are found from session, session.socket (a Proxy) and every stream', async (t) => {
  const app = http2.createSecureServer({ key: testCertificate.key, cert: testCertificate.cert });
  let captured: ConnectionFacts | undefined;
  let real: TLSSocket | undefined;
  app.on('secureConnection', (socket: TLSSocket) => {
    real = socket;
    captured = captureConnectionFacts(socket, { keyParameters: [2] });
  });
  const fromStreams: unknown[] = [];
  const sessions: http2.Http2Session[] = [];
  app.on('stream', (stream) => {
    const session = stream.session!;
    sessions.push(session);
    fromStreams.push(session.socket, getConnectionFacts(session), getConnectionFacts(session.socket as TLSSocket), getConnectionState(session));
    stream.respond({ ':status': 200 });
    stream.end();
  });
  const l = await listen(app);
  const client = http2.connect(`https://localhost:${l.port}`, { ca: testCertificate.ca });
  client.on('error', () => {});
  try {
    for (let i = 0; i < 2; i++) {
      await new Promise<void>((resolve) => {
        const req = client.request({ ':path': '/' });
        req.on('data', () => {}).on('end', resolve);
        req.end();
      });
    }
    const [proxyA, viaSessionA, viaProxyA, stateA, proxyB, viaSessionB, viaProxyB, stateB] = fromStreams;
    t.not(proxyA, real, 'session.socket is not the TLSSocket');
    t.is(proxyA, proxyB, 'but it is stable across streams');
    for (const facts of [viaSessionA, viaProxyA, viaSessionB, viaProxyB]) t.is(facts, captured);
    t.is(stateA, stateB);
    t.deepEqual(Buffer.from(captured!.ekm!), ekmOf(client.socket as TLSSocket));
    const session = sessions[0]!;
    const closed = new Promise((resolve) => session.once('close', resolve));
    client.close();
    await closed;
    t.is(session.socket as unknown, undefined);
    t.throws(() => (proxyA as TLSSocket).getProtocol(), { code: 'ERR_HTTP2_SOCKET_UNBOUND' });
    t.is(getConnectionFacts(session), captured!, 'still found after the session closed');
    t.is(getConnectionFacts(proxyA as TLSSocket), captured!);
  } finally {
    client.close();
    await l.close();
  }
});

test('with inspectClientHellos the ClientHello is part of the facts', async (t) => {
  const inspected = await startTlsServer();
  inspectClientHellos(inspected.server);
  try {
    const { client, accepted } = await connectPair(inspected.server, inspected.port, { maxVersion: 'TLSv1.2' });
    const facts = captureConnectionFacts(accepted, { keyParameters: [2, 0] });
    t.like(facts.clientHello, { serverName: 'localhost', extendedMasterSecret: true, renegotiationIndication: true, tokenBinding: null });
    t.deepEqual(facts.negotiatedKeyParameters, [2, 0], 'no in-band offer: the configuration is the negotiation');
    client.destroy();
  } finally {
    await inspected.close();
  }
});

test('HTTP/2 compat API: req.socket, a different Proxy per request, finds the captured facts', async (t) => {
  let captured: ConnectionFacts | undefined;
  const seen: [unknown, ConnectionFacts | null][] = [];
  const app = http2.createSecureServer({ key: testCertificate.key, cert: testCertificate.cert }, (req, res) => {
    seen.push([req.socket, getConnectionFacts(req.socket as TLSSocket)]);
    res.end();
  });
  app.on('secureConnection', (socket: TLSSocket) => (captured = captureConnectionFacts(socket)));
  const l = await listen(app);
  const client = http2.connect(`https://localhost:${l.port}`, { ca: testCertificate.ca });
  client.on('error', () => {});
  try {
    for (let i = 0; i < 2; i++) {
      await new Promise<void>((resolve) => {
        const req = client.request({ ':path': '/' });
        req.on('data', () => {}).on('end', resolve);
        req.end();
      });
    }
    t.not(seen[0]![0], seen[1]![0]);
    t.is(seen[0]![1], captured!);
    t.is(seen[1]![1], captured!);
  } finally {
    client.close();
    await l.close();
  }
});

test("acceptedKeyParameters: each caller's list, narrowed by what the connection negotiated", async (t) => {
  const captured = await connectPair(server.server, server.port);
  const facts = captureConnectionFacts(captured.accepted, { keyParameters: [2, 1] });
  t.is(acceptedKeyParameters(facts, [2, 1, 0]), facts.negotiatedKeyParameters!, 'all of it accepted: the same array, no allocation');
  t.deepEqual(acceptedKeyParameters(facts, [2]), [2]);
  t.deepEqual(acceptedKeyParameters(facts, [1]), [1]);
  t.deepEqual(acceptedKeyParameters(facts, [0]), [], 'never more than was negotiated');

  // Facts taken lazily (no list): each caller's own, whoever came first.
  const lazy = await connectPair(server.server, server.port);
  const lazyFacts = getConnectionFacts(lazy.accepted)!;
  t.is(lazyFacts.negotiatedKeyParameters, null);
  const ec = [2];
  const pss = [1];
  t.is(acceptedKeyParameters(lazyFacts, ec), ec);
  t.is(acceptedKeyParameters(lazyFacts, pss), pss);
  t.deepEqual(getConnectionFacts(lazy.accepted, { keyParameters: [1] })!.negotiatedKeyParameters, null, 'a later caller cannot fix a list either');

  const ineligible = await connectPair(server.server, server.port, { maxVersion: 'TLSv1.2', secureOptions: 0x1 });
  t.deepEqual(acceptedKeyParameters(getConnectionFacts(ineligible.accepted)!, [2]), []);
  for (const pair of [captured, lazy, ineligible]) pair.client.destroy();
});

test('acceptedKeyParameters with an in-band offer on lazily taken facts: RFC 8472 selection per caller, remembered per list', async (t) => {
  const { message } = await captureNodeClientHello();
  const hello = parseClientHello(spliceExtension(message, 24, encodeTokenBindingExtension({ version: { major: 1, minor: 0 }, keyParameters: [1, 2] })));
  const { client, accepted } = await connectPair(server.server, server.port);
  const facts = captureConnectionFacts(accepted, { clientHello: hello });
  t.is(facts.negotiatedKeyParameters, null);
  const both = [2, 1];
  t.deepEqual(acceptedKeyParameters(facts, both), [2], "the caller's preference among the offer");
  t.is(acceptedKeyParameters(facts, both), acceptedKeyParameters(facts, both), 'remembered for the same list');
  t.deepEqual(acceptedKeyParameters(facts, [1]), [1]);
  t.deepEqual(acceptedKeyParameters(facts, [0]), [], 'not offered: none');
  // A caller passing a new list on every call is answered, never remembered without bound.
  for (let i = 0; i < 50; i++) t.deepEqual(acceptedKeyParameters(facts, [1, 2]), [1]);
  client.destroy();
});

test("per-caller distinct-message caps: the caller's own, never above the capturer's ceiling", async (t) => {
  const { client, accepted } = await connectPair(server.server, server.port);
  captureConnectionFacts(accepted, { maxDistinctMessages: 4 });
  const state = getConnectionState(accepted)!;
  rememberVerification(state, 'a', 1, 2);
  rememberVerification(state, 'b', 2, 2);
  t.true(isTokenBindingError(t.throws(() => lookupVerification(state, 'c', 2)), 'ERR_TB_TOO_MANY_MESSAGES'));
  t.true(isTokenBindingError(t.throws(() => rememberVerification(state, 'c', 3, 2)), 'ERR_TB_TOO_MANY_MESSAGES'));
  t.is(lookupVerification(state, 'c', 3), undefined, 'a caller with a higher cap may add more');
  rememberVerification(state, 'c', 3, 100);
  rememberVerification(state, 'd', 4, 100);
  const ceiling = t.throws(() => rememberVerification(state, 'e', 5, 100));
  t.true(isTokenBindingError(ceiling, 'ERR_TB_TOO_MANY_MESSAGES'));
  t.like((ceiling as { cause?: unknown }).cause, { expected: '<= 4' });
  t.is(lookupVerification(state, 'a', 1), 1, 'known values hit under any cap');

  // Lazily taken (middleware): no ceiling of its own, so each caller's cap is the one that counts.
  const lazy = await connectPair(server.server, server.port);
  const lazyState = getConnectionState(lazy.accepted, { maxDistinctMessages: Number.MAX_SAFE_INTEGER })!;
  for (let i = 0; i < 20; i++) rememberVerification(lazyState, `v${i}`, i, 20);
  t.true(isTokenBindingError(t.throws(() => lookupVerification(lazyState, 'w', 20)), 'ERR_TB_TOO_MANY_MESSAGES'));
  client.destroy();
  lazy.client.destroy();
});

test('the verification cache is a Map: header values named like Object.prototype members are plain keys', async (t) => {
  const { client, accepted } = await connectPair(server.server, server.port);
  const state = getConnectionState(accepted)!;
  const names = ['__proto__', 'constructor', 'hasOwnProperty', 'toString', 'valueOf', '__defineGetter__', 'prototype'];
  for (const name of names) t.is(lookupVerification(state, name), undefined, name);
  names.forEach((name, i) => rememberVerification(state, name, i, 100));
  names.forEach((name, i) => t.is(lookupVerification(state, name), i, name));
  t.is(state.distinct, names.length);
  t.is(Object.getPrototypeOf({}), Object.prototype);
  t.false(Object.prototype.hasOwnProperty.call(Object.prototype, '0'));
  client.destroy();
});
