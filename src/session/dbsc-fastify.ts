/**
 * @fastify/session glue for DBSC: a plugin whose `onRequest` hook answers the registration and
 * refresh endpoints through Fastify's reply (so @fastify/session saves the session as usual).
 * Register it after @fastify/session and BEFORE `fastifySessionBinding` (a refresh arrives when
 * the bound cookie has expired; hooks run in registration order).
 */
import type { FastifyPluginCallback, FastifyRequest, RawServerBase, RouteGenericInterface } from 'fastify';
import fp from 'fastify-plugin';
import type { DeviceBoundSessions } from './dbsc.js';

/** Options of {@link fastifyDeviceBoundSessions}. */
export interface FastifyDeviceBoundSessionsOptions {
  /** The DBSC instance (`deviceBoundSessions(…)`) whose endpoints to answer. */
  readonly dbsc: DeviceBoundSessions;
}

const plugin: FastifyPluginCallback<FastifyDeviceBoundSessionsOptions, RawServerBase> = (fastify, options, done) => {
  const dbsc = options.dbsc;
  if (dbsc === undefined || dbsc === null || typeof dbsc.answer !== 'function') {
    done(new TypeError('fastifyDeviceBoundSessions needs { dbsc: deviceBoundSessions(…) }'));
    return;
  }
  fastify.addHook('onRequest', async (request: FastifyRequest<RouteGenericInterface, RawServerBase>, reply) => {
    const answer = await dbsc.answer(request, request.raw);
    if (answer === null) return;
    for (const cookie of answer.setCookies) void reply.header('set-cookie', cookie);
    void reply
      .code(answer.status)
      .headers(answer.headers)
      .header('cache-control', 'no-store')
      .header('x-content-type-options', 'nosniff')
      .header('content-type', answer.contentType);
    return reply.send(answer.body);
  });
  done();
};

/**
 * @fastify/session plugin answering DBSC's registration and refresh endpoints.
 *
 * @example
 * ```ts
 * const dbsc = deviceBoundSessions({ secret: process.env.DBSC_SECRET })
 * await app.register(fastifyCookie)
 * await app.register(fastifySession, { secret, cookie: { secure: true } })
 * await app.register(fastifyDeviceBoundSessions, { dbsc })
 * await app.register(fastifySessionBinding, { methods: [tokenBindingSessionMethod, dbsc.method] })
 * app.post('/login', async (request, reply) => { await dbsc.bindOrOffer(request, reply.raw); request.session.set('user', 'alice'); return {} })
 * ```
 */
export const fastifyDeviceBoundSessions = fp(plugin, { fastify: '5.x', name: 'tokbind-dbsc', dependencies: ['@fastify/session'] });
