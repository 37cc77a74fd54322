/**
 * RFC 9440 `Client-Cert`: a TLS-terminating proxy passes the client certificate of the
 * connection it terminated to the backend as a Structured Field Byte Sequence (`:base64(DER):`).
 * The one owner of that header's format, both directions: `tokbind proxy` writes it (and strips
 * every client-sent copy), a backend reads it — from a trusted proxy only, since any client can
 * send the header itself — for certificate-bound tokens (RFC 8705 `cnf["x5t#S256"]`).
 */
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { TokenBindingError } from '../errors.js';
import { isTrustedProxyAddress, resolveTrustProxy, type ResolvedTrustProxy, type TrustProxyOptions } from './trust-proxy.js';

/** The header name (lower case, as Node presents it). */
export const CLIENT_CERT_HEADER = 'client-cert';
/** RFC 9440's chain header, stripped from clients like `Client-Cert` (tokbind never forwards a chain). */
export const CLIENT_CERT_CHAIN_HEADER = 'client-cert-chain';
/** The longest DER accepted from the header: certificates are a few KiB; more is not a certificate. */
export const MAX_CLIENT_CERT_BYTES = 16 * 1024;

/**
 * `Client-Cert` for a DER certificate (RFC 9440 §2.2: an sf-binary, base64 with padding between colons).
 *
 * @example
 * ```ts
 * headers['client-cert'] = formatClientCertHeader(socket.getPeerCertificate().raw)
 * ```
 */
export function formatClientCertHeader(der: Uint8Array): string {
  if (!(der instanceof Uint8Array) || der.length === 0) throw new TypeError('der must be a non-empty Uint8Array');
  return `:${Buffer.from(der.buffer, der.byteOffset, der.length).toString('base64')}:`;
}

const SF_BINARY = /^:([A-Za-z0-9+/]*={0,2}):$/;

/**
 * Parses a `Client-Cert` value into the DER it carries: exactly one sf-binary, canonical base64
 * (missing `=` padding accepted, as RFC 8941 §4.2.7 asks), at most {@link MAX_CLIENT_CERT_BYTES}. Whether the DER is a certificate is the caller's check
 * (a hash over it, for `x5t#S256`, proves nothing about a wrong one).
 *
 * @throws {TokenBindingError} `ERR_TB_FORWARDED_CLIENT_CERT` for anything else
 */
export function parseClientCertHeader(value: string): Uint8Array {
  const fail = (why: string): TokenBindingError =>
    new TokenBindingError('ERR_TB_FORWARDED_CLIENT_CERT', `invalid Client-Cert header: ${why}`, { field: CLIENT_CERT_HEADER });
  if (typeof value !== 'string') throw fail('not a string');
  if (value.length > Math.ceil(MAX_CLIENT_CERT_BYTES / 3) * 4 + 2) throw fail('too large');
  const match = SF_BINARY.exec(value.trim());
  if (match === null) throw fail('not a Structured Field Byte Sequence (:base64:)');
  const der = Buffer.from(match[1]!, 'base64');
  if (der.length === 0) throw fail('empty');
  // RFC 8941 §4.2.7: accept missing '=' padding; refuse anything else that does not round-trip
  // (non-zero trailing bits, stray padding).
  const text = match[1]!;
  const padded = text.includes('=');
  if ((padded ? text.length % 4 !== 0 : text.length % 4 === 1) || der.toString('base64').replace(/=+$/, '') !== text.replace(/=+$/, '')) {
    throw fail('not canonical base64');
  }
  return new Uint8Array(der.buffer, der.byteOffset, der.length);
}

function peerCertificate(req: IncomingMessage | Http2ServerRequest): Uint8Array | null {
  const socket = (req.socket ?? (req as Http2ServerRequest).stream?.session?.socket) as TLSSocket | undefined;
  if (socket === undefined || typeof socket.getPeerCertificate !== 'function') return null;
  const raw = socket.getPeerCertificate(false)?.raw;
  return raw instanceof Uint8Array && raw.length > 0 ? raw : null;
}

/**
 * The client certificate of a request: from RFC 9440 `Client-Cert` when the request comes from a
 * trusted proxy (its TCP peer is in `trustProxy.addresses`), otherwise the TLS client certificate
 * of the connection itself. For the token verifier's `clientCertificate` option behind
 * `tokbind proxy`. A request from a trusted proxy with a malformed or repeated header is refused
 * (`ERR_TB_FORWARDED_CLIENT_CERT`); one without the header has no certificate.
 *
 * @example
 * ```ts
 * createAccessTokenVerifier({ jwks, issuer, audience, clientCertificate: clientCertificateFromTrustedProxy({ addresses: ['10.0.0.5'] }) })
 * ```
 */
export function clientCertificateFromTrustedProxy(
  trustProxy: TrustProxyOptions | ResolvedTrustProxy,
): (req: IncomingMessage | Http2ServerRequest) => Uint8Array | null {
  const trust = resolveTrustProxy(trustProxy);
  return (req) => {
    const socket = req.socket ?? (req as Http2ServerRequest).stream?.session?.socket;
    if (!isTrustedProxyAddress(trust, socket?.remoteAddress)) return peerCertificate(req);
    const values: string[] = [];
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === CLIENT_CERT_HEADER) values.push(raw[i + 1]!);
    if (values.length === 0) return null;
    if (values.length > 1) {
      throw new TokenBindingError('ERR_TB_FORWARDED_CLIENT_CERT', 'invalid Client-Cert header: more than one', { field: CLIENT_CERT_HEADER });
    }
    return parseClientCertHeader(values[0]!);
  };
}
