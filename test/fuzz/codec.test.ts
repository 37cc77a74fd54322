/**
 * Fuzzing the parsers that see untrusted bytes on every request: the Sec-Token-Binding decoder
 * (RFC 8473 §2), the TokenBindingMessage parser (RFC 8471 §3), the TokenBindingID / public key
 * decoders and the RFC 8472 extension parser. Only coded TokenBindingErrors may come out; what is
 * accepted must re-encode to exactly the input (so the parsers accept one form per value).
 * A few seconds each in `npm test`, a minute each under `npm run fuzz`.
 */
import test from 'ava';
import fc from 'fast-check';
import { base64urlEncode } from '../../src/codec/base64url.js';
import { encodeTokenBindingExtension, parseTokenBindingExtension } from '../../src/codec/extension.js';
import { decodeSecTokenBindingHeader, parseSecTokenBindingHeader } from '../../src/codec/header.js';
import { decodeTokenBindingPublicKey } from '../../src/codec/keys.js';
import { encodeTokenBindingMessage, parseTokenBindingID, parseTokenBindingMessage } from '../../src/codec/message.js';
import { isTokenBindingError, type TokenBindingErrorCode } from '../../src/errors.js';
import { byte, hostileBytes, hostileHeaderArb, messageBytesArb, mutated } from './_arbitraries.js';
import { codesText, expectCoded, fuzzParameters, fuzzTime, newTally, printSummary, type FuzzTally } from './_fuzz.js';

const MIN_INPUTS = 500;
const tallies = new Map<string, FuzzTally>();

function tallyFor(name: string): FuzzTally {
  const tally = newTally();
  tallies.set(name, tally);
  return tally;
}

const codes = (...c: TokenBindingErrorCode[]): ReadonlySet<TokenBindingErrorCode> => new Set(c);
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(b);

test.serial('header decoder: only coded errors; what decodes is canonical base64url', (t) => {
  const tally = tallyFor('header decoder');
  const allowed = codes('ERR_TB_HEADER_ENCODING', 'ERR_TB_HEADER_TOO_LARGE');
  fc.assert(
    fc.property(hostileHeaderArb, fc.oneof(fc.constant(4096), fc.integer({ min: 0, max: 800 })), (value, maxLength) => {
      const bytes = expectCoded(tally, allowed, () => decodeSecTokenBindingHeader(value, { maxLength }));
      if (bytes === undefined) return true;
      // Accepted: within the cap, and exactly the unpadded base64url of the bytes it gave.
      if (value.length > maxLength || base64urlEncode(bytes) !== value) return false;
      // The full parse on top of the decode: a message that re-encodes to the bytes, or MALFORMED.
      let message;
      try {
        message = parseSecTokenBindingHeader(value, { maxLength });
      } catch (err) {
        if (isTokenBindingError(err, 'ERR_TB_MALFORMED')) return true;
        throw err;
      }
      return sameBytes(encodeTokenBindingMessage(message), bytes);
    }),
    fuzzParameters(fuzzTime(1500)),
  );
  t.true(tally.inputs >= MIN_INPUTS, `only ${tally.inputs} inputs`);
  t.true(tally.accepted > 0 && tally.codes.size >= 2, 'the generator reaches both verdicts');
});

test.serial('header decoder: the cap is enforced before decoding, whatever the content', (t) => {
  const tally = tallyFor('header cap');
  fc.assert(
    fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 2000 }), (value) => {
      const max = value.length - 1;
      // Over the cap, the value is never looked at: the code is TOO_LARGE even for junk.
      expectCoded(tally, codes('ERR_TB_HEADER_TOO_LARGE'), () => decodeSecTokenBindingHeader(value, { maxLength: max }));
      return tally.accepted === 0;
    }),
    fuzzParameters(fuzzTime(500, 15_000)),
  );
  t.is(tally.accepted, 0);
  t.true(tally.inputs >= MIN_INPUTS);
});

test.serial('message parser: only ERR_TB_MALFORMED; accepted input re-encodes to itself', (t) => {
  const tally = tallyFor('message parser');
  const allowed = codes('ERR_TB_MALFORMED');
  fc.assert(
    fc.property(hostileBytes(), (bytes) => {
      const message = expectCoded(tally, allowed, () => parseTokenBindingMessage(bytes));
      return message === undefined || sameBytes(encodeTokenBindingMessage(message), bytes);
    }),
    fuzzParameters(fuzzTime(2000)),
  );
  t.true(tally.inputs >= MIN_INPUTS, `only ${tally.inputs} inputs`);
  t.true(tally.accepted > 0 && (tally.codes.get('ERR_TB_MALFORMED') ?? 0) > 0);
});

test.serial('TokenBindingID and public key decoders: only coded errors', (t) => {
  const tally = tallyFor('key decoder');
  const allowed = codes('ERR_TB_MALFORMED', 'ERR_TB_KEY_INVALID', 'ERR_TB_KEY_PARAMETERS_UNSUPPORTED');
  // IDs cut out of generated messages (well-formed and not), then mutated.
  const idBytes = messageBytesArb.map((m) => {
    const keyLength = (m[4]! << 8) | m[5]!;
    return m.slice(3, 6 + keyLength);
  });
  fc.assert(
    fc.property(fc.oneof(idBytes, mutated(idBytes), fc.uint8Array({ maxLength: 300 }), fc.tuple(fc.constantFrom(0, 1, 2), fc.uint8Array({ maxLength: 300 })).map(([kp, key]) => Uint8Array.of(kp, key.length >>> 8, key.length & 0xff, ...key))), (bytes) => {
      const key = expectCoded(tally, allowed, () => decodeTokenBindingPublicKey(parseTokenBindingID(bytes)));
      if (key === undefined) return true;
      return key.kind === 'ec' ? key.x.length === 32 && key.y.length === 32 : key.modulus[0] !== 0 && key.exponent[0] !== 0;
    }),
    fuzzParameters(fuzzTime(1000, 30_000)),
  );
  t.true(tally.inputs >= MIN_INPUTS);
  t.true(tally.accepted > 0 && tally.codes.size >= 2);
});

test.serial('RFC 8472 extension parser: only ERR_TB_EXTENSION_MALFORMED; accepted input re-encodes to itself', (t) => {
  const tally = tallyFor('extension parser');
  const allowed = codes('ERR_TB_EXTENSION_MALFORMED');
  const wellFormed = fc
    .tuple(byte, byte, fc.uint8Array({ minLength: 1, maxLength: 255 }))
    .map(([major, minor, list]) => Uint8Array.of(major, minor, list.length, ...list));
  fc.assert(
    fc.property(fc.oneof(wellFormed, mutated(wellFormed), fc.uint8Array({ maxLength: 300 })), (body) => {
      const parsed = expectCoded(tally, allowed, () => parseTokenBindingExtension(body));
      return parsed === undefined || sameBytes(encodeTokenBindingExtension(parsed), body);
    }),
    fuzzParameters(fuzzTime(800, 30_000)),
  );
  t.true(tally.inputs >= MIN_INPUTS);
  t.true(tally.accepted > 0 && tally.codes.size === 1);
});

test.after.always('summary', () => {
  for (const [name, tally] of tallies) {
    printSummary(`fuzz: ${name}`, { inputs: tally.inputs, accepted: tally.accepted, rejected: tally.inputs - tally.accepted, crashes: 0, codes: codesText(tally.codes) });
  }
});
