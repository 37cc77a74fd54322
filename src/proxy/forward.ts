/**
 * The client sidecar (`tokbind forward`): plain HTTP on loopback in, Token-Bound TLS out. Any
 * client in any language gets Token Binding by pointing at it — ghostunnel's client mode, for
 * Token Binding instead of mTLS. Requests go through tokbind's `TokenBindingDispatcher` (one key
 * per scope from the key store, connections reused, every request signed for its connection).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { TokenBindingDispatcher, type TokenBindingDispatcherOptions } from '../client/dispatcher.js';
import { proxyClock } from './events.js';
import { requestHeadersForUpstream } from './headers.js';
import { trackedClose } from './lifecycle.js';
import { relayRequest, relayUpgrade, type RelayTarget } from './relay.js';

/** Options of {@link createForwarder}. */
export interface ForwarderOptions {
  /** The Token Binding server, `https://host:port`; an origin only. */
  readonly target: string | URL;
  /** Options of the `TokenBindingDispatcher` (keyStore, keyParameters, connect: { ca, rejectUnauthorized }, …). */
  readonly dispatcher?: TokenBindingDispatcherOptions;
  /**
   * `loopback` (default): only requests addressed to a loopback name (`Host` localhost, 127.x,
   * ::1) and not sent by a browser on behalf of another site (a non-loopback `Origin`, or
   * `Sec-Fetch-Site` other than `none` / `same-origin`) are forwarded; others get 403. This keeps a
   * web page the user visits — directly or by DNS rebinding — from using the sidecar as a signing
   * oracle for the user's keys. `any`: no such check (for `allowRemote` deployments).
   */
  readonly accept?: 'loopback' | 'any';
}

/** A created (not yet listening) sidecar. */
export interface TokenBindingForwarder {
  readonly server: http.Server;
  readonly target: URL;
  readonly dispatcher: TokenBindingDispatcher;
  /** Stops accepting, closes every client connection and the dispatcher's connections. */
  close(): Promise<void>;
}

function targetURL(input: string | URL): URL {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new TypeError(`target must be an absolute https URL, got ${String(input)}`);
  }
  if (url.protocol !== 'https:') throw new TypeError(`target must be https: (Token Binding needs TLS), got ${url.protocol}`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new TypeError('target must be an origin (scheme, host, port) without path, query or credentials');
  }
  return url;
}

const FORBIDDEN = JSON.stringify({
  type: 'urn:tokbind:error:ERR_TB_CLIENT',
  title: 'Forbidden',
  status: 403,
  detail: 'the sidecar forwards only requests from local clients',
  code: 'ERR_TB_CLIENT',
});

function refuse(res: ServerResponse): void {
  res.writeHead(403, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(FORBIDDEN), 'cache-control': 'no-store' });
  res.end(FORBIDDEN);
}

function hostnameOf(authority: string): string {
  try {
    return new URL(`http://${authority}`).hostname;
  } catch {
    return '';
  }
}

/**
 * Whether a request comes from a local program rather than from a web page: addressed to a
 * loopback name, and with no cross-site browser markers.
 */
function fromLocalClient(req: IncomingMessage): boolean {
  const host = req.headers.host;
  if (host === undefined || !isLoopbackHost(hostnameOf(host))) return false;
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let originHost: string;
    try {
      originHost = new URL(origin).hostname;
    } catch {
      return false;
    }
    if (!isLoopbackHost(originHost)) return false;
  }
  const site = req.headers['sec-fetch-site'];
  return site === undefined || site === 'none' || site === 'same-origin';
}

/** Whether `host` is a loopback address or name: the only place a sidecar listens by default. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare === 'localhost') return true;
  const family = isIP(bare);
  if (family === 4) return bare.startsWith('127.');
  if (family === 6) return bare === '::1' || /^::ffff:127\./i.test(bare);
  return false;
}

/**
 * Creates the sidecar without listening: each plain-HTTP request it receives goes to `target`
 * with the same method, path, headers (minus hop-by-hop ones, `Host` set to the target's, any
 * client `Sec-Token-Binding` replaced) and body, over Token-Bound TLS; the response streams back.
 * Bodies stream both ways with backpressure. Upgrades (WebSocket) are forwarded too. Each outcome
 * is published on `tokbind:proxy` with `role: 'forward'`. By default (`accept: 'loopback'`) only
 * local programs are served: see {@link ForwarderOptions.accept}.
 *
 * @throws {TypeError} for a target that is not an https origin
 * @example
 * ```ts
 * const sidecar = createForwarder({ target: 'https://api.example.com', dispatcher: { keyStore: new FileKeyStore('keys.json') } })
 * sidecar.server.listen(8080, '127.0.0.1')
 * ```
 */
export function createForwarder(options: ForwarderOptions): TokenBindingForwarder {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  const target = targetURL(options.target);
  const dispatcher = new TokenBindingDispatcher(options.dispatcher ?? {});
  const relay: RelayTarget = { role: 'forward', dispatcher, origin: target.origin };
  const accept = options.accept ?? 'loopback';
  if (accept !== 'loopback' && accept !== 'any') throw new TypeError("accept must be 'loopback' or 'any'");
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    if (accept === 'loopback' && !fromLocalClient(req)) return refuse(res);
    relayRequest(relay, req, res, requestHeadersForUpstream(req.rawHeaders, { keepHost: false, add: [] }), proxyClock());
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (accept === 'loopback' && !fromLocalClient(req)) {
      socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(FORBIDDEN)}\r\nconnection: close\r\n\r\n${FORBIDDEN}`);
      return;
    }
    relayUpgrade(relay, req, socket, head, requestHeadersForUpstream(req.rawHeaders, { keepHost: false, add: [] }), proxyClock());
  });
  const close = trackedClose(server, 'connection', () => dispatcher.close());
  return {
    server,
    target,
    dispatcher,
    close,
  };
}

/** Options of {@link startForwarder}. */
export interface StartForwarderOptions extends ForwarderOptions {
  /** Default 8080; 0 picks a free port. */
  readonly port?: number;
  /** Default `127.0.0.1`. A non-loopback address is refused unless `allowRemote`. */
  readonly host?: string;
  /** Listen on a non-loopback address: anyone who reaches it signs with this client's keys. */
  readonly allowRemote?: boolean;
}

/** A listening sidecar. */
export interface ListeningForwarder extends TokenBindingForwarder {
  readonly port: number;
  readonly host: string;
  /** `http://HOST:PORT` (IPv6 in brackets). */
  readonly url: string;
}

/**
 * {@link createForwarder}, then listen; resolves once listening.
 *
 * @throws {TypeError} for a non-loopback `host` without `allowRemote`: whoever can reach the
 *   sidecar uses this client's Token Binding keys
 * @example
 * ```ts
 * const sidecar = await startForwarder({ target: 'https://127.0.0.1:8443', port: 0, dispatcher: { connect: { ca } } })
 * await fetch(`${sidecar.url}/whoami`)
 * ```
 */
export async function startForwarder(options: StartForwarderOptions): Promise<ListeningForwarder> {
  const { port = 8080, host = '127.0.0.1', allowRemote = false, ...rest } = options;
  if (!allowRemote && !isLoopbackHost(host)) {
    throw new TypeError(`refusing to listen on non-loopback ${host} (whoever reaches it signs with these keys); pass allowRemote to do it anyway`);
  }
  const forwarder = createForwarder({ accept: allowRemote ? 'any' : 'loopback', ...rest });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      forwarder.server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      forwarder.server.off('error', onError);
      resolve();
    };
    forwarder.server.once('error', onError);
    forwarder.server.once('listening', onListening);
    forwarder.server.listen(port, host);
  }).catch(async (err: unknown) => {
    await forwarder.close().catch(() => {});
    throw err;
  });
  const address = forwarder.server.address() as AddressInfo;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { ...forwarder, port: address.port, host, url: `http://${shown}:${address.port}` };
}
