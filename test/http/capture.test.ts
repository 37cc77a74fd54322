/**
 * A tokbind server takes each connection's facts with a shorter capture than
 * `captureConnectionFacts` when it reads no ClientHellos (tls/connection.ts
 * `captureServerConnection`). These pin that both give the same facts and the same cache, on real
 * TLS over 127.0.0.1, and that every other connection still goes the long way.
 */
import type { TLSSocket } from 'node:tls';
import test from 'ava';
import { createServer } from '../../src/http/server.js';
import { resolveTokenBindingOptions } from '../../src/http/options.js';
import { captureConnectionFacts, getConnectionContext, getConnectionFacts, type ConnectionFacts } from '../../src/tls/connection.js';
import { inspectClientHellos } from '../../src/tls/inspect.js';
import { connectPair, listen, startTlsServer, testCertificate } from '../_tls.js';

const ekmOf = (socket: TLSSocket) => socket.exportKeyingMaterial(32, 'EXPORTER-Token-Binding', undefined as unknown as Buffer);
const withoutEkm = (facts: ConnectionFacts) => ({ ...facts, ekm: null });

async function tokbindServer(tokenBinding = {}, before?: (server: ReturnType<typeof createServer>) => void) {
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert, tokenBinding });
  before?.(server);
  server.on('tlsClientError', () => {});
  const listening = await listen(server);
  return { server, ...listening };
}

test('TLS 1.3: the same facts as captureConnectionFacts, found from the socket and its TCP parent, with the same cache', async (t) => {
  const keyParameters = ['ecdsap256', 'rsa2048_pss'] as const;
  const resolved = resolveTokenBindingOptions({ keyParameters: [...keyParameters], maxDistinctMessages: 3 });
  const served = await tokbindServer({ keyParameters: [...keyParameters], maxDistinctMessages: 3 });
  const plain = await startTlsServer();
  try {
    const fast = await connectPair(served.server, served.port);
    const slow = await connectPair(plain.server, plain.port);
    const facts = getConnectionFacts(fast.accepted)!;
    const reference = captureConnectionFacts(slow.accepted, { keyParameters: resolved.keyParameters, maxDistinctMessages: 3 });
    t.deepEqual(withoutEkm(facts), withoutEkm(reference));
    t.deepEqual(Object.keys(facts), Object.keys(reference), 'the same fields in the same order');
    t.deepEqual(Buffer.from(facts.ekm!), ekmOf(fast.client));
    t.true(Object.isFrozen(facts));
    t.deepEqual(facts.negotiatedKeyParameters, [2, 1]);
    t.true(Object.isFrozen(facts.negotiatedKeyParameters));
    t.is(captureConnectionFacts(fast.accepted, { keyParameters: [0] }), facts, 'a later capture returns the first');
    const parent = (fast.accepted as unknown as { _parent: object })._parent;
    t.is(getConnectionContext(parent as TLSSocket), getConnectionContext(fast.accepted), 'one record for the socket and its parent');
    const { state } = getConnectionContext(fast.accepted)!;
    const { state: referenceState } = getConnectionContext(slow.accepted)!;
    t.deepEqual(state, referenceState);
    t.is(state.maxDistinctMessages, 3);
    fast.client.destroy();
    slow.client.destroy();
  } finally {
    await served.close();
    await plain.close();
  }
});

test('TLS 1.2 and a server inspecting ClientHellos (by option or installed separately) take the long way: the offer is seen', async (t) => {
  const twelve = await tokbindServer();
  const inspectingByOption = await tokbindServer({ inspectClientHello: true });
  const inspectingApart = await tokbindServer({}, (server) => inspectClientHellos(server));
  try {
    const old = await connectPair(twelve.server, twelve.port, { maxVersion: 'TLSv1.2' });
    t.like(getConnectionFacts(old.accepted), { protocol: 'TLSv1.2', extendedMasterSecret: true, eligible: true });
    old.client.destroy();
    for (const served of [inspectingByOption, inspectingApart]) {
      const pair = await connectPair(served.server, served.port);
      const facts = getConnectionFacts(pair.accepted)!;
      t.not(facts.clientHello, null, 'the ClientHello read for this connection is in its facts');
      t.like(facts, { protocol: 'TLSv1.3', eligible: true });
      pair.client.destroy();
    }
  } finally {
    await twelve.close();
    await inspectingByOption.close();
    await inspectingApart.close();
  }
});
