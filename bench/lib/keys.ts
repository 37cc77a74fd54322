/**
 * Raw key pairs for the baselines (DPoP, raw verify), generated as DER and re-imported like
 * tokbind's `generateTokenBindingKey` does: exporting a JWK from the KeyObject that
 * `generateKeyPairSync` returned can deadlock Node 20.20 (`~KeyGenJob` → `uv_mutex_lock` under
 * `KeyObjectHandle::ExportJWK`, seen with gdb).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

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
