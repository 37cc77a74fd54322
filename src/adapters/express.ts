/**
 * Express glue (`tokbind/express`): a middleware that verifies Sec-Token-Binding (RFC 8473 §2)
 * and exposes the result as `req.tokenBinding`, and an error handler that renders tokbind's 400
 * as `application/problem+json`. Thin over src/http: verification, header stripping and the
 * problem document are the server's own.
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { TokenBindingError, isTokenBindingError } from '../errors.js';
import { resolveTokenBindingOptions } from '../http/options.js';
import { sendProblem } from '../http/problem.js';
import { adoptForwardedVerdict } from '../http/server.js';
import { resolveTrustProxy, verifyFromTrustedProxy } from '../http/trust-proxy.js';
import type { TokenBindingResult } from '../http/result.js';
import { verifyIncomingRequest, type TokenBindingAdapterOptions } from './request.js';

// Express's `Request` (express-serve-static-core) extends both node:http's `IncomingMessage` and the
// global `Express.Request`. The server's augmentation makes `IncomingMessage.tokenBinding` optional
// (undefined on a request no tokbind server or adapter has seen); declaring the property on the
// derived interface itself, narrowed to `TokenBindingResult | null`, gives handlers the type this
// middleware guarantees without clashing with the base (declared on `Express.Request` instead, the
// two bases would disagree: TS2320 for every consumer that does not skip library checks).
declare module 'express-serve-static-core' {
  interface Request {
    /**
     * The verified Token Binding of this request (RFC 8471 §4.2), set by {@link tokenBinding}:
     * null when the request carried no Sec-Token-Binding.
     */
    tokenBinding: TokenBindingResult | null;
  }
}

export type { TokenBindingAdapterOptions as TokenBindingMiddlewareOptions } from './request.js';
export type { TokenBindingResult, VerifiedID } from '../http/result.js';

/**
 * The error the middleware passes to `next()`: a {@link TokenBindingError} carrying the
 * `status`/`statusCode`/`expose` fields Express's and http-errors' conventions read, so the
 * default handler answers 400 and custom handlers can branch on `code`.
 */
export interface TokenBindingHttpError extends TokenBindingError {
  readonly status: 400;
  readonly statusCode: 400;
  /** The message is safe to show the client: it is the fixed text of the code. */
  readonly expose: true;
}

/**
 * A fresh error per request: verdicts are cached per connection, and the cached error must not
 * be mutated by (or leak a stack from) one request into the next.
 */
function httpError(error: TokenBindingError): TokenBindingHttpError {
  const cause = error.cause;
  const fresh = new TokenBindingError(error.code, error.message, cause);
  return Object.assign(fresh, { status: 400 as const, statusCode: 400 as const, expose: true as const });
}

/**
 * Express middleware: verifies the request's Sec-Token-Binding (RFC 8471 §4.2, RFC 8473 §2) and
 * sets `req.tokenBinding` (null without a header). An invalid, duplicated or — with
 * `required: true` — missing header calls `next(err)` with a {@link TokenBindingHttpError}
 * (status 400); add {@link tokenBindingErrorHandler} to answer it with problem+json.
 *
 * Every option is this middleware's own. On tokbind's `createServer` (or a server given
 * `attachTokenBinding`) the server's verdict is reused when it was reached under the same
 * `keyParameters`, `maxHeaderLength` and `backend`, with this middleware's `required` and
 * `onInvalid` applied again; otherwise the header is verified under these options. On a plain
 * `https.createServer` the connection's facts (EKM, TLS version, EMS) are taken from `req.socket`
 * on its first request, without fixing this route's options for the next. What middleware on a
 * plain server cannot do: see 'upgrade' / 'connect' requests (WebSocket), refuse TLS 1.2
 * renegotiation, inspect the ClientHello (RFC 8472 offer), or take the EKM before a renegotiation
 * could change it — `attachTokenBinding(server)` does all of these.
 *
 * Behind `tokbind proxy` (plain HTTP from the proxy), pass `trustProxy: { addresses, key? }`: the
 * forwarded IDs from those addresses (with `key`, under a valid assertion over `req.originalUrl`)
 * become `req.tokenBinding`; from any other peer they are stripped.
 *
 * @throws {TypeError} at setup, for invalid options
 * @example
 * ```ts
 * import { tokenBinding, tokenBindingErrorHandler } from 'tokbind/express'
 * app.use('/api', tokenBinding({ required: true }))
 * app.get('/api/me', (req, res) => res.json({ tbh: req.tokenBinding?.provided.hash }))
 * app.use(tokenBindingErrorHandler())
 * ```
 */
export function tokenBinding(options: TokenBindingAdapterOptions = {}): RequestHandler {
  const resolved = resolveTokenBindingOptions(options);
  const trust = options.trustProxy === undefined ? null : resolveTrustProxy(options.trustProxy);
  return function tokenBindingMiddleware(req, _res, next) {
    if (trust !== null) {
      // Behind a trusted proxy the assertion check is asynchronous (WebCrypto, via jose).
      verifyFromTrustedProxy(req, resolved, trust, req.originalUrl).then((forwarded) => {
        const verdict = forwarded === undefined ? verifyIncomingRequest(req, resolved) : adoptForwardedVerdict(req, resolved, forwarded);
        if (verdict instanceof TokenBindingError) return next(httpError(verdict));
        req.tokenBinding = verdict;
        next();
      }, next);
      return;
    }
    const verdict = verifyIncomingRequest(req, resolved);
    if (verdict instanceof TokenBindingError) {
      next(httpError(verdict));
      return;
    }
    req.tokenBinding = verdict;
    next();
  };
}

/**
 * Express error handler that answers a Token Binding rejection with tokbind's 400
 * `application/problem+json` (RFC 9457; the same body as tokbind's server) and passes every other
 * error on. Mount it after the routes.
 *
 * @example
 * ```ts
 * app.use(tokenBinding())
 * app.use(routes)
 * app.use(tokenBindingErrorHandler())
 * ```
 */
export function tokenBindingErrorHandler(): ErrorRequestHandler {
  return function tokenBindingErrorHandler(err, _req, res, next) {
    if (!isTokenBindingError(err) || res.headersSent) {
      next(err);
      return;
    }
    sendProblem(res, err);
  };
}
