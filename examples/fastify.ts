/**
 * Token Binding with Fastify 5. tokbind's `createServer` is Fastify's `serverFactory` (it
 * verifies each request once); the plugin exposes the verdict as `request.tokenBinding` and,
 * registered again in the /api scope, requires it. Rejections are 400 `application/problem+json`
 * replies sent from the `onRequest` hook, before any route runs.
 *
 *   npm run build && node dist/examples/fastify.js             (PORT=8443 by default)
 *   npx tokbind fetch --insecure https://127.0.0.1:8443/api/me
 *
 * In your application: `import { createServer } from 'tokbind'` and
 * `import { tokenBinding } from 'tokbind/fastify'`. This file imports from the source tree so that
 * it is type-checked with the library.
 *
 * Fastify's own `https` option (or `http2: true, https: {…}`) works too: the plugin then takes
 * each connection's facts itself, but that server does not refuse TLS renegotiation unless
 * `https.secureOptions` includes `SSL_OP_NO_RENEGOTIATION`, and cannot inspect ClientHellos.
 */
import { pathToFileURL } from 'node:url';
import Fastify from 'fastify';
import { tokenBinding } from '../src/adapters/fastify.js';
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

export async function start({ port = 0, host = '127.0.0.1', key, cert }: ExampleOptions): Promise<ExampleHandle> {
  const app = Fastify({
    serverFactory: (handler) => createServer({ key, cert, tokenBinding: { keyParameters: ['ecdsap256'] } }, handler),
    forceCloseConnections: true,
  });
  // Everywhere: a valid binding is exposed, none is fine, an invalid one is a 400.
  await app.register(tokenBinding);
  app.get('/', async (request) => {
    const binding = request.tokenBinding?.provided;
    return { tokenBinding: binding ? { id: binding.id, tbh: binding.hash } : null };
  });
  // Under /api a binding is required.
  await app.register(
    async (api) => {
      await api.register(tokenBinding, { required: true });
      api.get('/me', async (request) => {
        const binding = request.tokenBinding!.provided; // never null under `required`
        return { id: binding.id, tbh: binding.hash };
      });
    },
    { prefix: '/api' },
  );
  await app.listen({ port, host });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  return { url: `https://${host}:${address.port}`, close: () => app.close() };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const handle = await start({ port: Number(process.env['PORT'] ?? 8443), ...createSelfSignedCertificate() });
  console.log(`listening on ${handle.url}/ and ${handle.url}/api/me (self-signed certificate; Ctrl-C to stop)`);
  process.once('SIGINT', () => void handle.close());
}
