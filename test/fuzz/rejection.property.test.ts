/**
 * Never accept what should be rejected (issue 7). Generated messages — a provided binding, maybe a
 * referred one (verifiable or of unknown key parameters), maybe bindings of unknown types,
 * extensions, any order — are checked by the server verdict (`verifyTokenBindingHeader`) with
 * exactly one thing wrong: a signature bit, the EKM, the type byte (signed or sent), the key
 * parameters (signed, sent, or not accepted), a key bit, a length field, truncation, trailing
 * bytes, a duplicated binding, a header that is not unpadded base64url, too long, sent twice, or a
 * connection without Token Binding. Each must be rejected with its code; the unbroken message must
 * be accepted with the right IDs. Every case runs on node:crypto and on the pure-JS (noble)
 * backend, cached and uncached, and all four must give the same verdict.
 */
import test from 'ava';
import fc from 'fast-check';
import type { VerificationBackend } from '../../src/crypto/backend.js';
import { createNobleBackend, nobleBackend } from '../../src/crypto/noble-backend.js';
import { createNodeBackend, nodeBackend } from '../../src/crypto/node-backend.js';
import { generateTokenBindingKey, type TokenBindingKey } from '../../src/crypto/sign.js';
import { TokenBindingError, type TokenBindingErrorCode } from '../../src/errors.js';
import { verifyTokenBindingHeader, type TokenBindingResult } from '../../src/http/verify.js';
import { byte } from './_arbitraries.js';
import { LONG, codesText, fuzzParameters, printSummary } from './_fuzz.js';
import { encodeWire, headerOf, idOf, signAs, signedBinding, type WireBinding } from '../reliability/_tb.js';

const backends: readonly { readonly name: string; readonly backend: VerificationBackend }[] = [
  { name: 'node', backend: nodeBackend },
  { name: 'node uncached', backend: createNodeBackend({ cacheSize: 0 }) },
  { name: 'noble', backend: nobleBackend },
  { name: 'noble uncached', backend: createNobleBackend({ cacheSize: 0, precomputedKeys: 0 }) },
];
// One options object per backend: the options are resolved once and memoized by identity.
const optionsByBackend = backends.map(({ backend }) => ({ backend }));

const pool: readonly TokenBindingKey[] = [
  generateTokenBindingKey('ecdsap256'),
  generateTokenBindingKey('ecdsap256'),
  generateTokenBindingKey('ecdsap256'),
  generateTokenBindingKey('rsa2048_pss'),
  generateTokenBindingKey('rsa2048_pkcs1.5'),
];

type Fault =
  | { readonly kind: 'none' }
  | { readonly kind: 'signatureBit'; readonly target: number; readonly at: number; readonly bit: number }
  | { readonly kind: 'signatureLength' }
  | { readonly kind: 'ekm'; readonly at: number; readonly bit: number }
  | { readonly kind: 'signedType'; readonly type: number }
  | { readonly kind: 'signedKeyParameters'; readonly keyParameters: number }
  | { readonly kind: 'wireType'; readonly which: 'provided' | 'referred'; readonly to: number }
  | { readonly kind: 'keyParameters'; readonly to: number }
  | { readonly kind: 'notAccepted' }
  | { readonly kind: 'keyBit'; readonly at: number; readonly bit: number }
  | { readonly kind: 'outerLength'; readonly delta: number }
  | { readonly kind: 'innerLength'; readonly target: number; readonly field: 'key' | 'signature' | 'extensions'; readonly value: number }
  | { readonly kind: 'truncate'; readonly cut: number; readonly fixOuter: boolean }
  | { readonly kind: 'trailing'; readonly bytes: Uint8Array; readonly fixOuter: boolean }
  | { readonly kind: 'duplicate'; readonly which: 'provided' | 'referred' }
  | { readonly kind: 'encoding'; readonly variant: number; readonly at: number }
  | { readonly kind: 'tooLarge' }
  | { readonly kind: 'twoHeaders'; readonly comma: boolean }
  | { readonly kind: 'notNegotiated' };

/** One generator per kind of fault, so that every kind gets its own share of the time box. */
const faultArbs: readonly fc.Arbitrary<Fault>[] = [
  fc.constant({ kind: 'none' as const }),
  fc.record({ kind: fc.constant('signatureBit' as const), target: fc.nat(), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.constant({ kind: 'signatureLength' as const }),
  fc.record({ kind: fc.constant('ekm' as const), at: fc.integer({ min: 0, max: 31 }), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('signedType' as const), type: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('signedKeyParameters' as const), keyParameters: byte }),
  fc.record({ kind: fc.constant('wireType' as const), which: fc.constantFrom('provided' as const, 'referred' as const), to: byte }),
  fc.record({ kind: fc.constant('keyParameters' as const), to: fc.oneof(fc.constantFrom(0, 1, 2), byte) }),
  fc.constant({ kind: 'notAccepted' as const }),
  fc.record({ kind: fc.constant('keyBit' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('outerLength' as const), delta: fc.integer({ min: -200, max: 200 }).filter((d) => d !== 0) }),
  fc.record({
    kind: fc.constant('innerLength' as const),
    target: fc.nat(),
    field: fc.constantFrom('key' as const, 'signature' as const, 'extensions' as const),
    value: fc.nat(),
  }),
  fc.record({ kind: fc.constant('truncate' as const), cut: fc.nat(), fixOuter: fc.boolean() }),
  fc.record({ kind: fc.constant('trailing' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 72 }), fixOuter: fc.boolean() }),
  fc.record({ kind: fc.constant('duplicate' as const), which: fc.constantFrom('provided' as const, 'referred' as const) }),
  fc.record({ kind: fc.constant('encoding' as const), variant: fc.nat(), at: fc.nat() }),
  fc.constant({ kind: 'tooLarge' as const }),
  fc.record({ kind: fc.constant('twoHeaders' as const), comma: fc.boolean() }),
  fc.constant({ kind: 'notNegotiated' as const }),
];

const messageArb = fc.record({
  ekm: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  provided: fc.integer({ min: 0, max: pool.length - 1 }),
  /** Extra key parameters the server accepts besides the provided one's. */
  alsoAccepted: fc.subarray([0, 1, 2]),
  providedExtensions: fc.array(fc.record({ type: byte, data: fc.uint8Array({ maxLength: 20 }) }), { maxLength: 2 }),
  referred: fc.oneof(
    fc.constant(null),
    fc.record({ known: fc.constant(true), key: fc.integer({ min: 0, max: pool.length - 1 }) }),
    fc.record({ known: fc.constant(false), keyParameters: fc.integer({ min: 3, max: 255 }), key: fc.uint8Array({ minLength: 1, maxLength: 70 }), signature: fc.uint8Array({ minLength: 64, maxLength: 80 }) }),
  ),
  others: fc.array(
    fc.oneof(
      fc.record({ known: fc.constant(true), type: fc.integer({ min: 2, max: 255 }), key: fc.integer({ min: 0, max: 2 }) }),
      fc.record({ known: fc.constant(false), type: fc.integer({ min: 2, max: 255 }), keyParameters: fc.integer({ min: 3, max: 255 }), key: fc.uint8Array({ minLength: 1, maxLength: 70 }), signature: fc.uint8Array({ minLength: 64, maxLength: 80 }) }),
    ),
    { maxLength: 2 },
  ),
  shuffle: fc.nat(),
});

type Scenario = (typeof messageArb extends fc.Arbitrary<infer T> ? T : never) & { readonly fault: Fault };

/** What the server must say. */
type Expected = { readonly code: TokenBindingErrorCode } | { readonly provided: string; readonly referred: string | null; readonly others: readonly string[] };

interface Case {
  readonly label: string;
  readonly values: string | string[];
  readonly ekm: Uint8Array;
  readonly negotiated: readonly number[];
  readonly maxHeaderLength?: number;
  readonly expected: Expected;
}

interface Built {
  readonly wire: WireBinding[];
  /** Index in `wire` of the provided binding, the referred one (or -1). */
  readonly providedAt: number;
  readonly referredAt: number;
  /** Indexes of bindings a server must verify (known key parameters). */
  readonly evaluable: number[];
}

function build(s: Scenario): Built {
  const key = pool[s.provided]!;
  const entries: { binding: WireBinding; role: 'provided' | 'referred' | 'other'; evaluable: boolean }[] = [];
  entries.push({ binding: signedBinding(key, 0, s.ekm, s.providedExtensions), role: 'provided', evaluable: true });
  if (s.referred !== null) {
    if (s.referred.known) entries.push({ binding: signedBinding(pool[s.referred.key]!, 1, s.ekm), role: 'referred', evaluable: true });
    else {
      const { keyParameters, key: k, signature } = s.referred;
      entries.push({ binding: { type: 1, keyParameters, key: k, signature, extensions: [] }, role: 'referred', evaluable: false });
    }
  }
  for (const o of s.others) {
    if (o.known) entries.push({ binding: signedBinding(pool[o.key]!, o.type, s.ekm), role: 'other', evaluable: true });
    else entries.push({ binding: { type: o.type, keyParameters: o.keyParameters, key: o.key, signature: o.signature, extensions: [] }, role: 'other', evaluable: false });
  }
  // A deterministic shuffle from the generated seed: the server must not depend on the order.
  let seed = s.shuffle;
  for (let i = entries.length - 1; i > 0; i--) {
    const j = seed % (i + 1);
    seed = Math.floor(seed / (i + 1)) + 7;
    [entries[i], entries[j]] = [entries[j]!, entries[i]!];
  }
  return {
    wire: entries.map((e) => e.binding),
    providedAt: entries.findIndex((e) => e.role === 'provided'),
    referredAt: entries.findIndex((e) => e.role === 'referred'),
    evaluable: entries.flatMap((e, i) => (e.evaluable ? [i] : [])),
  };
}

const setU16 = (bytes: Uint8Array, at: number, value: number): void => {
  bytes[at] = value >>> 8;
  bytes[at + 1] = value & 0xff;
};

function withOuter(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 2);
  setU16(out, 0, body.length);
  out.set(body, 2);
  return out;
}

/** Turns a scenario into a request and the verdict the server owes it. */
function toCase(s: Scenario): Case {
  const b = build(s);
  const key = pool[s.provided]!;
  const accepted = [...new Set([key.keyParameters, ...s.alsoAccepted])];
  const wire = b.wire;
  const provided = wire[b.providedAt]!;
  const f = s.fault;
  let ekm = s.ekm;
  let negotiated: readonly number[] = accepted;
  let values: string | string[] | undefined;
  let maxHeaderLength: number | undefined;
  let bytes: Uint8Array | undefined;
  let code: TokenBindingErrorCode | undefined;
  const signatureInvalid = 'ERR_TB_SIGNATURE_INVALID' as const;

  switch (f.kind) {
    case 'none':
      break;
    case 'signatureBit': {
      const target = wire[b.evaluable[f.target % b.evaluable.length]!]!;
      target.signature = target.signature.slice();
      target.signature[f.at % target.signature.length]! ^= 1 << f.bit;
      code = signatureInvalid;
      break;
    }
    case 'signatureLength':
      provided.signature = Uint8Array.from([...provided.signature, 0]);
      code = signatureInvalid;
      break;
    case 'ekm':
      // The message was signed for another connection: a replay, seen from the server.
      ekm = s.ekm.slice();
      ekm[f.at]! ^= 1 << f.bit;
      code = signatureInvalid;
      break;
    case 'signedType':
      provided.signature = signAs(key, f.type, key.keyParameters, s.ekm);
      code = signatureInvalid;
      break;
    case 'signedKeyParameters': {
      const kp = f.keyParameters === key.keyParameters ? (f.keyParameters + 1) & 0xff : f.keyParameters;
      provided.signature = signAs(key, 0, kp, s.ekm);
      code = signatureInvalid;
      break;
    }
    case 'wireType': {
      const which = f.which === 'referred' && b.referredAt !== -1 ? 'referred' : 'provided';
      if (which === 'referred') {
        // A second provided binding: rejected whatever the signatures say.
        wire[b.referredAt]!.type = 0;
        code = 'ERR_TB_MULTIPLE_PROVIDED';
      } else {
        const to = f.to === 0 ? 1 : f.to;
        provided.type = to;
        code = to === 1 && b.referredAt !== -1 ? 'ERR_TB_MULTIPLE_REFERRED' : 'ERR_TB_NO_PROVIDED';
      }
      break;
    }
    case 'keyParameters': {
      const to = f.to === key.keyParameters ? (f.to + 1) % 3 : f.to;
      provided.keyParameters = to;
      code = accepted.includes(to) ? signatureInvalid : 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED';
      break;
    }
    case 'notAccepted':
      negotiated = [0, 1, 2].filter((k) => k !== key.keyParameters);
      code = 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED';
      break;
    case 'keyBit':
      provided.key = provided.key.slice();
      provided.key[f.at % provided.key.length]! ^= 1 << f.bit;
      code = signatureInvalid;
      break;
    case 'outerLength': {
      bytes = encodeWire(wire).bytes;
      const length = (bytes[0]! << 8) | bytes[1]!;
      setU16(bytes, 0, Math.max(0, Math.min(0xffff, length + f.delta)));
      code = 'ERR_TB_MALFORMED';
      break;
    }
    case 'innerLength': {
      const encoded = encodeWire(wire);
      bytes = encoded.bytes;
      const at = encoded.layout[f.target % encoded.layout.length]!;
      const lengthAt = f.field === 'key' ? at.keyLengthAt : f.field === 'signature' ? at.signatureLengthAt : at.extensionsLengthAt;
      const rest = bytes.length - (lengthAt + 2);
      // Either past the end of the message, or under the field's minimum (key 1, signature 64).
      const under = f.field === 'key' ? 0 : f.field === 'signature' ? f.value % 64 : undefined;
      const over = rest + 1 + (f.value % (0xffff - rest));
      setU16(bytes, lengthAt, under !== undefined && f.value % 2 === 0 ? under : over);
      code = 'ERR_TB_MALFORMED';
      break;
    }
    case 'truncate': {
      const encoded = encodeWire(wire);
      const last = encoded.layout[encoded.layout.length - 1]!;
      // Cut inside the last binding (never exactly at a binding boundary).
      const cut = 1 + (f.cut % (last.end - last.start - 1));
      const body = encoded.bytes.slice(2, encoded.bytes.length - cut);
      bytes = f.fixOuter ? withOuter(body) : encoded.bytes.slice(0, encoded.bytes.length - cut);
      code = 'ERR_TB_MALFORMED';
      break;
    }
    case 'trailing': {
      // 72 bytes are one short of the smallest binding: with the outer length fixed, they are
      // read as a binding that cannot be complete.
      const encoded = encodeWire(wire).bytes;
      const body = Uint8Array.from([...encoded.subarray(2), ...f.bytes]);
      bytes = f.fixOuter ? withOuter(body) : Uint8Array.from([...encoded, ...f.bytes]);
      code = 'ERR_TB_MALFORMED';
      break;
    }
    case 'duplicate': {
      const which = f.which === 'referred' && b.referredAt !== -1 ? b.referredAt : b.providedAt;
      wire.splice(which + 1, 0, { ...wire[which]! });
      code = which === b.providedAt ? 'ERR_TB_MULTIPLE_PROVIDED' : 'ERR_TB_MULTIPLE_REFERRED';
      break;
    }
    case 'encoding': {
      const h = headerOf(encodeWire(wire).bytes);
      const at = f.at % (h.length + 1);
      const variants = [
        () => h + (h.length % 4 === 2 ? '==' : '='), // padding, as base64 would have it
        () => h + '=',
        () => h + ' ',
        () => ' ' + h,
        () => h.slice(0, at) + '\t' + h.slice(at),
        () => h.slice(0, at) + '\r\n' + h.slice(at),
        () => Buffer.from(encodeWire(wire).bytes).toString('base64'), // standard alphabet, padded
        () => h.slice(0, at) + '+' + h.slice(at),
        () => h.slice(0, at) + '/' + h.slice(at + 1),
        () => h.slice(0, at) + '=' + h.slice(at),
        () => h.slice(0, at) + '\u00e9' + h.slice(at),
      ];
      let value = variants[f.variant % variants.length]!();
      // Standard base64 may coincide with base64url for some messages: force a difference.
      if (!/[+/=]/.test(value) && !/\s/.test(value) && value === h) value = h + '==';
      values = value;
      code = 'ERR_TB_HEADER_ENCODING';
      break;
    }
    case 'tooLarge': {
      const h = headerOf(encodeWire(wire).bytes);
      values = h;
      maxHeaderLength = h.length - 1;
      code = 'ERR_TB_HEADER_TOO_LARGE';
      break;
    }
    case 'twoHeaders': {
      const h = headerOf(encodeWire(wire).bytes);
      values = f.comma ? `${h}, ${h}` : [h, h];
      code = 'ERR_TB_HEADER_DUPLICATE';
      break;
    }
    case 'notNegotiated':
      negotiated = [];
      code = 'ERR_TB_NOT_NEGOTIATED';
      break;
  }

  values ??= headerOf(bytes ?? encodeWire(wire).bytes);
  let expected: Expected;
  if (code !== undefined) expected = { code };
  else {
    const referred = b.referredAt === -1 || !b.evaluable.includes(b.referredAt) ? null : wire[b.referredAt]!;
    const idText = (w: WireBinding): string => Buffer.from([w.keyParameters, w.key.length >>> 8, w.key.length & 0xff, ...w.key]).toString('base64url');
    expected = {
      provided: idOf(key),
      referred: referred === null ? null : idText(referred),
      others: b.evaluable.filter((i) => i !== b.providedAt && i !== b.referredAt).map((i) => `${wire[i]!.type}:${idText(wire[i]!)}`),
    };
  }
  const c: Case = { label: f.kind, values, ekm, negotiated, expected };
  return maxHeaderLength === undefined ? c : { ...c, maxHeaderLength };
}

/** The server's verdict, as comparable text. */
function verdict(c: Case, index: number): string {
  const options = c.maxHeaderLength === undefined ? optionsByBackend[index]! : { ...optionsByBackend[index]!, maxHeaderLength: c.maxHeaderLength };
  let result: TokenBindingResult | null;
  try {
    result = verifyTokenBindingHeader(c.values, { ekm: c.ekm, negotiatedKeyParameters: c.negotiated }, options);
  } catch (err) {
    if (err instanceof TokenBindingError) return `rejected ${err.code}`;
    throw err;
  }
  if (result === null) return 'absent';
  return describe({ provided: result.provided.id, referred: result.referred?.id ?? null, others: result.others.map((o) => `${o.type}:${o.id.id}`) });
}

function describe(e: Expected): string {
  if ('code' in e) return `rejected ${e.code}`;
  return `accepted ${e.provided} referred=${e.referred ?? '-'} others=[${e.others.join(' ')}]`;
}

test('one thing wrong: rejected with its code; nothing wrong: accepted with the right IDs; all backends agree', (t) => {
  const byFault = new Map<string, number>();
  const byCode = new Map<string, number>();
  let cases = 0;
  for (const [index, faultArb] of faultArbs.entries()) {
    // Valid messages (index 0) cost four full verifications each: they get a larger share.
    const runs = index === 0 ? 400 : 150;
    const parameters = LONG
      ? fuzzParameters(90_000 / faultArbs.length) // under ava's 2-minute timeout
      : { numRuns: runs, plugins: [fc.interruptAfterTimeLimit(index === 0 ? 1200 : 500)] };
    fc.assert(
      fc.property(messageArb, faultArb, (message, fault) => {
        const c = toCase({ ...message, fault });
        const want = describe(c.expected);
        const got = backends.map((_, i) => verdict(c, i));
        cases++;
        byFault.set(c.label, (byFault.get(c.label) ?? 0) + 1);
        const key = 'code' in c.expected ? c.expected.code : 'ACCEPTED';
        byCode.set(key, (byCode.get(key) ?? 0) + 1);
        for (const [i, g] of got.entries()) {
          if (g !== want) throw new Error(`${c.label}: backend ${backends[i]!.name}: expected ${want}, got ${g}`);
        }
      }),
      parameters,
    );
  }
  // Every fault kind was tried, each more than a handful of times.
  t.is(byFault.size, faultArbs.length, `fault kinds reached: ${[...byFault.keys()].join(', ')}`);
  const fewest = Math.min(...byFault.values());
  t.true(fewest >= 10, `a fault kind had only ${fewest} cases`);
  printSummary('never accept what should be rejected', {
    cases,
    backends: backends.length,
    verdicts: cases * backends.length,
    accepted: byCode.get('ACCEPTED') ?? 0,
    rejected: cases - (byCode.get('ACCEPTED') ?? 0),
    'wrong verdicts': 0,
    'backend disagreements': 0,
    crashes: 0,
    codes: codesText(new Map([...byCode].filter(([k]) => k !== 'ACCEPTED'))),
  });
});
