/**
 * Proxy test parts: a real plain-HTTP upstream (node:http) that records what reaches it, the
 * proxy itself on 127.0.0.1:0 with the test certificate, and a raw Token Binding client over
 * one TLS connection that can write any bytes (duplicated headers, chunked trailers).
 */
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { startProxy, type ListeningProxy, type StartProxyOptions } from '../../src/proxy/server.js';
import { connectTls, listen, testCertificate } from '../_tls.js';

/** What reached the upstream, per request. */
export interface Received {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: readonly string[];
  readonly headers: http.IncomingHttpHeaders;
  readonly rawTrailers: readonly string[];
  readonly bodyBytes: number;
  readonly remotePort: number | undefined;
}

export interface Upstream {
  readonly port: number;
  readonly url: string;
  readonly received: Received[];
  /** Distinct TCP connections the upstream accepted. */
  connections(): number;
  close(): Promise<void>;
}

/** The default upstream: reads the body, answers JSON describing what it received. */
export function echo(_req: IncomingMessage, res: ServerResponse, received: Received): void {
  const body = JSON.stringify({ method: received.method, url: received.url, bodyBytes: received.bodyBytes });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * A node:http upstream. `handle` runs after the body was read (recorded as `bodyBytes`), unless
 * `raw` is given: then it gets the request unread.
 */
export async function startUpstream(
  handle: (req: IncomingMessage, res: ServerResponse, received: Received) => void = echo,
  raw?: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Upstream> {
  const received: Received[] = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    if (raw !== undefined) return raw(req, res);
    let bodyBytes = 0;
    req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
    req.on('end', () => {
      const entry: Received = {
        method: req.method ?? '',
        url: req.url ?? '',
        rawHeaders: [...req.rawHeaders],
        headers: { ...req.headers },
        rawTrailers: [...req.rawTrailers],
        bodyBytes,
        remotePort: req.socket.remotePort,
      };
      received.push(entry);
      handle(req, res, entry);
    });
  });
  server.on('connection', () => connections++);
  const listening = await listen(server);
  return {
    port: listening.port,
    url: `http://127.0.0.1:${listening.port}`,
    received,
    connections: () => connections,
    close: listening.close,
  };
}

/** The proxy on 127.0.0.1:0 with the test certificate. */
export function startTestProxy(upstream: string, options: Partial<StartProxyOptions> = {}): Promise<ListeningProxy> {
  return startProxy({ upstream, key: testCertificate.key, cert: testCertificate.cert, port: 0, host: '127.0.0.1', ...options });
}

/** One raw TLS connection to the proxy with its EKM: write any request, read responses. */
export interface RawConnection {
  readonly socket: TLSSocket;
  readonly ekm: Uint8Array;
  /** Writes `text` and resolves with everything received until the server closes or `until` matches. */
  exchange(text: string, until?: RegExp): Promise<string>;
  close(): void;
}

export async function rawConnection(port: number): Promise<RawConnection> {
  const socket = await connectTls(port, { ALPNProtocols: ['http/1.1'] });
  const exportNoContext = socket.exportKeyingMaterial as (length: number, label: string) => Buffer;
  const ekm = new Uint8Array(exportNoContext.call(socket, 32, 'EXPORTER-Token-Binding'));
  return {
    socket,
    ekm,
    exchange: (text, until) =>
      new Promise((resolve) => {
        let data = '';
        const onData = (chunk: Buffer): void => {
          data += chunk.toString('latin1');
          if (until !== undefined && until.test(data)) done();
        };
        const done = (): void => {
          socket.off('data', onData);
          socket.off('close', done);
          resolve(data);
        };
        socket.on('data', onData);
        socket.once('close', done);
        socket.write(text);
      }),
    close: () => socket.destroy(),
  };
}

/** All values of `name` (any case) in a raw header list. */
export function rawValues(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) out.push(rawHeaders[i + 1]!);
  return out;
}

/** Resolves once `server` has emitted `event` `count` times in total. */
export async function waitFor(predicate: () => boolean, emitter: NodeJS.EventEmitter, event: string): Promise<void> {
  while (!predicate()) await once(emitter, event);
}
