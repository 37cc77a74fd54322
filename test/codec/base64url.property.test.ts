/**
 * The hand-written base64url codec against Node's Buffer: same output on every input, and the
 * decoder accepts exactly the canonical unpadded strings (those Buffer re-encodes to themselves).
 */
import test from 'ava';
import fc from 'fast-check';
import { base64urlDecode, base64urlEncode } from '../../src/codec/base64url.js';
import { TokenBindingError } from '../../src/errors.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

test('encode agrees with Buffer and decode inverts it', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const encoded = base64urlEncode(bytes);
      if (encoded !== Buffer.from(bytes).toString('base64url')) return false;
      const decoded = base64urlDecode(encoded);
      return Buffer.from(decoded).equals(Buffer.from(bytes));
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

/** Strings mostly from the alphabet, salted with the characters a lax decoder would forgive. */
const nearlyBase64url = fc.string({
  unit: fc.oneof(
    { weight: 20, arbitrary: fc.constantFrom(...ALPHABET) },
    { weight: 1, arbitrary: fc.constantFrom('=', ' ', '\n', '\t', '+', '/', '.', 'é', '\u0141', '\u0000', '\uD83D') },
  ),
  maxLength: 64,
});

function decodeOrCode(s: string): Uint8Array | string {
  try {
    return base64urlDecode(s);
  } catch (err) {
    if (err instanceof TokenBindingError) return err.code;
    throw err;
  }
}

for (const [name, arbitrary] of [
  ['nearly-base64url strings', nearlyBase64url],
  ['arbitrary UTF-16 strings', fc.string({ unit: 'binary', maxLength: 64 })],
] as const) {
  test(`decode accepts exactly what Buffer round-trips, and agrees with it: ${name}`, (t) => {
    fc.assert(
      fc.property(arbitrary, (s) => {
        const ours = decodeOrCode(s);
        const theirs = Buffer.from(s, 'base64url');
        const canonical = theirs.toString('base64url') === s;
        if (!canonical) return ours === 'ERR_TB_HEADER_ENCODING';
        return ours instanceof Uint8Array && theirs.equals(ours);
      }),
      { numRuns: 2000 },
    );
    t.pass();
  });
}

test("the verifier's slab decode answers exactly as base64urlDecode, in views that never overlap or change", async (t) => {
  const { base64urlDecodeTransient } = await import('../../src/codec/base64url.js');
  const kept: [Uint8Array, Uint8Array][] = [];
  fc.assert(
    fc.property(fc.oneof(nearlyBase64url, fc.uint8Array({ maxLength: 3000 }).map((b) => base64urlEncode(b))), (input) => {
      let owned: Uint8Array | TokenBindingError;
      let pooled: Uint8Array | TokenBindingError;
      try {
        owned = base64urlDecode(input);
      } catch (err) {
        owned = err as TokenBindingError;
      }
      try {
        pooled = base64urlDecodeTransient(input);
      } catch (err) {
        pooled = err as TokenBindingError;
      }
      if (owned instanceof TokenBindingError || pooled instanceof TokenBindingError) {
        return owned instanceof TokenBindingError && pooled instanceof TokenBindingError && owned.code === pooled.code && owned.message === pooled.message;
      }
      if (kept.length < 400) kept.push([pooled, owned.slice()]);
      return Buffer.from(pooled).equals(Buffer.from(owned));
    }),
    { numRuns: 3000 },
  );
  // Decoded many slabs' worth since: every view kept still holds its own bytes.
  for (const [view, expected] of kept) t.true(Buffer.from(view).equals(Buffer.from(expected)));
  // The public decoder never hands out a shared slab.
  const a = base64urlDecode('AAAA');
  t.is(a.buffer.byteLength, a.byteLength);
});
