/**
 * The request-level step both framework adapters share: reuse the verdict a tokbind server already
 * reached (under the caller's own options), or run src/http's `verifyRequest` (header stripping, connection facts taken lazily
 * from the socket or HTTP/2 session, verification) now.
 *
 * @internal Not exported from the package.
 */
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { TokenBindingError } from '../errors.js';
import type { ResolvedTokenBindingOptions, TokenBindingServerOptions } from '../http/options.js';
import type { TokenBindingResult } from '../http/result.js';
import { verifyRequestAs } from '../http/server.js';
import type { TrustProxyOptions } from '../http/trust-proxy.js';

/**
 * Options of the Express middleware and the Fastify plugin: the verification options of
 * {@link TokenBindingServerOptions}. ClientHello inspection and the reject hooks belong to the
 * server (use tokbind's `createServer` for them); frameworks answer rejections their own way.
 */
export type TokenBindingAdapterOptions = Pick<
  TokenBindingServerOptions,
  'keyParameters' | 'required' | 'maxHeaderLength' | 'maxDistinctMessages' | 'maxSignaturesPerMessage' | 'maxSignaturesPerConnection' | 'backend' | 'onInvalid'
> & {
  /**
   * Behind a TLS-terminating proxy (`tokbind proxy`, or any draft-ietf-tokbind-ttrp proxy): the
   * proxy's addresses (CIDRs), and optionally its public key. Forwarded IDs are accepted only
   * from those addresses (and, with `key`, only under a valid signed assertion) and become
   * `req.tokenBinding`, shaped as on a direct connection; from any other peer they are stripped.
   */
  readonly trustProxy?: TrustProxyOptions;
};

/**
 * Verifies one request (HTTP/1.x, or an HTTP/2 compat request) under `options`: the result, null
 * (no header, or an invalid one under `onInvalid: 'ignore'` where the binding is not required),
 * or the error to reject with.
 *
 * Every option is this caller's own. On a tokbind server — or after another tokbind adapter ran —
 * the verdict already reached is reused when it was reached under the same verification options
 * (`keyParameters`, `maxHeaderLength`, `backend`), with this caller's `required` and `onInvalid`
 * applied again: a route can demand what the server left optional, and an invalid message the
 * server ignored is refused by a route that requires a binding. Reached under other options, the
 * header is verified again under this caller's (against the connection's cache). Elsewhere the
 * connection's facts are taken now, from the TLSSocket (HTTP/1.x) or the HTTP/2 session, without
 * fixing this caller's key parameters or distinct-message cap for the next caller.
 */
export function verifyIncomingRequest(
  req: IncomingMessage | Http2ServerRequest,
  options: ResolvedTokenBindingOptions,
): TokenBindingResult | null | TokenBindingError {
  return verifyRequestAs(req, options);
}
