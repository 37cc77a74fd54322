import type { TLSSocket } from 'node:tls';

/** OpenSSL's SSL_SESSION ASN.1 field `[13] flags` (ssl/ssl_asn1.c: `ASN1_EXP_OPT_EMBED(..., flags, ZUINT64, 13)`). */
const SESSION_FLAGS_TAG = 13;
/** SSL_SESS_FLAG_EXTMS: the session's master secret is the RFC 7627 extended one. */
const SESSION_FLAG_EXTMS = 0x1;

/**
 * Whether the connection's master secret is the RFC 7627 Extended Master Secret, which RFC 8472
 * §5 / RFC 8471 §4.2 require before Token Binding may be used on TLS 1.2.
 *
 * Node exposes no EMS flag, so this reads OpenSSL's serialized SSL_SESSION (`getSession()`, which
 * works on the server side too): a SEQUENCE whose optional `[13] EXPLICIT INTEGER` flags field
 * carries bit 0x1 for EMS, and is left out altogether when the flags are 0. The DER holds the
 * master secret: it is parsed here, zeroed and dropped; only the boolean leaves.
 *
 * TLS 1.3 answers `true`: its key schedule always binds the handshake transcript
 * (RFC 8446 §7.1), which is what EMS retrofits onto TLS 1.2.
 *
 * @returns `true`/`false`, or `null` when it cannot be told (no session yet, unknown format).
 * @example
 * ```ts
 * server.on('secureConnection', (socket) => {
 *   if (socket.getProtocol() === 'TLSv1.2' && hasExtendedMasterSecret(socket) !== true) { ... }
 * })
 * ```
 */
export function hasExtendedMasterSecret(socket: TLSSocket): boolean | null {
  if (socket === null || typeof socket !== 'object' || typeof socket.getSession !== 'function') {
    throw new TypeError('socket must be a TLSSocket');
  }
  return extendedMasterSecretFor(socket, socket.getProtocol());
}

/**
 * {@link hasExtendedMasterSecret} for a socket whose protocol the caller has just read.
 *
 * @internal
 */
export function extendedMasterSecretFor(socket: TLSSocket, protocol: string | null): boolean | null {
  if (protocol === 'TLSv1.3') return true;
  if (protocol === null) return null;
  let der: Buffer | undefined;
  try {
    der = socket.getSession();
  } catch {
    return null;
  }
  if (der === undefined || der.length === 0) return null;
  try {
    return sessionHasExtendedMasterSecret(der);
  } finally {
    der.fill(0);
  }
}

interface Tlv {
  /** The identifier octet (class, constructed bit, tag number < 31). */
  readonly id: number;
  readonly start: number;
  readonly end: number;
}

/** One DER TLV at `pos`, or null when it is malformed or runs past `limit`. */
function readTlv(der: Uint8Array, pos: number, limit: number): Tlv | null {
  if (limit - pos < 2) return null;
  const id = der[pos]!;
  // OpenSSL's session tags are all below 31: a high-tag-number form is not a session we know.
  if ((id & 0x1f) === 0x1f) return null;
  let length = der[pos + 1]!;
  let start = pos + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    // No indefinite lengths in DER; four length octets are far more than a session needs.
    if (octets === 0 || octets > 4 || limit - start < octets) return null;
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + der[start + i]!;
    start += octets;
  }
  if (length > limit - start) return null;
  return { id, start, end: start + length };
}

const DER_SEQUENCE = 0x30;
const DER_INTEGER = 0x02;
/** `[13]` EXPLICIT: context-specific, constructed. */
const FLAGS_ID = 0xa0 | SESSION_FLAGS_TAG;

/**
 * Reads the EMS flag from an OpenSSL SSL_SESSION DER. A hand-written walk over the top-level
 * fields: it runs once per TLS 1.2 handshake, and a general ASN.1 parser costs ~80 µs on a
 * 125-byte server session (~450 µs on a client's, which holds the peer certificate); this costs
 * under 1 µs. Tested against asn1js.
 *
 * @internal Exported for tests.
 */
export function sessionHasExtendedMasterSecret(der: Uint8Array): boolean | null {
  const outer = readTlv(der, 0, der.length);
  if (outer === null || outer.id !== DER_SEQUENCE || outer.end !== der.length) return null;
  let pos = outer.start;
  let index = 0;
  let flags = false;
  let seenFlags = false;
  while (pos < outer.end) {
    const field = readTlv(der, pos, outer.end);
    if (field === null) return null;
    // version and ssl_version lead every OpenSSL session; anything else is not one we know.
    if (index < 2 && field.id !== DER_INTEGER) return null;
    if (field.id === FLAGS_ID) {
      if (seenFlags) return null;
      seenFlags = true;
      const inner = readTlv(der, field.start, field.end);
      if (inner === null || inner.id !== DER_INTEGER || inner.end !== field.end || inner.end === inner.start) return null;
      flags = (der[inner.end - 1]! & SESSION_FLAG_EXTMS) !== 0;
    }
    pos = field.end;
    index++;
  }
  return index < 2 ? null : flags;
}
