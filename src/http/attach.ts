/**
 * tokbind's request handling installed on a server the application created itself.
 */
import type { Http2SecureServer } from 'node:http2';
import type { Server as HttpsServer } from 'node:https';
import { Server as TlsServer } from 'node:tls';
import { resolveTokenBindingOptions, type TokenBindingServerOptions } from './options.js';
import { installTokenBinding } from './server.js';

/**
 * Installs on an existing `https.Server` or `http2.createSecureServer` server what tokbind's own
 * `createServer` / `createSecureServer` do (RFC 8471 §4.2, RFC 8473 §2): every 'request',
 * 'checkContinue', 'checkExpectation', 'upgrade' and 'connect' (and on HTTP/2 every 'stream') is
 * verified before any listener sees it — listeners added before or after this call alike — with
 * the verdict on `req.tokenBinding` (`getTokenBinding(stream)` on HTTP/2); client-sent
 * `Sec-*-Token-Binding-ID` headers and trailers are stripped; an invalid request is answered with
 * the same 400 `application/problem+json` (on 'upgrade' and 'connect', written raw on the socket,
 * which is then closed); an `Expect: 100-continue` request is verified before `100 Continue`.
 * Each connection's facts are taken at 'secureConnection', and TLS renegotiation is refused on
 * each connection (`tlsSocket.disableRenegotiation()`; a renegotiation attempt closes the
 * connection, even when the application handles 'clientError' itself).
 *
 * This is the shape to use for WebSocket upgrades and CONNECT on a server whose routes use the
 * Express or Fastify middleware: the middleware never sees those events. The middleware behind it
 * reuses the server's verdict and applies its own options on top.
 *
 * Call it before `listen()`. Connections accepted before it are verified with facts taken at their
 * first request, and their renegotiation is not refused. Idempotent: a second call with the same
 * options does nothing (also on a server made by tokbind's `createServer`).
 *
 * @returns the server
 * @throws {TypeError} for invalid options, a server that is not a TLS server, or a server tokbind is
 *   already installed on with other options
 * @example
 * ```ts
 * const server = https.createServer({ key, cert }, app)
 * attachTokenBinding(server, { required: true })
 * server.on('upgrade', (req, socket) => { if (req.tokenBinding) acceptWebSocket(req, socket) })
 * server.listen(8443)
 * ```
 */
export function attachTokenBinding<S extends HttpsServer | Http2SecureServer>(server: S, options: TokenBindingServerOptions = {}): S {
  if (!(server instanceof TlsServer)) throw new TypeError('server must be an https.Server or an HTTP/2 secure server');
  const resolved = resolveTokenBindingOptions(options);
  // The server's TLS options cannot be changed any more: installTokenBinding refuses
  // renegotiation on each connection (and closes a connection that attempts one, whatever the
  // application's 'clientError' listener does); contexts made later (setSecureContext) refuse it
  // in OpenSSL too.
  installTokenBinding(server, resolved);
  return server;
}
