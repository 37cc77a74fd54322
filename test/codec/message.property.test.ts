/**
 * Property tests of the RFC 8471/8472/8473 parsers: generated valid messages round-trip; arbitrary
 * and mutated input only ever yields a valid result or a TokenBindingError — never a RangeError,
 * TypeError or a result that does not re-encode to its input.
 */
import test from 'ava';
import fc from 'fast-check';
import { decodeSecTokenBindingHeader, encodeSecTokenBindingHeader, parseSecTokenBindingHeader } from '../../src/codec/header.js';
import { decodeTokenBindingPublicKey, encodeEcP256PublicKey, encodeRsaPublicKey } from '../../src/codec/keys.js';
import { createTokenBindingID, encodeTokenBindingMessage, encodeTokenBindingMessageTransient, parseSingleBindingMessage, parseTokenBindingID, parseTokenBindingMessage } from '../../src/codec/message.js';
import { messageBytesArb, mutated } from '../fuzz/_arbitraries.js';
import { encodeTokenBindingExtension, parseTokenBindingExtension } from '../../src/codec/extension.js';
import type { TokenBinding, TokenBindingMessage } from '../../src/codec/types.js';
import { TokenBindingError } from '../../src/errors.js';

const byte = fc.integer({ min: 0, max: 255 });

/** A key for the given parameters: well-formed EC and RSA keys, opaque bytes otherwise. */
const keyFor = (kp: number): fc.Arbitrary<Uint8Array> => {
  if (kp === 2) return fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 })).map(([x, y]) => encodeEcP256PublicKey(x, y));
  if (kp < 2) {
    return fc
      .tuple(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.uint8Array({ minLength: 1, maxLength: 4 }))
      .map(([n, e]) => encodeRsaPublicKey(Uint8Array.of(1, ...n), Uint8Array.of(1, ...e)));
  }
  return fc.uint8Array({ minLength: 1, maxLength: 200 });
};

const bindingArb: fc.Arbitrary<TokenBinding> = fc
  .tuple(fc.oneof(fc.constantFrom(0, 1), byte), fc.oneof(fc.constantFrom(0, 1, 2), byte))
  .chain(([type, kp]) =>
    fc.record({
      type: fc.constant(type),
      id: keyFor(kp).map((key) => createTokenBindingID(kp, key)),
      signature: fc.uint8Array({ minLength: 64, maxLength: 300 }),
      extensions: fc.array(fc.record({ type: byte, data: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 3 }),
    }),
  );

const bindingLength = (b: TokenBinding) => 1 + b.id.raw.length + 2 + b.signature.length + 2 + b.extensions.reduce((n, e) => n + 3 + e.data.length, 0);

// tokenbindings<132..2^16-1>: one binding with a short opaque key can fall under the minimum.
const messageArb: fc.Arbitrary<TokenBindingMessage> = fc
  .array(bindingArb, { minLength: 1, maxLength: 4 })
  .filter((bindings) => bindings.reduce((n, b) => n + bindingLength(b), 0) >= 132)
  .map((bindings) => ({ bindings }));

/** Run `fn`; a TokenBindingError counts as a clean rejection, anything else propagates. */
function accepted<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof TokenBindingError) return undefined;
    throw err;
  }
}

test('generated valid messages round-trip through bytes and the header', (t) => {
  fc.assert(
    fc.property(messageArb, (message) => {
      const bytes = encodeTokenBindingMessage(message);
      // The client's per-connection encoder (into a shared slab) writes the same bytes.
      if (!Buffer.from(encodeTokenBindingMessageTransient(message)).equals(bytes)) return false;
      const parsed = parseTokenBindingMessage(bytes);
      if (parsed.bindings.length !== message.bindings.length) return false;
      for (const [i, b] of parsed.bindings.entries()) {
        const m = message.bindings[i]!;
        if (b.type !== m.type || b.id.keyParameters !== m.id.keyParameters) return false;
        if (!Buffer.from(b.id.raw).equals(m.id.raw) || !Buffer.from(b.signature).equals(m.signature)) return false;
        if (b.extensions.length !== m.extensions.length) return false;
        for (const [j, e] of b.extensions.entries()) {
          if (e.type !== m.extensions[j]!.type || !Buffer.from(e.data).equals(m.extensions[j]!.data)) return false;
        }
        if (b.id.keyParameters <= 2) decodeTokenBindingPublicKey(b.id); // well-formed keys decode
      }
      if (!Buffer.from(encodeTokenBindingMessage(parsed)).equals(bytes)) return false;
      const header = encodeSecTokenBindingHeader(bytes);
      return header === Buffer.from(bytes).toString('base64url') && Buffer.from(decodeSecTokenBindingHeader(header, { maxLength: 1 << 20 })).equals(bytes);
    }),
    { numRuns: 500 },
  );
  t.pass();
});

/** Whatever the parser accepts must be canonical: re-encoding gives the input back. */
function parsesCleanly(bytes: Uint8Array): boolean {
  const message = accepted(() => parseTokenBindingMessage(bytes));
  if (message === undefined) return true;
  if (!Buffer.from(encodeTokenBindingMessage(message)).equals(bytes)) return false;
  for (const b of message.bindings) accepted(() => decodeTokenBindingPublicKey(b.id));
  return true;
}

test('arbitrary bytes: a valid message or a TokenBindingError', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), parsesCleanly), { numRuns: 2000 });
  t.pass();
});

/** Mutations of valid messages reach the deep paths random bytes never get to. */
const mutatedArb = fc.tuple(messageArb, fc.array(fc.tuple(fc.nat(), byte, fc.constantFrom('set', 'insert', 'delete', 'truncate')), { minLength: 1, maxLength: 3 })).map(([message, edits]) => {
  const bytes = [...encodeTokenBindingMessage(message)];
  for (const [at, value, op] of edits) {
    const i = at % (bytes.length + 1);
    if (op === 'set' && i < bytes.length) bytes[i] = value;
    else if (op === 'insert') bytes.splice(i, 0, value);
    else if (op === 'delete') bytes.splice(i, 1);
    else bytes.length = i;
  }
  return Uint8Array.from(bytes);
});

test('mutated valid messages: a valid message or a TokenBindingError', (t) => {
  fc.assert(fc.property(mutatedArb, parsesCleanly), { numRuns: 2000 });
  t.pass();
});

test('arbitrary strings into the header decoders: a result or a TokenBindingError', (t) => {
  const headerish = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    mutatedArb.map((bytes) => Buffer.from(bytes).toString('base64url')),
    fc.tuple(messageArb, fc.string({ maxLength: 3 }), fc.nat()).map(([m, junk, at]) => {
      const h = encodeSecTokenBindingHeader(encodeTokenBindingMessage(m));
      const i = at % (h.length + 1);
      return h.slice(0, i) + junk + h.slice(i);
    }),
  );
  fc.assert(
    fc.property(headerish, fc.integer({ min: 0, max: 5000 }), (value, maxLength) => {
      const bytes = accepted(() => decodeSecTokenBindingHeader(value, { maxLength }));
      if (bytes !== undefined && encodeSecTokenBindingHeader(bytes) !== value) return false;
      const message = accepted(() => parseSecTokenBindingHeader(value, { maxLength }));
      return message === undefined || encodeSecTokenBindingHeader(encodeTokenBindingMessage(message)) === value;
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('arbitrary bytes into parseTokenBindingExtension: a result that re-encodes, or a TokenBindingError', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 20 }), (bytes) => {
      const p = accepted(() => parseTokenBindingExtension(bytes));
      return p === undefined || Buffer.from(encodeTokenBindingExtension(p)).equals(bytes);
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('arbitrary keys into decodeTokenBindingPublicKey and parseTokenBindingID: a result or a TokenBindingError', (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.constantFrom(0, 1, 2), byte), fc.uint8Array({ minLength: 1, maxLength: 300 }), (kp, key) => {
      const decoded = accepted(() => decodeTokenBindingPublicKey(createTokenBindingID(kp, key)));
      if (decoded !== undefined) {
        const again = decoded.kind === 'ec' ? encodeEcP256PublicKey(decoded.x, decoded.y) : encodeRsaPublicKey(decoded.modulus, decoded.exponent);
        if (!Buffer.from(again).equals(key)) return false;
      }
      const id = accepted(() => parseTokenBindingID(key));
      return id === undefined || Buffer.from(id.raw).equals(key);
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

/** One binding, no extensions: the message the verifier reads at fixed offsets. */
const singleBytesArb: fc.Arbitrary<Uint8Array> = bindingArb
  .map((b): TokenBinding => ({ ...b, extensions: [] }))
  .filter((b) => bindingLength(b) >= 132)
  .map((b) => encodeTokenBindingMessage({ bindings: [b] }));

test('parseSingleBindingMessage: the full parser’s only binding for a one-binding message without extensions, undefined for any other input', (t) => {
  let singles = 0;
  let others = 0;
  fc.assert(
    fc.property(fc.oneof(singleBytesArb, mutated(singleBytesArb), messageBytesArb, mutated(messageBytesArb), fc.uint8Array({ maxLength: 400 })), (bytes) => {
      const single = parseSingleBindingMessage(bytes);
      const full = accepted(() => parseTokenBindingMessage(bytes));
      const only = full !== undefined && full.bindings.length === 1 && full.bindings[0]!.extensions.length === 0 ? full.bindings[0]! : undefined;
      if (only === undefined) {
        others++;
        return single === undefined;
      }
      singles++;
      if (single === undefined) return false;
      // The same fields, as views of the same bytes of the input (as the parser's are).
      const sameView = (a: Uint8Array, b: Uint8Array) => a.buffer === b.buffer && a.byteOffset === b.byteOffset && a.length === b.length;
      return (
        single.type === only.type &&
        single.id.keyParameters === only.id.keyParameters &&
        single.extensions.length === 0 &&
        Object.keys(single).join() === Object.keys(only).join() &&
        Object.keys(single.id).join() === Object.keys(only.id).join() &&
        sameView(single.id.raw, only.id.raw) &&
        sameView(single.id.key, only.id.key) &&
        sameView(single.signature, only.signature)
      );
    }),
    { numRuns: 3000 },
  );
  t.true(singles > 300 && others > 300, `both kinds reached: ${singles} single, ${others} other`);
});
