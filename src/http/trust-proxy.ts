/**
 * Trusted forwarding on the backend (draft-ietf-tokbind-ttrp-09 §2, §3): a backend behind a
 * TLS-terminating proxy accepts the forwarded Token Binding IDs only from the proxy's addresses
 * — and, with the proxy's public key, only under a valid forwarding assertion — and exposes them
 * as the same `req.tokenBinding` a direct connection gives. From any other peer the forwarded
 * headers are stripped and the request is verified as a direct one.
 */
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import { BlockList, isIP } from 'node:net';
import { TokenBindingError } from '../errors.js';
import { createForwardingVerifier, type ForwardingKeyInput, type ForwardingVerifier } from './assertion.js';
import { collectForwardedHeaders, parseForwardedTokenBindingHeaders } from './forwarded.js';
import { nowNs, recordVerification } from './metrics.js';
import { resolveTokenBindingOptions, type ResolvedTokenBindingOptions, type TokenBindingVerifyOptions } from './options.js';
import type { TokenBindingResult } from './result.js';
import { adoptForwardedVerdict, verifyRequestAs } from './server.js';

/** The `trustProxy` option of the adapters and of {@link verifyForwardedRequest}. */
export interface TrustProxyOptions {
  /**
   * The proxy's addresses: IPv4/IPv6 addresses or CIDR ranges (`'10.0.0.0/8'`, `'::1'`,
   * `'fd00::/8'`). IPv4-mapped IPv6 peers (`::ffff:10.1.2.3`) match IPv4 entries.
   */
  readonly addresses: readonly string[];
  /**
   * The proxy's public key (JWK, SPKI PEM or KeyObject; a private key is reduced to its public
   * half). When given, forwarded IDs are accepted only with a valid `Sec-Token-Binding-Assertion`
   * over them, the method, the path and the time.
   */
  readonly key?: ForwardingKeyInput;
  /** Clock skew tolerated when checking the assertion, seconds (default 5). */
  readonly clockToleranceSeconds?: number;
  /** Oldest assertion accepted, seconds since its `iat` (default 60). */
  readonly maxAgeSeconds?: number;
}

/** {@link TrustProxyOptions} after validation. */
export interface ResolvedTrustProxy {
  readonly addresses: BlockList;
  readonly verifier: ForwardingVerifier | null;
}

const resolvedTrust = new WeakMap<object, ResolvedTrustProxy>();

function addRange(list: BlockList, entry: unknown): void {
  if (typeof entry !== 'string') throw new TypeError('trustProxy.addresses must hold strings');
  const slash = entry.indexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const family = isIP(address);
  if (family === 0) throw new TypeError(`trustProxy.addresses: not an IP address or CIDR range: ${entry}`);
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (slash === -1) return list.addAddress(address, type);
  const prefixText = entry.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^[0-9]{1,3}$/.test(prefixText) || prefix > (family === 4 ? 32 : 128)) {
    throw new TypeError(`trustProxy.addresses: bad prefix length in ${entry}`);
  }
  list.addSubnet(address, prefix, type);
}

/**
 * Validates `trustProxy` once (per options object): the address ranges into a node:net
 * BlockList, the key into a verifier.
 *
 * @throws {TypeError} for an address that is not an IP or CIDR, or an unusable key
 * @example
 * ```ts
 * const trust = resolveTrustProxy({ addresses: ['10.0.0.0/8'], key: proxyPublicJwk })
 * ```
 */
export function resolveTrustProxy(options: TrustProxyOptions | ResolvedTrustProxy): ResolvedTrustProxy {
  if (options === null || typeof options !== 'object') throw new TypeError('trustProxy must be an object');
  if (options.addresses instanceof BlockList) return options as ResolvedTrustProxy;
  const cached = resolvedTrust.get(options);
  if (cached !== undefined) return cached;
  const { addresses, key } = options as TrustProxyOptions;
  if (!Array.isArray(addresses) || addresses.length === 0) throw new TypeError('trustProxy.addresses must be a non-empty array');
  const list = new BlockList();
  for (const entry of addresses) addRange(list, entry);
  const verifierOptions = {
    ...((options as TrustProxyOptions).clockToleranceSeconds !== undefined && { clockToleranceSeconds: (options as TrustProxyOptions).clockToleranceSeconds! }),
    ...((options as TrustProxyOptions).maxAgeSeconds !== undefined && { maxAgeSeconds: (options as TrustProxyOptions).maxAgeSeconds! }),
  };
  const resolved: ResolvedTrustProxy = Object.freeze({
    addresses: list,
    verifier: key === undefined ? null : createForwardingVerifier(key, verifierOptions),
  });
  resolvedTrust.set(options, resolved);
  return resolved;
}

/** Whether `address` (the TCP peer) is one of the trusted proxy's. */
export function isTrustedProxyAddress(trust: ResolvedTrustProxy, address: string | undefined): boolean {
  if (address === undefined) return false;
  const family = isIP(address);
  if (family === 0) return false;
  return trust.addresses.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

function peerAddress(req: IncomingMessage | Http2ServerRequest): string | undefined {
  // The HTTP/2 compat socket proxies the session's; both report the TCP peer.
  return req.socket?.remoteAddress;
}

/**
 * The forwarded verdict of a request from a trusted proxy, or `undefined` when the request is not
 * one (another peer, or no forwarded header: verify it as a direct request). The error to reject
 * with on a malformed header, a Sec-Token-Binding beside forwarded IDs, or — with a key — a
 * missing or invalid assertion.
 *
 * @internal Shared by the adapters and {@link verifyForwardedRequest}.
 */
export async function verifyFromTrustedProxy(
  req: IncomingMessage | Http2ServerRequest,
  options: ResolvedTokenBindingOptions,
  trust: ResolvedTrustProxy,
  path: string,
): Promise<TokenBindingResult | null | TokenBindingError | undefined> {
  // Already verified by a tokbind server: it terminated TLS itself, there is nothing forwarded.
  if (req.tokenBinding !== undefined || !isTrustedProxyAddress(trust, peerAddress(req))) return undefined;
  const started = nowNs();
  let result: TokenBindingResult | null;
  try {
    const values = collectForwardedHeaders(req.rawHeaders);
    const forwarded = values.provided !== undefined || values.referred !== undefined || values.other !== undefined;
    if (!forwarded && values.assertion === undefined) return undefined;
    if (forwarded && req.headers['sec-token-binding'] !== undefined) {
      // A proxy that verified the message removes it; one that passes it on beside IDs is not TTRP.
      throw new TokenBindingError('ERR_TB_FORWARDED_MALFORMED', undefined, { field: 'sec-token-binding', expected: 'absent beside forwarded IDs' });
    }
    result = parseForwardedTokenBindingHeaders(values);
    if (trust.verifier !== null) {
      await trust.verifier.verify(values.assertion, {
        htm: req.method ?? '',
        htp: path,
        provided: values.provided ?? null,
        referred: values.referred ?? null,
        other: values.other ?? null,
      });
    }
  } catch (err) {
    if (!(err instanceof TokenBindingError)) throw err;
    recordVerification('rejected', 0, false, err.code);
    return err;
  }
  if (result === null) {
    if (options.required) {
      const missing = new TokenBindingError('ERR_TB_HEADER_MISSING', undefined, { field: 'Sec-Provided-Token-Binding-ID' });
      recordVerification('rejected', 0, false, missing.code);
      return missing;
    }
    recordVerification('absent', 0, false);
    return null;
  }
  recordVerification('accepted', nowNs() - started, false, undefined, result.provided.keyParameters);
  return result;
}

/** Options of {@link verifyForwardedRequest}. */
export interface ForwardedRequestOptions extends TokenBindingVerifyOptions {
  readonly trustProxy: TrustProxyOptions;
  /** `reject` (default) or `ignore`, as the servers' option; applies to direct requests only. */
  readonly onInvalid?: 'reject' | 'ignore';
  /** The request-target the assertion must name (default `req.url`). */
  readonly path?: string;
}

/**
 * The framework-free core of trusted forwarding, for a plain `node:http` (or `https`) backend:
 * from a trusted proxy the forwarded IDs (draft-ietf-tokbind-ttrp-09 §2) become
 * `req.tokenBinding`, with the same shape as on a direct connection; from any other peer the
 * forwarded headers are stripped and the request is verified as tokbind's server does. Sets
 * `req.tokenBinding` and returns it.
 *
 * With `trustProxy.key`, a request from the proxy that carries forwarded IDs must also carry a
 * valid `Sec-Token-Binding-Assertion` naming its method, path and IDs; forwarded-header errors
 * are always rejections (`onInvalid: 'ignore'` covers only a client's own Sec-Token-Binding).
 *
 * @throws {TokenBindingError} `ERR_TB_FORWARDED_MALFORMED`, `ERR_TB_FORWARDED_ASSERTION`,
 *   `ERR_TB_HEADER_MISSING` (with `required`), or any code of a direct verification
 * @example
 * ```ts
 * http.createServer(async (req, res) => {
 *   try {
 *     const tb = await verifyForwardedRequest(req, { trustProxy: { addresses: ['10.0.0.5'], key: proxyJwk } })
 *     res.end(tb?.provided.hash ?? 'unbound')
 *   } catch (err) {
 *     if (isTokenBindingError(err)) sendProblem(res, err)
 *   }
 * })
 * ```
 */
export async function verifyForwardedRequest(
  req: IncomingMessage | Http2ServerRequest,
  options: ForwardedRequestOptions,
): Promise<TokenBindingResult | null> {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  const { trustProxy, path, ...verifyOptions } = options;
  const trust = resolveTrustProxy(trustProxy);
  const resolved = resolveTokenBindingOptions(verifyOptions);
  const forwarded = await verifyFromTrustedProxy(req, resolved, trust, path ?? req.url ?? '/');
  // Under this caller's own options: a verdict tokbind reached earlier for the request (its server,
  // another route's glue) is reused only as verifyRequestAs / adoptForwardedVerdict allow.
  const verdict = forwarded === undefined ? verifyRequestAs(req, resolved) : adoptForwardedVerdict(req, resolved, forwarded);
  if (verdict instanceof TokenBindingError) throw verdict;
  req.tokenBinding = verdict;
  return verdict;
}
