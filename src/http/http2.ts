/**
 * The binding-aware HTTP/2 server (RFC 8473 over HTTP/2, RFC 9113).
 */
import http2 from 'node:http2';
import type { Http2SecureServer, Http2ServerRequest, Http2ServerResponse, SecureServerOptions } from 'node:http2';
import { withRenegotiationRefused } from '../tls/conditions.js';
import { resolveTokenBindingOptions, type TokenBindingServerOptions } from './options.js';
import { installTokenBinding } from './server.js';

/** `http2.createSecureServer` options plus `tokenBinding`. */
export type TokenBindingHttp2ServerOptions = SecureServerOptions & { readonly tokenBinding?: TokenBindingServerOptions };

/**
 * The HTTP/2 counterpart of `createServer`, over `http2.createSecureServer` (same options, the
 * real `Http2SecureServer`): each stream is verified (RFC 8471 §4.2, RFC 8473 §2) before 'stream'
 * listeners and the compat 'request' handler see it — a rejected stream is answered 400
 * `application/problem+json` (or `tokenBinding.onRejectStream`) and reaches neither. In a 'stream'
 * listener read the verdict with `getTokenBinding(stream)`; in a request handler,
 * `req.tokenBinding`. The verification cache belongs to the connection (the HTTP/2 session), not
 * to a stream. With `allowHTTP1`, HTTP/1.1 requests are verified as `createServer` does
 * (`Expect: 100-continue` included: verified before `100 Continue`).
 *
 * @example
 * ```ts
 * const server = createSecureServer({ key, cert, tokenBinding: { required: true } }, (req, res) => {
 *   res.end(req.tokenBinding?.provided.hash)
 * })
 * server.on('stream', (stream) => console.log(getTokenBinding(stream)?.provided.id))
 * ```
 */
export function createSecureServer(
  options: TokenBindingHttp2ServerOptions,
  handler?: (req: Http2ServerRequest, res: Http2ServerResponse) => void,
): Http2SecureServer {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  if (handler !== undefined && typeof handler !== 'function') throw new TypeError('handler must be a function');
  const { tokenBinding, ...http2Options } = options;
  const resolved = resolveTokenBindingOptions(tokenBinding ?? {});
  const server = http2.createSecureServer(withRenegotiationRefused(http2Options));
  // Renegotiation stays refused through setSecureContext (certificate rotation) and whatever
  // context a connection gets: installTokenBinding.
  installTokenBinding(server, resolved);
  if (handler !== undefined) server.on('request', handler);
  return server;
}
