/**
 * Signature verification entry points (RFC 8471 §3.3): boolean primitives over a backend.
 */
import { tokenBindingSignedDataArguments, transientSignedData } from '../codec/signed-data.js';
import type { TokenBinding, TokenBindingID } from '../codec/types.js';
import type { VerificationBackend } from './backend.js';
import { nodeBackend } from './node-backend.js';

/**
 * Verifies `signature` over `signedData` with the public key of a TokenBindingID (RFC 8471 §3.3),
 * by the key parameters of the ID. `false` for every signature that is not valid, including a key
 * that does not import and key parameters tokbind does not know (tell those apart with
 * `canVerify`). `signedData` may be any length (Token Binding signs 34 bytes, see
 * `tokenBindingSignedData`).
 *
 * @throws {TypeError} when an argument is not a TokenBindingID / Uint8Array (API misuse)
 * @example
 * ```ts
 * const signedData = tokenBindingSignedData(binding.type, binding.id.keyParameters, ekm)
 * if (!verifySignature(binding.id, signedData, binding.signature)) reject()
 * ```
 */
export function verifySignature(
  id: TokenBindingID,
  signedData: Uint8Array,
  signature: Uint8Array,
  backend: VerificationBackend = nodeBackend,
): boolean {
  return backend.verify(id, signedData, signature);
}

/**
 * Verifies one TokenBinding's signature over `type || key_parameters || EKM` (RFC 8471 §3.3),
 * where `ekm` is the 32-byte exported keying material of the connection that carried it.
 *
 * @throws {TypeError} when `ekm` is not 32 bytes or the binding is not well-formed (API misuse)
 * @example
 * ```ts
 * const ekm = exportTokenBindingKeyingMaterial(socket)
 * const ok = message.bindings.every((b) => !canVerify(b.id.keyParameters) || verifyTokenBinding(b, ekm))
 * ```
 */
export function verifyTokenBinding(binding: TokenBinding, ekm: Uint8Array, backend: VerificationBackend = nodeBackend): boolean {
  if (typeof binding !== 'object' || binding === null || typeof binding.id !== 'object' || binding.id === null) {
    throw new TypeError('binding must be a TokenBinding');
  }
  const { id } = binding;
  // Backends take the algorithm from the ID's wire bytes; the signed data must name the same one.
  if (!(id.raw instanceof Uint8Array) || id.raw[0] !== id.keyParameters) {
    throw new TypeError('binding.id.raw does not match binding.id.keyParameters');
  }
  // Checked (type, key parameters, EKM), then built outside the heap (transientSignedData).
  tokenBindingSignedDataArguments(binding.type, id.keyParameters, ekm);
  return backend.verify(id, transientSignedData(binding.type, id.keyParameters, ekm), binding.signature);
}

/**
 * {@link verifyTokenBinding} for a binding the codec's parser made and an EKM that passed
 * `checkTokenBindingEkm`: the public function's argument checks hold by construction (the parser reads
 * `key_parameters` and `id.raw[0]` from the same byte, and `type` from one byte), so they are not
 * made again on the per-request path, where each costs with the CPU caches cold.
 *
 * @internal For the verifier.
 */
export function verifyParsedTokenBinding(binding: TokenBinding, ekm: Uint8Array, backend: VerificationBackend = nodeBackend): boolean {
  return backend.verify(binding.id, transientSignedData(binding.type, binding.id.keyParameters, ekm), binding.signature);
}
