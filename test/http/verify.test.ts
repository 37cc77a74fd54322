/**
 * verifyTokenBindingHeader on its own: RFC 8471 §4.2 / RFC 8473 §2 rules the vectors do not
 * cover, the per-connection cache and the connection-level refusals. Connection facts are built
 * by hand here (the TLS behaviour behind them is tested in test/tls and test/http/server).
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import { encodeSecTokenBindingHeader } from '../../src/codec/header.js';
import { createTokenBindingID, encodeTokenBindingMessage, formatTokenBindingID } from '../../src/codec/message.js';
import type { TokenBinding } from '../../src/codec/types.js';
import { tokenBindingHash } from '../../src/crypto/hash.js';
import { nobleBackend } from '../../src/crypto/noble-backend.js';
import { generateTokenBindingKey, signTokenBinding, type TokenBindingKey } from '../../src/crypto/sign.js';
import { TokenBindingError, type TokenBindingErrorCode } from '../../src/errors.js';
import { VERIFY_CHANNEL_NAME, type VerifyEvent } from '../../src/http/metrics.js';
import { resolveTokenBindingOptions } from '../../src/http/options.js';
import { verifyTokenBindingHeader, type TokenBindingConnectionContext } from '../../src/http/verify.js';
import { rememberVerification, type ConnectionFacts, type ConnectionState } from '../../src/tls/connection.js';

const ekm = new Uint8Array(randomBytes(32));
const ec = generateTokenBindingKey('ecdsap256');
const ec2 = generateTokenBindingKey('ecdsap256');
const rsa = generateTokenBindingKey('rsa2048_pss');

function header(...bindings: TokenBinding[]): string {
  return encodeSecTokenBindingHeader(encodeTokenBindingMessage({ bindings }));
}
const signed = (key: TokenBindingKey, type: number, over = ekm) => signTokenBinding(key, type, over);
/** A binding of key parameters nobody can evaluate (99) with a garbage signature. */
const unknownParams = (type: number): TokenBinding => ({
  type,
  id: createTokenBindingID(99, new Uint8Array(randomBytes(40))),
  signature: new Uint8Array(randomBytes(64)),
  extensions: [],
});
const plain = { ekm, negotiatedKeyParameters: [2] };

function facts(overrides: Partial<ConnectionFacts> = {}): ConnectionFacts {
  return { protocol: 'TLSv1.3', extendedMasterSecret: true, ekm, eligible: true, clientHello: null, negotiatedKeyParameters: [2], ...overrides };
}
function state(maxDistinctMessages = 8): ConnectionState {
  return { verified: new Map(), distinct: 0, maxDistinctMessages };
}
function context(f: Partial<ConnectionFacts> = {}, s: ConnectionState = state()): TokenBindingConnectionContext {
  return { facts: facts(f), state: s };
}

function code(t: import('ava').ExecutionContext, fn: () => unknown, expected: TokenBindingErrorCode): TokenBindingError | undefined {
  const err = t.throws(fn, { instanceOf: TokenBindingError });
  t.is(err?.code, expected);
  return err;
}

function collect(fn: () => void): VerifyEvent[] {
  const seen: VerifyEvent[] = [];
  const onMessage = (m: unknown) => seen.push(m as VerifyEvent);
  diagnosticsChannel.subscribe(VERIFY_CHANNEL_NAME, onMessage);
  try {
    fn();
  } finally {
    diagnosticsChannel.unsubscribe(VERIFY_CHANNEL_NAME, onMessage);
  }
  return seen;
}

test('a provided binding: the result shows id, hash and key parameters; raw is hidden and copied', (t) => {
  const result = verifyTokenBindingHeader(header(signed(ec, 0)), plain)!;
  t.deepEqual(JSON.parse(JSON.stringify(result)), {
    provided: { id: formatTokenBindingID(ec.id), hash: tokenBindingHash(ec.id), keyParameters: 'ecdsap256' },
    referred: null,
    others: [],
  });
  t.deepEqual(result.provided.raw, ec.id.raw);
  result.provided.raw.fill(0);
  t.deepEqual(result.provided.raw, ec.id.raw, 'each read is a fresh copy');
  t.true(Object.isFrozen(result) && Object.isFrozen(result.provided) && Object.isFrozen(result.others));
});

test('another backend verifies alike', (t) => {
  const value = header(signed(ec, 0), signed(rsa, 1));
  const result = verifyTokenBindingHeader(value, plain, { backend: nobleBackend })!;
  t.is(result.referred?.id, formatTokenBindingID(rsa.id));
  code(t, () => verifyTokenBindingHeader(header(signed(ec, 0, new Uint8Array(32))), plain, { backend: nobleBackend }), 'ERR_TB_SIGNATURE_INVALID');
});

test('no header: null, or ERR_TB_HEADER_MISSING when required', (t) => {
  t.is(verifyTokenBindingHeader(undefined, plain), null);
  t.is(verifyTokenBindingHeader([], plain), null);
  code(t, () => verifyTokenBindingHeader(undefined, plain, { required: true }), 'ERR_TB_HEADER_MISSING');
});

test('more than one header, as an array or joined with a comma: ERR_TB_HEADER_DUPLICATE', (t) => {
  const value = header(signed(ec, 0));
  code(t, () => verifyTokenBindingHeader([value, value], plain), 'ERR_TB_HEADER_DUPLICATE');
  code(t, () => verifyTokenBindingHeader(`${value}, ${value}`, plain), 'ERR_TB_HEADER_DUPLICATE');
  t.not(verifyTokenBindingHeader([value], plain), null);
});

test('a comma-joined value is ERR_TB_HEADER_DUPLICATE whatever else would refuse it, counted once, and spends nothing', (t) => {
  const value = header(signed(ec, 0));
  const joined = `${value}, ${value}`;
  const full = state(1);
  rememberVerification(full, 'another value', 'kept');
  const cases: [string, () => unknown][] = [
    ['a plain connection', () => verifyTokenBindingHeader(joined, plain)],
    ['nothing negotiated', () => verifyTokenBindingHeader(joined, { ekm, negotiatedKeyParameters: [] })],
    ['TLS conditions unmet', () => verifyTokenBindingHeader(joined, context({ eligible: false, ineligibleReason: 'no-ems', protocol: 'TLSv1.2' }))],
    ['no EKM', () => verifyTokenBindingHeader(joined, context({ ekm: null }))],
    ['the distinct-message cap reached', () => verifyTokenBindingHeader(joined, { facts: facts(), state: full })],
    ['over the length cap', () => verifyTokenBindingHeader(joined, plain, { maxHeaderLength: 10 })],
    ['an array of one', () => verifyTokenBindingHeader([joined], plain)],
  ];
  for (const [name, fn] of cases) {
    const events = collect(() => code(t, fn, 'ERR_TB_HEADER_DUPLICATE'));
    t.deepEqual(
      events.map((e) => [e.outcome, e.code, e.cached, e.durationNs]),
      [['rejected', 'ERR_TB_HEADER_DUPLICATE', false, 0]],
      name,
    );
  }
  const s = state();
  code(t, () => verifyTokenBindingHeader(joined, { facts: facts(), state: s }), 'ERR_TB_HEADER_DUPLICATE');
  t.like(s, { distinct: 0 }, 'no slot taken');
  t.is(s.signatures ?? 0, 0, 'no signature spent');
  t.is(s.verified.size, 0);
});

test('structure: no provided, two provided, two referred', (t) => {
  code(t, () => verifyTokenBindingHeader(header(signed(ec, 1)), plain), 'ERR_TB_NO_PROVIDED');
  code(t, () => verifyTokenBindingHeader(header(signed(ec, 0), signed(ec2, 0)), plain), 'ERR_TB_MULTIPLE_PROVIDED');
  code(t, () => verifyTokenBindingHeader(header(signed(ec, 0), signed(ec2, 1), signed(ec2, 1)), plain), 'ERR_TB_MULTIPLE_REFERRED');
});

test('provided key parameters must be accepted on the connection; RSA is opt-in', (t) => {
  const value = header(signed(rsa, 0));
  code(t, () => verifyTokenBindingHeader(value, plain), 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
  t.is(verifyTokenBindingHeader(value, { ekm, negotiatedKeyParameters: [2, 1] })!.provided.keyParameters, 'rsa2048_pss');
  // Facts captured without a configured list: the options decide.
  code(t, () => verifyTokenBindingHeader(value, context({ negotiatedKeyParameters: null })), 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
  t.not(verifyTokenBindingHeader(value, context({ negotiatedKeyParameters: null }), { keyParameters: ['rsa2048_pss'] }), null);
});

test('signatures: provided, referred and other-type bindings with known key parameters must all verify', (t) => {
  const other = generateTokenBindingKey();
  const wrongEkm = new Uint8Array(32);
  code(t, () => verifyTokenBindingHeader(header(signed(ec, 0, wrongEkm)), plain), 'ERR_TB_SIGNATURE_INVALID');
  code(t, () => verifyTokenBindingHeader(header(signed(ec, 0), signed(ec2, 1, wrongEkm)), plain), 'ERR_TB_SIGNATURE_INVALID');
  code(t, () => verifyTokenBindingHeader(header(signed(ec, 0), signed(other, 77, wrongEkm)), plain), 'ERR_TB_SIGNATURE_INVALID');
  // A signature made for another type does not verify as this type (the type is signed).
  const asReferred = signed(ec, 1);
  code(t, () => verifyTokenBindingHeader(header({ ...asReferred, type: 0 }), plain), 'ERR_TB_SIGNATURE_INVALID');
});

test('a referred binding is exposed whatever the connection accepts; with unknown key parameters it is null', (t) => {
  const both = verifyTokenBindingHeader(header(signed(ec, 0), signed(rsa, 1)), plain)!;
  t.is(both.referred?.id, formatTokenBindingID(rsa.id));
  t.is(both.referred?.keyParameters, 'rsa2048_pss');
  const unknown = verifyTokenBindingHeader(header(signed(ec, 0), unknownParams(1)), plain)!;
  t.is(unknown.referred, null);
});

test('other types: verified ones appear in others, unknown key parameters are ignored', (t) => {
  const result = verifyTokenBindingHeader(header(signed(ec2, 77), signed(ec, 0), unknownParams(78), signed(rsa, 200)), plain)!;
  t.is(result.provided.id, formatTokenBindingID(ec.id));
  t.deepEqual(
    result.others.map((o) => [o.type, o.id.id, o.id.keyParameters]),
    [
      [77, formatTokenBindingID(ec2.id), 'ecdsap256'],
      [200, formatTokenBindingID(rsa.id), 'rsa2048_pss'],
    ],
  );
});

test('encoding, size and well-formedness come before anything else', (t) => {
  code(t, () => verifyTokenBindingHeader('AAA', plain), 'ERR_TB_MALFORMED');
  code(t, () => verifyTokenBindingHeader('AA==', plain), 'ERR_TB_HEADER_ENCODING');
  code(t, () => verifyTokenBindingHeader(header(signed(ec, 0)), plain, { maxHeaderLength: 10 }), 'ERR_TB_HEADER_TOO_LARGE');
});

test('connection-level refusals: TLS conditions, EKM unavailable, nothing negotiated', (t) => {
  const value = header(signed(ec, 0));
  const err = code(t, () => verifyTokenBindingHeader(value, context({ protocol: 'TLSv1.2', eligible: false, ineligibleReason: 'no-ems', negotiatedKeyParameters: [] })), 'ERR_TB_TLS_CONDITIONS');
  t.like(err?.cause, { actual: 'no-ems' });
  code(t, () => verifyTokenBindingHeader(value, context({ protocol: 'TLSv1.1', eligible: false, ineligibleReason: 'tls-version' })), 'ERR_TB_TLS_CONDITIONS');
  code(t, () => verifyTokenBindingHeader(value, context({ ekm: null, eligible: false, ineligibleReason: 'ekm-unavailable' })), 'ERR_TB_EKM_UNAVAILABLE');
  code(t, () => verifyTokenBindingHeader(value, context({ negotiatedKeyParameters: [] })), 'ERR_TB_NOT_NEGOTIATED');
  code(t, () => verifyTokenBindingHeader(value, { ekm, negotiatedKeyParameters: [] }), 'ERR_TB_NOT_NEGOTIATED');
  // Without a header, an ineligible connection is simply unbound.
  t.is(verifyTokenBindingHeader(undefined, context({ eligible: false, ineligibleReason: 'no-ems' })), null);
});

test('the cache: a success and a failure are each verified once per connection', (t) => {
  const s = state();
  const connection = context({}, s);
  const good = header(signed(ec, 0));
  const bad = header(signed(ec, 0, new Uint8Array(32)));
  let first: ReturnType<typeof verifyTokenBindingHeader> = null;
  let failure: Error | undefined;
  const events = collect(() => {
    first = verifyTokenBindingHeader(good, connection);
    t.is(verifyTokenBindingHeader(good, connection), first);
    failure = t.throws(() => verifyTokenBindingHeader(bad, connection));
    t.is(t.throws(() => verifyTokenBindingHeader(bad, connection)), failure);
  });
  t.deepEqual(events.map((e) => [e.outcome, e.cached]), [['accepted', false], ['accepted', true], ['rejected', false], ['rejected', true]]);
  t.is(s.distinct, 2);
  // Another connection (another EKM) never sees these verdicts.
  const elsewhere = context({ ekm: new Uint8Array(randomBytes(32)) });
  code(t, () => verifyTokenBindingHeader(good, elsewhere), 'ERR_TB_SIGNATURE_INVALID');
});

test('the cache: an equal configuration hits, another one verifies afresh', (t) => {
  const connection = context();
  const value = header(signed(ec, 0), signed(ec2, 1));
  const a = resolveTokenBindingOptions({});
  const b = resolveTokenBindingOptions({ keyParameters: ['ecdsap256', 'rsa2048_pss'] });
  const events = collect(() => {
    verifyTokenBindingHeader(value, connection, a);
    // Fresh option literals per request (what middleware often does) still hit the cache.
    verifyTokenBindingHeader(value, connection, { keyParameters: ['ecdsap256'] });
    verifyTokenBindingHeader(value, connection, b);
    verifyTokenBindingHeader(value, connection, b);
    verifyTokenBindingHeader(value, connection, { maxHeaderLength: 1000 });
  });
  t.deepEqual(events.map((e) => e.cached), [false, true, false, true, false]);
});

test('the cache: distinct values are capped; refusals about the connection take no slot', (t) => {
  const s = state(2);
  const connection = context({}, s);
  const values = [header(signed(ec, 0)), header(signed(ec, 0)), header(signed(ec, 0))];
  t.not(verifyTokenBindingHeader(values[0], connection), null);
  // Structural refusals are the same on every connection: no slot, no copy kept (issue 11, item 4).
  code(t, () => verifyTokenBindingHeader('AAA', connection), 'ERR_TB_MALFORMED');
  code(t, () => verifyTokenBindingHeader('A'.repeat(5000), connection), 'ERR_TB_HEADER_TOO_LARGE');
  t.is(s.distinct, 1);
  t.not(verifyTokenBindingHeader(values[1], connection), null);
  code(t, () => verifyTokenBindingHeader(values[2], connection), 'ERR_TB_TOO_MANY_MESSAGES');
  t.not(verifyTokenBindingHeader(values[0], connection), null, 'known values still answer');

  const refused = state(1);
  const ineligible = context({ eligible: false, ineligibleReason: 'no-ems' }, refused);
  for (const v of values) code(t, () => verifyTokenBindingHeader(v, ineligible), 'ERR_TB_TLS_CONDITIONS');
  t.is(refused.distinct, 0);
});

test('API misuse is a TypeError', (t) => {
  const value = header(signed(ec, 0));
  t.throws(() => verifyTokenBindingHeader(value, null as never), { instanceOf: TypeError });
  t.throws(() => verifyTokenBindingHeader(42 as never, plain), { instanceOf: TypeError });
  t.throws(() => verifyTokenBindingHeader([42] as never, plain), { instanceOf: TypeError });
  t.throws(() => verifyTokenBindingHeader(value, { ekm: new Uint8Array(16), negotiatedKeyParameters: [2] }), { instanceOf: TypeError });
  t.throws(() => verifyTokenBindingHeader(value, { ekm, negotiatedKeyParameters: 2 as never }), { instanceOf: TypeError });
  t.throws(() => verifyTokenBindingHeader(value, plain, { keyParameters: ['ecdsa' as never] }), { instanceOf: TypeError });
  t.throws(() => verifyTokenBindingHeader(value, plain, { keyParameters: [] }), { instanceOf: TypeError });
  t.throws(() => verifyTokenBindingHeader(value, plain, { maxDistinctMessages: 1.5 }), { instanceOf: TypeError });
  t.throws(() => verifyTokenBindingHeader(value, plain, { backend: {} as never }), { instanceOf: TypeError });
});
