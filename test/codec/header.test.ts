import test from 'ava';
import {
  DEFAULT_MAX_HEADER_LENGTH,
  decodeSecTokenBindingHeader,
  encodeSecTokenBindingHeader,
  parseSecTokenBindingHeader,
} from '../../src/codec/header.js';
import { TokenBindingError } from '../../src/errors.js';

// RFC 8473 §2 example (a provided ecdsap256 binding).
const RFC8473_EXAMPLE =
  'AIkAAgBBQFzK4_bhAqLDwRQxqJWte33d7hZ0hZWHwk-miKPg4E9fcgs7gBPoz-9RfuDfN9WCw6keHEw1ZPQMGs9CxpuHm-YAQM_jaOwwej6a-cQBGU7CJpUHOvXG4VvjNq8jDsvta9Y8_bPEPj25GgmKiPjhJEtZA6mJ_9SNifLvVBTi7fR9wSAAAA';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof TokenBindingError) return err.code;
    throw err;
  }
  return undefined;
}

test('decodes and re-encodes the RFC 8473 example', (t) => {
  const bytes = decodeSecTokenBindingHeader(RFC8473_EXAMPLE);
  t.is(bytes.length, 139);
  t.is(encodeSecTokenBindingHeader(bytes), RFC8473_EXAMPLE);
  const message = parseSecTokenBindingHeader(RFC8473_EXAMPLE);
  t.is(message.bindings.length, 1);
  t.is(message.bindings[0]?.type, 0);
  t.is(message.bindings[0]?.id.keyParameters, 2);
});

test('the default cap is 4096 characters', (t) => {
  t.is(DEFAULT_MAX_HEADER_LENGTH, 4096);
  t.is(decodeSecTokenBindingHeader('A'.repeat(4096)).length, 3072);
  t.is(code(() => decodeSecTokenBindingHeader('A'.repeat(4097))), 'ERR_TB_HEADER_TOO_LARGE');
});

test('the cap is checked before decoding: an oversized invalid value is TOO_LARGE, not ENCODING', (t) => {
  const err = t.throws(() => decodeSecTokenBindingHeader('='.repeat(5000)), { instanceOf: TokenBindingError });
  t.is(err?.code, 'ERR_TB_HEADER_TOO_LARGE');
  t.like(err?.cause, { field: 'Sec-Token-Binding', actual: 5000 });
});

test('the cap is configurable', (t) => {
  t.is(code(() => decodeSecTokenBindingHeader(RFC8473_EXAMPLE, { maxLength: 185 })), 'ERR_TB_HEADER_TOO_LARGE');
  t.is(decodeSecTokenBindingHeader(RFC8473_EXAMPLE, { maxLength: 186 }).length, 139);
  // Past a raised cap the value is decoded (and here, all zeros, found malformed).
  t.is(code(() => parseSecTokenBindingHeader('A'.repeat(8000), { maxLength: 10_000 })), 'ERR_TB_MALFORMED');
});

test('padding, whitespace and the standard alphabet are rejected', (t) => {
  t.is(code(() => parseSecTokenBindingHeader(RFC8473_EXAMPLE + '=')), 'ERR_TB_HEADER_ENCODING');
  t.is(code(() => parseSecTokenBindingHeader(' ' + RFC8473_EXAMPLE)), 'ERR_TB_HEADER_ENCODING');
  t.is(code(() => parseSecTokenBindingHeader(RFC8473_EXAMPLE.replace(/-/g, '+'))), 'ERR_TB_HEADER_ENCODING');
});

test('an empty value and "AAA" decode but are malformed messages', (t) => {
  t.is(decodeSecTokenBindingHeader('').length, 0);
  t.is(code(() => parseSecTokenBindingHeader('')), 'ERR_TB_MALFORMED');
  t.deepEqual(decodeSecTokenBindingHeader('AAA'), Uint8Array.of(0, 0));
  t.is(code(() => parseSecTokenBindingHeader('AAA')), 'ERR_TB_MALFORMED');
});

test('API misuse throws TypeError', (t) => {
  t.throws(() => decodeSecTokenBindingHeader(undefined as unknown as string), { instanceOf: TypeError });
  t.throws(() => decodeSecTokenBindingHeader('AAA', { maxLength: -1 }), { instanceOf: TypeError });
  t.throws(() => decodeSecTokenBindingHeader('AAA', { maxLength: 1.5 }), { instanceOf: TypeError });
});
