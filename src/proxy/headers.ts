/**
 * Header rules of a proxy hop: hop-by-hop fields (RFC 9110 §7.6.1) never cross it, the client's
 * own Token Binding and forwarding headers are replaced by what this hop verified and saw.
 */
import { CLIENT_CERT_CHAIN_HEADER, CLIENT_CERT_HEADER } from '../http/client-cert.js';
import { FORWARDED_HEADER_NAMES } from '../http/forwarded.js';

/**
 * Fields meaningful only for one connection (RFC 9110 §7.6.1), plus HTTP/2's `HTTP2-Settings`
 * (RFC 7540 §3.2.1). Names listed in a `Connection` field are hop-by-hop too.
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'te',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** The client's forwarding claims: an edge proxy writes its own, it never relays a client's. */
const FORWARDING_HEADERS: ReadonlySet<string> = new Set(['forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);

/** Nothing listed: what nearly every request and response has (no allocation for it). */
const NONE_LISTED: ReadonlySet<string> = new Set();

/** The `Connection` values nearly every message carries, parsed once. */
const COMMON_CONNECTION_VALUES: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['keep-alive', new Set(['keep-alive'])],
  ['close', new Set(['close'])],
]);

/** Header names a `Connection` field lists (RFC 9110 §7.6.1), lowercase. */
function connectionOptions(connection: string | readonly string[] | undefined): ReadonlySet<string> {
  if (connection === undefined || connection.length === 0) return NONE_LISTED;
  const common = typeof connection === 'string' ? COMMON_CONNECTION_VALUES.get(connection) : undefined;
  if (common !== undefined) return common;
  const names = new Set<string>();
  for (const value of typeof connection === 'string' ? [connection] : connection) {
    for (const token of value.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') names.add(name);
    }
  }
  return names;
}

function connectionValues(raw: readonly string[]): string[] | undefined {
  let values: string[] | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'connection') (values ??= []).push(raw[i + 1]!);
  return values;
}

/** What {@link requestHeadersForUpstream} keeps apart from the client's end-to-end headers. */
export interface UpstreamHeaderOptions {
  /** Keep the client's `Host` (from `:authority` on HTTP/2); false lets the dispatcher set the upstream's. */
  readonly keepHost: boolean;
  /** Headers this hop adds, as name/value pairs (lowercase names). */
  readonly add: readonly (readonly [string, string])[];
}

/**
 * The request headers to send upstream, as a flat `[name, value, …]` list (undici's raw form, so
 * repeated fields stay separate and names keep their case): the client's end-to-end headers minus
 * hop-by-hop ones, minus `Sec-Token-Binding` and every client-sent forwarded Token Binding header
 * (any case, any number of copies), minus the client's `Forwarded`/`X-Forwarded-*`, `Expect`
 * (this hop already answered it) and `Trailer` (request trailers are not relayed: undici sends
 * none, so no client-sent trailer field ever reaches the upstream), HTTP/2 pseudo-headers turned
 * back into `Host`; then `add`.
 */
export function requestHeadersForUpstream(rawHeaders: readonly string[], options: UpstreamHeaderOptions): string[] {
  const listed = connectionOptions(connectionValues(rawHeaders));
  const out: string[] = [];
  let authority: string | undefined;
  let host = false;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (lower.charCodeAt(0) === 0x3a /* ':' */) {
      if (lower === ':authority') authority = rawHeaders[i + 1]!;
      continue;
    }
    if (
      HOP_BY_HOP_HEADERS.has(lower) ||
      listed.has(lower) ||
      FORWARDED_HEADER_NAMES.has(lower) ||
      FORWARDING_HEADERS.has(lower) ||
      lower === 'sec-token-binding' ||
      // RFC 9440: only this hop may say which certificate the client presented.
      lower === CLIENT_CERT_HEADER ||
      lower === CLIENT_CERT_CHAIN_HEADER ||
      lower === 'expect' ||
      // Trailers are not relayed (undici sends none), so announcing them would be a lie.
      lower === 'trailer'
    ) {
      continue;
    }
    if (lower === 'host') {
      if (!options.keepHost || host) continue;
      host = true;
    }
    out.push(name, rawHeaders[i + 1]!);
  }
  if (options.keepHost && !host && authority !== undefined) out.push('host', authority);
  for (const [name, value] of options.add) out.push(name, value);
  return out;
}

/**
 * Response headers to relay to the client: all of the upstream's but hop-by-hop ones (and those
 * its `Connection` lists). Everything else — `Include-Referred-Token-Binding-ID` on a 3xx
 * included — passes through untouched.
 */
export function responseHeadersForClient(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionOptions(headers['connection']);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP_HEADERS.has(lower) || listed.has(lower)) continue;
    out[name] = value;
  }
  return out;
}

/** An RFC 7239 `node`: IPv6 in brackets, quoted; IPv4 as is; `unknown` when there is none. */
function forwardedNode(address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown';
  return address.includes(':') ? `"[${address}]"` : address;
}

function quoted(value: string): string {
  // Hosts rarely hold a quote or a backslash: escape only when one is there.
  const escaped = value.includes('"') || value.includes('\\') ? value.replace(/[\\"]/g, (c) => `\\${c}`) : value;
  return `"${escaped}"`;
}

/**
 * This hop's forwarding headers: `Forwarded` (RFC 7239: `for`, `proto`, `host`) and the de-facto
 * `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`.
 */
export function forwardingHeaders(clientAddress: string | undefined, proto: 'http' | 'https', host: string | undefined): [string, string][] {
  const parts = [`for=${forwardedNode(clientAddress)}`, `proto=${proto}`];
  if (host !== undefined && host !== '') parts.push(`host=${quoted(host)}`);
  const headers: [string, string][] = [['forwarded', parts.join(';')]];
  if (clientAddress !== undefined && clientAddress !== '') headers.push(['x-forwarded-for', clientAddress]);
  headers.push(['x-forwarded-proto', proto]);
  if (host !== undefined && host !== '') headers.push(['x-forwarded-host', host]);
  return headers;
}
