/**
 * verifyTokenBindingHeader with several callers' options on ONE connection context (the class
 * "per-caller options"): the accepted key parameters are each caller's, narrowed by the
 * connection's negotiation; the distinct-message cap is each caller's under the connection's
 * ceiling; the cache keeps one verdict per configuration so callers never evict each other's;
 * every option that shapes a verdict (keyParameters, maxHeaderLength, backend) is the caller's.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import type { VerificationBackend } from '../../src/crypto/backend.js';
import { nodeBackend } from '../../src/crypto/node-backend.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { TokenBindingError, type TokenBindingErrorCode } from '../../src/errors.js';
import { resolveTokenBindingOptions, type TokenBindingVerifyOptions } from '../../src/http/options.js';
import { verifyTokenBindingHeader, type TokenBindingConnectionContext } from '../../src/http/verify.js';
import type { ConnectionFacts, ConnectionState } from '../../src/tls/connection.js';

const ekm = new Uint8Array(randomBytes(32));
const ec = generateTokenBindingKey('ecdsap256');
const pss = generateTokenBindingKey('rsa2048_pss');
const ecHeader = createSecTokenBindingHeader({ provided: ec, ekm });
const pssHeader = createSecTokenBindingHeader({ provided: pss, ekm });

function connection(negotiatedKeyParameters: readonly number[] | null, maxDistinctMessages = Number.MAX_SAFE_INTEGER): TokenBindingConnectionContext {
  const facts: ConnectionFacts = { protocol: 'TLSv1.3', extendedMasterSecret: true, ekm, eligible: true, clientHello: null, negotiatedKeyParameters };
  const state: ConnectionState = { verified: new Map(), distinct: 0, maxDistinctMessages };
  return { facts, state };
}

function counting(): VerificationBackend & { calls: number } {
  const backend = {
    name: 'counting',
    calls: 0,
    verify: (...args: Parameters<VerificationBackend['verify']>) => {
      backend.calls++;
      return nodeBackend.verify(...args);
    },
  };
  return backend;
}

function code(t: import('ava').ExecutionContext, fn: () => unknown, expected: TokenBindingErrorCode): void {
  const err = t.throws(fn, { instanceOf: TokenBindingError });
  t.is(err?.code, expected);
}

test('key parameters: lazily taken facts (no list) apply each caller its own, in any order', (t) => {
  const conn = connection(null);
  const ecOnly = resolveTokenBindingOptions({ keyParameters: ['ecdsap256'] });
  const pssOnly = resolveTokenBindingOptions({ keyParameters: ['rsa2048_pss'] });
  for (let round = 0; round < 2; round++) {
    t.is(verifyTokenBindingHeader(ecHeader, conn, ecOnly)!.provided.keyParameters, 'ecdsap256');
    t.is(verifyTokenBindingHeader(pssHeader, conn, pssOnly)!.provided.keyParameters, 'rsa2048_pss');
    code(t, () => verifyTokenBindingHeader(pssHeader, conn, ecOnly), 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
    code(t, () => verifyTokenBindingHeader(ecHeader, conn, pssOnly), 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
  }
});

test("key parameters: a server's negotiated list is narrowed by the caller, never widened", (t) => {
  const conn = connection([2, 1]);
  t.not(verifyTokenBindingHeader(pssHeader, conn, { keyParameters: ['ecdsap256', 'rsa2048_pss'] }), null);
  code(t, () => verifyTokenBindingHeader(pssHeader, conn, { keyParameters: ['ecdsap256'] }), 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
  const ecOnlyConn = connection([2]);
  code(t, () => verifyTokenBindingHeader(pssHeader, ecOnlyConn, { keyParameters: ['rsa2048_pss', 'ecdsap256'] }), 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
  code(t, () => verifyTokenBindingHeader(ecHeader, ecOnlyConn, { keyParameters: ['rsa2048_pss'] }), 'ERR_TB_NOT_NEGOTIATED');
});

test('maxDistinctMessages: each caller its own cap on the shared count, under the connection ceiling', (t) => {
  const values = Array.from({ length: 6 }, () => createSecTokenBindingHeader({ provided: generateTokenBindingKey(), ekm }));
  const conn = connection(null);
  const big = { maxDistinctMessages: 5 };
  const small = { maxDistinctMessages: 2 };
  verifyTokenBindingHeader(values[0], conn, big);
  verifyTokenBindingHeader(values[1], conn, small);
  code(t, () => verifyTokenBindingHeader(values[2], conn, small), 'ERR_TB_TOO_MANY_MESSAGES');
  t.not(verifyTokenBindingHeader(values[0], conn, small), null, 'a known value is a hit under any cap');
  for (const v of values.slice(2, 5)) t.not(verifyTokenBindingHeader(v, conn, big), null);
  code(t, () => verifyTokenBindingHeader(values[5], conn, big), 'ERR_TB_TOO_MANY_MESSAGES');

  const ceiling = connection(null, 2);
  verifyTokenBindingHeader(values[0], ceiling, big);
  verifyTokenBindingHeader(values[1], ceiling, big);
  code(t, () => verifyTokenBindingHeader(values[2], ceiling, big), 'ERR_TB_TOO_MANY_MESSAGES');
});

test('maxHeaderLength and backend are the caller’s, also for a value another caller verified', (t) => {
  const conn = connection(null);
  t.not(verifyTokenBindingHeader(ecHeader, conn, {}), null);
  code(t, () => verifyTokenBindingHeader(ecHeader, conn, { maxHeaderLength: 64 }), 'ERR_TB_HEADER_TOO_LARGE');
  const backend = counting();
  t.not(verifyTokenBindingHeader(ecHeader, conn, { backend }), null);
  t.is(backend.calls, 1, "the caller's backend verified, not the first caller's verdict");
  t.not(verifyTokenBindingHeader(ecHeader, conn, { backend }), null);
  t.is(backend.calls, 1);
  // The first configuration's verdict is still there.
  t.not(verifyTokenBindingHeader(ecHeader, conn, {}), null);
  code(t, () => verifyTokenBindingHeader(ecHeader, conn, { maxHeaderLength: 64 }), 'ERR_TB_HEADER_TOO_LARGE');
});

test('alternating configurations on one value cost one verification each, not one per request; at most 4 kept per value', (t) => {
  const conn = connection(null);
  const backends = Array.from({ length: 5 }, counting);
  const configs: TokenBindingVerifyOptions[] = backends.map((backend) => ({ backend }));
  for (let round = 0; round < 5; round++) {
    for (const options of configs.slice(0, 2)) t.not(verifyTokenBindingHeader(ecHeader, conn, options), null);
  }
  t.deepEqual(
    backends.slice(0, 2).map((b) => b.calls),
    [1, 1],
  );
  // Four configurations fit; a fifth evicts the least recent, which then verifies again.
  for (const options of configs.slice(2)) verifyTokenBindingHeader(ecHeader, conn, options);
  verifyTokenBindingHeader(ecHeader, conn, configs[0]);
  t.is(backends[0]!.calls, 2);
  verifyTokenBindingHeader(ecHeader, conn, configs[4]);
  t.is(backends[4]!.calls, 1);
  t.is(conn.state!.distinct, 1, 'one value, one slot, whatever the number of configurations');
});

test('one options object changed between two callers: the second gets its own resolution, not the memo of the first', (t) => {
  const shared: { keyParameters: ('ecdsap256' | 'rsa2048_pss')[]; required?: boolean } = { keyParameters: ['ecdsap256'] };
  const first = resolveTokenBindingOptions(shared);
  t.is(resolveTokenBindingOptions(shared), first, 'unchanged: memoized');
  shared.keyParameters = ['rsa2048_pss'];
  const second = resolveTokenBindingOptions(shared);
  t.deepEqual(second.keyParameters, [1]);
  t.deepEqual(first.keyParameters, [2]);
  shared.keyParameters[0] = 'ecdsap256'; // edited in place
  t.deepEqual(resolveTokenBindingOptions(shared).keyParameters, [2]);
  shared.required = true;
  t.true(resolveTokenBindingOptions(shared).required);
  // Through verification with the raw object, as adapters may pass it.
  const conn = connection(null);
  shared.keyParameters = ['ecdsap256'];
  t.not(verifyTokenBindingHeader(ecHeader, conn, shared), null);
  shared.keyParameters = ['rsa2048_pss'];
  code(t, () => verifyTokenBindingHeader(ecHeader, conn, shared), 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
});
