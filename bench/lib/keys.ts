/**
 * Key generation for the benchmarks, written around a Node 20.20 deadlock: exporting a JWK
 * from a KeyObject that `generateKeyPairSync` returned can hang the process for good — the export
 * holds the key's mutex while allocating a V8 string; if that allocation triggers a GC which
 * finalizes the key-generation job, the job's destructor takes the same mutex (observed with gdb:
 * `~KeyGenJob` → `uv_mutex_lock` under `KeyObjectHandle::ExportJWK`; reproduced within a few
 * thousand generate+export calls). tokbind's `generateTokenBindingKey` does exactly that, and the
 * benchmarks generate thousands of keys, so here keys are generated as DER and re-imported: the
 * KeyObjects then share nothing with the job.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { KeyParametersName } from '../../src/codec/types.js';
import { tokenBindingKeyFromKeyObject } from '../../src/crypto/sign.js';
import type { TokenBindingKey } from '../../src/crypto/sign.js';

export function generateKeyPair(kind: 'ec' | 'rsa'): { privateKey: KeyObject; publicKey: KeyObject } {
  const privateKeyEncoding = { type: 'pkcs8', format: 'der' } as const;
  const publicKeyEncoding = { type: 'spki', format: 'der' } as const;
  const der: Buffer =
    kind === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding, publicKeyEncoding }).privateKey
      : generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537, privateKeyEncoding, publicKeyEncoding }).privateKey;
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/** A Token Binding key (tokbind's `TokenBindingKey`) made without the deadlock-prone path. */
export function benchTokenBindingKey(keyParameters: KeyParametersName = 'ecdsap256'): TokenBindingKey {
  return tokenBindingKeyFromKeyObject(generateKeyPair(keyParameters === 'ecdsap256' ? 'ec' : 'rsa').privateKey, keyParameters);
}
