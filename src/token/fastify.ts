/**
 * Fastify glue (`tokbind/token/fastify`): an `onRequest` hook (and a plugin that adds it) that
 * verifies the access token and its binding and sets `request.accessToken`.
 */
import type { FastifyPluginCallback, FastifyReply, FastifyRequest, RawServerBase } from 'fastify';
import fp from 'fastify-plugin';
import { TokenBindingError } from '../errors.js';
import { PROBLEM_CONTENT_TYPE } from '../http/problem.js';
import { resolveGlue, verifyForGlue, type AccessTokenGlueOptions } from './respond.js';
import { accessTokenProblem, type AccessTokenRequest, type VerifiedAccessToken } from './verify.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified access token, set by the tokbind token hook: null when none was sent and none is required. */
    accessToken: VerifiedAccessToken | null;
  }
}

export type { AccessTokenGlueOptions as FastifyAccessTokenOptions } from './respond.js';
export type { VerifiedAccessToken } from './verify.js';

/**
 * An `onRequest` hook that verifies the access token and its binding (see
 * `createAccessTokenVerifier`): on success `request.accessToken` is set, otherwise the reply is
 * 401 (or 400/503) with `WWW-Authenticate` and problem+json. Add it after tokbind's
 * `tokenBinding` plugin, so `cnf.tbh` sees the verified Token Binding.
 *
 * @throws {TypeError} at setup, for invalid options
 * @example
 * ```ts
 * app.addHook('onRequest', createAccessTokenHook({ issuer, audience, jwks }))
 * ```
 */
export function createAccessTokenHook(options: AccessTokenGlueOptions): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const glue = resolveGlue(options);
  return async function accessTokenHook(request, reply) {
    const verdict = await verifyForGlue(request.raw as AccessTokenRequest, glue);
    if (verdict instanceof TokenBindingError) {
      const { status, headers } = glue.verifier.challenge(verdict);
      // A Buffer, so Fastify sends it as is (no `; charset=utf-8` appended).
      await reply
        .code(status)
        .headers({ ...headers, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'content-type': PROBLEM_CONTENT_TYPE })
        .send(Buffer.from(JSON.stringify(accessTokenProblem(verdict, status))));
      return;
    }
    if (verdict?.dpopNonce !== undefined) void reply.header('dpop-nonce', verdict.dpopNonce);
    request.accessToken = verdict;
  };
}

const plugin: FastifyPluginCallback<AccessTokenGlueOptions, RawServerBase> = (fastify, options, done) => {
  let hook: ReturnType<typeof createAccessTokenHook>;
  try {
    hook = createAccessTokenHook(options);
  } catch (err) {
    done(err as Error);
    return;
  }
  if (!fastify.hasRequestDecorator('accessToken')) fastify.decorateRequest('accessToken', null);
  fastify.addHook('onRequest', hook);
  done();
};

/**
 * Fastify plugin: decorates `request.accessToken` and adds {@link createAccessTokenHook}. Register
 * it after `tokbind/fastify`'s `tokenBinding` (its `onRequest` hook must run first).
 *
 * @example
 * ```ts
 * await app.register(tokenBinding)
 * await app.register(accessToken, { issuer, audience, jwks: 'jwks.json' })
 * ```
 */
export const accessToken = fp(plugin, { fastify: '5.x', name: 'tokbind-token' });
