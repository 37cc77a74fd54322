/**
 * What is particular to the noble backend: a key's precomputed table (from its 4th use) and the
 * small cache that holds those tables, and RSA delegated to node:crypto.
 */
import test from 'ava';
import { createNobleBackend, nobleBackend } from '../../src/crypto/noble-backend.js';
import { generateTokenBindingKey, signTokenBinding } from '../../src/crypto/sign.js';
import { verifyTokenBinding } from '../../src/crypto/verify.js';
import { flipS } from './_backends.js';

const ekm = new Uint8Array(32).fill(5);

test('verdicts stay right before, at and after a key gets its table', (t) => {
  const backend = createNobleBackend();
  const key = generateTokenBindingKey();
  for (let use = 1; use <= 8; use++) {
    const binding = signTokenBinding(key, use % 2, ekm);
    t.true(verifyTokenBinding(binding, ekm, backend), `use ${use}`);
    t.true(verifyTokenBinding({ ...binding, signature: flipS(binding.signature) }, ekm, backend), `use ${use}, high S`);
    t.false(verifyTokenBinding({ ...binding, type: binding.type ^ 1 }, ekm, backend), `use ${use}, wrong type`);
  }
});

test('a table cache of one, with keys taking turns, stays right', (t) => {
  const backend = createNobleBackend({ cacheSize: 2, precomputedKeys: 1 });
  const keys = [generateTokenBindingKey(), generateTokenBindingKey(), generateTokenBindingKey()];
  for (let round = 0; round < 6; round++) {
    for (const [i, key] of keys.entries()) {
      const binding = signTokenBinding(key, 0, ekm);
      t.true(verifyTokenBinding(binding, ekm, backend));
      t.false(verifyTokenBinding({ ...binding, id: keys[(i + 1) % keys.length]!.id }, ekm, backend));
    }
  }
});

test('RSA is delegated to node:crypto and verifies', (t) => {
  for (const name of ['rsa2048_pss', 'rsa2048_pkcs1.5'] as const) {
    const binding = signTokenBinding(generateTokenBindingKey(name), 0, ekm);
    t.true(verifyTokenBinding(binding, ekm, nobleBackend));
    t.false(verifyTokenBinding(binding, ekm.map((b) => b ^ 1), nobleBackend));
  }
  t.is(nobleBackend.name, '@noble/curves');
});

test('bad options are API misuse', (t) => {
  t.throws(() => createNobleBackend({ cacheSize: -1 }), { instanceOf: TypeError });
  t.throws(() => createNobleBackend({ precomputedKeys: 0.5 }), { instanceOf: TypeError });
});
