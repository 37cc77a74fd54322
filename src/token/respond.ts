/**
 * Answering a refused access token on a Node response (what the Express glue and `tokbind
 * serve` send): the status and headers of {@link AccessTokenVerifier.challenge} and an RFC 9457
 * problem body built from the code alone.
 */
import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import { TokenBindingError } from '../errors.js';
import { PROBLEM_CONTENT_TYPE } from '../http/problem.js';
import {
  accessTokenProblem,
  createAccessTokenVerifier,
  publish,
  type AccessTokenRequest,
  type AccessTokenVerifier,
  type AccessTokenVerifierOptions,
  type VerifiedAccessToken,
} from './verify.js';

/** Options of the framework glue: a verifier's options, or a verifier made already; and whether a token is required. */
export type AccessTokenGlueOptions = (AccessTokenVerifierOptions | { readonly verifier: AccessTokenVerifier }) & {
  /**
   * A request without an access token: `true` (default) answers 401 with a bare challenge;
   * `false` lets it through with `accessToken: null` (a token that *is* presented is always checked).
   */
  readonly requireToken?: boolean | undefined;
};

/** @internal */
export function resolveGlue(options: AccessTokenGlueOptions): { verifier: AccessTokenVerifier; requireToken: boolean } {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { requireToken = true } = options;
  if (typeof requireToken !== 'boolean') throw new TypeError('requireToken must be a boolean');
  const verifier = 'verifier' in options ? options.verifier : createAccessTokenVerifier(options);
  if (typeof verifier?.verify !== 'function') throw new TypeError('verifier must be an AccessTokenVerifier');
  return { verifier, requireToken };
}

/**
 * Verifies `req` and returns the token, `null` (no token, and none required), or the error to
 * answer. What the framework glue and `tokbind serve` share.
 *
 * @internal
 */
export async function verifyForGlue(
  req: AccessTokenRequest,
  glue: { verifier: AccessTokenVerifier; requireToken: boolean },
): Promise<VerifiedAccessToken | null | TokenBindingError> {
  try {
    return await glue.verifier.verify(req);
  } catch (err) {
    if (!(err instanceof TokenBindingError)) throw err;
    if (err.code === 'ERR_TB_TOKEN_MISSING') {
      if (!glue.requireToken) return null;
      publish('rejected', null, err.code, false);
    }
    return err;
  }
}

/**
 * Sends the answer to a refused access token: 401 (400 for a malformed request, 503 when the
 * JWKS or the replay cache cannot serve) with `WWW-Authenticate` (RFC 6750 §3, RFC 9449 §7.1)
 * and a problem+json body from the code alone.
 *
 * @example
 * ```ts
 * try { req.accessToken = await verifier.verify(req) } catch (err) { sendAccessTokenChallenge(res, verifier, err) }
 * ```
 */
export function sendAccessTokenChallenge(res: ServerResponse | Http2ServerResponse, verifier: AccessTokenVerifier, error: TokenBindingError): void {
  const { status, headers } = verifier.challenge(error);
  if (res.headersSent) {
    res.end();
    return;
  }
  const body = JSON.stringify(accessTokenProblem(error, status));
  (res as ServerResponse).writeHead(status, {
    ...headers,
    'content-type': PROBLEM_CONTENT_TYPE,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  (res as ServerResponse).end(body);
}
