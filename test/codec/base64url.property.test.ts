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
