/**
 * Express glue (`tokbind/token/express`): a middleware that verifies the access token and its
 * binding (see `createAccessTokenVerifier`) and sets `req.accessToken`; refusals are answered
 * on the spot with the RFC 6750 / RFC 9449 challenge.
 */
import type { RequestHandler } from 'express';
import { TokenBindingError } from '../errors.js';
import { resolveGlue, sendAccessTokenChallenge, verifyForGlue, type AccessTokenGlueOptions } from './respond.js';
import type { VerifiedAccessToken } from './verify.js';

declare global {
  // Express types its request through this global namespace: merging here types `req.accessToken`.
  namespace Express {
    interface Request {
      /** The verified access token, set by {@link accessToken}: null when none was sent and none is required. */
      accessToken?: VerifiedAccessToken | null;
    }
  }
}

export type { AccessTokenGlueOptions as AccessTokenMiddlewareOptions } from './respond.js';
export type { VerifiedAccessToken } from './verify.js';

/**
 * Express middleware: verifies the request's access token (JWT, jose) and its confirmation —
 * `cnf.tbh` against `req.tokenBinding` (mount tokbind's `tokenBinding()` first, or run on
 * tokbind's server), `cnf["x5t#S256"]` against the TLS client certificate, `cnf.jkt` against the
 * DPoP proof — and sets `req.accessToken`. A refused request gets 401 (or 400/503) with
 * `WWW-Authenticate` and problem+json; the routes never see it. A `DPoP-Nonce` is added to
 * accepted responses when nonces are on.
 *
 * @throws {TypeError} at setup, for invalid options
 * @example
 * ```ts
 * import { tokenBinding } from 'tokbind/express'
 * import { accessToken } from 'tokbind/token/express'
 * app.use(tokenBinding())
 * app.use('/api', accessToken({ issuer, audience, jwks: new URL(`${issuer}/jwks`) }))
 * app.get('/api/me', (req, res) => res.json({ sub: req.accessToken?.payload.sub }))
 * ```
 */
export function accessToken(options: AccessTokenGlueOptions): RequestHandler {
  const glue = resolveGlue(options);
  return function accessTokenMiddleware(req, res, next) {
    verifyForGlue(req, glue).then((verdict) => {
      if (verdict instanceof TokenBindingError) return sendAccessTokenChallenge(res, glue.verifier, verdict);
      if (verdict?.dpopNonce !== undefined) res.setHeader('dpop-nonce', verdict.dpopNonce);
      req.accessToken = verdict;
      next();
    }, next);
  };
}
