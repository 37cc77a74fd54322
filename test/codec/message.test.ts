import test from 'ava';
import {
  ByteReader,
  createTokenBindingID,
  encodeTokenBinding,
  encodeTokenBindingMessage,
  formatTokenBindingID,
  parseTokenBindingID,
  parseTokenBindingMessage,
} from '../../src/codec/message.js';
import type { TokenBinding } from '../../src/codec/types.js';
import { TokenBindingError } from '../../src/errors.js';

// Messages are built by hand here, byte by byte, so the parser is not tested against the encoder.
type Part = Uint8Array | readonly number[];
const cat = (...parts: Part[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const u16 = (n: number) => [n >>> 8, n & 0xff];
const fill = (n: number, v: number) => new Uint8Array(n).fill(v);

const EC_KEY = cat([64], fill(32, 0x11), fill(32, 0x22));
const SIG = fill(64, 0x33);

function binding(type: number, keyParameters: number, key: Uint8Array, signature: Uint8Array, extensions: Part = u16(0)): Uint8Array {
  return cat([type, keyParameters], u16(key.length), key, u16(signature.length), signature, extensions);
}
const message = (...bindings: Uint8Array[]) => {
  const body = cat(...bindings);
  return cat(u16(body.length), body);
};

const PROVIDED = binding(0, 2, EC_KEY, SIG);
const REFERRED = binding(1, 2, fill(65, 0x44), fill(64, 0x55));

function malformed(t: import('ava').ExecutionContext, bytes: Uint8Array, field?: string): void {
  const err = t.throws(() => parseTokenBindingMessage(bytes), { instanceOf: TokenBindingError });
  t.is(err?.code, 'ERR_TB_MALFORMED');
  if (field !== undefined) t.is((err?.cause as { field?: string }).field, field);
}

test('parses a provided ecdsap256 binding into views of the input', (t) => {
  const bytes = message(PROVIDED);
  t.is(bytes.length, 2 + 137);
  const { bindings } = parseTokenBindingMessage(bytes);
  t.is(bindings.length, 1);
  const b = bindings[0]!;
  t.is(b.type, 0);
  t.is(b.id.keyParameters, 2);
  t.deepEqual(b.id.key, EC_KEY);
  t.deepEqual(b.id.raw, cat([2, 0, 65], EC_KEY));
  t.deepEqual(b.signature, SIG);
  t.deepEqual(b.extensions, []);
  // Views, not copies.
  t.is(b.id.raw.buffer, bytes.buffer);
  t.is(b.id.raw.byteOffset, bytes.byteOffset + 3);
  t.is(b.signature.buffer, bytes.buffer);
});

test('parses provided + referred, and carries unknown types and key parameters', (t) => {
  const odd = binding(77, 200, fill(10, 9), fill(64, 1));
  const { bindings } = parseTokenBindingMessage(message(PROVIDED, REFERRED, odd));
  t.deepEqual(
    bindings.map((b) => [b.type, b.id.keyParameters, b.id.key.length]),
    [
      [0, 2, 65],
      [1, 2, 65],
      [77, 200, 10],
    ],
  );
});

test('parses a message that is a view into a larger buffer', (t) => {
  const bytes = message(PROVIDED);
  const big = cat([9, 9, 9], bytes, [9]);
  const view = big.subarray(3, 3 + bytes.length);
  t.deepEqual(parseTokenBindingMessage(view).bindings[0]?.id.key, EC_KEY);
});

test('extensions: carried in order, empty data allowed, round-trips', (t) => {
  const exts = cat([7], u16(3), [1, 2, 3], [200], u16(0));
  const bytes = message(binding(0, 2, EC_KEY, SIG, cat(u16(exts.length), exts)));
  const { bindings } = parseTokenBindingMessage(bytes);
  t.deepEqual(
    bindings[0]?.extensions.map((e) => [e.type, [...e.data]]),
    [
      [7, [1, 2, 3]],
      [200, []],
    ],
  );
  t.deepEqual(encodeTokenBindingMessage({ bindings: bindings }), bytes);
});

test('tokenbindings<132..2^16-1>: 132 bytes parse, 131 do not', (t) => {
  // A binding is 72 bytes plus its key: a 60-byte key makes exactly 132.
  t.is(parseTokenBindingMessage(message(binding(0, 9, fill(60, 1), SIG))).bindings.length, 1);
  malformed(t, message(binding(0, 9, fill(59, 1), SIG)), 'tokenbindings.length');
});

test('empty messages are malformed: "AAA" (0x0000), no bytes, one byte', (t) => {
  malformed(t, Uint8Array.of(0, 0), 'tokenbindings.length');
  malformed(t, new Uint8Array(0), 'tokenbindings.length');
  malformed(t, Uint8Array.of(0), 'tokenbindings.length');
});

test('the list length must equal the rest of the message exactly', (t) => {
  const bytes = message(PROVIDED);
  malformed(t, cat(bytes, [0]), 'tokenbindings.length');
  const longer = bytes.slice();
  longer[1]! += 1;
  malformed(t, longer, 'tokenbindings.length');
  const shorter = cat(bytes, [0]);
  shorter[1]! -= 1;
  malformed(t, shorter);
});

test('every truncation of a valid message is malformed', (t) => {
  const bytes = message(PROVIDED, REFERRED);
  for (let n = 0; n < bytes.length; n++) malformed(t, bytes.subarray(0, n));
});

test('a list length that matches but cuts a binding short is malformed', (t) => {
  // Relabel the list as one byte shorter and drop the last byte: the last binding is truncated.
  const bytes = message(PROVIDED, REFERRED);
  const cut = bytes.slice(0, -1);
  const length = bytes.length - 3;
  cut[0] = length >>> 8;
  cut[1] = length & 0xff;
  malformed(t, cut, 'extensions.length');
});

test('signature<64..2^16-1>: 63 bytes are malformed, 64 and 300 parse', (t) => {
  malformed(t, message(binding(0, 2, EC_KEY, fill(63, 1))), 'signature.length');
  t.is(parseTokenBindingMessage(message(binding(0, 2, EC_KEY, fill(300, 1)))).bindings[0]?.signature.length, 300);
});

test('an empty key is malformed', (t) => {
  malformed(t, message(binding(0, 2, new Uint8Array(0), fill(140, 1))), 'key.length');
});

test('a key length running past the binding is malformed', (t) => {
  const bytes = message(PROVIDED);
  bytes[4] = 0xff; // key_length 0xff41
  malformed(t, bytes, 'key');
});

test('extensions: a length past the message, data past the block, a truncated header', (t) => {
  malformed(t, message(binding(0, 2, EC_KEY, SIG, u16(1))), 'extensions.length');
  // Data length 5 inside a 4-byte block, even though bytes follow in the message.
  const over = cat(u16(4), [7], u16(5), [1]);
  malformed(t, message(binding(0, 2, EC_KEY, SIG, over), PROVIDED), 'extension_data');
  malformed(t, message(binding(0, 2, EC_KEY, SIG, cat(u16(2), [7, 0]))), 'extension_data.length');
});

test('errors carry { field, expected, actual } and are never RangeErrors', (t) => {
  const err = t.throws(() => parseTokenBindingMessage(message(binding(0, 2, EC_KEY, fill(63, 1)))), { instanceOf: TokenBindingError });
  t.like(err?.cause, { field: 'signature.length', expected: '64..65535', actual: 63 });
});

test('API misuse throws TypeError', (t) => {
  t.throws(() => parseTokenBindingMessage('AAA' as unknown as Uint8Array), { instanceOf: TypeError });
  t.throws(() => parseTokenBindingID([1, 2] as unknown as Uint8Array), { instanceOf: TypeError });
});

test('encode(parse(x)) === x for a multi-binding message', (t) => {
  const bytes = message(PROVIDED, REFERRED, binding(77, 99, fill(300, 7), fill(256, 8), cat(u16(4), [1], u16(1), [2])));
  t.deepEqual(encodeTokenBindingMessage(parseTokenBindingMessage(bytes)), bytes);
});

test('encodeTokenBinding writes one binding without the list prefix', (t) => {
  const parsed = parseTokenBindingMessage(message(PROVIDED)).bindings[0]!;
  t.deepEqual(encodeTokenBinding(parsed), PROVIDED);
});

test('createTokenBindingID builds the wire form and copies the key', (t) => {
  const key = EC_KEY.slice();
  const id = createTokenBindingID(2, key);
  t.deepEqual(id.raw, cat([2, 0x00, 0x41], EC_KEY));
  t.is(id.keyParameters, 2);
  t.deepEqual(id.key, EC_KEY);
  key[0] = 0;
  t.is(id.key[0], 64);
  t.throws(() => createTokenBindingID(256, EC_KEY), { instanceOf: TypeError });
  t.throws(() => createTokenBindingID(2, new Uint8Array(0)), { instanceOf: TypeError });
});

test('parseTokenBindingID reads a bare ID exactly', (t) => {
  const raw = cat([2, 0x00, 0x41], EC_KEY);
  const id = parseTokenBindingID(raw);
  t.is(id.keyParameters, 2);
  t.deepEqual(id.key, EC_KEY);
  t.is(id.raw.buffer, raw.buffer);
  for (const bad of [cat(raw, [0]), raw.subarray(0, raw.length - 1), Uint8Array.of(2, 0, 0), new Uint8Array(0)]) {
    const err = t.throws(() => parseTokenBindingID(bad), { instanceOf: TokenBindingError });
    t.is(err?.code, 'ERR_TB_MALFORMED');
  }
});

test('formatTokenBindingID is base64url of the raw ID', (t) => {
  const id = createTokenBindingID(2, EC_KEY);
  t.is(formatTokenBindingID(id), Buffer.from(id.raw).toString('base64url'));
  t.is(formatTokenBindingID(id.raw), formatTokenBindingID(id));
  t.throws(() => formatTokenBindingID({} as never), { instanceOf: TypeError });
});

test('encoding out-of-bounds fields is API misuse: TypeError', (t) => {
  const id = createTokenBindingID(2, EC_KEY);
  const ok: TokenBinding = { type: 0, id, signature: SIG, extensions: [] };
  const bad: [string, unknown][] = [
    ['type 256', { ...ok, type: 256 }],
    ['type -1', { ...ok, type: -1 }],
    ['type 1.5', { ...ok, type: 1.5 }],
    ['63-byte signature', { ...ok, signature: fill(63, 0) }],
    ['signature not bytes', { ...ok, signature: [1, 2] }],
    ['extension type 300', { ...ok, extensions: [{ type: 300, data: new Uint8Array(0) }] }],
    ['extension data too long', { ...ok, extensions: [{ type: 1, data: new Uint8Array(0x10000) }] }],
    ['extensions block too long', { ...ok, extensions: [{ type: 1, data: new Uint8Array(0xfff0) }, { type: 2, data: new Uint8Array(0x20) }] }],
    ['extensions not an array', { ...ok, extensions: null }],
    ['raw disagreeing with key', { ...ok, id: { ...id, raw: cat([2, 0, 65], fill(65, 0)) } }],
    ['raw disagreeing with key parameters', { ...ok, id: { ...id, keyParameters: 1 } }],
    ['raw with a wrong length prefix', { ...ok, id: { ...id, raw: cat([2, 1, 65], EC_KEY) } }],
    ['id missing', { ...ok, id: null }],
    ['binding not an object', null],
  ];
  for (const [why, b] of bad) {
    t.throws(() => encodeTokenBinding(b as TokenBinding), { instanceOf: TypeError }, why);
  }
  t.throws(() => encodeTokenBindingMessage({ bindings: [{ ...ok, id: createTokenBindingID(2, fill(59, 1)) }] }), { instanceOf: TypeError });
  t.throws(() => encodeTokenBindingMessage({ bindings: [] }), { instanceOf: TypeError });
  t.throws(() => encodeTokenBindingMessage(null as never), { instanceOf: TypeError });
  // An ID whose key is a copy (not a view of raw) but equal is consistent.
  t.is(encodeTokenBinding({ ...ok, id: { ...id, key: id.key.slice() } }).length, 137);
});

test('encodeTokenBindingMessage rejects a list over 65535 bytes', (t) => {
  const id = createTokenBindingID(2, EC_KEY);
  const big: TokenBinding = { type: 0, id, signature: new Uint8Array(0xff00), extensions: [] };
  t.throws(() => encodeTokenBindingMessage({ bindings: [big, big] }), { instanceOf: TypeError });
});

test('ByteReader vectors: each failure names the field, the bound and the offset; a failed length is not consumed', (t) => {
  const cause = (f: () => unknown): unknown => {
    const err = t.throws(f, { instanceOf: TokenBindingError });
    t.is(err?.code, 'ERR_TB_MALFORMED');
    return err?.cause;
  };
  const reader = (...bytes: number[]): ByteReader => new ByteReader(Uint8Array.from(bytes), 'ERR_TB_MALFORMED');
  t.deepEqual(cause(() => reader(7).vector16('x', 0, 10)), { field: 'x.length', expected: '2 bytes', actual: '1 bytes', offset: 0 });
  const range16 = reader(0, 5, 1, 2, 3, 4, 5);
  t.deepEqual(cause(() => range16.vector16('x', 6, 10)), { field: 'x.length', expected: '6..10', actual: 5, offset: 0 });
  t.is(range16.pos, 0);
  t.deepEqual(cause(() => reader(0, 5, 1, 2).vector16('x', 1, 10)), { field: 'x', expected: '5 bytes', actual: '2 bytes', offset: 2 });
  t.deepEqual(cause(() => reader().vector8('x', 0, 10)), { field: 'x.length', expected: '1 byte', actual: 'end of input', offset: 0 });
  const range8 = reader(3, 1, 2, 3);
  t.deepEqual(cause(() => range8.vector8('x', 4, 5)), { field: 'x.length', expected: '4..5', actual: 3, offset: 0 });
  t.is(range8.pos, 0);
  t.deepEqual(cause(() => reader(3, 1).vector8('x', 1, 5)), { field: 'x', expected: '3 bytes', actual: '1 bytes', offset: 1 });
  const ok = reader(0, 2, 9, 8, 1, 7, 6);
  t.deepEqual([...ok.vector16('a', 1, 2)], [9, 8]);
  t.deepEqual([...ok.vector8('b', 1, 1)], [7]);
  t.is(ok.pos, 6);
});
