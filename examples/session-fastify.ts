/**
 * A session bound to the client's Token Binding ID, with Fastify 5 and @fastify/session
 * (tokbind/session). `bindSession(request)` on login gives the session a new id and stores the
 * provided ID's `tbh` in it; the `fastifySessionBinding` plugin refuses the session on any later
 * request presented with another client's Token Binding ID (403) or none (401), and destroys it
 * in the store.
 *
 *   npm run build && node dist/examples/session-fastify.js     (PORT=8443 by default)
 *
 * In your application: `import { bindSession, fastifySessionBinding } from 'tokbind/session'`.
 * This file imports from the source tree so that it is type-checked with the library. For Redis,
 * pass `store: new RedisStore({ client })` from connect-redis to @fastify/session.
 */
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import Fastify from 'fastify';
import { createServer, isTokenBindingError } from '../src/index.js';
import { bindSession, fastifySessionBinding, sessionErrorStatus } from '../src/session/index.js';
// Only for running this file directly: a throwaway self-signed certificate for localhost.
import { createSelfSignedCertificate } from '../src/tls/certificate.js';

declare module 'fastify' {
  interface Session {
    user?: string;
  }
}

export interface ExampleOptions {
  /** 0 (the default) picks a free port. */
  readonly port?: number;
  readonly host?: string;
  /** PEM private key and certificate of the server. */
  readonly key: string;
  readonly cert: string;
}

export interface ExampleHandle {
  /** `https://<host>:<port>` */
  readonly url: string;
  close(): Promise<void>;
}

export async function start({ port = 0, host = '127.0.0.1', key, cert }: ExampleOptions): Promise<ExampleHandle> {
  const app = Fastify({ serverFactory: (handler) => createServer({ key, cert, tokenBinding: {} }, handler), forceCloseConnections: true });
  await app.register(fastifyCookie);
  await app.register(fastifySession, { secret: randomBytes(32).toString('hex'), saveUninitialized: false, cookie: { secure: true, httpOnly: true, sameSite: 'strict' } });
  // Every request: a bound session must come with its own Token Binding ID.
  await app.register(fastifySessionBinding, { policy: 'required' });

  app.post<{ Body: { user?: unknown } | null }>('/login', async (request, reply) => {
    const user = typeof request.body?.user === 'string' ? request.body.user : '';
    if (!/^[a-z]{1,16}$/.test(user)) return reply.code(400).send({ error: 'invalid_user' });
    try {
      await bindSession(request); // new session id, bound to this client's Token Binding ID
    } catch (err) {
      // No Token Binding on this request: ERR_TB_SESSION_BINDING_MISSING, 401.
      if (isTokenBindingError(err)) return reply.code(sessionErrorStatus(err.code)).send({ code: err.code });
      throw err;
    }
    request.session.set('user', user); // after bindSession: it starts a fresh session
    return { user };
  });
  app.get('/profile', async (request, reply) => {
    const user = request.session.get('user');
    if (user === undefined) return reply.code(401).send({ error: 'not_logged_in' });
    return { user };
  });
  await app.listen({ port, host });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  return { url: `https://${host}:${address.port}`, close: () => app.close() };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const handle = await start({ port: Number(process.env['PORT'] ?? 8443), ...createSelfSignedCertificate() });
  console.log(`listening on ${handle.url}: POST /login {"user":NAME}, GET /profile (self-signed certificate; Ctrl-C to stop)`);
  process.once('SIGINT', () => void handle.close());
}
