/**
 * `tokbind/proxy`: a binding-aware TLS-terminating reverse proxy (draft-ietf-tokbind-ttrp-09) in
 * front of any HTTP backend. The front is tokbind's own server — every request is verified as
 * `createServer` / `createSecureServer` verify it, and a refused one never reaches the upstream —
 * and the upstream side is an undici `Pool` (keep-alive, streaming, upgrades).
 */
import type { IncomingMessage } from 'node:http';
import type { Http2SecureServer, SecureServerOptions } from 'node:http2';
import type https from 'node:https';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Pool, type Dispatcher } from 'undici';
import { CLIENT_CERT_HEADER, formatClientCertHeader } from '../http/client-cert.js';
import { createForwardingSigner, type ForwardingKeyInput, type ForwardingSigner } from '../http/assertion.js';
import {
  SEC_OTHER_TOKEN_BINDING_ID,
  SEC_PROVIDED_TOKEN_BINDING_ID,
  SEC_REFERRED_TOKEN_BINDING_ID,
  SEC_TOKEN_BINDING_ASSERTION,
  formatForwardedTokenBindingHeaders,
} from '../http/forwarded.js';
import { createSecureServer } from '../http/http2.js';
import type { TokenBindingServerOptions } from '../http/options.js';
import { createServer } from '../http/server.js';
import { acceptProxyProtocol, type ProxyProtocolOptions } from '../tls/proxy-protocol.js';
import { proxyClock } from './events.js';
import { forwardingHeaders, requestHeadersForUpstream } from './headers.js';
import { trackedClose } from './lifecycle.js';
import { relayRequest, relayUpgrade, type FrontRequest, type FrontResponse, type RelayTarget } from './relay.js';
import { socketSlot } from '../tls/socket-slot.js';

/** Options of {@link createProxy}. */
export interface ProxyOptions {
  /** The backend, `http://host:port` (or `https://`); an origin only, no path. */
  readonly upstream: string | URL;
  /** The TLS private key of the front (PEM). */
  readonly key: string | Buffer;
  /** The TLS certificate (chain) of the front (PEM). */
  readonly cert: string | Buffer;
  /** More TLS / HTTP/2 server options for the front (ciphers, `ca`, timeouts, …). */
  readonly tls?: Omit<SecureServerOptions, 'key' | 'cert' | 'allowHTTP1'>;
  /** HTTP/2 with HTTP/1.1 fallback (`createSecureServer` with `allowHTTP1`, default) or HTTP/1.1 only. */
  readonly http2?: boolean;
  /** Verification options of the front, as `createServer`'s `tokenBinding` (`required`, `keyParameters`, …). */
  readonly tokenBinding?: TokenBindingServerOptions;
  /**
   * A private key (KeyObject, private JWK or PEM): each forwarded request then also carries a
   * `Sec-Token-Binding-Assertion` signed with it (see `createForwardingSigner`).
   */
  readonly forwardKey?: ForwardingKeyInput;
  /** Lifetime of each assertion, seconds (default 30). */
  readonly assertionLifetimeSeconds?: number;
  /** Upstream connections at most (default 128), kept alive and reused. */
  readonly connections?: number;
  /** The dispatcher to reach the upstream with (default: an undici `Pool` for it). Closed by `close()` only when ours. */
  readonly dispatcher?: Dispatcher;
  /**
   * The client's address for `Forwarded` / `X-Forwarded-For` (default: the TCP peer). The hook
   * a PROXY-protocol front uses to report the address the balancer saw.
   */
  readonly clientAddress?: (req: FrontRequest) => string | undefined;
}

/** A created (not yet listening) proxy. */
export interface TokenBindingProxy {
  /** The front server: listen on it, or hand it to a cluster worker / PROXY-protocol wrapper. */
  readonly server: Http2SecureServer | https.Server;
  readonly upstream: URL;
  /** The dispatcher requests go upstream through. */
  readonly dispatcher: Dispatcher;
  /** Stops accepting, closes every front connection and the upstream pool. */
  close(): Promise<void>;
}

function upstreamURL(input: string | URL): URL {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new TypeError(`upstream must be an absolute http(s) URL, got ${String(input)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`upstream must be http: or https:, got ${url.protocol}`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new TypeError('upstream must be an origin (scheme, host, port) without path, query or credentials');
  }
  return url;
}

function defaultClientAddress(req: FrontRequest): string | undefined {
  return req.socket?.remoteAddress;
}

/**
 * RFC 9440 `Client-Cert` of a connection (null: none presented), read once per TLS connection —
 * a connection's certificate does not change (renegotiation is refused), and
 * `getPeerCertificate` builds a new object on every call.
 */
const clientCertHeaders = socketSlot<string | null>('tokbind.clientCert');

function clientCertHeader(socket: TLSSocket | undefined): string | null {
  if (socket === undefined || typeof socket.getPeerCertificate !== 'function') return null;
  let header = clientCertHeaders.get(socket);
  if (header === undefined) {
    const peer = socket.getPeerCertificate(false)?.raw;
    header = peer instanceof Uint8Array && peer.length > 0 ? formatClientCertHeader(peer) : null;
    clientCertHeaders.set(socket, header);
  }
  return header;
}

/**
 * Builds the upstream request headers for one verified request or upgrade — at once, or (with a
 * forward key) once the assertion is signed.
 */
function upstreamHeaders(
  req: FrontRequest,
  signer: ForwardingSigner | null,
  clientAddress: (req: FrontRequest) => string | undefined,
): string[] | Promise<string[]> {
  const forwarded = formatForwardedTokenBindingHeaders(req.tokenBinding ?? null);
  const add: [string, string][] = Object.entries(forwarded) as [string, string][];
  const host = req.headers.host ?? (req.headers[':authority'] as string | undefined);
  add.push(...forwardingHeaders(clientAddress(req), 'https', host));
  // RFC 9440: the client certificate of the connection this hop terminated (when it asked for one),
  // for certificate-bound tokens (RFC 8705) at the backend; client-sent copies are stripped.
  // HTTP/2: the session's socket (one per connection; the compat `req.socket` is one per stream).
  const cert = clientCertHeader(('stream' in req ? req.stream.session?.socket : req.socket) as TLSSocket | undefined);
  if (cert !== null) add.push([CLIENT_CERT_HEADER, cert]);
  if (signer === null) return requestHeadersForUpstream(req.rawHeaders, { keepHost: true, add });
  return signer
    .sign({
      htm: req.method ?? 'GET',
      htp: req.url ?? '/',
      provided: forwarded[SEC_PROVIDED_TOKEN_BINDING_ID] ?? null,
      referred: forwarded[SEC_REFERRED_TOKEN_BINDING_ID] ?? null,
      other: forwarded[SEC_OTHER_TOKEN_BINDING_ID] ?? null,
    })
    .then((assertion) => {
      add.push([SEC_TOKEN_BINDING_ASSERTION, assertion]);
      return requestHeadersForUpstream(req.rawHeaders, { keepHost: true, add });
    });
}

/**
 * Runs `relay` with the request's upstream headers: now when they are ready, else once signed;
 * `fail` when building them throws (a `clientAddress` hook) or signing fails.
 */
function withUpstreamHeaders(build: () => string[] | Promise<string[]>, relay: (headers: string[]) => void, fail: (err: unknown) => void): void {
  let headers: string[] | Promise<string[]>;
  try {
    headers = build();
  } catch (err) {
    fail(err);
    return;
  }
  if (Array.isArray(headers)) relay(headers);
  else headers.then(relay, fail);
}

/**
 * Creates the proxy without listening: tokbind's binding-aware front (HTTP/2 with HTTP/1.1
 * fallback by default) whose handler forwards each verified request to `upstream`. A request
 * whose Sec-Token-Binding is refused (RFC 8473 §2: invalid, duplicated, or missing under
 * `tokenBinding.required`) is answered 400 problem+json by the front and never reaches the
 * upstream. An accepted one is forwarded with `Sec-Provided-Token-Binding-ID`,
 * `Sec-Referred-Token-Binding-ID` and `Sec-Other-Token-Binding-ID` (draft-ietf-tokbind-ttrp-09
 * §2) — and never with `Sec-Token-Binding` or a client's copy of those headers — plus
 * `Forwarded` / `X-Forwarded-For/Proto/Host`; hop-by-hop headers (RFC 9110 §7.6.1) are removed
 * both ways. Bodies stream both ways with backpressure; HTTP/1.1 upgrades (WebSocket) are
 * verified, then forwarded. With `forwardKey`, a signed `Sec-Token-Binding-Assertion` goes
 * along. Each upstream outcome is published on `tokbind:proxy`.
 *
 * @throws {TypeError} for a bad upstream URL or forward key, or TLS credentials that do not load
 * @example
 * ```ts
 * const proxy = createProxy({ upstream: 'http://127.0.0.1:8080', key, cert, tokenBinding: { required: true } })
 * proxy.server.listen(443)
 * ```
 */
export function createProxy(options: ProxyOptions): TokenBindingProxy {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  const upstream = upstreamURL(options.upstream);
  const signer =
    options.forwardKey === undefined
      ? null
      : createForwardingSigner(options.forwardKey, options.assertionLifetimeSeconds === undefined ? {} : { lifetimeSeconds: options.assertionLifetimeSeconds });
  const connections = options.connections ?? 128;
  if (!Number.isSafeInteger(connections) || connections < 1) throw new TypeError('connections must be a positive integer');
  const ownDispatcher = options.dispatcher === undefined;
  const dispatcher = options.dispatcher ?? new Pool(upstream.origin, { connections });
  const clientAddress = options.clientAddress ?? defaultClientAddress;
  const target: RelayTarget = { role: 'proxy', dispatcher, origin: upstream.origin };

  const onRequest = (req: FrontRequest, res: FrontResponse): void => {
    const started = proxyClock();
    withUpstreamHeaders(
      () => upstreamHeaders(req, signer, clientAddress),
      (headers) => relayRequest(target, req, res, headers, started),
      // The request must not go out unsigned, nor with headers half-built.
      (err) => res.destroy(err as Error),
    );
  };
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const started = proxyClock();
    withUpstreamHeaders(
      () => upstreamHeaders(req, signer, clientAddress),
      (headers) => relayUpgrade(target, req, socket, head, headers, started),
      () => socket.destroy(),
    );
  };

  const tokenBinding = options.tokenBinding ?? {};
  const server =
    options.http2 === false
      ? createServer({ ...options.tls, key: options.key, cert: options.cert, tokenBinding }, onRequest)
      : createSecureServer({ ...options.tls, key: options.key, cert: options.cert, allowHTTP1: true, tokenBinding }, onRequest);
  server.on('upgrade', onUpgrade);
  // Handshakes that fail (scanners, untrusting clients) are the client's problem, not the proxy's.
  server.on('tlsClientError', () => {});
  // HTTP/2 sessions that error (resets, protocol errors) end with their streams.
  server.on('sessionError', () => {});

  const close = trackedClose(server, 'secureConnection', async () => {
    if (ownDispatcher) await dispatcher.close();
  });
  return {
    server,
    upstream,
    dispatcher,
    close,
  };
}

/** Options of {@link startProxy}: {@link ProxyOptions} and where to listen. */
export interface StartProxyOptions extends ProxyOptions {
  /** Default 8443; 0 picks a free port. */
  readonly port?: number;
  /** Default `127.0.0.1`. */
  readonly host?: string;
  /**
   * Behind an L4 balancer (HAProxy `send-proxy` / `send-proxy-v2`): every connection must start
   * with a PROXY protocol v1/v2 header (see the tls layer's `acceptProxyProtocol`), whose client
   * address then is the TCP peer — in `Forwarded` / `X-Forwarded-For` too. Default off.
   */
  readonly proxyProtocol?: boolean | ProxyProtocolOptions;
}

/** A listening proxy. */
export interface ListeningProxy extends TokenBindingProxy {
  readonly port: number;
  readonly host: string;
  /** `https://HOST:PORT` (IPv6 in brackets). */
  readonly url: string;
}

/**
 * {@link createProxy}, then listen on `host`:`port`; resolves once listening, rejects on a
 * listen error (port in use, address not available).
 *
 * @example
 * ```ts
 * const proxy = await startProxy({ upstream: 'http://127.0.0.1:8080', key, cert, port: 8443 })
 * console.log(`listening on ${proxy.url}`)
 * ```
 */
export async function startProxy(options: StartProxyOptions): Promise<ListeningProxy> {
  const { port = 8443, host = '127.0.0.1', proxyProtocol = false, ...rest } = options;
  const proxy = createProxy(rest);
  // With the PROXY protocol a plain net.Server in front reads the header, then hands the
  // connection to the TLS server.
  const listener: NetServer =
    proxyProtocol === false ? proxy.server : acceptProxyProtocol(proxy.server, proxyProtocol === true ? {} : proxyProtocol);
  const close = async (): Promise<void> => {
    if (listener !== proxy.server && listener.listening) await new Promise<void>((resolve) => listener.close(() => resolve()));
    await proxy.close();
  };
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      listener.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      listener.off('error', onError);
      resolve();
    };
    listener.once('error', onError);
    listener.once('listening', onListening);
    listener.listen(port, host);
  }).catch(async (err: unknown) => {
    await close().catch(() => {});
    throw err;
  });
  const address = listener.address() as AddressInfo;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { ...proxy, close, port: address.port, host, url: `https://${shown}:${address.port}` };
}
