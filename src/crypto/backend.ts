/**
 * The verification backend interface and what every backend shares: which key parameters tokbind
 * evaluates, and how a TokenBindingID becomes a key that is safe to verify with.
 */
import { decodeTokenBindingPublicKey } from '../codec/keys.js';
import { parseTokenBindingID } from '../codec/message.js';
import { TokenBindingKeyParameters, type TokenBindingID, type TokenBindingPublicKey } from '../codec/types.js';

/**
 * Verifies Token Binding signatures (RFC 8471 §3.3) for the registered key parameters.
 *
 * `verify` answers `false` — never throws — for anything that is not a valid signature: unknown
 * key parameters, a key that does not decode or import (RSA modulus not 2048 bits, EC point not on
 * P-256), a signature of the wrong length, a signature that does not verify. Only API misuse (an
 * argument that is not a Uint8Array) throws a `TypeError`. The key and the algorithm are taken
 * from `id.raw`, the ID's wire bytes, so a backend's key cache can never disagree with the ID.
 * tokbind's verifier hands a backend views (their `byteOffset` and `length` matter, not the
 * whole `buffer`): the signed data and the signature are views of shared slabs whose bytes are
 * never rewritten, so a backend that keeps them keeps their bytes.
 *
 * @example
 * ```ts
 * const ok = nodeBackend.verify(binding.id, tokenBindingSignedData(0, 2, ekm), binding.signature)
 * ```
 */
export interface VerificationBackend {
  readonly name: string;
  verify(id: TokenBindingID, signedData: Uint8Array, signature: Uint8Array): boolean;
}

/**
 * Whether tokbind can evaluate signatures made with these key parameters (RFC 8471 §3: 0
 * rsa2048_pkcs1.5, 1 rsa2048_pss, 2 ecdsap256). A server tells a referred binding it cannot
 * evaluate (accept the request, expose no referred ID — RFC 8471 §4.2) from an invalid one with
 * this: `verifySignature` answers `false` for both.
 *
 * @example
 * ```ts
 * if (!canVerify(referred.id.keyParameters)) referredId = null // unevaluated, not invalid
 * ```
 */
export function canVerify(keyParameters: number): boolean {
  return keyParameters === 0 || keyParameters === 1 || keyParameters === 2;
}

/** RSA keys are exactly 2048 bits (RFC 8471 §3): so are their signatures. */
export const RSA_MODULUS_BYTES = 256;
/** ecdsap256 signatures are R(32) || S(32) (RFC 8471 §3). */
export const ECDSA_P256_SIGNATURE_BYTES = 64;
/**
 * The largest RSA public exponent accepted, in bytes. The wire format allows 255 bytes, and
 * OpenSSL verifies with any exponent for a 2048-bit modulus: a 2040-bit exponent would make one
 * verification ~100× dearer, a cheap CPU amplifier for a client. Real keys use 65537 (or 3).
 * Same bound as OpenSSL's OPENSSL_RSA_MAX_PUBEXP_BITS for large moduli: 64 bits.
 */
const RSA_MAX_EXPONENT_BYTES = 8;

/** The signature length a key parameter implies, or 0 for parameters tokbind cannot verify. */
export function signatureLength(keyParameters: number): number {
  switch (keyParameters) {
    case TokenBindingKeyParameters.ecdsap256:
      return ECDSA_P256_SIGNATURE_BYTES;
    case TokenBindingKeyParameters.rsa2048_pss:
    case TokenBindingKeyParameters.rsa2048_pkcs1_5:
      return RSA_MODULUS_BYTES;
    default:
      return 0;
  }
}

/**
 * Decodes the public key of a TokenBindingID's wire bytes for verification, or `null` when the
 * bytes cannot hold a key tokbind verifies with: malformed ID, unknown key parameters, an RSA
 * modulus that is not exactly 2048 bits, an RSA exponent over 64 bits (see above) or e = 1.
 * Whether an EC point lies on P-256 is left to the backend's import, which checks it.
 */
export function decodeVerifiableKey(raw: Uint8Array): TokenBindingPublicKey | null {
  let key: TokenBindingPublicKey;
  try {
    key = decodeTokenBindingPublicKey(parseTokenBindingID(raw));
  } catch {
    return null;
  }
  if (key.kind === 'ec') return key;
  const { modulus: n, exponent: e } = key;
  // The codec guarantees no leading zero bytes, so 256 bytes with the top bit set is 2048 bits.
  if (n.length !== RSA_MODULUS_BYTES || (n[0]! & 0x80) === 0) return null;
  // With e = 1 the signature is the encoded message itself: it proves no key, anyone can make it.
  if (e.length > RSA_MAX_EXPONENT_BYTES || (e.length === 1 && e[0] === 1)) return null;
  return key;
}

/** Throws the TypeError of API misuse for arguments that are not byte arrays. */
export function assertVerifyArguments(id: TokenBindingID, signedData: Uint8Array, signature: Uint8Array): void {
  if (typeof id !== 'object' || id === null || !(id.raw instanceof Uint8Array)) throw new TypeError('id must be a TokenBindingID');
  if (!(signedData instanceof Uint8Array)) throw new TypeError('signedData must be a Uint8Array');
  if (!(signature instanceof Uint8Array)) throw new TypeError('signature must be a Uint8Array');
}
