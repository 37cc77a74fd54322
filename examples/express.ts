/**
 * Token Binding with Express 5. tokbind's `createServer` runs the Express app (it verifies each
 * request once, at the TLS layer's side); the middleware exposes the verdict as `req.tokenBinding`
 * and, under /api, requires it. Rejections go through Express error handling and are rendered as
 * `application/problem+json` by `tokenBindingErrorHandler()`.
 *
 *   npm run build && node dist/examples/express.js             (PORT=8443 by default)
 *   npx tokbind fetch --insecure https://127.0.0.1:8443/api/me
 *
 * In your application: `import { createServer } from 'tokbind'` and
 * `import { tokenBinding, tokenBindingErrorHandler } from 'tokbind/express'`. This file imports
 * from the source tree so that it is type-checked with the library.
 *
 * On a plain `https.createServer(options, app)` the same middleware works too (it then takes each
 * connection's facts itself), but that server does not refuse TLS renegotiation unless you pass
 * `secureOptions: crypto.constants.SSL_OP_NO_RENEGOTIATION`, and cannot inspect ClientHellos.
 */
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import express from 'express';
import { tokenBinding, tokenBindingErrorHandler } from '../src/adapters/express.js';
import { createServer } from '../src/index.js';
// Only for running this file directly: a throwaway self-signed certificate for localhost.
import { createSelfSignedCertificate } from '../src/tls/certificate.js';

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
  // Everywhere: a valid binding is exposed, none is fine, an invalid one is a 400.
  app.use(tokenBinding());
  app.get('/', (req, res) => {
    const binding = req.tokenBinding?.provided;
    res.json({ tokenBinding: binding ? { id: binding.id, tbh: binding.hash } : null });
  });
  // Under /api a binding is required.
  app.use('/api', tokenBinding({ required: true }));
  app.get('/api/me', (req, res) => {
    const binding = req.tokenBinding!.provided; // never null under `required`
    res.json({ id: binding.id, tbh: binding.hash });
  });
  app.use(tokenBindingErrorHandler());
  return app;
}

export async function start({ port = 0, host = '127.0.0.1', key, cert }: ExampleOptions): Promise<ExampleHandle> {
  const server = createServer({ key, cert, tokenBinding: { keyParameters: ['ecdsap256'] } }, createApp());
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
  console.log(`listening on ${handle.url}/ and ${handle.url}/api/me (self-signed certificate; Ctrl-C to stop)`);
  process.once('SIGINT', () => void handle.close());
}
