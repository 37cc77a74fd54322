import test from 'ava';
import { decodeTokenBindingPublicKey, encodeEcP256PublicKey, encodeRsaPublicKey } from '../../src/codec/keys.js';
import { createTokenBindingID } from '../../src/codec/message.js';
import { TokenBindingError, type TokenBindingErrorCode } from '../../src/errors.js';

type Part = Uint8Array | readonly number[];
const cat = (...parts: Part[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const fill = (n: number, v: number) => new Uint8Array(n).fill(v);
const X = fill(32, 0xaa);
const Y = fill(32, 0xbb);
const N = cat([0xc5], fill(255, 0x17)); // 256 bytes, high bit set, no leading zero
const E = Uint8Array.of(1, 0, 1);

function rejects(t: import('ava').ExecutionContext, keyParameters: number, key: Uint8Array, code: TokenBindingErrorCode, field?: string): void {
  const err = t.throws(() => decodeTokenBindingPublicKey(createTokenBindingID(keyParameters, key)), { instanceOf: TokenBindingError });
  t.is(err?.code, code);
  if (field !== undefined) t.is((err?.cause as { field?: string }).field, field);
}

test('ecdsap256: u8 64 || X || Y decodes to views of the key', (t) => {
  const id = createTokenBindingID(2, cat([64], X, Y));
  const key = decodeTokenBindingPublicKey(id);
  t.is(key.kind, 'ec');
  if (key.kind !== 'ec') return;
  t.deepEqual(key.x, X);
  t.deepEqual(key.y, Y);
  t.is(key.x.buffer, id.raw.buffer);
  t.deepEqual(encodeEcP256PublicKey(key.x, key.y), id.key);
});

test('ecdsap256: point on the curve is not checked here', (t) => {
  // All-0xff is not a P-256 point; that is the crypto layer's finding (invalid signature).
  t.is(decodeTokenBindingPublicKey(createTokenBindingID(2, cat([64], fill(64, 0xff)))).kind, 'ec');
});

test('ecdsap256: structurally wrong keys are ERR_TB_KEY_INVALID', (t) => {
  rejects(t, 2, cat([64], X, Y.subarray(1)), 'ERR_TB_KEY_INVALID', 'key.length');
  rejects(t, 2, cat([64], X, Y, [0]), 'ERR_TB_KEY_INVALID', 'key.length');
  rejects(t, 2, cat([65], X, Y), 'ERR_TB_KEY_INVALID', 'point.length'); // 65 bytes claimed, 64 present
  rejects(t, 2, cat([63], X, Y), 'ERR_TB_KEY_INVALID', 'point.length');
  // SEC1 uncompressed form (0x04 || X || Y) is not the TB_ECPoint.
  rejects(t, 2, cat([65, 4], X, Y), 'ERR_TB_KEY_INVALID', 'key.length');
  rejects(t, 2, cat([4], X, Y), 'ERR_TB_KEY_INVALID', 'point.length');
  rejects(t, 2, Uint8Array.of(64), 'ERR_TB_KEY_INVALID', 'key.length');
});

for (const kp of [0, 1]) {
  test(`rsa (key parameters ${kp}): u16 modulus || u8 exponent decodes`, (t) => {
    const id = createTokenBindingID(kp, cat([1, 0], N, [3], E));
    const key = decodeTokenBindingPublicKey(id);
    t.is(key.kind, 'rsa');
    if (key.kind !== 'rsa') return;
    t.deepEqual(key.modulus, N);
    t.deepEqual(key.exponent, E);
    t.deepEqual(encodeRsaPublicKey(key.modulus, key.exponent), id.key);
  });

  test(`rsa (key parameters ${kp}): structurally wrong keys are ERR_TB_KEY_INVALID`, (t) => {
    rejects(t, kp, cat([0, 0], [3], E), 'ERR_TB_KEY_INVALID', 'modulus.length');
    rejects(t, kp, cat([1, 1], [0], N, [3], E), 'ERR_TB_KEY_INVALID', 'modulus');
    rejects(t, kp, cat([1, 0], N, [0]), 'ERR_TB_KEY_INVALID', 'publicexponent.length');
    rejects(t, kp, cat([1, 0], N, [4, 0], E), 'ERR_TB_KEY_INVALID', 'publicexponent');
    rejects(t, kp, cat([1, 0], N, [3], E, [0]), 'ERR_TB_KEY_INVALID', 'RSAPublicKey');
    rejects(t, kp, cat([1, 0], N), 'ERR_TB_KEY_INVALID', 'publicexponent.length');
    rejects(t, kp, cat([1, 0], N, [4], E), 'ERR_TB_KEY_INVALID', 'publicexponent');
    rejects(t, kp, cat([1, 1], N), 'ERR_TB_KEY_INVALID', 'modulus');
    rejects(t, kp, Uint8Array.of(1), 'ERR_TB_KEY_INVALID', 'modulus.length');
  });

  test(`rsa (key parameters ${kp}): modulus size is not checked here`, (t) => {
    const key = decodeTokenBindingPublicKey(createTokenBindingID(kp, Uint8Array.of(0, 1, 0xc5, 1, 3)));
    t.like(key, { kind: 'rsa' });
  });
}

test('unregistered key parameters are ERR_TB_KEY_PARAMETERS_UNSUPPORTED', (t) => {
  for (const kp of [3, 88, 96, 255]) {
    rejects(t, kp, cat([64], X, Y), 'ERR_TB_KEY_PARAMETERS_UNSUPPORTED', 'key_parameters');
  }
});

test('decodeTokenBindingPublicKey: API misuse throws TypeError', (t) => {
  t.throws(() => decodeTokenBindingPublicKey(null as never), { instanceOf: TypeError });
  t.throws(() => decodeTokenBindingPublicKey({ keyParameters: 2 } as never), { instanceOf: TypeError });
});

test('encodeEcP256PublicKey requires 32-byte coordinates', (t) => {
  t.deepEqual(encodeEcP256PublicKey(X, Y), cat([64], X, Y));
  t.throws(() => encodeEcP256PublicKey(X.subarray(1), Y), { instanceOf: TypeError });
  t.throws(() => encodeEcP256PublicKey(X, cat(Y, [0])), { instanceOf: TypeError });
  t.throws(() => encodeEcP256PublicKey([1] as never, Y), { instanceOf: TypeError });
});

test('encodeRsaPublicKey strips leading zeros and checks bounds', (t) => {
  // JWK-style inputs never have leading zeros, but DER INTEGERs do.
  t.deepEqual(encodeRsaPublicKey(cat([0], N), cat([0, 0], E)), cat([1, 0], N, [3], E));
  t.throws(() => encodeRsaPublicKey(fill(4, 0), E), { instanceOf: TypeError });
  t.throws(() => encodeRsaPublicKey(N, new Uint8Array(0)), { instanceOf: TypeError });
  t.throws(() => encodeRsaPublicKey(N, fill(256, 1)), { instanceOf: TypeError });
  t.throws(() => encodeRsaPublicKey(fill(0x10000, 1), E), { instanceOf: TypeError });
  t.throws(() => encodeRsaPublicKey('n' as never, E), { instanceOf: TypeError });
  t.throws(() => encodeRsaPublicKey(N, 'e' as never), { instanceOf: TypeError });
});
