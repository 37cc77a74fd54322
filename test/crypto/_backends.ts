/**
 * The backends every crypto test runs: the two shared instances, and uncached twins so the
 * import path is exercised on every call (not only on a key's first use).
 */
import type { VerificationBackend } from '../../src/crypto/backend.js';
import { createNobleBackend, nobleBackend } from '../../src/crypto/noble-backend.js';
import { createNodeBackend, nodeBackend } from '../../src/crypto/node-backend.js';

export interface NamedBackend {
  readonly label: string;
  readonly backend: VerificationBackend;
}

export const backends: readonly NamedBackend[] = [
  { label: 'node', backend: nodeBackend },
  { label: 'node uncached', backend: createNodeBackend({ cacheSize: 0 }) },
  { label: 'noble', backend: nobleBackend },
  { label: 'noble uncached', backend: createNobleBackend({ cacheSize: 0, precomputedKeys: 0 }) },
];

/** P-256 group order n. */
export const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

export function bytesToBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt('0x' + Buffer.from(bytes).toString('hex'));
}

export function bigIntTo32(value: bigint): Uint8Array {
  return new Uint8Array(Buffer.from(value.toString(16).padStart(64, '0'), 'hex'));
}

/** The other ECDSA signature for the same (r, s): (r, n − s). Valid whenever the original is. */
export function flipS(signature: Uint8Array): Uint8Array {
  const out = new Uint8Array(64);
  out.set(signature.subarray(0, 32));
  out.set(bigIntTo32(P256_N - bytesToBigInt(signature.subarray(32))), 32);
  return out;
}

export const hex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
