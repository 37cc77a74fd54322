/**
 * The backends agree with each other — and, for ECDSA, with noble's own `p256.verify` — on
 * generated bindings: random EKMs and types, fresh and recurring keys, valid signatures, their
 * high-S twins, bit flips and a wrong EKM. Time-boxed.
 */
import test from 'ava';
import fc from 'fast-check';
import { p256 } from '@noble/curves/nist.js';
import { tokenBindingSignedData } from '../../src/codec/signed-data.js';
import { generateTokenBindingKey, signTokenBinding, type TokenBindingKey } from '../../src/crypto/sign.js';
import { verifyTokenBinding } from '../../src/crypto/verify.js';
import { backends, flipS } from './_backends.js';

// Recurring keys go through the key caches (and noble's precomputed tables); fresh ones through import.
const pool: readonly TokenBindingKey[] = [
  generateTokenBindingKey('ecdsap256'),
  generateTokenBindingKey('ecdsap256'),
  generateTokenBindingKey('rsa2048_pss'),
  generateTokenBindingKey('rsa2048_pkcs1.5'),
];

const mutation = fc.oneof(
  fc.constant({ kind: 'none' as const }),
  fc.constant({ kind: 'highS' as const }),
  fc.constant({ kind: 'wrongEkm' as const }),
  fc.record({ kind: fc.constant('bitflip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
);

test('every backend gives the same verdict, and the expected one', (t) => {
  let runs = 0;
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.integer({ min: 0, max: 255 }),
      fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: pool.length - 1 })),
      mutation,
      (ekm, type, keyIndex, m) => {
        runs++;
        const key = keyIndex === -1 ? generateTokenBindingKey() : pool[keyIndex]!;
        const binding = signTokenBinding(key, type, ekm);
        let signature = binding.signature;
        let verifyEkm = ekm;
        let expected = true;
        if (m.kind === 'highS' && key.keyParameters === 2) {
          signature = flipS(signature);
        } else if (m.kind === 'wrongEkm') {
          verifyEkm = ekm.map((b, i) => (i === 0 ? b ^ 0x80 : b));
          expected = false;
        } else if (m.kind === 'bitflip') {
          signature = signature.slice();
          signature[m.at % signature.length]! ^= 1 << m.bit;
          expected = false;
        }
        const verdicts = backends.map(({ backend }) => verifyTokenBinding({ ...binding, signature }, verifyEkm, backend));
        if (key.keyParameters === 2) {
          const point = new Uint8Array([0x04, ...key.id.key.subarray(1)]);
          const data = tokenBindingSignedData(type, 2, verifyEkm);
          verdicts.push(p256.verify(signature, data, point, { lowS: false, prehash: true, format: 'compact' }));
        }
        return verdicts.every((v) => v === expected);
      },
    ),
    { numRuns: 300, interruptAfterTimeLimit: 30_000, markInterruptAsFailure: false },
  );
  t.true(runs >= 50, `only ${runs} runs in the time box`);
});
