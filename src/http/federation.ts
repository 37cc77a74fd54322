/**
 * RFC 8473 §5 federation: a server asks the client to prove, on the next request (to the Token
 * Provider it redirects to), the Token Binding ID it uses with this server.
 */
import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';

/** The RFC 8473 §5.1 response header. */
export const INCLUDE_REFERRED_TOKEN_BINDING_ID = 'Include-Referred-Token-Binding-ID';

function isRedirect(status: number): boolean {
  return Number.isInteger(status) && status >= 300 && status <= 399;
}

/**
 * Adds `Include-Referred-Token-Binding-ID: true` to a redirect (RFC 8473 §5.1). The client then
 * sends, on the immediately following request only, a referred binding signed with the key it
 * uses for this server; the Token Provider reads it as `req.tokenBinding.referred`. The header
 * means nothing on other responses, so setting it on one is a bug: set a 3xx status first.
 *
 * @throws {TypeError} when the status is not 3xx or the headers are already sent
 * @example
 * ```ts
 * res.statusCode = 302
 * res.setHeader('location', 'https://idp.example/authorize?...')
 * requestReferredTokenBinding(res)
 * res.end()
 * ```
 */
export function requestReferredTokenBinding(res: ServerResponse | Http2ServerResponse): void {
  if (res === null || typeof res !== 'object' || typeof res.setHeader !== 'function') throw new TypeError('res must be a server response');
  if (!isRedirect(res.statusCode)) {
    throw new TypeError(`${INCLUDE_REFERRED_TOKEN_BINDING_ID} belongs on a 3xx response, not ${res.statusCode}`);
  }
  if (res.headersSent) throw new TypeError('response headers already sent');
  res.setHeader(INCLUDE_REFERRED_TOKEN_BINDING_ID, 'true');
}

/**
 * Ends `res` with a redirect to `location` that asks for a referred Token Binding (RFC 8473 §5).
 *
 * @throws {TypeError} when `status` is not 3xx, `location` is not a string, or headers were sent
 * @example
 * ```ts
 * redirectWithReferredTokenBinding(res, 'https://idp.example/authorize?client_id=rp')
 * ```
 */
export function redirectWithReferredTokenBinding(res: ServerResponse | Http2ServerResponse, location: string, status = 302): void {
  if (typeof location !== 'string' || location.length === 0) throw new TypeError('location must be a non-empty string');
  if (!isRedirect(status)) throw new TypeError(`status must be 3xx, got ${status}`);
  res.statusCode = status;
  requestReferredTokenBinding(res);
  res.setHeader('location', location);
  res.setHeader('content-length', 0);
  res.end();
}
