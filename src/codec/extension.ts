/**
 * RFC 8472: the `token_binding` TLS extension (type 24) and the negotiation it carries, as pure
 * functions. Node's TLS cannot send this extension; tokbind reads the client's offer from the
 * ClientHello and uses these rules to decide what counts as negotiated.
 */
import { TokenBindingError } from '../errors.js';
import { ByteReader } from './message.js';
import type { TokenBindingParameters, TokenBindingProtocolVersion } from './types.js';

/** The `token_binding` TLS ExtensionType (RFC 8472 §6). */
export const TOKEN_BINDING_EXTENSION_TYPE = 24;

/** Token Binding protocol version 1.0 (RFC 8471). */
export const TOKEN_BINDING_VERSION_1_0: TokenBindingProtocolVersion = Object.freeze({ major: 1, minor: 0 });

/** The lowest version negotiated by default: draft 0.13, wire-compatible with 1.0 (as BoringSSL). */
export const DEFAULT_MIN_TOKEN_BINDING_VERSION: TokenBindingProtocolVersion = Object.freeze({ major: 0, minor: 13 });

/** The last draft version wire-compatible with 1.0; 0.17..0.255 are not versions anyone speaks. */
const LAST_DRAFT_MINOR = 16;

/** What the negotiation needs to know about the TLS connection (RFC 8472 §5). */
export interface TokenBindingTlsFacts {
  /** As `tlsSocket.getProtocol()`: `'TLSv1.3'`, `'TLSv1.2'`, …; anything but `'TLSv1.3'` counts as ≤ 1.2. */
  readonly version: string;
  /** Extended Master Secret (RFC 7627) negotiated. */
  readonly extendedMasterSecret: boolean;
  /** Renegotiation indication (RFC 5746) negotiated. */
  readonly renegotiationIndication: boolean;
}

/** The server side of the negotiation (RFC 8472 §4). */
export interface TokenBindingServerNegotiation {
  /** Key parameters the server supports, most preferred first. */
  readonly keyParameters: readonly number[];
  /** Lowest client version accepted. Default 0.13. */
  readonly minVersion?: TokenBindingProtocolVersion;
  /** Highest version the server speaks, at most 1.0. Default 1.0. */
  readonly maxVersion?: TokenBindingProtocolVersion;
  readonly tls: TokenBindingTlsFacts;
}

/** The client's own limits when it checks a reply. */
export interface TokenBindingClientNegotiation {
  /** Lowest server version the client accepts. Default 0.13. */
  readonly minVersion?: TokenBindingProtocolVersion;
}

/** The outcome of a successful negotiation. */
export interface NegotiatedTokenBinding {
  readonly version: TokenBindingProtocolVersion;
  readonly keyParameters: number;
}

/**
 * Parses a `token_binding` extension body (RFC 8472 §3, §4):
 * `major(1) || minor(1) || key_parameters_list<1..2^8-1>`, consumed exactly. The same form is
 * used in the ClientHello (the offer) and the ServerHello / EncryptedExtensions (the reply).
 *
 * @throws {TokenBindingError} `ERR_TB_EXTENSION_MALFORMED` (including an empty list)
 * @example
 * ```ts
 * parseTokenBindingExtension(Uint8Array.of(1, 0, 1, 2)) // { version: { major: 1, minor: 0 }, keyParameters: [2] }
 * ```
 */
export function parseTokenBindingExtension(body: Uint8Array): TokenBindingParameters {
  if (!(body instanceof Uint8Array)) throw new TypeError('body must be a Uint8Array');
  const r = new ByteReader(body, 'ERR_TB_EXTENSION_MALFORMED');
  const major = r.u8('major');
  const minor = r.u8('minor');
  const list = r.vector8('key_parameters_list', 1, 0xff);
  r.done('token_binding');
  return { version: { major, minor }, keyParameters: Array.from(list) };
}

function checkByte(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 255) {
    throw new TypeError(`${name} must be an integer in 0..255`);
  }
  return value;
}

function versionNumber(v: TokenBindingProtocolVersion | undefined, name: string): number {
  if (typeof v !== 'object' || v === null) throw new TypeError(`${name} must be { major, minor }`);
  return (checkByte(v.major, `${name}.major`) << 8) | checkByte(v.minor, `${name}.minor`);
}

function checkParameters(p: TokenBindingParameters, name: string): number {
  if (typeof p !== 'object' || p === null || !Array.isArray(p.keyParameters)) {
    throw new TypeError(`${name} must be { version, keyParameters }`);
  }
  for (const k of p.keyParameters) checkByte(k, `${name}.keyParameters[]`);
  return versionNumber(p.version, `${name}.version`);
}

/**
 * Encodes a `token_binding` extension body (RFC 8472 §3, §4), without the ExtensionType and
 * length of the TLS extension header.
 *
 * @throws {TypeError} for a version or key parameters outside 0..255, or a list of 0 or over 255 entries
 * @example
 * ```ts
 * encodeTokenBindingExtension({ version: { major: 1, minor: 0 }, keyParameters: [2] }) // 01 00 01 02
 * ```
 */
export function encodeTokenBindingExtension(parameters: TokenBindingParameters): Uint8Array {
  checkParameters(parameters, 'parameters');
  const list = parameters.keyParameters;
  if (list.length < 1 || list.length > 255) throw new TypeError('keyParameters must hold 1..255 entries');
  const out = new Uint8Array(3 + list.length);
  out[0] = parameters.version.major;
  out[1] = parameters.version.minor;
  out[2] = list.length;
  out.set(list, 3);
  return out;
}

function fromNumber(v: number): TokenBindingProtocolVersion {
  return { major: v >>> 8, minor: v & 0xff };
}

function versionText(v: number): string {
  return `${v >>> 8}.${v & 0xff}`;
}

/** Draft versions 0.17..0.255 exist in no specification: nobody can speak them. */
function isUnknownDraft(v: number): boolean {
  return v >>> 8 === 0 && (v & 0xff) > LAST_DRAFT_MINOR;
}

/** RFC 8471 §4.2 / RFC 8472 §5: below TLS 1.3, Token Binding needs EMS and RI. */
function tlsAllowsTokenBinding(tls: TokenBindingTlsFacts): boolean {
  if (typeof tls !== 'object' || tls === null || typeof tls.version !== 'string') {
    throw new TypeError('tls must be { version, extendedMasterSecret, renegotiationIndication }');
  }
  return tls.version === 'TLSv1.3' || (tls.extendedMasterSecret === true && tls.renegotiationIndication === true);
}

/**
 * The server's side of RFC 8472 §4: given the client's offer, the reply to send, or `null` to
 * omit the extension (Token Binding not negotiated). The version is the lower of the client's and
 * the server's maximum; a result below `minVersion` (default 0.13; drafts 0.13–0.16 are
 * wire-compatible with 1.0) or an unknown draft version (0.17–0.255) is not negotiated. The key
 * parameters are the server's most preferred one that the client offered (unknown ones are
 * ignored, repeats are harmless). Below TLS 1.3, Extended Master Secret and renegotiation
 * indication are required.
 *
 * @throws {TypeError} for a malformed configuration (a version outside 0..255, `maxVersion` above
 *   1.0, `minVersion` above `maxVersion`)
 * @example
 * ```ts
 * selectTokenBindingParameters(
 *   { version: { major: 1, minor: 0 }, keyParameters: [0, 1, 2] },
 *   { keyParameters: [2, 1, 0], tls: { version: 'TLSv1.3', extendedMasterSecret: false, renegotiationIndication: false } },
 * ) // { version: { major: 1, minor: 0 }, keyParameters: [2] }
 * ```
 */
export function selectTokenBindingParameters(
  offer: TokenBindingParameters,
  server: TokenBindingServerNegotiation,
): TokenBindingParameters | null {
  if (typeof server !== 'object' || server === null || !Array.isArray(server.keyParameters)) {
    throw new TypeError('server must be { keyParameters, tls, minVersion?, maxVersion? }');
  }
  for (const k of server.keyParameters) checkByte(k, 'server.keyParameters[]');
  const min = versionNumber(server.minVersion ?? DEFAULT_MIN_TOKEN_BINDING_VERSION, 'server.minVersion');
  const max = versionNumber(server.maxVersion ?? TOKEN_BINDING_VERSION_1_0, 'server.maxVersion');
  if (max > 0x0100) throw new TypeError('server.maxVersion must be at most 1.0');
  if (min > max) throw new TypeError('server.minVersion must not exceed server.maxVersion');
  const client = checkParameters(offer, 'offer');
  const allowed = tlsAllowsTokenBinding(server.tls);

  const version = Math.min(client, max);
  if (version < min || isUnknownDraft(version) || !allowed) return null;
  for (const k of server.keyParameters) {
    if (offer.keyParameters.includes(k)) return { version: fromNumber(version), keyParameters: [k] };
  }
  return null;
}

function negotiationInvalid(field: string, expected: unknown, actual: unknown): TokenBindingError {
  return new TokenBindingError('ERR_TB_NEGOTIATION_INVALID', `${field}: expected ${String(expected)}, got ${String(actual)}`, {
    field,
    expected,
    actual,
  });
}

/**
 * The client's side of RFC 8472 §4: checks the server's `token_binding` reply against what the
 * client offered. Checks run in BoringSSL's order: exactly one key parameter, a version no higher
 * than offered, then a version the client speaks (below `minVersion` — default 0.13 — or an
 * unknown draft: not negotiated, the connection goes on without Token Binding), then a key
 * parameter that was offered, then EMS and RI below TLS 1.3.
 *
 * @param reply the parsed reply, or `null` when the server omitted the extension
 * @returns the negotiated version and key parameters, or `null` when not negotiated
 * @throws {TokenBindingError} `ERR_TB_NEGOTIATION_INVALID` when the client must abort the
 *   handshake (RFC 8472 §4)
 * @example
 * ```ts
 * const negotiated = validateTokenBindingReply(offer, parseTokenBindingExtension(body), {
 *   version: 'TLSv1.2', extendedMasterSecret: true, renegotiationIndication: true,
 * }) // { version: { major: 1, minor: 0 }, keyParameters: 2 }
 * ```
 */
export function validateTokenBindingReply(
  offer: TokenBindingParameters,
  reply: TokenBindingParameters | null,
  tls: TokenBindingTlsFacts,
  options?: TokenBindingClientNegotiation,
): NegotiatedTokenBinding | null {
  const offered = checkParameters(offer, 'offer');
  const min = versionNumber(options?.minVersion ?? DEFAULT_MIN_TOKEN_BINDING_VERSION, 'options.minVersion');
  const allowed = tlsAllowsTokenBinding(tls);
  if (reply === null) return null;
  const replied = checkParameters(reply, 'reply');

  if (reply.keyParameters.length !== 1) {
    throw negotiationInvalid('reply.keyParameters.length', 1, reply.keyParameters.length);
  }
  if (replied > offered) throw negotiationInvalid('reply.version', `<= ${versionText(offered)}`, versionText(replied));
  if (replied < min || isUnknownDraft(replied)) return null;
  const keyParameters = reply.keyParameters[0]!;
  if (!offer.keyParameters.includes(keyParameters)) {
    throw negotiationInvalid('reply.keyParameters', offer.keyParameters, keyParameters);
  }
  if (!allowed) {
    throw negotiationInvalid('tls', 'TLS 1.3, or Extended Master Secret and renegotiation indication', tls.version);
  }
  return { version: fromNumber(replied), keyParameters };
}
