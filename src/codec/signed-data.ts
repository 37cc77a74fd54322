/**
 * RFC 8471 §3.3: the bytes a Token Binding signature covers.
 */

import { carve } from './slab.js';

/** Length of the exported keying material a Token Binding signature covers (RFC 8471 §3.3). */
export const TOKEN_BINDING_EKM_LENGTH = 32;

/**
 * The signed data of a Token Binding (RFC 8471 §3.3):
 * `tokenbinding_type(1) || key_parameters(1) || EKM(32)` — 34 bytes. The EKM is the TLS
 * exporter value (label `EXPORTER-Token-Binding`, no context, 32 bytes) of the connection that
 * carries the message.
 *
 * @throws {TypeError} when `type` or `keyParameters` is not in 0..255 or `ekm` is not 32 bytes
 *   (API misuse: the EKM comes from the TLS layer, never from the peer)
 * @example
 * ```ts
 * const signed = tokenBindingSignedData(binding.type, binding.id.keyParameters, ekm)
 * ```
 */
export function tokenBindingSignedData(type: number, keyParameters: number, ekm: Uint8Array): Uint8Array {
  tokenBindingSignedDataArguments(type, keyParameters, ekm);
  return writeSignedData(new Uint8Array(2 + TOKEN_BINDING_EKM_LENGTH), type, keyParameters, ekm);
}

/** `type || key_parameters || EKM` into `out` (34 bytes). */
function writeSignedData(out: Uint8Array, type: number, keyParameters: number, ekm: Uint8Array): Uint8Array {
  out[0] = type;
  out[1] = keyParameters;
  out.set(ekm, 2);
  return out;
}

/**
 * The checks {@link tokenBindingSignedData} makes of its arguments.
 *
 * @throws {TypeError} as {@link tokenBindingSignedData}
 * @internal
 */
export function tokenBindingSignedDataArguments(type: number, keyParameters: number, ekm: Uint8Array): void {
  if (!Number.isInteger(type) || type < 0 || type > 255) throw new TypeError('type must be an integer in 0..255');
  if (!Number.isInteger(keyParameters) || keyParameters < 0 || keyParameters > 255) {
    throw new TypeError('keyParameters must be an integer in 0..255');
  }
  checkTokenBindingEkm(ekm);
}

/**
 * The EKM check of {@link tokenBindingSignedData}: a 32-byte Uint8Array.
 *
 * @throws {TypeError} otherwise
 * @internal Also for the verifier, which checks a connection's EKM once per verification.
 */
export function checkTokenBindingEkm(ekm: Uint8Array): void {
  if (!(ekm instanceof Uint8Array) || ekm.length !== TOKEN_BINDING_EKM_LENGTH) {
    throw new TypeError(`ekm must be a ${TOKEN_BINDING_EKM_LENGTH}-byte Uint8Array`);
  }
}

/**
 * The signed data of a binding whose `type` and `keyParameters` are bytes already (a parsed
 * binding, a key's own parameters) and a checked 32-byte EKM, as a view of a shared slab outside
 * the heap (slab.ts). A 34-byte array of its own would live on the heap, and node:crypto, asking
 * for its buffer, would move it out of the heap — a backing store allocated per signature made or
 * checked.
 *
 * @internal For the verifier and the signer, which hand it straight to a backend.
 */
export function transientSignedData(type: number, keyParameters: number, ekm: Uint8Array): Uint8Array {
  return writeSignedData(carve(2 + TOKEN_BINDING_EKM_LENGTH), type, keyParameters, ekm);
}
