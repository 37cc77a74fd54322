/**
 * The client side of RFC 8471: Token Binding keys, signatures and messages, on node:crypto.
 */
import { KeyObject, constants, createPrivateKey, createPublicKey, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { base64urlDecode } from '../codec/base64url.js';
import { encodeSecTokenBindingHeader } from '../codec/header.js';
import { encodeEcP256PublicKey, encodeRsaPublicKey } from '../codec/keys.js';
import { parseKeyParameters } from '../codec/keyparams.js';
import { createTokenBindingID, encodeTokenBindingMessage, encodeTokenBindingMessageTransient } from '../codec/message.js';
import { tokenBindingSignedDataArguments, transientSignedData } from '../codec/signed-data.js';
import {
  TokenBindingKeyParameters,
  TokenBindingType,
  type KeyParametersName,
  type TokenBinding,
  type TokenBindingExtension,
  type TokenBindingID,
} from '../codec/types.js';
import { TokenBindingError } from '../errors.js';

/** A Token Binding key pair and the TokenBindingID (RFC 8471 §3) its public key makes. */
export interface TokenBindingKey {
  /** 0 rsa2048_pkcs1.5, 1 rsa2048_pss, 2 ecdsap256. */
  readonly keyParameters: number;
  readonly id: TokenBindingID;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

function keyInvalid(field: string, expected: unknown, actual: unknown): TokenBindingError {
  return new TokenBindingError('ERR_TB_KEY_INVALID', `${field}: expected ${String(expected)}, got ${String(actual)}`, {
    field,
    expected,
    actual,
  });
}

/** JWK members are unpadded base64url; the codec's strict decoder reads them. */
function jwkBytes(value: unknown, field: string): Uint8Array {
  if (typeof value !== 'string') throw keyInvalid(field, 'base64url string', typeof value);
  return base64urlDecode(value);
}

/** Left-pads an EC coordinate to 32 bytes (JWK export pads already; this is belt and braces). */
function coordinate(bytes: Uint8Array, field: string): Uint8Array {
  if (bytes.length === 32) return bytes;
  if (bytes.length > 32) throw keyInvalid(field, '32 bytes', bytes.length);
  const out = new Uint8Array(32);
  out.set(bytes, 32 - bytes.length);
  return out;
}

/**
 * Builds a {@link TokenBindingKey} from a private key, e.g. one a key store loaded from a JWK: an
 * EC P-256 key for ecdsap256, an RSA key of exactly 2048 bits for the rsa2048_* parameters. The
 * TokenBindingID is derived from the public key (RFC 8471 §3: EC X || Y; RSA modulus and exponent
 * without leading zero bytes).
 *
 * @throws {TokenBindingError} `ERR_TB_KEY_PARAMETERS_UNSUPPORTED` for key parameters other than
 *   0, 1, 2; `ERR_TB_KEY_INVALID` when the key does not fit the key parameters
 * @throws {TypeError} when `privateKey` is not a private KeyObject, or for an unknown name
 * @example
 * ```ts
 * const privateKey = createPrivateKey({ key: jwk, format: 'jwk' })
 * const key = tokenBindingKeyFromKeyObject(privateKey, 'ecdsap256')
 * ```
 */
export function tokenBindingKeyFromKeyObject(privateKey: KeyObject, keyParameters: KeyParametersName | number): TokenBindingKey {
  if (!(privateKey instanceof KeyObject) || privateKey.type !== 'private') {
    throw new TypeError('privateKey must be a private KeyObject');
  }
  const params = parseKeyParameters(keyParameters);
  const publicKey = createPublicKey(privateKey);
  const jwk = publicKey.export({ format: 'jwk' });
  const type = privateKey.asymmetricKeyType;
  let key: Uint8Array;
  switch (params) {
    case TokenBindingKeyParameters.ecdsap256: {
      const curve = privateKey.asymmetricKeyDetails?.namedCurve;
      if (type !== 'ec' || curve !== 'prime256v1') throw keyInvalid('key', 'EC P-256', curve ?? type);
      key = encodeEcP256PublicKey(coordinate(jwkBytes(jwk.x, 'x'), 'x'), coordinate(jwkBytes(jwk.y, 'y'), 'y'));
      break;
    }
    case TokenBindingKeyParameters.rsa2048_pss:
    case TokenBindingKeyParameters.rsa2048_pkcs1_5: {
      const bits = privateKey.asymmetricKeyDetails?.modulusLength;
      if (type !== 'rsa' || bits !== 2048) throw keyInvalid('key', 'RSA 2048', type === 'rsa' ? `RSA ${bits}` : type);
      key = encodeRsaPublicKey(jwkBytes(jwk.n, 'n'), jwkBytes(jwk.e, 'e'));
      break;
    }
    default:
      throw new TokenBindingError('ERR_TB_KEY_PARAMETERS_UNSUPPORTED', `cannot sign with key parameters ${params}`, {
        field: 'keyParameters',
        expected: [0, 1, 2],
        actual: params,
      });
  }
  return Object.freeze({ keyParameters: params, id: createTokenBindingID(params, key), privateKey, publicKey });
}

/**
 * Generates a Token Binding key (RFC 8471 §3): P-256 for ecdsap256 (the default, what browsers
 * used), RSA-2048 with e = 65537 for rsa2048_pss and rsa2048_pkcs1.5. Synchronous: an RSA key
 * takes tens to hundreds of milliseconds, a P-256 key well under one.
 *
 * @example
 * ```ts
 * const key = generateTokenBindingKey()            // ecdsap256
 * const rsa = generateTokenBindingKey('rsa2048_pss')
 * ```
 */
export function generateTokenBindingKey(keyParameters: KeyParametersName = 'ecdsap256'): TokenBindingKey {
  const params = parseKeyParameters(keyParameters);
  // Generated as DER and re-imported, never used as the KeyObject generateKeyPairSync returns:
  // on Node 20.20 exporting that object as a JWK can deadlock the process (the export holds the
  // key's mutex while allocating; a GC finalizing the key-generation job then takes the same
  // mutex). Reproduced within a few thousand generate+export calls; none after this change.
  const privateKeyEncoding = { type: 'pkcs8', format: 'der' } as const;
  const publicKeyEncoding = { type: 'spki', format: 'der' } as const;
  const der: Buffer =
    params === TokenBindingKeyParameters.ecdsap256
      ? generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding, publicKeyEncoding }).privateKey
      : generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537, privateKeyEncoding, publicKeyEncoding }).privateKey;
  return tokenBindingKeyFromKeyObject(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }), params);
}

function signData(key: TokenBindingKey, data: Uint8Array): Uint8Array {
  let signature: Buffer;
  switch (key.keyParameters) {
    case TokenBindingKeyParameters.ecdsap256:
      signature = cryptoSign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
      break;
    case TokenBindingKeyParameters.rsa2048_pss:
      // MGF1 takes the signature digest (SHA-256) by default, as RFC 8471 §3 asks.
      signature = cryptoSign('sha256', data, { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
      break;
    case TokenBindingKeyParameters.rsa2048_pkcs1_5:
      signature = cryptoSign('sha256', data, { key: key.privateKey, padding: constants.RSA_PKCS1_PADDING });
      break;
    default:
      throw new TypeError(`key.keyParameters ${String(key.keyParameters)} cannot sign`);
  }
  return new Uint8Array(signature.buffer, signature.byteOffset, signature.byteLength);
}

/**
 * Signs one TokenBinding (RFC 8471 §3.3): the signature over `type || key_parameters || EKM` —
 * ECDSA P-256 as R || S, RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) or RSASSA-PKCS1-v1_5
 * (SHA-256). `ekm` is the 32-byte exported keying material of the connection the message will
 * travel on (label `EXPORTER-Token-Binding`, no context).
 *
 * @throws {TypeError} when `ekm` is not 32 bytes, `type` not 0..255 or `key` not a TokenBindingKey
 * @example
 * ```ts
 * const provided = signTokenBinding(key, TokenBindingType.provided_token_binding, ekm)
 * ```
 */
export function signTokenBinding(
  key: TokenBindingKey,
  type: number,
  ekm: Uint8Array,
  extensions: readonly TokenBindingExtension[] = [],
): TokenBinding {
  if (typeof key !== 'object' || key === null || !(key.privateKey instanceof KeyObject)) {
    throw new TypeError('key must be a TokenBindingKey');
  }
  tokenBindingSignedDataArguments(type, key.keyParameters, ekm);
  // Outside the heap: a fresh 34-byte array would be moved out of it by node:crypto (slab.ts).
  const signature = signData(key, transientSignedData(type, key.keyParameters, ekm));
  return { type, id: key.id, signature, extensions };
}

/** What a client signs for one request: its key for this server, and optionally a referred key. */
export interface CreateTokenBindingMessageOptions {
  /** The key the client uses with the server it is talking to (provided_token_binding). */
  readonly provided: TokenBindingKey;
  /** The key it uses with the redirecting server, when asked to refer it (RFC 8473 §5). */
  readonly referred?: TokenBindingKey | undefined;
  /** The 32-byte EKM of this connection. */
  readonly ekm: Uint8Array;
}

/**
 * Creates a TokenBindingMessage (RFC 8471 §3): a provided binding and, when asked for (RFC 8473
 * §5, `Include-Referred-Token-Binding-ID`), a referred one, both signed over the EKM of the
 * connection that will carry it.
 *
 * @throws {TypeError} on API misuse (see {@link signTokenBinding})
 * @example
 * ```ts
 * const bytes = createTokenBindingMessage({ provided: key, ekm })
 * ```
 */
export function createTokenBindingMessage(options: CreateTokenBindingMessageOptions): Uint8Array {
  return encodeTokenBindingMessage({ bindings: signedBindings(options) });
}

function signedBindings(options: CreateTokenBindingMessageOptions): TokenBinding[] {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { provided, referred, ekm } = options;
  const bindings = [signTokenBinding(provided, TokenBindingType.provided_token_binding, ekm)];
  if (referred !== undefined) bindings.push(signTokenBinding(referred, TokenBindingType.referred_token_binding, ekm));
  return bindings;
}

/**
 * {@link createTokenBindingMessage}, encoded as a `Sec-Token-Binding` header value (RFC 8473 §2:
 * base64url, no padding).
 *
 * @example
 * ```ts
 * const ekm = socket.exportKeyingMaterial(32, 'EXPORTER-Token-Binding')
 * request.setHeader('sec-token-binding', createSecTokenBindingHeader({ provided: key, ekm }))
 * ```
 */
export function createSecTokenBindingHeader(options: CreateTokenBindingMessageOptions): string {
  // The message's bytes only become the header's characters: encoded into a shared slab, not an
  // array (and backing store) of their own per connection.
  return encodeSecTokenBindingHeader(encodeTokenBindingMessageTransient({ bindings: signedBindings(options) }));
}
