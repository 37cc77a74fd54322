/**
 * verifySignature / verifyTokenBinding on every backend: round trips for the three key
 * parameters, and every way a signature or key can be wrong answering false, never throwing.
 */
import { constants, createHash, createPrivateKey, createPublicKey, generateKeyPair, sign, verify, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import test from 'ava';
import { createTokenBindingID, encodeEcP256PublicKey, encodeRsaPublicKey } from '../../src/codec/index.js';
import { TokenBindingKeyParameters, type KeyParametersName, type TokenBindingID } from '../../src/codec/types.js';
import { canVerify } from '../../src/crypto/backend.js';
import { createNodeBackend } from '../../src/crypto/node-backend.js';
import { generateTokenBindingKey, signTokenBinding, type TokenBindingKey } from '../../src/crypto/sign.js';
import { verifySignature, verifyTokenBinding } from '../../src/crypto/verify.js';
import { P256_N, backends, bigIntTo32, bytesToBigInt, flipS } from './_backends.js';

const generate = promisify(generateKeyPair);
const PARAMS: readonly KeyParametersName[] = ['ecdsap256', 'rsa2048_pss', 'rsa2048_pkcs1.5'];
const keys = new Map<KeyParametersName, TokenBindingKey>(PARAMS.map((p) => [p, generateTokenBindingKey(p)]));
const ekm = new Uint8Array(32).map((_, i) => i * 3);
const ec = keys.get('ecdsap256')!;
const pss = keys.get('rsa2048_pss')!;
const pkcs1 = keys.get('rsa2048_pkcs1.5')!;

function rsaSign(privateKey: KeyObject, keyParameters: number, data: Uint8Array): Uint8Array {
  return keyParameters === TokenBindingKeyParameters.rsa2048_pss
    ? sign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
    : sign('sha256', data, privateKey);
}

function rsaId(keyParameters: number, publicKey: KeyObject): TokenBindingID {
  const jwk = publicKey.export({ format: 'jwk' });
  return createTokenBindingID(keyParameters, encodeRsaPublicKey(Buffer.from(jwk.n!, 'base64url'), Buffer.from(jwk.e!, 'base64url')));
}

test('canVerify: exactly the three registered key parameters', (t) => {
  for (let p = 0; p < 256; p++) t.is(canVerify(p), p <= 2, `key parameters ${p}`);
});

for (const { label, backend } of backends) {
  for (const name of PARAMS) {
    test(`${label}: ${name} sign → verify round trip, wrong EKM, type and signature fail`, (t) => {
      const key = keys.get(name)!;
      const binding = signTokenBinding(key, 0, ekm);
      t.true(verifyTokenBinding(binding, ekm, backend));
      // Again: now from the key cache.
      t.true(verifyTokenBinding(binding, ekm, backend));
      const otherEkm = ekm.slice();
      otherEkm[31]! ^= 1;
      t.false(verifyTokenBinding(binding, otherEkm, backend));
      // Signed as provided (0), presented as referred (1): the type is signed.
      t.false(verifyTokenBinding({ ...binding, type: 1 }, ekm, backend));
      for (const i of [0, binding.signature.length >> 1, binding.signature.length - 1]) {
        const bad = binding.signature.slice();
        bad[i]! ^= 0x10;
        t.false(verifyTokenBinding({ ...binding, signature: bad }, ekm, backend), `bit flipped at ${i}`);
      }
    });
  }

  test(`${label}: a binding checks against its own key parameters only`, (t) => {
    // The same RSA key under the other RSA key parameters: different signed data and padding.
    const binding = signTokenBinding(pss, 0, ekm);
    const asPkcs1 = createTokenBindingID(TokenBindingKeyParameters.rsa2048_pkcs1_5, pss.id.key);
    t.false(verifyTokenBinding({ ...binding, id: asPkcs1 }, ekm, backend));
    const data = new Uint8Array([0, TokenBindingKeyParameters.rsa2048_pss, ...ekm]);
    t.false(verifySignature(asPkcs1, data, binding.signature, backend));
  });

  test(`${label}: ecdsap256 high-S signatures verify (s' = n − s)`, (t) => {
    for (let i = 0; i < 8; i++) {
      const binding = signTokenBinding(ec, 0, ekm);
      const s = bytesToBigInt(binding.signature.subarray(32));
      const flipped = flipS(binding.signature);
      t.not(bytesToBigInt(flipped.subarray(32)), s);
      t.true(verifyTokenBinding(binding, ekm, backend));
      t.true(verifyTokenBinding({ ...binding, signature: flipped }, ekm, backend));
    }
  });

  test(`${label}: ecdsap256 signatures of the wrong length or form are false`, (t) => {
    const data = new Uint8Array([0, 2, ...ekm]);
    const good = signTokenBinding(ec, 0, ekm).signature;
    t.true(verifySignature(ec.id, data, good, backend));
    const der = sign('sha256', data, ec.privateKey); // DER: 70..72 bytes
    const wrong = [new Uint8Array(0), good.subarray(0, 63), new Uint8Array([...good, 0]), new Uint8Array([0, ...good]), der, new Uint8Array(256)];
    for (const sig of wrong) t.false(verifySignature(ec.id, data, sig, backend), `length ${sig.length}`);
    // r or s outside 1..n-1.
    const r = good.subarray(0, 32);
    const s = good.subarray(32);
    const zero = new Uint8Array(32);
    const n = bigIntTo32(P256_N);
    const sPlusN = bytesToBigInt(s) + P256_N < 2n ** 256n ? bigIntTo32(bytesToBigInt(s) + P256_N) : null;
    for (const [rr, ss] of [[zero, s], [r, zero], [n, s], [r, n], [new Uint8Array(32).fill(0xff), s], [r, sPlusN ?? n]]) {
      t.false(verifySignature(ec.id, data, new Uint8Array([...rr!, ...ss!]), backend));
    }
  });

  test(`${label}: ecdsap256 points not on P-256 are false`, (t) => {
    const data = new Uint8Array([0, 2, ...ekm]);
    const sig = signTokenBinding(ec, 0, ekm).signature;
    const x = ec.id.key.subarray(1, 33);
    const y = ec.id.key.subarray(33);
    const yPlus1 = bigIntTo32((bytesToBigInt(y) + 1n) % 2n ** 256n);
    const p = bigIntTo32(0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn);
    for (const [xx, yy] of [
      [x, yPlus1],
      [new Uint8Array(32), new Uint8Array(32)],
      [p, y],
      [x, new Uint8Array(32).fill(0xff)],
    ] as const) {
      const id = createTokenBindingID(2, encodeEcP256PublicKey(xx, yy));
      t.false(verifySignature(id, data, sig, backend));
      t.false(verifySignature(id, data, sig, backend), 'again, from the cache');
    }
    // A key of the wrong shape (63 bytes of point, no length byte) decodes to nothing.
    t.false(verifySignature(createTokenBindingID(2, ec.id.key.subarray(1)), data, sig, backend));
    t.false(verifySignature(createTokenBindingID(2, ec.id.key.subarray(0, 64)), data, sig, backend));
  });

  test(`${label}: RSA signatures of the wrong length are false`, (t) => {
    for (const key of [pss, pkcs1]) {
      const binding = signTokenBinding(key, 0, ekm);
      t.true(verifyTokenBinding(binding, ekm, backend));
      for (const sig of [binding.signature.subarray(1), new Uint8Array([0, ...binding.signature]), new Uint8Array(64)]) {
        t.false(verifyTokenBinding({ ...binding, signature: sig }, ekm, backend), `length ${sig.length}`);
      }
    }
  });

  test(`${label}: unknown key parameters are false (and canVerify says why)`, (t) => {
    const binding = signTokenBinding(ec, 0, ekm);
    for (const kp of [3, 88, 239, 255]) {
      const id = createTokenBindingID(kp, ec.id.key);
      t.false(canVerify(kp));
      t.false(verifySignature(id, new Uint8Array([0, kp, ...ekm]), binding.signature, backend));
    }
  });

  test(`${label}: signed data of any length`, (t) => {
    for (const length of [0, 1, 33, 34, 35, 1000]) {
      const data = new Uint8Array(length).fill(7);
      t.true(verifySignature(ec.id, data, sign('sha256', data, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }), backend));
      t.true(verifySignature(pss.id, data, rsaSign(pss.privateKey, 1, data), backend));
      t.true(verifySignature(pkcs1.id, data, rsaSign(pkcs1.privateKey, 0, data), backend));
    }
  });

  test(`${label}: API misuse throws TypeError`, (t) => {
    const data = new Uint8Array(34);
    const sig = new Uint8Array(64);
    t.throws(() => verifySignature(ec.id, 'data' as unknown as Uint8Array, sig, backend), { instanceOf: TypeError });
    t.throws(() => verifySignature(ec.id, data, [1, 2] as unknown as Uint8Array, backend), { instanceOf: TypeError });
    t.throws(() => verifySignature({} as TokenBindingID, data, sig, backend), { instanceOf: TypeError });
    const binding = signTokenBinding(ec, 0, ekm);
    t.throws(() => verifyTokenBinding(binding, ekm.subarray(1), backend), { instanceOf: TypeError });
    // An ID whose fields disagree with its wire bytes: refuse rather than pick one.
    t.throws(() => verifyTokenBinding({ ...binding, id: { ...binding.id, keyParameters: 1 } }, ekm, backend), {
      instanceOf: TypeError,
    });
  });
}

test('RSA keys that are not 2048 bits are false, though their signatures are good', async (t) => {
  const sizes = [1024, 2047, 2056, 3072];
  const pairs = await Promise.all(sizes.map((modulusLength) => generate('rsa', { modulusLength, publicExponent: 65537 })));
  for (const [i, { publicKey, privateKey }] of pairs.entries()) {
    // OpenSSL may round a requested size (2049 gives 2048): check what it made.
    t.is(publicKey.asymmetricKeyDetails?.modulusLength, sizes[i]);
    for (const kp of [0, 1]) {
      const id = rsaId(kp, publicKey);
      const data = new Uint8Array([0, kp, ...ekm]);
      const sig = rsaSign(privateKey, kp, data);
      // The control: OpenSSL accepts the signature; only the RFC 8471 size rule rejects it.
      const pssOptions = { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
      t.true(verify('sha256', data, kp === 1 ? pssOptions : publicKey, sig));
      for (const { label, backend } of backends) {
        t.false(verifySignature(id, data, sig, backend), `${label} ${sizes[i]} bits kp ${kp}`);
      }
    }
  }
});

test('an RSA modulus with a leading zero byte is false (the ID encoding forbids it)', (t) => {
  const jwk = pkcs1.publicKey.export({ format: 'jwk' });
  const n = Buffer.from(jwk.n!, 'base64url');
  const key = new Uint8Array([0x01, 0x01, 0x00, ...n, 0x03, 0x01, 0x00, 0x01]);
  const id = createTokenBindingID(0, key);
  const binding = signTokenBinding(pkcs1, 0, ekm);
  for (const { label, backend } of backends) t.false(verifySignature(id, new Uint8Array([0, 0, ...ekm]), binding.signature, backend), label);
});

/** a⁻¹ mod m (extended Euclid); the inputs here are coprime. */
function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [((a % m) + m) % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}

const big = (b64url: string): bigint => bytesToBigInt(Buffer.from(b64url, 'base64url'));
function b64url(v: bigint): string {
  const h = v.toString(16);
  return Buffer.from(h.length % 2 === 1 ? '0' + h : h, 'hex').toString('base64url');
}

test('RSA exponents: e = 1 (forgeable) and e over 64 bits are false, though OpenSSL takes them', (t) => {
  const jwk = pkcs1.privateKey.export({ format: 'jwk' });
  const n = Buffer.from(jwk.n!, 'base64url');
  const data = new Uint8Array([0, 0, ...ekm]);

  // With e = 1 the "signature" is the PKCS#1 v1.5 encoded message itself: anyone can make one.
  const digestInfo = Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), createHash('sha256').update(data).digest()]);
  const em = Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(256 - 3 - digestInfo.length, 0xff), Buffer.from([0]), digestInfo]);
  t.true(verify('sha256', data, createPublicKey({ key: { kty: 'RSA', n: jwk.n!, e: 'AQ' }, format: 'jwk' }), em));
  const eOne = createTokenBindingID(0, encodeRsaPublicKey(n, new Uint8Array([1])));

  // The same primes with a 65-bit exponent: a real key pair, real signatures, a dear verification.
  const [p, q] = [big(jwk.p!), big(jwk.q!)];
  const e = 2n ** 64n + 13n; // prime: coprime to (p-1)(q-1) unless it divides it, checked below
  const phi = (p - 1n) * (q - 1n);
  t.not(phi % e, 0n);
  const d = modInverse(e, phi);
  const bigE = createPrivateKey({
    key: { ...jwk, e: b64url(e), d: b64url(d), dp: b64url(d % (p - 1n)), dq: b64url(d % (q - 1n)) },
    format: 'jwk',
  });
  const bigESig = sign('sha256', data, bigE);
  t.true(verify('sha256', data, createPublicKey(bigE), bigESig));
  const bigEId = createTokenBindingID(0, encodeRsaPublicKey(n, bigIntTo32(e).subarray(32 - 9)));
  t.is(bigEId.key.length, 2 + 256 + 1 + 9);

  // 64 bits is still fine: e = 2^63 + 29 (prime), same construction.
  const e64 = 2n ** 63n + 29n;
  t.not(phi % e64, 0n);
  const d64 = modInverse(e64, phi);
  const e64Key = createPrivateKey({
    key: { ...jwk, e: b64url(e64), d: b64url(d64), dp: b64url(d64 % (p - 1n)), dq: b64url(d64 % (q - 1n)) },
    format: 'jwk',
  });
  const e64Sig = sign('sha256', data, e64Key);
  const e64Id = createTokenBindingID(0, encodeRsaPublicKey(n, bigIntTo32(e64).subarray(32 - 8)));

  for (const { label, backend } of backends) {
    t.false(verifySignature(eOne, data, em, backend), `${label} e = 1`);
    t.false(verifySignature(bigEId, data, bigESig, backend), `${label} 65-bit e`);
    t.true(verifySignature(e64Id, data, e64Sig, backend), `${label} 64-bit e`);
    // A key whose modulus length prefix disagrees with the bytes does not decode.
    const sig = signTokenBinding(pkcs1, 0, ekm).signature;
    t.false(verifySignature(createTokenBindingID(0, new Uint8Array([0x01, 0x01, ...n, 3, 1, 0, 1])), data, sig, backend), `${label} bad length`);
    t.true(verifySignature(pkcs1.id, data, sig, backend), `${label} control`);
  }
});

test('a cache of one entry stays correct with keys alternating', (t) => {
  const backend = createNodeBackend({ cacheSize: 1 });
  const other = generateTokenBindingKey();
  for (let i = 0; i < 6; i++) {
    const key = i % 2 === 0 ? ec : other;
    const binding = signTokenBinding(key, 0, ekm);
    t.true(verifyTokenBinding(binding, ekm, backend));
    t.false(verifyTokenBinding({ ...binding, id: (i % 2 === 0 ? other : ec).id }, ekm, backend));
  }
});
