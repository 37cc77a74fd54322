/**
 * RFC 8471 §3 TokenBindingPublicKey: structural decoding and encoding per key parameters.
 * Only the structure is checked here; whether the point is on P-256 or the modulus has 2048 bits
 * is the crypto layer's business (a key that fails there makes the signature invalid).
 */
import { TokenBindingError } from '../errors.js';
import { ByteReader } from './message.js';
import { TokenBindingKeyParameters, type TokenBindingID, type TokenBindingPublicKey } from './types.js';

/** TB_ECPoint: X(32) || Y(32), no 0x04 prefix. */
const EC_POINT_LENGTH = 64;
const EC_COORDINATE_LENGTH = 32;

function keyInvalid(field: string, expected: unknown, actual: unknown): TokenBindingError {
  return new TokenBindingError('ERR_TB_KEY_INVALID', `${field}: expected ${String(expected)}, got ${String(actual)}`, {
    field,
    expected,
    actual,
  });
}

/**
 * Decodes the public key of a TokenBindingID according to its key parameters (RFC 8471 §3):
 * `ecdsap256` as `u8 64 || X || Y`, `rsa2048_pkcs1.5` / `rsa2048_pss` as
 * `opaque modulus<1..2^16-1> || opaque publicexponent<1..2^8-1>` (no leading zero bytes).
 * The key must be consumed exactly. The result views `id.key`.
 *
 * @throws {TokenBindingError} `ERR_TB_KEY_INVALID` for a structurally wrong key of registered key
 *   parameters; `ERR_TB_KEY_PARAMETERS_UNSUPPORTED` for unregistered key parameters
 * @example
 * ```ts
 * const key = decodeTokenBindingPublicKey(message.bindings[0].id)
 * if (key.kind === 'ec') importP256(key.x, key.y)
 * ```
 */
export function decodeTokenBindingPublicKey(id: TokenBindingID): TokenBindingPublicKey {
  if (typeof id !== 'object' || id === null || !(id.key instanceof Uint8Array)) {
    throw new TypeError('id must be a TokenBindingID');
  }
  const { keyParameters, key } = id;
  switch (keyParameters) {
    case TokenBindingKeyParameters.ecdsap256: {
      if (key.length !== 1 + EC_POINT_LENGTH) throw keyInvalid('key.length', 1 + EC_POINT_LENGTH, key.length);
      if (key[0] !== EC_POINT_LENGTH) throw keyInvalid('point.length', EC_POINT_LENGTH, key[0]);
      return {
        kind: 'ec',
        x: key.subarray(1, 1 + EC_COORDINATE_LENGTH),
        y: key.subarray(1 + EC_COORDINATE_LENGTH),
      };
    }
    case TokenBindingKeyParameters.rsa2048_pkcs1_5:
    case TokenBindingKeyParameters.rsa2048_pss: {
      const r = new ByteReader(key, 'ERR_TB_KEY_INVALID');
      const modulus = r.vector16('modulus', 1, 0xffff);
      if (modulus[0] === 0) throw keyInvalid('modulus', 'no leading zero bytes', 'leading zero');
      const exponent = r.vector8('publicexponent', 1, 0xff);
      if (exponent[0] === 0) throw keyInvalid('publicexponent', 'no leading zero bytes', 'leading zero');
      r.done('RSAPublicKey');
      return { kind: 'rsa', modulus, exponent };
    }
    default:
      throw new TokenBindingError('ERR_TB_KEY_PARAMETERS_UNSUPPORTED', `unsupported key parameters ${String(keyParameters)}`, {
        field: 'key_parameters',
        expected: [0, 1, 2],
        actual: keyParameters,
      });
  }
}

/**
 * Encodes an ecdsap256 TokenBindingPublicKey (RFC 8471 §3): `u8 64 || X || Y` — the
 * TB_ECPoint, without the uncompressed-point 0x04 prefix.
 *
 * @throws {TypeError} unless `x` and `y` are 32 bytes each
 * @example
 * ```ts
 * const jwk = publicKey.export({ format: 'jwk' })
 * const key = encodeEcP256PublicKey(base64urlDecode(jwk.x!), base64urlDecode(jwk.y!))
 * ```
 */
export function encodeEcP256PublicKey(x: Uint8Array, y: Uint8Array): Uint8Array {
  if (!(x instanceof Uint8Array) || x.length !== EC_COORDINATE_LENGTH) throw new TypeError('x must be 32 bytes');
  if (!(y instanceof Uint8Array) || y.length !== EC_COORDINATE_LENGTH) throw new TypeError('y must be 32 bytes');
  const out = new Uint8Array(1 + EC_POINT_LENGTH);
  out[0] = EC_POINT_LENGTH;
  out.set(x, 1);
  out.set(y, 1 + EC_COORDINATE_LENGTH);
  return out;
}

function stripLeadingZeros(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  return bytes.subarray(i);
}

/**
 * Encodes an RSA TokenBindingPublicKey (RFC 8471 §3): `u16 len || modulus || u8 len || exponent`.
 * Leading zero bytes are stripped (big-endian integers without leading zeros).
 *
 * @throws {TypeError} when the modulus is zero or over 65535 bytes, or the exponent is zero or
 *   over 255 bytes
 * @example
 * ```ts
 * const jwk = publicKey.export({ format: 'jwk' })
 * const key = encodeRsaPublicKey(base64urlDecode(jwk.n!), base64urlDecode(jwk.e!))
 * ```
 */
export function encodeRsaPublicKey(modulus: Uint8Array, exponent: Uint8Array): Uint8Array {
  if (!(modulus instanceof Uint8Array)) throw new TypeError('modulus must be a Uint8Array');
  if (!(exponent instanceof Uint8Array)) throw new TypeError('exponent must be a Uint8Array');
  const n = stripLeadingZeros(modulus);
  const e = stripLeadingZeros(exponent);
  if (n.length < 1 || n.length > 0xffff) throw new TypeError('modulus must be 1..65535 bytes and non-zero');
  if (e.length < 1 || e.length > 0xff) throw new TypeError('exponent must be 1..255 bytes and non-zero');
  const out = new Uint8Array(2 + n.length + 1 + e.length);
  out[0] = n.length >>> 8;
  out[1] = n.length & 0xff;
  out.set(n, 2);
  out[2 + n.length] = e.length;
  out.set(e, 3 + n.length);
  return out;
}
