/**
 * Generators shared by the fuzz and reliability tests: well-formed TokenBindingMessages (opaque
 * signatures), and byte-level mutations of any input — the edits a hostile client or a broken
 * proxy makes: bit flips, overwritten bytes, length fields set to edge values, insertions,
 * deletions, truncation, duplication.
 */
import fc from 'fast-check';
import { encodeEcP256PublicKey, encodeRsaPublicKey } from '../../src/codec/keys.js';
import { createTokenBindingID, encodeTokenBindingMessage } from '../../src/codec/message.js';
import type { TokenBinding } from '../../src/codec/types.js';

export const byte = fc.integer({ min: 0, max: 255 });

/** A key for the given parameters: well-formed EC and RSA keys, opaque bytes otherwise. */
function keyFor(kp: number): fc.Arbitrary<Uint8Array> {
  if (kp === 2) {
    return fc
      .tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }))
      .map(([x, y]) => encodeEcP256PublicKey(x, y));
  }
  if (kp < 2) {
    return fc
      .tuple(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.uint8Array({ minLength: 1, maxLength: 4 }))
      .map(([n, e]) => encodeRsaPublicKey(Uint8Array.of(0x80 | (n[0] ?? 1), ...n), Uint8Array.of(1, ...e)));
  }
  return fc.uint8Array({ minLength: 1, maxLength: 200 });
}

export const bindingArb: fc.Arbitrary<TokenBinding> = fc
  .tuple(fc.oneof(fc.constantFrom(0, 1), byte), fc.oneof(fc.constantFrom(0, 1, 2), byte))
  .chain(([type, kp]) =>
    fc.record({
      type: fc.constant(type),
      id: keyFor(kp).map((key) => createTokenBindingID(kp, key)),
      signature: fc.uint8Array({ minLength: 64, maxLength: 300 }),
      extensions: fc.array(fc.record({ type: byte, data: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 3 }),
    }),
  );

const bindingLength = (b: TokenBinding): number =>
  1 + b.id.raw.length + 2 + b.signature.length + 2 + b.extensions.reduce((n, e) => n + 3 + e.data.length, 0);

/** Wire bytes of a well-formed message (tokenbindings<132..2^16-1>). */
export const messageBytesArb: fc.Arbitrary<Uint8Array> = fc
  .array(bindingArb, { minLength: 1, maxLength: 4 })
  .filter((bindings) => bindings.reduce((n, b) => n + bindingLength(b), 0) >= 132)
  .map((bindings) => encodeTokenBindingMessage({ bindings }));

type Edit =
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'set'; readonly at: number; readonly value: number }
  | { readonly kind: 'u16'; readonly at: number; readonly value: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'delete'; readonly at: number; readonly count: number }
  | { readonly kind: 'truncate'; readonly keep: number }
  | { readonly kind: 'duplicate'; readonly at: number; readonly count: number };

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.oneof(byte, fc.constantFrom(0, 1, 0x40, 0x41, 0x7f, 0x80, 0xff)) }),
  fc.record({
    kind: fc.constant('u16' as const),
    at: fc.nat(),
    value: fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(0, 1, 63, 64, 65, 131, 132, 0x7fff, 0x8000, 0xfffe, 0xffff)),
  }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 80 }) }),
);

function applyEdit(input: Uint8Array, e: Edit): Uint8Array {
  const n = input.length;
  const at = n === 0 ? 0 : ('at' in e ? e.at % n : 0);
  switch (e.kind) {
    case 'flip': {
      if (n === 0) return input;
      const out = Uint8Array.from(input);
      out[at]! ^= 1 << e.bit;
      return out;
    }
    case 'set': {
      if (n === 0) return input;
      const out = Uint8Array.from(input);
      out[at] = e.value;
      return out;
    }
    case 'u16': {
      if (n < 2) return input;
      const out = Uint8Array.from(input);
      const i = Math.min(at, n - 2);
      out[i] = e.value >>> 8;
      out[i + 1] = e.value & 0xff;
      return out;
    }
    case 'insert':
      return Uint8Array.from([...input.subarray(0, at), ...e.bytes, ...input.subarray(at)]);
    case 'delete':
      return Uint8Array.from([...input.subarray(0, at), ...input.subarray(at + e.count)]);
    case 'truncate':
      return Uint8Array.from(input.subarray(0, n === 0 ? 0 : e.keep % n));
    case 'duplicate':
      return Uint8Array.from([...input.subarray(0, at + e.count), ...input.subarray(at, at + e.count), ...input.subarray(at + e.count)]);
  }
}

/** `base` with 1–4 random edits applied. */
export function mutated(base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.tuple(base, fc.array(editArb, { minLength: 1, maxLength: 4 })).map(([input, edits]) => edits.reduce(applyEdit, input));
}

/** Random bytes, mutated well-formed messages, and mutated well-formed messages of `extra`. */
export function hostileBytes(extra?: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const arbs: fc.Arbitrary<Uint8Array>[] = [
    fc.uint8Array({ maxLength: 600 }),
    mutated(messageBytesArb),
    messageBytesArb,
  ];
  if (extra !== undefined) arbs.push(mutated(extra), extra);
  return fc.oneof(...arbs);
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Header values: valid encodings of (mutated) messages, with character-level damage, and junk. */
export const hostileHeaderArb: fc.Arbitrary<string> = fc.oneof(
  hostileBytes().map((b) => Buffer.from(b).toString('base64url')),
  fc
    .tuple(
      messageBytesArb.map((b) => Buffer.from(b).toString('base64url')),
      fc.nat(),
      fc.constantFrom('=', '==', ' ', '\t', '+', '/', ',', '.', '\u00e9', '\u0000', '\ud800', 'A', 'AA', 'AAA'),
    )
    .map(([s, at, junk]) => s.slice(0, at % (s.length + 1)) + junk + s.slice(at % (s.length + 1))),
  fc.string({ unit: fc.constantFrom(...BASE64URL), maxLength: 700 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 300 }),
  fc.constantFrom('', 'A', 'AA', 'AAA', 'AAAA', 'AA==', '_-_-'),
);
