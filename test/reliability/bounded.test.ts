/**
 * Bounded work per client (issue 7), on a running `createServer`:
 * - a client that sends a new message on every request gets at most `maxDistinctMessages`
 *   verifications per connection, then `ERR_TB_TOO_MANY_MESSAGES` (counted twice: signature
 *   checks through a counting backend, verifications through the `tokbind:verify` channel);
 * - the header cap holds before decoding (junk over the cap costs no decoding and no signature);
 * - per-connection state is released when connections close: 10,000 connections opened and closed
 *   (TLS 1.2 with session resumption — the handshake is not what is measured, the state is; every
 *   tenth sends a Token Binding request so the verification cache is populated), then every
 *   server-side TLS socket, its connection facts (EKM) and its verification cache must be
 *   garbage-collected (FinalizationRegistry after forced GCs), heap growth bounded, no server-side
 *   connection left;
 * - memory per connection (issue 11, item 4): distinct over-cap values are not kept — the
 *   verification cache holds at most maxDistinctMessages values of at most maxHeaderLength
 *   characters whatever the client sends (measured as the cache's entries and key lengths on
 *   every server-side connection);
 * - signature work per connection (issue 11, item 5): bindings of other types multiply signature
 *   checks no more than maxSignaturesPerMessage per message and maxSignaturesPerConnection per
 *   connection (counted by a counting backend wrapping the real one).
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { once } from 'node:events';
import tls from 'node:tls';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import test from 'ava';
import type { VerificationBackend } from '../../src/crypto/backend.js';
import { nodeBackend } from '../../src/crypto/node-backend.js';
import { generateTokenBindingKey, type TokenBindingKey } from '../../src/crypto/sign.js';
import type { VerifyEvent } from '../../src/http/metrics.js';
import { DEFAULT_MAX_SIGNATURES_PER_CONNECTION, DEFAULT_MAX_SIGNATURES_PER_MESSAGE } from '../../src/http/options.js';
import { DEFAULT_MAX_HEADER_LENGTH } from '../../src/codec/header.js';
import { DEFAULT_MAX_DISTINCT_MESSAGES, getConnectionFacts, getConnectionState, type ConnectionState } from '../../src/tls/connection.js';
import { printSummary } from '../fuzz/_fuzz.js';
import { testCertificate } from '../_tls.js';
import { RawHttpConnection, ekmOf, sleep, within, type RawResponse } from './_net.js';
import { startServer } from './_server.js';
import { headerOf, encodeWire, signedBinding, validHeader } from './_tb.js';

/** A backend that counts the signatures it is asked to check. */
function countingBackend(): VerificationBackend & { calls: number } {
  const backend = {
    name: 'counting',
    calls: 0,
    verify(...args: Parameters<VerificationBackend['verify']>): boolean {
      backend.calls++;
      return nodeBackend.verify(...args);
    },
  };
  return backend;
}

const events: VerifyEvent[] = [];
const onVerify = (message: unknown): void => {
  events.push(message as VerifyEvent);
};
diagnosticsChannel.subscribe('tokbind:verify', onVerify);
test.after.always(() => diagnosticsChannel.unsubscribe('tokbind:verify', onVerify));

const code = (res: RawResponse): string => (JSON.parse(res.body) as { code: string }).code;
const summary: Record<string, number> = {};

test.serial('a new message on every request: verified at most maxDistinctMessages times per connection', async (t) => {
  const backend = countingBackend();
  const srv = await startServer({ backend });
  try {
    const connection = await RawHttpConnection.open(srv.port);
    const key = generateTokenBindingKey();
    events.length = 0;
    const statuses: string[] = [];
    const requests = 200;
    for (let i = 0; i < requests; i++) {
      // ECDSA signatures are randomized: a fresh signature is a new, valid message every time.
      const res = await connection.request([['Sec-Token-Binding', validHeader(key, connection.ekm)]]);
      statuses.push(res.status === 200 ? '200' : code(res));
    }
    t.deepEqual(statuses.slice(0, 8), Array(8).fill('200'), 'the default cap is 8');
    t.deepEqual(new Set(statuses.slice(8)), new Set(['ERR_TB_TOO_MANY_MESSAGES']));
    t.is(backend.calls, 8, 'signature checks');
    const verifications = events.filter((e) => !e.cached && e.code !== 'ERR_TB_TOO_MANY_MESSAGES');
    t.is(verifications.length, 8, 'verifications seen on tokbind:verify');
    t.is(events.length, requests, 'every request published');

    // Invalid messages take slots too (a flood of garbage is no cheaper to bound than valid ones).
    const second = await RawHttpConnection.open(srv.port);
    const before = backend.calls;
    for (let i = 0; i < 100; i++) {
      const bad = signedBinding(key, 0, second.ekm);
      bad.signature[i % 64]! ^= 1;
      await second.request([['Sec-Token-Binding', headerOf(encodeWire([bad]).bytes)]]);
    }
    t.is(backend.calls - before, 8, 'a flood of distinct bad signatures: 8 checks');

    // A repeat of a known value is answered from the connection's cache: no new check.
    const third = await RawHttpConnection.open(srv.port);
    const header = validHeader(key, third.ekm);
    const before3 = backend.calls;
    for (let i = 0; i < 100; i++) t.is((await third.request([['Sec-Token-Binding', header]])).status, 200);
    t.is(backend.calls - before3, 1);
    summary['cap: requests'] = requests + 200;
    summary['cap: signature checks'] = backend.calls;
    await Promise.all([connection.close(), second.close(), third.close()]);
  } finally {
    await srv.close();
  }
});

test.serial('the header cap holds before decoding: junk over the cap costs no decode and no signature', async (t) => {
  const backend = countingBackend();
  const srv = await startServer({ backend, maxHeaderLength: 300, maxDistinctMessages: 1000 });
  try {
    const connection = await RawHttpConnection.open(srv.port);
    for (const value of ['A'.repeat(301), '!'.repeat(5000), '='.repeat(301), validHeader(generateTokenBindingKey('rsa2048_pss'), connection.ekm)]) {
      const res = await connection.request([['Sec-Token-Binding', value]]);
      t.is(code(res), 'ERR_TB_HEADER_TOO_LARGE');
    }
    t.is(backend.calls, 0);
    await connection.close();
  } finally {
    await srv.close();
  }
});

/** What a connection's verification cache holds: entries and characters of the values kept. */
function retained(state: ConnectionState): { entries: number; characters: number } {
  let characters = state.lastHeader?.length ?? 0;
  for (const value of state.verified.keys()) characters += value.length;
  return { entries: state.verified.size, characters };
}

/** The documented bound of one connection's cache: maxDistinctMessages values of at most maxHeaderLength characters (+ the last one looked up). */
const CACHE_BOUND_CHARACTERS = (DEFAULT_MAX_DISTINCT_MESSAGES + 1) * DEFAULT_MAX_HEADER_LENGTH;

test.serial('distinct over-cap values on many connections: nothing kept; every cache within its documented bound', async (t) => {
  const backend = countingBackend();
  const srv = await startServer({ backend });
  const states: ConnectionState[] = [];
  srv.server.on('secureConnection', (socket: tls.TLSSocket) => {
    const state = getConnectionState(socket);
    if (state !== null) states.push(state);
  });
  try {
    const key = generateTokenBindingKey();
    const connections = await Promise.all(Array.from({ length: 50 }, () => RawHttpConnection.open(srv.port)));
    const codes = new Set<string>();
    await Promise.all(
      connections.map(async (connection, c) => {
        // 8 distinct 15,000-character values (the case: 134 KiB kept per connection), then 12 more.
        for (let i = 0; i < 20; i++) {
          const value = `${String(c).padStart(3, '0')}${String(i).padStart(3, '0')}`.padEnd(15_000, 'A');
          codes.add(code(await connection.request([['Sec-Token-Binding', value]])));
        }
        // A valid message still works after them: over-cap values took no slot.
        t.is((await connection.request([['Sec-Token-Binding', validHeader(key, connection.ekm)]])).status, 200);
        for (let i = 0; i < 5; i++) codes.add(code(await connection.request([['Sec-Token-Binding', `!${i}`.repeat(2000)]])));
      }),
    );
    t.deepEqual([...codes].sort(), ['ERR_TB_HEADER_ENCODING', 'ERR_TB_HEADER_TOO_LARGE']);
    t.is(states.length, 50);
    let total = 0;
    for (const state of states) {
      const { entries, characters } = retained(state);
      t.is(entries, 1, 'only the verified value is kept');
      t.true(characters <= CACHE_BOUND_CHARACTERS, `${characters} characters kept`);
      total += characters;
    }
    t.is(backend.calls, 50, 'one signature check per connection');
    summary['over-cap: connections'] = 50;
    summary['over-cap: 15,000-char values sent'] = 50 * 20;
    summary['over-cap: characters kept, all connections'] = total;
    await Promise.all(connections.map((c) => c.close()));
  } finally {
    await srv.close();
  }
});

test.serial('however large the messages, each cached value is at most maxHeaderLength characters', async (t) => {
  const srv = await startServer({ maxDistinctMessages: 1000, maxSignaturesPerConnection: 10_000 });
  let state: ConnectionState | null = null;
  srv.server.once('secureConnection', (socket: tls.TLSSocket) => (state = getConnectionState(socket)));
  try {
    const connection = await RawHttpConnection.open(srv.port);
    const key = generateTokenBindingKey();
    // Largest valid messages: provided + 3 others, padded with unsigned extension bytes up to the cap.
    for (let i = 0; i < 40; i++) {
      const pad = (n: number): { type: number; data: Uint8Array }[] => [{ type: i, data: new Uint8Array(n).fill(i) }];
      const bindings = [signedBinding(key, 0, connection.ekm, pad(2000)), ...[2, 3, 4].map((type) => signedBinding(key, type, connection.ekm))];
      const value = headerOf(encodeWire(bindings).bytes);
      t.true(value.length <= DEFAULT_MAX_HEADER_LENGTH && value.length > 3000);
      t.is((await connection.request([['Sec-Token-Binding', value]])).status, 200);
    }
    const { entries, characters } = retained(state!);
    t.is(entries, 40);
    t.true(characters <= (entries + 1) * DEFAULT_MAX_HEADER_LENGTH, `${characters} characters for ${entries} values`);
    await connection.close();
  } finally {
    await srv.close();
  }
});

test.serial('bindings of other types: at most maxSignaturesPerMessage checks per message, maxSignaturesPerConnection per connection', async (t) => {
  const backend = countingBackend();
  const srv = await startServer({ backend });
  try {
    const key = generateTokenBindingKey();
    // The case: ~21 correctly signed others fit under the header cap; 8 distinct messages
    // from one set of signatures by varying unsigned extension bytes: 176 checks before the fix.
    const connection = await RawHttpConnection.open(srv.port);
    const others = Array.from({ length: 20 }, (_, i) => signedBinding(key, 2 + i, connection.ekm));
    const provided = signedBinding(key, 0, connection.ekm);
    const many: string[] = [];
    for (let i = 0; i < 8; i++) {
      const value = headerOf(encodeWire([{ ...provided, extensions: [{ type: 1, data: Uint8Array.of(i) }] }, ...others]).bytes);
      t.true(value.length <= DEFAULT_MAX_HEADER_LENGTH);
      many.push(code(await connection.request([['Sec-Token-Binding', value]])));
    }
    t.deepEqual(new Set(many), new Set(['ERR_TB_TOO_MANY_BINDINGS']));
    t.is(backend.calls, 0, 'refused before any signature check');

    // Within the per-message cap (provided + 3 others = 4 checks), distinct by extension bytes:
    // the connection's budget (16) is spent after 4 messages.
    const second = await RawHttpConnection.open(srv.port);
    const three = [2, 3, 4].map((type) => signedBinding(key, type, second.ekm));
    const p2 = signedBinding(key, 0, second.ekm);
    const outcomes: string[] = [];
    for (let i = 0; i < 8; i++) {
      const value = headerOf(encodeWire([{ ...p2, extensions: [{ type: 1, data: Uint8Array.of(i) }] }, ...three]).bytes);
      const res = await second.request([['Sec-Token-Binding', value]]);
      outcomes.push(res.status === 200 ? '200' : code(res));
    }
    t.deepEqual(outcomes, [...Array(4).fill('200'), ...Array(4).fill('ERR_TB_SIGNATURE_BUDGET')]);
    t.is(backend.calls, DEFAULT_MAX_SIGNATURES_PER_CONNECTION, 'the budget, not 8 x 4');
    // Known values are still answered from the cache once the budget is spent.
    const again = headerOf(encodeWire([{ ...p2, extensions: [{ type: 1, data: Uint8Array.of(0) }] }, ...three]).bytes);
    t.is((await second.request([['Sec-Token-Binding', again]])).status, 200);
    t.is(backend.calls, DEFAULT_MAX_SIGNATURES_PER_CONNECTION);
    t.is(DEFAULT_MAX_SIGNATURES_PER_MESSAGE, 4);
    summary['others: signature checks, 16 messages on 2 connections'] = backend.calls;
    await Promise.all([connection.close(), second.close()]);
  } finally {
    await srv.close();
  }
});

/** `gc()` without --expose-gc: works under a plain `npm test`. */
function obtainGc(): () => void {
  v8.setFlagsFromString('--expose_gc');
  return runInNewContext('gc') as () => void;
}

async function collect(gc: () => void): Promise<void> {
  for (let i = 0; i < 6; i++) {
    gc();
    await sleep(10);
  }
}

test.serial('10,000 connections opened and closed: every connection\'s state is released', async (t) => {
  const gc = obtainGc();
  t.is(typeof gc, 'function');
  const srv = await startServer({ inspectClientHello: true });
  let finalized = 0;
  let registered = 0;
  const registry = new FinalizationRegistry<string>(() => {
    finalized++;
  });
  srv.server.on('secureConnection', (socket: tls.TLSSocket) => {
    // The server captured these first (prependListener); here we only watch them die.
    const facts = getConnectionFacts(socket);
    const state = getConnectionState(socket);
    if (facts === null || state === null) return;
    registry.register(socket, 'socket');
    registry.register(facts, 'facts');
    registry.register(state, 'state');
    registered += 3;
  });

  const keys: TokenBindingKey[] = Array.from({ length: 10 }, () => generateTokenBindingKey());
  let session: Buffer | undefined;
  let resumed = 0;
  let requests = 0;
  let accepted = 0;
  const open = async (i: number): Promise<void> => {
    const socket = tls.connect({ host: '127.0.0.1', port: srv.port, servername: 'localhost', ca: testCertificate.ca, maxVersion: 'TLSv1.2', session });
    socket.on('session', (s: Buffer) => {
      session ??= s;
    });
    socket.on('error', () => {});
    await once(socket, 'secureConnect');
    if (socket.isSessionReused()) resumed++;
    if (i % 10 === 0) {
      requests++;
      const header = validHeader(keys[i % keys.length]!, ekmOf(socket));
      socket.write(`GET / HTTP/1.1\r\nHost: localhost\r\nSec-Token-Binding: ${header}\r\nConnection: close\r\n\r\n`);
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString()));
      await once(socket, 'end');
      if (text.startsWith('HTTP/1.1 200')) accepted++;
    } else {
      socket.end();
      socket.resume();
    }
    await once(socket, 'close');
  };

  const total = Number(process.env.TOKBIND_TEST_CONNECTIONS ?? 10_000);
  const warmup = total / 10;
  const parallel = 16;
  // One full handshake first: every later connection resumes its session.
  await open(0);
  let next = 1;
  const run = (until: number): Promise<void[]> =>
    Promise.all(
      Array.from({ length: parallel }, async () => {
        while (next < until) await open(next++);
      }),
    );
  await within(run(warmup), 60_000, 'warm-up connections');
  await collect(gc);
  const heapAfterWarmup = process.memoryUsage().heapUsed;
  await within(run(total), 120_000, '10,000 connections');
  // Node closes the server side a moment after the client's close.
  await within(
    (async () => {
      while ((await new Promise<number>((resolve) => srv.server.getConnections((_, n) => resolve(n)))) > 0) await sleep(20);
    })(),
    10_000,
    'server-side connections closed',
  );
  await collect(gc);
  await sleep(50);
  await collect(gc);
  const growth = process.memoryUsage().heapUsed - heapAfterWarmup;

  t.is(next, total);
  t.is(resumed, total - 1);
  t.is(accepted, requests, 'every Token Binding request on the way was accepted');
  t.is(registered, 3 * total);
  // Everything the server kept per connection is collectable once the connection is gone.
  // Slack for the last few connections, which Node may still reference for a moment; a leak is thousands.
  t.true(finalized >= registered - 3 * 10, `finalized ${finalized} of ${registered}`);
  // Loose: 9,000 connections leaking even 300 bytes each would show as 2.7 MB.
  t.true(growth < 2.5 * 1024 * 1024, `heap grew ${growth} bytes`);
  summary['connections opened and closed'] = total;
  summary['resumed'] = resumed;
  summary['TB requests on them'] = requests;
  summary['state objects registered'] = registered;
  summary['state objects collected'] = finalized;
  summary['heap growth KiB'] = Math.round(growth / 1024);
  await srv.close();
  printSummary('bounded work per client', summary);
});
