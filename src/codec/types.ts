/**
 * RFC 8471 structures and registries, as types. Pure data: no Node APIs.
 */

/** TokenBindingType registry (RFC 8471 §3, §6.3). Other values are carried as numbers. */
export const TokenBindingType = {
  provided_token_binding: 0,
  referred_token_binding: 1,
} as const;

/** Token Binding Key Parameters registry (RFC 8471 §3, §6.1). Others (0..255) are carried as numbers. */
export const TokenBindingKeyParameters = {
  rsa2048_pkcs1_5: 0,
  rsa2048_pss: 1,
  ecdsap256: 2,
} as const;

/** The names tokbind uses for the three registered key parameters (the RFC's spelling). */
export type KeyParametersName = 'rsa2048_pkcs1.5' | 'rsa2048_pss' | 'ecdsap256';

/** A registered key parameters value. */
export type KnownKeyParameters = (typeof TokenBindingKeyParameters)[keyof typeof TokenBindingKeyParameters];

/**
 * TokenBindingID (RFC 8471 §3): `key_parameters(1) || u16 key_length || key`.
 * `raw` is the exact wire bytes of the whole ID: what applications see, what proxies forward
 * and what `tbh` hashes.
 */
export interface TokenBindingID {
  /** 0..255; 0, 1 and 2 are registered. */
  readonly keyParameters: number;
  /** The key bytes (the TokenBindingPublicKey), without the u16 length prefix. */
  readonly key: Uint8Array;
  /** The whole TokenBindingID as it stood on the wire. */
  readonly raw: Uint8Array;
}

/** TB_Extension (RFC 8471 §3.4): unknown ones are carried, never interpreted. */
export interface TokenBindingExtension {
  readonly type: number;
  readonly data: Uint8Array;
}

/** TokenBinding (RFC 8471 §3). */
export interface TokenBinding {
  /** 0 provided, 1 referred, any other 0..255 value carried as is. */
  readonly type: number;
  readonly id: TokenBindingID;
  readonly signature: Uint8Array;
  readonly extensions: readonly TokenBindingExtension[];
}

/** TokenBindingMessage (RFC 8471 §3): one or more bindings. */
export interface TokenBindingMessage {
  readonly bindings: readonly TokenBinding[];
}

/** A decoded ecdsap256 key: the uncompressed point without its 0x04 prefix. */
export interface EcP256PublicKey {
  readonly kind: 'ec';
  /** 32 bytes. */
  readonly x: Uint8Array;
  /** 32 bytes. */
  readonly y: Uint8Array;
}

/** A decoded rsa2048_* key. */
export interface RsaPublicKey {
  readonly kind: 'rsa';
  /** Big-endian, no leading zero bytes. */
  readonly modulus: Uint8Array;
  /** Big-endian, no leading zero bytes. */
  readonly exponent: Uint8Array;
}

export type TokenBindingPublicKey = EcP256PublicKey | RsaPublicKey;

/** RFC 8472 TB_ProtocolVersion. */
export interface TokenBindingProtocolVersion {
  readonly major: number;
  readonly minor: number;
}

/** RFC 8472 §3/§4 `token_binding` extension body (ClientHello offer or server reply). */
export interface TokenBindingParameters {
  readonly version: TokenBindingProtocolVersion;
  /** In preference order; may hold unknown values (ignored by negotiation). */
  readonly keyParameters: readonly number[];
}
