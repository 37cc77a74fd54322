/**
 * @fastify/session glue: a plugin whose `onRequest` hook, running after @fastify/session's (it
 * declares the dependency, so Fastify refuses to boot with them in the wrong order), checks every
 * request's session against its binding (see ./binding.ts for the policy ladder).
 */
import type { FastifyPluginCallback, FastifyReply, FastifyRequest, RawServerBase, RouteGenericInterface } from 'fastify';
import fp from 'fastify-plugin';
import { PROBLEM_CONTENT_TYPE, problemDetails } from '../http/problem.js';
import { checkSessionBinding, resolveSessionBindingOptions, type ResolvedSessionBindingOptions, type SessionBindingOptions } from './binding.js';
import { enforceRefusal, requestTokenBinding, sessionOf } from './bind.js';
import type { TokenBindingError } from '../errors.js';

function reject(reply: FastifyReply<RouteGenericInterface, RawServerBase>, error: TokenBindingError, status: number): void {
  void reply
    .code(status)
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff')
    .header('content-type', PROBLEM_CONTENT_TYPE)
    // A Buffer: Fastify sends it as is, the same bytes as tokbind's server and the Express glue.
    .send(Buffer.from(JSON.stringify(problemDetails(error, status))));
}

const plugin: FastifyPluginCallback<SessionBindingOptions, RawServerBase> = (fastify, options, done) => {
  let resolved: ResolvedSessionBindingOptions;
  try {
    resolved = resolveSessionBindingOptions(options);
  } catch (err) {
    done(err as Error);
    return;
  }
  fastify.addHook('onRequest', (request: FastifyRequest<RouteGenericInterface, RawServerBase>, reply, next) => {
    const session = sessionOf(request);
    if (session === null) return next();
    let refusal;
    try {
      refusal = checkSessionBinding(session, { tokenBinding: requestTokenBinding(request.raw), raw: request.raw }, resolved);
    } catch (err) {
      return next(err as Error);
    }
    if (refusal === null) return next();
    enforceRefusal(request, session, refusal).then(
      () => reject(reply, refusal.error, refusal.status),
      (err: unknown) => next(err as Error),
    );
  });
  done();
};

/**
 * @fastify/session plugin: on every request, compares the session's binding with the request's
 * verified Token Binding under `policy` — the same decisions, status codes, problem documents and
 * `tokbind:session` events as the express-session middleware ({@link sessionBinding}). Register
 * it after @fastify/session (Fastify enforces the order), on a server where tokbind verifies
 * requests (`serverFactory: createServer`, or the tokbind/fastify plugin).
 *
 * @example
 * ```ts
 * await app.register(fastifyCookie)
 * await app.register(fastifySession, { secret, cookie: { secure: true } })
 * await app.register(fastifySessionBinding, { policy: 'required' })
 * app.post('/login', async (request) => { await bindSession(request); request.session.set('user', 'alice'); return {} })
 * ```
 */
export const fastifySessionBinding = fp(plugin, { fastify: '5.x', name: 'tokbind-session', dependencies: ['@fastify/session'] });
