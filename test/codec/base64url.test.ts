import test from 'ava';
import { base64urlDecode, base64urlEncode } from '../../src/codec/base64url.js';
import { TokenBindingError } from '../../src/errors.js';

const utf8 = (s: string) => new TextEncoder().encode(s);

// RFC 4648 §10 test vectors, in the URL-safe alphabet without padding.
const RFC4648 = [
  ['', ''],
  ['f', 'Zg'],
  ['fo', 'Zm8'],
  ['foo', 'Zm9v'],
  ['foob', 'Zm9vYg'],
  ['fooba', 'Zm9vYmE'],
  ['foobar', 'Zm9vYmFy'],
] as const;

for (const [plain, encoded] of RFC4648) {
  test(`RFC 4648 §10 ${JSON.stringify(plain)} ⇄ ${JSON.stringify(encoded)}`, (t) => {
    t.is(base64urlEncode(utf8(plain)), encoded);
    t.deepEqual(base64urlDecode(encoded), utf8(plain));
  });
}

test('uses the URL-safe alphabet: - and _ for 62 and 63', (t) => {
  t.is(base64urlEncode(Uint8Array.of(0xfb, 0xff)), '-_8');
  t.deepEqual(base64urlDecode('-_8'), Uint8Array.of(0xfb, 0xff));
  const all = new Uint8Array(256).map((_, i) => i);
  t.deepEqual(base64urlDecode(base64urlEncode(all)), all);
});

const REJECTED: readonly [string, string][] = [
  ['padding', 'Zg=='],
  ['padding after a full group', 'Zm9v===='],
  ['single pad', 'Zm8='],
  ['leading space', ' Zm9v'],
  ['trailing space', 'Zm9v '],
  ['inner space', 'Zm 9v'],
  ['newline', 'Zm9v\nYmFy'],
  ['tab', 'Zm9v\t'],
  ['standard alphabet +', '+_8A'],
  ['standard alphabet /', '-/8A'],
  ['non-ASCII', 'Zm9é'],
  ['char above U+00FF whose low byte is valid', 'Zm9\u0141'],
  ['NUL', 'Zm9\u0000'],
  ['length 1 mod 4', 'Zm9vY'],
  ['single character', 'A'],
  ['non-canonical 2-char tail (low 4 bits set)', 'Zh'],
  ['non-canonical 3-char tail (low 2 bits set)', 'Zm9'],
  ['invalid char in the tail', 'Zm9vY.'],
];

for (const [why, input] of REJECTED) {
  test(`rejects ${why} with ERR_TB_HEADER_ENCODING`, (t) => {
    const err = t.throws(() => base64urlDecode(input), { instanceOf: TokenBindingError });
    t.is(err?.code, 'ERR_TB_HEADER_ENCODING');
    t.is((err?.cause as { field?: string }).field, 'base64url');
  });
}

test('the error names the offending position, not the input', (t) => {
  const err = t.throws(() => base64urlDecode('AAAAAA=A'), { instanceOf: TokenBindingError });
  t.like(err?.cause, { field: 'base64url', actual: 'padding', offset: 6 });
});

test('canonical tails decode', (t) => {
  t.deepEqual(base64urlDecode('Zg'), Uint8Array.of(0x66));
  t.deepEqual(base64urlDecode('Zm8'), Uint8Array.of(0x66, 0x6f));
});

test('API misuse throws TypeError', (t) => {
  t.throws(() => base64urlDecode(42 as unknown as string), { instanceOf: TypeError });
  t.throws(() => base64urlEncode('abc' as unknown as Uint8Array), { instanceOf: TypeError });
});
