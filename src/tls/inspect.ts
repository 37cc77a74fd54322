/**
 * The pre-TLS reader: reads each ClientHello off the raw TCP socket, then hands the socket to the
 * server's own TLS machinery. Off by default; it costs an extra pass over every handshake.
 */
import type { Server as NetServer, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { type TokenBindingError, isTokenBindingError } from '../errors.js';
import { ClientHelloReader, MAX_CLIENT_HELLO_RECORDS, clientHelloError, parseClientHello, type ClientHelloInfo } from './client-hello.js';
import { socketSlot } from './socket-slot.js';

/** Options for {@link inspectClientHellos}. */
export interface InspectClientHellosOptions {
  /** Largest ClientHello (records included) accepted. Default 16384. */
  readonly maxBytes?: number;
  /**
   * Most TLS records the ClientHello may span. Default {@link MAX_CLIENT_HELLO_RECORDS} (64): real
   * clients send one.
   */
  readonly maxRecords?: number;
  /** Time allowed for the whole ClientHello to arrive. Default 5000 ms. */
  readonly timeoutMs?: number;
  /** Told why a connection was dropped before TLS started (the socket is already destroyed). */
  readonly onError?: (error: TokenBindingError, socket: Socket) => void;
}

/** The event an inspected server emits when it drops a connection: `(error, socket)`. */
export const CLIENT_HELLO_ERROR_EVENT = 'tokbind:clientHelloError';

const clientHellos = socketSlot<ClientHelloInfo>('tokbind.clientHello');
const inspected = new WeakSet<NetServer>();

/**
 * The ClientHello an inspected server read on this connection, or `null`. Accepts the raw TCP
 * socket or the TLSSocket made from it (linked through Node's `tlsSocket._parent`, the wrapped
 * net.Socket), including the HTTP/2 `session.socket` proxy.
 *
 * @example
 * ```ts
 * server.on('secureConnection', (socket) => getClientHelloInfo(socket)?.tokenBinding)
 * ```
 */
export function getClientHelloInfo(socket: Socket | TLSSocket): ClientHelloInfo | null {
  if (socket === null || typeof socket !== 'object') return null;
  return clientHellos.find(socket) ?? null;
}

/**
 * Whether {@link inspectClientHellos} was installed on this server: if not, none of its
 * connections has a ClientHello to find.
 *
 * @internal For the servers' connection tracking.
 */
export function isInspectingClientHellos(server: NetServer): boolean {
  return inspected.has(server);
}

/**
 * Makes a TLS server (tls, https or http2 secure) read each ClientHello before its TLS machinery
 * does, so the client's RFC 8472 `token_binding` offer (and EMS / RI offers) become visible
 * through {@link getClientHelloInfo} and `getConnectionFacts`. Node's TLS cannot send extension 24
 * back, so this is for observing offers, not for in-band negotiation.
 *
 * Each raw socket is read until a whole ClientHello has arrived, then paused, the bytes are
 * unshifted, and the socket is handed to the server's own 'connection' listeners (Node's TLSSocket
 * drains already-buffered bytes when it wraps a socket). The reader is incremental: each byte
 * costs O(1) whatever the record and segment sizes. Malformed input, non-TLS, more than
 * `maxBytes`, more than `maxRecords` records or slower than `timeoutMs`: the socket is destroyed,
 * `onError` is called and the server emits `'tokbind:clientHelloError'`; the server keeps serving.
 *
 * Call it once, after the server is created (its 'connection' listeners exist by then) and before
 * it accepts connections.
 *
 * @example
 * ```ts
 * const server = https.createServer({ key, cert }, handler)
 * inspectClientHellos(server, { onError: (err) => log(err.code) })
 * server.listen(443)
 * ```
 */
export function inspectClientHellos(server: NetServer, options: InspectClientHellosOptions = {}): void {
  if (server === null || typeof server !== 'object' || typeof server.listeners !== 'function') {
    throw new TypeError('server must be a net/tls/https/http2 server');
  }
  const { maxBytes = 16384, maxRecords = MAX_CLIENT_HELLO_RECORDS, timeoutMs = 5000, onError } = options;
  if (!Number.isInteger(maxBytes) || maxBytes < 64) throw new TypeError('maxBytes must be an integer >= 64');
  if (!Number.isInteger(maxRecords) || maxRecords < 1) throw new TypeError('maxRecords must be a positive integer');
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new TypeError('timeoutMs must be a positive number');
  if (onError !== undefined && typeof onError !== 'function') throw new TypeError('onError must be a function');
  if (inspected.has(server)) throw new TypeError('inspectClientHellos was already installed on this server');
  inspected.add(server);

  const downstream = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');

  server.on('connection', (socket: Socket) => {
    const reader = new ClientHelloReader(maxBytes, maxRecords);
    let settled = false;

    const finish = (): void => {
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onSocketError);
      socket.off('end', onEnd);
    };
    const fail = (error: TokenBindingError): void => {
      if (settled) return;
      finish();
      socket.destroy();
      server.emit(CLIENT_HELLO_ERROR_EVENT, error, socket);
      onError?.(error, socket);
    };
    const onData = (chunk: Buffer): void => {
      if (settled) return;
      let info: ClientHelloInfo;
      try {
        const message = reader.push(chunk);
        if (message === null) return;
        info = parseClientHello(message);
      } catch (err) {
        // Whatever a peer's bytes provoke must cost that peer its connection, never the server.
        return fail(
          isTokenBindingError(err) ? err : clientHelloError('ClientHello', 'readable', 'internal error', err instanceof Error ? err : undefined),
        );
      }
      finish();
      socket.pause();
      socket.unshift(reader.bytes);
      clientHellos.set(socket, info);
      for (const listener of downstream) listener.call(server, socket);
    };
    const onSocketError = (err: Error): void => fail(clientHelloError('socket', 'open', 'error', err));
    const onEnd = (): void => fail(clientHelloError('socket', 'ClientHello', 'end of stream'));
    const timer = setTimeout(() => fail(clientHelloError('time', `<= ${timeoutMs} ms`, 'timeout')), timeoutMs);
    timer.unref();

    // A socket handed over after it ended or broke (re-emitted by code that read from it first)
    // will never emit 'end' or 'error' again: drop it now rather than when the timer fires.
    if (socket.destroyed || socket.readableEnded) return onEnd();
    socket.on('data', onData);
    socket.on('error', onSocketError);
    socket.on('end', onEnd);
  });
}
