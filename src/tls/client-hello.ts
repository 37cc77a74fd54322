/**
 * The TLS ClientHello, parsed: the only place a native-free server can learn what the client
 * offered — the RFC 8472 `token_binding` extension, Extended Master Secret and renegotiation
 * indication. `inspect.ts` feeds it from live connections.
 */
import { ByteReader } from '../codec/message.js';
import { TOKEN_BINDING_EXTENSION_TYPE, parseTokenBindingExtension } from '../codec/extension.js';
import type { TokenBindingParameters } from '../codec/types.js';
import { TokenBindingError, isTokenBindingError } from '../errors.js';

/** What a ClientHello offered, as far as Token Binding cares. */
export interface ClientHelloInfo {
  /** `legacy_version` (0x0303 for TLS 1.2 and 1.3 clients). */
  readonly legacyVersion: number;
  /** The cipher suites offered, in the client's order. */
  readonly cipherSuites: readonly number[];
  /** The RFC 8472 `token_binding` offer (extension 24), or `null` when absent. */
  readonly tokenBinding: TokenBindingParameters | null;
  /** `extended_master_secret` (RFC 7627, extension 23) offered. */
  readonly extendedMasterSecret: boolean;
  /** RFC 5746: `renegotiation_info` (0xff01) or the SCSV cipher suite 0x00FF (what OpenSSL sends). */
  readonly renegotiationIndication: boolean;
  /** `supported_versions` (extension 43), e.g. `[0x0304, 0x0303]`; empty when absent. */
  readonly supportedVersions: readonly number[];
  /** The SNI `host_name` (extension 0), or `null`. */
  readonly serverName: string | null;
}

const HANDSHAKE_CONTENT_TYPE = 22;
const CLIENT_HELLO_TYPE = 1;
const RECORD_HEADER_BYTES = 5;
/** RFC 8446 §5.1 / RFC 5246 §6.2.1: TLSPlaintext.length ≤ 2^14. */
const MAX_RECORD_PAYLOAD = 16384;
const EMPTY_RENEGOTIATION_INFO_SCSV = 0x00ff;
const EXT_SERVER_NAME = 0;
const EXT_EXTENDED_MASTER_SECRET = 23;
const EXT_SUPPORTED_VERSIONS = 43;
const EXT_RENEGOTIATION_INFO = 0xff01;
const SNI_HOST_NAME = 0;

/** @internal */
export function clientHelloError(field: string, expected: unknown, actual: unknown, cause?: Error): TokenBindingError {
  return new TokenBindingError('ERR_TB_CLIENT_HELLO', `${field}: expected ${String(expected)}, got ${String(actual)}`, {
    field,
    expected,
    actual,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** RFC 6066 §3: a HostName is ASCII; anything else is reported as no name at all. */
function asciiHostName(bytes: Uint8Array): string | null {
  let s = '';
  for (const b of bytes) {
    if (b < 0x21 || b > 0x7e) return null;
    s += String.fromCharCode(b);
  }
  return s;
}

function readServerName(body: Uint8Array): string | null {
  const r = new ByteReader(body, 'ERR_TB_CLIENT_HELLO');
  const list = new ByteReader(r.vector16('server_name_list', 1, 0xffff), 'ERR_TB_CLIENT_HELLO');
  r.done('server_name');
  let name: string | null = null;
  while (list.remaining > 0) {
    const type = list.u8('server_name.name_type');
    const value = list.vector16('server_name.name', 1, 0xffff);
    if (type === SNI_HOST_NAME && name === null) name = asciiHostName(value);
  }
  return name;
}

function readSupportedVersions(body: Uint8Array): number[] {
  const r = new ByteReader(body, 'ERR_TB_CLIENT_HELLO');
  const list = r.vector8('supported_versions', 2, 254);
  r.done('supported_versions');
  if (list.length % 2 !== 0) throw clientHelloError('supported_versions.length', 'even', list.length);
  const versions: number[] = [];
  for (let i = 0; i < list.length; i += 2) versions.push((list[i]! << 8) | list[i + 1]!);
  return versions;
}

/**
 * Parses a ClientHello handshake message (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2): the reassembled
 * `msg_type(1) || u24 length || body`, without record headers. Strict about structure (every
 * length, no duplicate extensions, exact consumption) and indifferent to extensions it does not
 * need.
 *
 * @throws {TokenBindingError} `ERR_TB_CLIENT_HELLO` for anything malformed, including a malformed
 *   `token_binding` extension (RFC 8472 §3; its codec error is the `cause`)
 * @example
 * ```ts
 * const hello = parseClientHello(handshakeMessage)
 * hello.tokenBinding // { version: { major: 1, minor: 0 }, keyParameters: [2] } or null
 * ```
 */
export function parseClientHello(bytes: Uint8Array): ClientHelloInfo {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  const r = new ByteReader(bytes, 'ERR_TB_CLIENT_HELLO');
  const type = r.u8('msg_type');
  if (type !== CLIENT_HELLO_TYPE) throw clientHelloError('msg_type', CLIENT_HELLO_TYPE, type);
  const length = (r.u8('length') << 16) | r.u16('length');
  if (length !== r.remaining) throw clientHelloError('length', r.remaining, length);

  const legacyVersion = r.u16('legacy_version');
  r.take(32, 'random');
  r.vector8('legacy_session_id', 0, 32);
  const suites = r.vector16('cipher_suites', 2, 0xfffe);
  if (suites.length % 2 !== 0) throw clientHelloError('cipher_suites.length', 'even', suites.length);
  const cipherSuites: number[] = [];
  for (let i = 0; i < suites.length; i += 2) cipherSuites.push((suites[i]! << 8) | suites[i + 1]!);
  r.vector8('legacy_compression_methods', 1, 0xff);

  let tokenBinding: TokenBindingParameters | null = null;
  let extendedMasterSecret = false;
  let renegotiationIndication = cipherSuites.includes(EMPTY_RENEGOTIATION_INFO_SCSV);
  let supportedVersions: number[] = [];
  let serverName: string | null = null;

  // A TLS 1.2 ClientHello may end after compression_methods (RFC 5246 §7.4.1.2).
  if (r.remaining > 0) {
    const extensions = new ByteReader(r.vector16('extensions', 0, 0xffff), 'ERR_TB_CLIENT_HELLO');
    r.done('ClientHello');
    const seen = new Set<number>();
    while (extensions.remaining > 0) {
      const extType = extensions.u16('extension_type');
      const body = extensions.vector16('extension_data', 0, 0xffff);
      // RFC 8446 §4.2 / RFC 5246 §7.4.1.4: no extension type twice.
      if (seen.has(extType)) throw clientHelloError('extension_type', 'unique', extType);
      seen.add(extType);
      switch (extType) {
        case TOKEN_BINDING_EXTENSION_TYPE:
          try {
            tokenBinding = parseTokenBindingExtension(body);
          } catch (err) {
            if (!isTokenBindingError(err)) throw err;
            throw clientHelloError('token_binding', 'RFC 8472 extension body', body.length, err);
          }
          break;
        case EXT_EXTENDED_MASTER_SECRET:
          if (body.length !== 0) throw clientHelloError('extended_master_secret.length', 0, body.length);
          extendedMasterSecret = true;
          break;
        case EXT_RENEGOTIATION_INFO: {
          const ri = new ByteReader(body, 'ERR_TB_CLIENT_HELLO');
          ri.vector8('renegotiated_connection', 0, 0xff);
          ri.done('renegotiation_info');
          renegotiationIndication = true;
          break;
        }
        case EXT_SUPPORTED_VERSIONS:
          supportedVersions = readSupportedVersions(body);
          break;
        case EXT_SERVER_NAME:
          serverName = readServerName(body);
          break;
        default:
          break;
      }
    }
  }
  return { legacyVersion, cipherSuites, tokenBinding, extendedMasterSecret, renegotiationIndication, supportedVersions, serverName };
}

/**
 * Default cap of TLS records one ClientHello may span. Real clients send their hello in one
 * record (a record holds 2^14 bytes, RFC 8446 §5.1, more than the 16 KiB `maxBytes` default);
 * 64 still lets a 16 KiB hello come in 256-byte records, or a typical 500-byte one in 8-byte
 * records, while a hello in thousands of one-byte records is refused on the header of record 65.
 */
export const MAX_CLIENT_HELLO_RECORDS = 64;

/** First size of the copy of an incomplete hello; doubled as needed, never past `maxBytes`. */
const INITIAL_WIRE_CAPACITY = 512;

/**
 * Reassembles the ClientHello handshake message from TLS records as bytes arrive: a message may
 * span several records, and records may be split across TCP segments (down to one byte each).
 *
 * Incremental: the parse position (inside a record header or a payload), the handshake header and
 * the message built so far are kept between pushes. Each received byte is examined once and
 * copied at most twice (into the wire copy kept for {@link bytes}, amortized by doubling, and into
 * the message), so the cost per byte is O(1) however the client fragments or segments its hello.
 * The handshake header is read once, when its 4 bytes are in, and the message buffer is then
 * allocated at its announced size (≤ `maxBytes`). A hello spread over more than `maxRecords`
 * records is refused on the header of the first record past the cap.
 *
 * @internal Exported for tests and the inspector.
 */
export class ClientHelloReader {
  /** A copy of the bytes received while the hello is incomplete. */
  #wire: Buffer | null = null;
  #wireLength = 0;
  /** The chunk that completed the hello and any pushed after it, kept by reference. */
  #tail: Buffer[] = [];
  /** Where the current record ends on the wire (record headers included). */
  #wireEnd = 0;
  /** The current record header and how much of it has arrived. */
  readonly #header = new Uint8Array(RECORD_HEADER_BYTES);
  #headerFill = 0;
  /** Payload bytes still to come in the current record; 0 while a header is being read. */
  #payloadLeft = 0;
  #records = 0;
  /** The handshake header (msg_type || u24 length) until its 4 bytes are in. */
  readonly #head = new Uint8Array(4);
  #headFill = 0;
  /** The handshake message, allocated once its length is known. */
  #message: Uint8Array | null = null;
  #messageFill = 0;

  constructor(
    readonly maxBytes: number = 16384,
    readonly maxRecords: number = MAX_CLIENT_HELLO_RECORDS,
  ) {}

  /** Every byte received so far (to hand back to the stream). */
  get bytes(): Buffer {
    const parts = this.#wireLength > 0 ? [this.#wire!.subarray(0, this.#wireLength), ...this.#tail] : this.#tail;
    if (parts.length === 1) return parts[0]!;
    // Concatenated once, when the socket is handed on; a second read reuses the result.
    const all = Buffer.concat(parts);
    this.#wire = null;
    this.#wireLength = 0;
    this.#tail = [all];
    return all;
  }

  /**
   * Adds received bytes. Returns the complete handshake message once it is all there, else `null`.
   * @throws {TokenBindingError} `ERR_TB_CLIENT_HELLO` when the bytes are not a TLS ClientHello,
   *   exceed `maxBytes` or span more than `maxRecords` records
   */
  push(chunk: Uint8Array): Uint8Array | null {
    const view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.#complete() || this.#consume(view)) {
      this.#tail.push(view);
      return this.#message;
    }
    this.#keep(view);
    return null;
  }

  #complete(): boolean {
    return this.#message !== null && this.#messageFill === this.#message.length;
  }

  /** Copies the bytes of an incomplete hello (at most `maxBytes` + 4: #consume refuses more). */
  #keep(view: Buffer): void {
    const needed = this.#wireLength + view.length;
    if (this.#wire === null || needed > this.#wire.length) {
      let capacity = this.#wire === null ? INITIAL_WIRE_CAPACITY : this.#wire.length * 2;
      while (capacity < needed) capacity *= 2;
      const grown = Buffer.allocUnsafe(Math.max(needed, Math.min(capacity, this.maxBytes)));
      if (this.#wire !== null) grown.set(this.#wire.subarray(0, this.#wireLength));
      this.#wire = grown;
    }
    this.#wire.set(view, this.#wireLength);
    this.#wireLength = needed;
  }

  /** Advances the parse over `bytes`; true once the message is complete (later bytes are TLS's). */
  #consume(bytes: Buffer): boolean {
    let i = 0;
    while (i < bytes.length) {
      if (this.#payloadLeft === 0) {
        this.#header[this.#headerFill++] = bytes[i++]!;
        // The content type is checked on its own byte, so a non-TLS peer fails at once.
        if (this.#headerFill === 1 && this.#header[0] !== HANDSHAKE_CONTENT_TYPE) {
          throw clientHelloError('record.type', HANDSHAKE_CONTENT_TYPE, this.#header[0]);
        }
        if (this.#headerFill === RECORD_HEADER_BYTES) this.#startRecord();
      } else if (this.#headFill < 4) {
        // The handshake header, a byte at a time: it may itself be split across records.
        const b = bytes[i++]!;
        this.#payloadLeft--;
        if (this.#headFill === 0 && b !== CLIENT_HELLO_TYPE) throw clientHelloError('msg_type', CLIENT_HELLO_TYPE, b);
        this.#head[this.#headFill++] = b;
        if (this.#headFill === 4) this.#startMessage();
      } else {
        const message = this.#message!;
        const n = Math.min(this.#payloadLeft, bytes.length - i, message.length - this.#messageFill);
        message.set(bytes.subarray(i, i + n), this.#messageFill);
        this.#messageFill += n;
        this.#payloadLeft -= n;
        i += n;
      }
      if (this.#complete()) return true;
    }
    return false;
  }

  #startRecord(): void {
    const h = this.#header;
    this.#headerFill = 0;
    const major = h[1]!;
    const length = (h[3]! << 8) | h[4]!;
    if (major !== 3) throw clientHelloError('record.version', '3.x', major);
    if (length === 0 || length > MAX_RECORD_PAYLOAD) throw clientHelloError('record.length', `1..${MAX_RECORD_PAYLOAD}`, length);
    this.#records++;
    if (this.#records > this.maxRecords) throw clientHelloError('records', `<= ${this.maxRecords}`, this.#records);
    // Checked on the header, before the payload arrives: the hello, records included, fits maxBytes.
    this.#wireEnd += RECORD_HEADER_BYTES + length;
    if (this.#wireEnd > this.maxBytes) throw clientHelloError('size', `<= ${this.maxBytes} bytes`, this.#wireEnd);
    this.#payloadLeft = length;
  }

  #startMessage(): void {
    const head = this.#head;
    const messageBytes = 4 + ((head[1]! << 16) | (head[2]! << 8) | head[3]!);
    if (messageBytes > this.maxBytes) throw clientHelloError('ClientHello.length', `<= ${this.maxBytes} bytes`, messageBytes);
    const message = new Uint8Array(messageBytes);
    message.set(head);
    this.#message = message;
    this.#messageFill = 4;
  }
}
