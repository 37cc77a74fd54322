/**
 * One hop of a request, shared by the reverse proxy and the client sidecar: the request body
 * streams to the upstream through an undici dispatcher, the response streams back, each side
 * paced by the other (backpressure both ways); an upgrade becomes two piped sockets.
 */
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';
import { errors as undiciErrors, type Dispatcher } from 'undici';
import { publishProxyEvent, type ProxyEvent } from './events.js';
import { responseHeadersForClient } from './headers.js';

/** Where a hop sends its requests. */
export interface RelayTarget {
  readonly role: ProxyEvent['role'];
  readonly dispatcher: Dispatcher;
  /** The upstream origin, `http(s)://host:port`. */
  readonly origin: string;
}

export type FrontRequest = IncomingMessage | Http2ServerRequest;
export type FrontResponse = ServerResponse | Http2ServerResponse;

/** undici codes that mean the upstream took too long (answered 504, not 502). */
const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code !== '' ? code : 'ERR_TB_UPSTREAM';
}

/** The upstream-failure problem document (RFC 9457): fixed text, never the error's message. */
function upstreamProblem(status: 502 | 504): string {
  return JSON.stringify({
    type: 'urn:tokbind:error:ERR_TB_UPSTREAM',
    title: status === 504 ? 'Gateway Timeout' : 'Bad Gateway',
    status,
    detail: 'upstream server unavailable',
    code: 'ERR_TB_UPSTREAM',
  });
}

function problemHead(body: string): Record<string, string | number> {
  return {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  };
}

/** Whether the client's request has a body to stream (an empty GET is sent without one). */
export function requestHasBody(req: FrontRequest): boolean {
  if ('stream' in req) return !req.stream.endAfterHeaders;
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

/**
 * Relays one request: `headers` (already rewritten for the upstream) and the client's body go
 * out, the upstream's status, headers and body come back. Each side is read only as fast as the
 * other is written: a full client response pauses the upstream read, and undici reads the client
 * request only as fast as the upstream connection accepts it. A failure before the response
 * started is answered 502 (504 for a timeout) with problem+json; after it, the client connection
 * is cut (a truncated body must not look complete). A client that goes away aborts the upstream
 * request. Publishes one `tokbind:proxy` event.
 */
export function relayRequest(target: RelayTarget, req: FrontRequest, res: FrontResponse, headers: string[], started: bigint): void {
  const relay = new ResponseRelay(target.role, res, started);
  // The client leaving (reset, closed tab) before the response ended: stop the upstream too.
  res.once('close', () => relay.clientClosed());
  target.dispatcher.dispatch(
    {
      origin: target.origin,
      path: req.url ?? '/',
      method: req.method ?? 'GET',
      headers,
      body: requestHasBody(req) ? req : null,
    },
    relay,
  );
}

class ResponseRelay implements Dispatcher.DispatchHandler {
  readonly #role: ProxyEvent['role'];
  readonly #res: FrontResponse;
  readonly #started: bigint;
  #controller: Dispatcher.DispatchController | null = null;
  #status: number | undefined;
  #settled = false;
  #clientGone = false;

  constructor(role: ProxyEvent['role'], res: FrontResponse, started: bigint) {
    this.#role = role;
    this.#res = res;
    this.#started = started;
  }

  clientClosed(): void {
    if (this.#settled || this.#res.writableFinished) return;
    this.#clientGone = true;
    this.#controller?.abort(new undiciErrors.RequestAbortedError());
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#clientGone) controller.abort(new undiciErrors.RequestAbortedError());
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    // Informational responses stay on this hop.
    if (statusCode < 200) return;
    const res = this.#res;
    this.#status = statusCode;
    if (res.headersSent || res.destroyed) {
      controller.abort(new undiciErrors.RequestAbortedError());
      return;
    }
    const out = responseHeadersForClient(headers);
    // HTTP/2 has no reason phrase; HTTP/1.1 keeps the upstream's.
    if (res instanceof ServerResponse && statusMessage) {
      res.writeHead(statusCode, statusMessage, out);
    } else {
      (res as ServerResponse).writeHead(statusCode, out);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if ((this.#res as ServerResponse).write(chunk)) return;
    controller.pause();
    this.#res.once('drain', () => controller.resume());
  }

  onResponseEnd(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#res.end();
    publishProxyEvent(this.#role, this.#started, 'ok', this.#status);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    const code = errorCode(error);
    const res = this.#res;
    if (!res.headersSent && !res.destroyed && !this.#clientGone) {
      const status = TIMEOUTS.has(code) ? 504 : 502;
      const body = upstreamProblem(status);
      (res as ServerResponse).writeHead(status, problemHead(body));
      res.end(body);
      publishProxyEvent(this.#role, this.#started, 'error', status, code);
      return;
    }
    res.destroy();
    publishProxyEvent(this.#role, this.#started, 'error', this.#status, code);
  }
}

/**
 * Relays an HTTP/1.1 upgrade (WebSocket): the upgrade request goes upstream through the
 * dispatcher, the upstream's `101 Switching Protocols` head comes back verbatim, then the two
 * sockets are piped into each other (each pauses the other when full). A refusal or failure is
 * a 502 and the client socket is closed. Publishes one `tokbind:proxy` event (status 101 once
 * established).
 */
export function relayUpgrade(
  target: RelayTarget,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  headers: string[],
  started: bigint,
): void {
  socket.on('error', () => socket.destroy());
  const protocol = req.headers['upgrade'] ?? 'websocket';
  const options = { origin: target.origin, path: req.url ?? '/', method: req.method ?? 'GET', headers, protocol };
  target.dispatcher.upgrade(options as Dispatcher.UpgradeOptions).then(
    ({ headers: upstreamHeaders, socket: upstream }) => {
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      let text = 'HTTP/1.1 101 Switching Protocols\r\n';
      for (const [name, value] of Object.entries(upstreamHeaders)) {
        if (value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) text += `${name}: ${v}\r\n`;
      }
      socket.write(text + '\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.on('error', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
      upstream.on('close', () => socket.destroy());
      socket.pipe(upstream).pipe(socket);
      publishProxyEvent(target.role, started, 'ok', 101);
    },
    (err: unknown) => {
      const code = errorCode(err);
      const status = TIMEOUTS.has(code) ? 504 : 502;
      const body = upstreamProblem(status);
      const lines = Object.entries(problemHead(body)).map(([name, value]) => `${name}: ${value}\r\n`);
      if (!socket.destroyed) socket.end(`HTTP/1.1 ${status} ${status === 504 ? 'Gateway Timeout' : 'Bad Gateway'}\r\n${lines.join('')}connection: close\r\n\r\n${body}`);
      publishProxyEvent(target.role, started, 'error', status, code);
    },
  );
}
