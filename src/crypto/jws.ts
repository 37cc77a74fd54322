/**
 * JWS algorithm names (RFC 7518 §3.4) for the EC keys tokbind signs JWTs with: DPoP proofs
 * (tokbind's client) and forwarding assertions (tokbind proxy). What each does with other key
 * types is its own policy.
 */
import type { KeyObject } from 'node:crypto';

const ECDSA_ALGORITHMS: Readonly<Record<string, 'ES256' | 'ES384' | 'ES512'>> = Object.freeze({
  prime256v1: 'ES256',
  secp384r1: 'ES384',
  secp521r1: 'ES512',
});

/** `ES256` / `ES384` / `ES512` for an EC key on P-256 / P-384 / P-521; undefined for any other curve. */
export function ecdsaJwsAlgorithm(key: KeyObject): 'ES256' | 'ES384' | 'ES512' | undefined {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve === undefined || !Object.hasOwn(ECDSA_ALGORITHMS, curve) ? undefined : ECDSA_ALGORITHMS[curve];
}
