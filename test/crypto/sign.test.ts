/**
 * Client-side signing: key generation and import, TokenBindingIDs derived from public keys, and
 * messages / headers that parse back and verify.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import test from 'ava';
import {
  base64urlDecode,
  decodeTokenBindingPublicKey,
  parseSecTokenBindingHeader,
  parseTokenBindingMessage,
} from '../../src/codec/index.js';
import type { KeyParametersName } from '../../src/codec/types.js';
import {
  createSecTokenBindingHeader,
  createTokenBindingMessage,
  generateTokenBindingKey,
  signTokenBinding,
  tokenBindingKeyFromKeyObject,
  type TokenBindingKey,
} from '../../src/crypto/sign.js';
import { verifyTokenBinding } from '../../src/crypto/verify.js';
import { isTokenBindingError } from '../../src/errors.js';
import { backends } from './_backends.js';

const PARAMS: readonly [KeyParametersName, number][] = [
  ['rsa2048_pkcs1.5', 0],
  ['rsa2048_pss', 1],
  ['ecdsap256', 2],
];
const keys = new Map<KeyParametersName, TokenBindingKey>(PARAMS.map(([name]) => [name, generateTokenBindingKey(name)]));
const ekm = new Uint8Array(32).fill(0xab);

test('generateTokenBindingKey defaults to ecdsap256: ID 02 0041 40 X Y from the JWK', (t) => {
  const key = generateTokenBindingKey();
  t.is(key.keyParameters, 2);
  t.is(key.id.raw.length, 68);
  t.deepEqual([...key.id.raw.subarray(0, 4)], [0x02, 0x00, 0x41, 0x40]);
  const jwk = key.publicKey.export({ format: 'jwk' });
  t.deepEqual(key.id.key.subarray(1, 33), new Uint8Array(Buffer.from(jwk.x!, 'base64url')));
  t.deepEqual(key.id.key.subarray(33), new Uint8Array(Buffer.from(jwk.y!, 'base64url')));
  t.is(key.privateKey.type, 'private');
  t.is(key.publicKey.type, 'public');
  t.true(Object.isFrozen(key));
});

for (const [name, number] of PARAMS.slice(0, 2)) {
  test(`generateTokenBindingKey('${name}'): RSA-2048, e = 65537, modulus without leading zeros`, (t) => {
    const key = keys.get(name)!;
    t.is(key.keyParameters, number);
    t.is(key.id.raw[0], number);
    t.is(key.privateKey.asymmetricKeyDetails?.modulusLength, 2048);
    const decoded = decodeTokenBindingPublicKey(key.id);
    if (decoded.kind !== 'rsa') return t.fail();
    t.is(decoded.modulus.length, 256);
    t.true(decoded.modulus[0]! >= 0x80);
    t.deepEqual([...decoded.exponent], [0x01, 0x00, 0x01]);
    t.deepEqual(decoded.modulus, new Uint8Array(Buffer.from(key.publicKey.export({ format: 'jwk' }).n!, 'base64url')));
  });
}

test('tokenBindingKeyFromKeyObject: a key loaded from its JWK gives the same ID', (t) => {
  for (const [name] of PARAMS) {
    const key = keys.get(name)!;
    const jwk = key.privateKey.export({ format: 'jwk' });
    const loaded = tokenBindingKeyFromKeyObject(createPrivateKey({ key: jwk, format: 'jwk' }), name);
    t.deepEqual(loaded.id.raw, key.id.raw);
    t.is(loaded.keyParameters, key.keyParameters);
    // Numbers work as well as names.
    t.deepEqual(tokenBindingKeyFromKeyObject(key.privateKey, key.keyParameters).id.raw, key.id.raw);
  }
});

test('tokenBindingKeyFromKeyObject: keys that do not fit the key parameters', (t) => {
  const ec = keys.get('ecdsap256')!.privateKey;
  const rsa = keys.get('rsa2048_pss')!.privateKey;
  const cases = [
    [ec, 'rsa2048_pss', 'ERR_TB_KEY_INVALID'],
    [rsa, 'ecdsap256', 'ERR_TB_KEY_INVALID'],
    [generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, 'ecdsap256', 'ERR_TB_KEY_INVALID'],
    [generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey, 'rsa2048_pkcs1.5', 'ERR_TB_KEY_INVALID'],
    [generateKeyPairSync('ed25519').privateKey, 'ecdsap256', 'ERR_TB_KEY_INVALID'],
    [ec, 3, 'ERR_TB_KEY_PARAMETERS_UNSUPPORTED'],
    [ec, 255, 'ERR_TB_KEY_PARAMETERS_UNSUPPORTED'],
  ] as const;
  for (const [key, params, code] of cases) {
    const err = t.throws(() => tokenBindingKeyFromKeyObject(key, params));
    t.true(isTokenBindingError(err, code), `${String(params)}: ${String(err?.message)}`);
  }
  // API misuse.
  t.throws(() => tokenBindingKeyFromKeyObject(keys.get('ecdsap256')!.publicKey, 'ecdsap256'), { instanceOf: TypeError });
  t.throws(() => tokenBindingKeyFromKeyObject({} as never, 'ecdsap256'), { instanceOf: TypeError });
  t.throws(() => tokenBindingKeyFromKeyObject(ec, 'ecdsa' as never), { instanceOf: TypeError });
  t.throws(() => generateTokenBindingKey('p256' as never), { instanceOf: TypeError });
});

test('signTokenBinding: the binding carries type, ID, extensions; signature lengths', (t) => {
  for (const [name] of PARAMS) {
    const key = keys.get(name)!;
    const extensions = [{ type: 7, data: new Uint8Array([1, 2]) }];
    const binding = signTokenBinding(key, 1, ekm, extensions);
    t.is(binding.type, 1);
    t.is(binding.id, key.id);
    t.is(binding.extensions, extensions);
    t.is(binding.signature.length, name === 'ecdsap256' ? 64 : 256);
    t.is(Object.getPrototypeOf(binding.signature), Uint8Array.prototype);
    t.deepEqual(signTokenBinding(key, 0, ekm).extensions, []);
  }
  const key = keys.get('ecdsap256')!;
  t.throws(() => signTokenBinding(key, 0, ekm.subarray(1)), { instanceOf: TypeError });
  t.throws(() => signTokenBinding(key, 256, ekm), { instanceOf: TypeError });
  t.throws(() => signTokenBinding({ ...key, keyParameters: 9 }, 0, ekm), { instanceOf: TypeError });
  t.throws(() => signTokenBinding(null as never, 0, ekm), { instanceOf: TypeError });
});

test('createTokenBindingMessage: provided (+ referred) parse back and verify on every backend', (t) => {
  for (const [provided] of PARAMS) {
    for (const referred of [undefined, ...PARAMS.map(([n]) => n)]) {
      const options = { provided: keys.get(provided)!, referred: referred === undefined ? undefined : keys.get(referred)!, ekm };
      const bytes = createTokenBindingMessage(options);
      const message = parseTokenBindingMessage(bytes);
      t.is(message.bindings.length, referred === undefined ? 1 : 2);
      t.is(message.bindings[0]!.type, 0);
      t.deepEqual(message.bindings[0]!.id.raw, keys.get(provided)!.id.raw);
      if (referred !== undefined) {
        t.is(message.bindings[1]!.type, 1);
        t.deepEqual(message.bindings[1]!.id.raw, keys.get(referred)!.id.raw);
      }
      const header = createSecTokenBindingHeader(options);
      t.regex(header, /^[A-Za-z0-9_-]+$/);
      const fromHeader = parseSecTokenBindingHeader(header);
      for (const binding of [...message.bindings, ...fromHeader.bindings]) {
        for (const { label, backend } of backends) t.true(verifyTokenBinding(binding, ekm, backend), label);
      }
      // The header decodes to a message of the same shape (signatures are randomised: ECDSA, PSS).
      t.is(base64urlDecode(header).length, bytes.length);
    }
  }
});

test('createTokenBindingMessage: API misuse throws TypeError', (t) => {
  const provided = keys.get('ecdsap256')!;
  t.throws(() => createTokenBindingMessage(null as never), { instanceOf: TypeError });
  t.throws(() => createTokenBindingMessage({ provided, ekm: new Uint8Array(31) }), { instanceOf: TypeError });
  t.throws(() => createSecTokenBindingHeader({ provided: {} as never, ekm }), { instanceOf: TypeError });
});

// Node 20.20 can deadlock when a KeyObject straight from generateKeyPairSync is exported as a JWK
// while a GC finalizes the key-generation job (KeyObjectHandle::ExportJWK → ~KeyGenJob, both on
// the key's mutex). Key stores export every key they generate, so generation must not hand out
// such objects. The old code hung within a few thousand iterations; run in a child process so a
// hang is a failed test, not a stuck suite.
test('generating and JWK-exporting thousands of keys never hangs', async (t) => {
  const { spawn } = await import('node:child_process');
  const sign = new URL('../../src/crypto/sign.js', import.meta.url).href;
  const script = `
    const { generateTokenBindingKey } = await import(${JSON.stringify(sign)});
    const keep = [];
    for (let i = 0; i < 6000; i++) {
      const key = generateTokenBindingKey('ecdsap256');
      keep.push(key.privateKey.export({ format: 'jwk' }), key);
      if (keep.length > 2000) keep.length = 0;
    }
    console.log('done');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearTimeout(timer);
  t.is(code, 0, 'the key generation loop hung and was killed');
  t.is(out.trim(), 'done');
});
