/**
 * RFC 8471 §3 TokenBindingMessage: strict parser and encoder.
 *
 * Parsing is on the per-request path, so results are views (`subarray`) into the input: no bytes
 * are copied. The caller must not modify the input buffer while it uses the result (copy
 * `id.raw` with `slice()` to keep an ID beyond that).
 */
import { TokenBindingError, type TokenBindingErrorCode } from '../errors.js';
import { base64urlEncode } from './base64url.js';
import { carve } from './slab.js';
import type { TokenBinding, TokenBindingExtension, TokenBindingID, TokenBindingMessage } from './types.js';

/**
 * A bounds-checked big-endian reader over a byte range; every failure is a coded
 * {@link TokenBindingError}, never a RangeError or a silent `undefined`.
 *
 * @internal Shared by the codec's parsers; not part of the public API.
 */
export class ByteReader {
  pos: number;
  end: number;

  constructor(
    readonly bytes: Uint8Array,
    readonly code: TokenBindingErrorCode,
  ) {
    this.pos = 0;
    this.end = bytes.length;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  fail(field: string, expected: unknown, actual: unknown): TokenBindingError {
    return new TokenBindingError(this.code, `${field}: expected ${String(expected)}, got ${String(actual)}`, {
      field,
      expected,
      actual,
      offset: this.pos,
    });
  }

  u8(field: string): number {
    if (this.pos >= this.end) throw this.fail(field, '1 byte', 'end of input');
    return this.bytes[this.pos++]!;
  }

  u16(field: string): number {
    if (this.end - this.pos < 2) throw this.fail(field, '2 bytes', `${this.remaining} bytes`);
    const v = (this.bytes[this.pos]! << 8) | this.bytes[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  /** A view of the next `n` bytes. */
  take(n: number, field: string): Uint8Array {
    if (n > this.end - this.pos) throw this.fail(field, `${n} bytes`, `${this.remaining} bytes`);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /**
   * `opaque field<min..max>` with a u16 length prefix. The length is read here rather than by
   * `u16` so that its label (`field.length`) is only built for an error: this runs several times
   * per message on the per-request path.
   */
  vector16(field: string, min: number, max: number): Uint8Array {
    if (this.end - this.pos < 2) throw this.fail(`${field}.length`, '2 bytes', `${this.remaining} bytes`);
    const n = (this.bytes[this.pos]! << 8) | this.bytes[this.pos + 1]!;
    // The offset of a length out of bounds is the length's own.
    if (n < min || n > max) throw this.fail(`${field}.length`, `${min}..${max}`, n);
    this.pos += 2;
    return this.take(n, field);
  }

  /** `opaque field<min..max>` with a u8 length prefix (the label built only for an error, as in `vector16`). */
  vector8(field: string, min: number, max: number): Uint8Array {
    if (this.pos >= this.end) throw this.fail(`${field}.length`, '1 byte', 'end of input');
    const n = this.bytes[this.pos]!;
    if (n < min || n > max) throw this.fail(`${field}.length`, `${min}..${max}`, n);
    this.pos += 1;
    return this.take(n, field);
  }

  /** Exact consumption: no trailing bytes. */
  done(field: string): void {
    if (this.pos !== this.end) throw this.fail(field, 'end of input', `${this.remaining} trailing bytes`);
  }
}

const NO_EXTENSIONS: readonly TokenBindingExtension[] = Object.freeze([]);

/** RFC 8471 §3 bounds. */
const TOKENBINDINGS_MIN = 132;
const SIGNATURE_MIN = 64;
const U16_MAX = 0xffff;

function readTokenBindingID(r: ByteReader): TokenBindingID {
  const start = r.pos;
  const keyParameters = r.u8('key_parameters');
  // The RFC gives key_length no explicit bounds; every defined TokenBindingPublicKey is non-empty
  // and an empty key identifies nothing, so 0 is rejected here rather than passed up as an ID.
  const key = r.vector16('key', 1, U16_MAX);
  return { keyParameters, key, raw: r.bytes.subarray(start, r.pos) };
}

function readExtensions(r: ByteReader): readonly TokenBindingExtension[] {
  const length = r.u16('extensions.length');
  if (length === 0) return NO_EXTENSIONS;
  if (length > r.remaining) {
    r.pos -= 2;
    throw r.fail('extensions.length', `<= ${r.remaining}`, length);
  }
  // Narrow the reader to the extensions block so no extension can reach past it.
  const outerEnd = r.end;
  r.end = r.pos + length;
  const extensions: TokenBindingExtension[] = [];
  while (r.pos < r.end) {
    const type = r.u8('extension_type');
    const data = r.vector16('extension_data', 0, U16_MAX);
    extensions.push({ type, data });
  }
  r.end = outerEnd;
  return extensions;
}

function readTokenBinding(r: ByteReader): TokenBinding {
  const type = r.u8('tokenbinding_type');
  const id = readTokenBindingID(r);
  const signature = r.vector16('signature', SIGNATURE_MIN, U16_MAX);
  const extensions = readExtensions(r);
  return { type, id, signature, extensions };
}

/**
 * Parses a TokenBindingMessage (RFC 8471 §3) strictly: every length is checked, the RFC's bounds
 * are enforced (`tokenbindings<132..2^16-1>`, `signature<64..2^16-1>`, `extensions<0..2^16-1>`,
 * a non-empty key) and the input must be consumed exactly. Unknown binding types, key
 * parameters and extensions are carried as numbers and opaque bytes, not rejected; keys are not
 * decoded (see `decodeTokenBindingPublicKey`).
 *
 * The result views `bytes` (no copies): keep the input unmodified while the result is in use.
 *
 * @throws {TokenBindingError} `ERR_TB_MALFORMED` (with `cause: { field, expected, actual, offset }`)
 * @example
 * ```ts
 * const message = parseTokenBindingMessage(base64urlDecode(header))
 * for (const binding of message.bindings) console.log(binding.type, binding.id.keyParameters)
 * ```
 */
export function parseTokenBindingMessage(bytes: Uint8Array): TokenBindingMessage {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  const r = new ByteReader(bytes, 'ERR_TB_MALFORMED');
  const length = r.u16('tokenbindings.length');
  if (length < TOKENBINDINGS_MIN) {
    r.pos = 0;
    throw r.fail('tokenbindings.length', `${TOKENBINDINGS_MIN}..${U16_MAX}`, length);
  }
  if (length !== r.remaining) {
    r.pos = 0;
    throw r.fail('tokenbindings.length', `${r.remaining} (the rest of the message)`, length);
  }
  const bindings: TokenBinding[] = [];
  while (r.pos < r.end) bindings.push(readTokenBinding(r));
  return { bindings };
}

/**
 * The message nearly every request carries — one binding, no extensions — read at fixed offsets
 * (RFC 8471 §3): the binding exactly as {@link parseTokenBindingMessage} would return it as the
 * message's only binding, or `undefined` for any other message, well-formed or not (the full
 * parser then decides, with its codes). One function with no reader and no bindings array: on a
 * server taking new connections the parse runs with the CPU caches cold, and each step costs.
 *
 * @internal For the verifier; kept equal to the full parser by a property test.
 */
export function parseSingleBindingMessage(bytes: Uint8Array): TokenBinding | undefined {
  const n = bytes.length;
  if (n < 2 + TOKENBINDINGS_MIN || ((bytes[0]! << 8) | bytes[1]!) !== n - 2) return undefined;
  // type(1) key_parameters(1) key<1..2^16-1> signature<64..2^16-1> extensions(u16 = 0)
  const keyLength = (bytes[4]! << 8) | bytes[5]!;
  const keyEnd = 6 + keyLength;
  if (keyLength === 0 || keyEnd + 2 > n) return undefined;
  const signatureLength = (bytes[keyEnd]! << 8) | bytes[keyEnd + 1]!;
  const signatureEnd = keyEnd + 2 + signatureLength;
  if (signatureLength < SIGNATURE_MIN || signatureEnd + 2 !== n || bytes[signatureEnd] !== 0 || bytes[signatureEnd + 1] !== 0) return undefined;
  // The same shapes as readTokenBinding's: one hidden class for every parsed binding.
  const id: TokenBindingID = { keyParameters: bytes[3]!, key: bytes.subarray(6, keyEnd), raw: bytes.subarray(3, keyEnd) };
  return { type: bytes[2]!, id, signature: bytes.subarray(keyEnd + 2, signatureEnd), extensions: NO_EXTENSIONS };
}

/**
 * Parses a bare TokenBindingID (`key_parameters || u16 key_length || key`, RFC 8471 §3), as
 * forwarded by reverse proxies (draft-ietf-tokbind-ttrp) or stored next to a bound token.
 * The result views `bytes`.
 *
 * @throws {TokenBindingError} `ERR_TB_MALFORMED`
 * @example
 * ```ts
 * const id = parseTokenBindingID(base64urlDecode(req.headers['sec-provided-token-binding-id']))
 * ```
 */
export function parseTokenBindingID(bytes: Uint8Array): TokenBindingID {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  const r = new ByteReader(bytes, 'ERR_TB_MALFORMED');
  const id = readTokenBindingID(r);
  r.done('TokenBindingID');
  return id;
}

/**
 * The base64url form of a TokenBindingID's wire bytes: how applications, logs and reverse proxies
 * (draft-ietf-tokbind-ttrp `Sec-Provided-Token-Binding-ID`) name a binding. For the `tbh`
 * confirmation hash use `tokenBindingHash`.
 *
 * @example
 * ```ts
 * formatTokenBindingID(message.bindings[0].id) // 'AgBBQ...'
 * ```
 */
export function formatTokenBindingID(id: TokenBindingID | Uint8Array): string {
  if (id instanceof Uint8Array) return base64urlEncode(id);
  if (typeof id !== 'object' || id === null || !(id.raw instanceof Uint8Array)) {
    throw new TypeError('id must be a TokenBindingID or its bytes');
  }
  return base64urlEncode(id.raw);
}

function checkByte(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 255) {
    throw new TypeError(`${name} must be an integer in 0..255`);
  }
  return value;
}

function checkBytes(value: unknown, name: string, min: number, max: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  if (value.length < min || value.length > max) throw new TypeError(`${name} must be ${min}..${max} bytes`);
  return value;
}

/**
 * Builds a TokenBindingID (RFC 8471 §3) from key parameters and the encoded public key
 * (see `encodeEcP256PublicKey`, `encodeRsaPublicKey`). `key` is copied; `raw` is the wire form.
 *
 * @example
 * ```ts
 * const id = createTokenBindingID(TokenBindingKeyParameters.ecdsap256, encodeEcP256PublicKey(x, y))
 * id.raw // 02 0041 40 || x || y
 * ```
 */
export function createTokenBindingID(keyParameters: number, key: Uint8Array): TokenBindingID {
  checkByte(keyParameters, 'keyParameters');
  checkBytes(key, 'key', 1, U16_MAX);
  const raw = new Uint8Array(3 + key.length);
  raw[0] = keyParameters;
  raw[1] = key.length >>> 8;
  raw[2] = key.length & 0xff;
  raw.set(key, 3);
  return { keyParameters, key: raw.subarray(3), raw };
}

function idIsConsistent(id: TokenBindingID): boolean {
  const { raw, key } = id;
  if (raw.length !== key.length + 3 || raw[0] !== id.keyParameters) return false;
  if (raw[1] !== key.length >>> 8 || raw[2] !== (key.length & 0xff)) return false;
  // A parsed or created ID views its own raw bytes: nothing more to compare.
  if (key.buffer === raw.buffer && key.byteOffset === raw.byteOffset + 3) return true;
  for (let i = 0; i < key.length; i++) if (raw[i + 3] !== key[i]) return false;
  return true;
}

function bindingLength(b: TokenBinding): number {
  if (typeof b !== 'object' || b === null) throw new TypeError('binding must be an object');
  checkByte(b.type, 'binding.type');
  const id = b.id;
  if (typeof id !== 'object' || id === null) throw new TypeError('binding.id must be a TokenBindingID');
  checkByte(id.keyParameters, 'id.keyParameters');
  checkBytes(id.key, 'id.key', 1, U16_MAX);
  checkBytes(id.raw, 'id.raw', 4, U16_MAX + 3);
  // An ID whose raw bytes disagree with its fields would hash to something else than it verifies as.
  if (!idIsConsistent(id)) throw new TypeError('id.raw does not match id.keyParameters and id.key');
  checkBytes(b.signature, 'binding.signature', SIGNATURE_MIN, U16_MAX);
  if (!Array.isArray(b.extensions)) throw new TypeError('binding.extensions must be an array');
  let extensionsLength = 0;
  for (const e of b.extensions) {
    checkByte(e.type, 'extension.type');
    extensionsLength += 3 + checkBytes(e.data, 'extension.data', 0, U16_MAX).length;
  }
  if (extensionsLength > U16_MAX) throw new TypeError('extensions exceed 65535 bytes');
  return 1 + id.raw.length + 2 + b.signature.length + 2 + extensionsLength;
}

function writeTokenBinding(b: TokenBinding, out: Uint8Array, at: number): number {
  let o = at;
  out[o++] = b.type;
  out[o++] = b.id.keyParameters;
  out[o++] = b.id.key.length >>> 8;
  out[o++] = b.id.key.length & 0xff;
  out.set(b.id.key, o);
  o += b.id.key.length;
  out[o++] = b.signature.length >>> 8;
  out[o++] = b.signature.length & 0xff;
  out.set(b.signature, o);
  o += b.signature.length;
  let extensionsLength = 0;
  for (const e of b.extensions) extensionsLength += 3 + e.data.length;
  out[o++] = extensionsLength >>> 8;
  out[o++] = extensionsLength & 0xff;
  for (const e of b.extensions) {
    out[o++] = e.type;
    out[o++] = e.data.length >>> 8;
    out[o++] = e.data.length & 0xff;
    out.set(e.data, o);
    o += e.data.length;
  }
  return o;
}

/**
 * Encodes one TokenBinding (RFC 8471 §3): `type || TokenBindingID || signature<64..2^16-1> ||
 * extensions<0..2^16-1>`, without the message's list prefix.
 *
 * @throws {TypeError} when a field is out of the RFC's bounds (API misuse)
 * @example
 * ```ts
 * const bytes = encodeTokenBinding({ type: 0, id, signature, extensions: [] })
 * ```
 */
export function encodeTokenBinding(binding: TokenBinding): Uint8Array {
  const out = new Uint8Array(bindingLength(binding));
  writeTokenBinding(binding, out, 0);
  return out;
}

/**
 * Encodes a TokenBindingMessage (RFC 8471 §3). For any message `parseTokenBindingMessage`
 * accepted, `encodeTokenBindingMessage(parseTokenBindingMessage(x))` equals `x` byte for byte.
 *
 * @throws {TypeError} when a field is out of the RFC's bounds (API misuse), including a list
 *   shorter than 132 or longer than 65535 bytes
 * @example
 * ```ts
 * const header = encodeSecTokenBindingHeader(encodeTokenBindingMessage({ bindings: [provided] }))
 * ```
 */
export function encodeTokenBindingMessage(message: TokenBindingMessage): Uint8Array {
  return encodeMessage(message, ownBytes);
}

/**
 * {@link encodeTokenBindingMessage} into a view of a shared slab (slab.ts): for a caller that
 * only encodes the bytes further (the client's header value, once per connection) and keeps
 * nothing of them.
 *
 * @internal
 */
export function encodeTokenBindingMessageTransient(message: TokenBindingMessage): Uint8Array {
  return encodeMessage(message, carve);
}

const ownBytes = (n: number): Uint8Array => new Uint8Array(n);

function encodeMessage(message: TokenBindingMessage, allocate: (n: number) => Uint8Array): Uint8Array {
  if (typeof message !== 'object' || message === null || !Array.isArray(message.bindings)) {
    throw new TypeError('message.bindings must be an array');
  }
  let length = 0;
  for (const b of message.bindings) length += bindingLength(b);
  if (length < TOKENBINDINGS_MIN || length > U16_MAX) {
    throw new TypeError(`tokenbindings must be ${TOKENBINDINGS_MIN}..${U16_MAX} bytes, got ${length}`);
  }
  const out = allocate(2 + length);
  out[0] = length >>> 8;
  out[1] = length & 0xff;
  let o = 2;
  for (const b of message.bindings) o = writeTokenBinding(b, out, o);
  return out;
}
