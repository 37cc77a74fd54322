/**
 * A session bound to the client's Token Binding ID, with Express 5 and express-session
 * (tokbind/session). `bindSession(req)` on login gives the session a new id and stores the
 * provided ID's `tbh` in it; the `sessionBinding()` middleware refuses the session on any later
 * request presented with another client's Token Binding ID (403) or none (401), and destroys it
 * in the store: a stolen cookie is worthless without the private key it is bound to.
 *
 *   npm run build && node dist/examples/session-express.js     (PORT=8443 by default)
 *
 * In your application: `import { bindSession, sessionBinding } from 'tokbind/session'`. This file
 * imports from the source tree so that it is type-checked with the library. For Redis, pass
 * `store: new RedisStore({ client })` from connect-redis to `session()`: nothing else changes.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import express from 'express';
import session from 'express-session';
import { createServer, isTokenBindingError } from '../src/index.js';
import { bindSession, sessionBinding, sessionErrorStatus } from '../src/session/index.js';
// Only for running this file directly: a throwaway self-signed certificate for localhost.
import { createSelfSignedCertificate } from '../src/tls/certificate.js';

declare module 'express-session' {
  interface SessionData {
    user: string;
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

export function createApp(): express.Express {
  const app = express();
  app.use(express.json());
  app.use(session({ secret: randomBytes(32).toString('hex'), resave: false, saveUninitialized: false, cookie: { secure: true, httpOnly: true, sameSite: 'strict' } }));
  // Every request: a bound session must come with its own Token Binding ID.
  app.use(sessionBinding({ policy: 'required' }));

  app.post('/login', async (req, res) => {
    const user = typeof req.body?.user === 'string' ? req.body.user : '';
    if (!/^[a-z]{1,16}$/.test(user)) return void res.status(400).json({ error: 'invalid_user' });
    try {
      await bindSession(req); // new session id, bound to this client's Token Binding ID
    } catch (err) {
      // No Token Binding on this request: ERR_TB_SESSION_BINDING_MISSING, 401.
      if (isTokenBindingError(err)) return void res.status(sessionErrorStatus(err.code)).json({ code: err.code });
      throw err;
    }
    req.session.user = user; // after bindSession: it starts a fresh session
    res.json({ user });
  });
  app.get('/profile', (req, res) => {
    if (req.session.user === undefined) return void res.status(401).json({ error: 'not_logged_in' });
    res.json({ user: req.session.user });
  });
  return app;
}

export async function start({ port = 0, host = '127.0.0.1', key, cert }: ExampleOptions): Promise<ExampleHandle> {
  const server = createServer({ key, cert, tokenBinding: {} }, createApp());
  server.listen(port, host);
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  return {
    url: `https://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const handle = await start({ port: Number(process.env['PORT'] ?? 8443), ...createSelfSignedCertificate() });
  console.log(`listening on ${handle.url}: POST /login {"user":NAME}, GET /profile (self-signed certificate; Ctrl-C to stop)`);
  process.once('SIGINT', () => void handle.close());
}
