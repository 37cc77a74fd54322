/**
 * Token Binding on plain Node: tokbind's `createServer` is `https.createServer` plus verification.
 * Every request must carry a valid Sec-Token-Binding (RFC 8473 §2); the handler reads the verified
 * Token Binding ID from `req.tokenBinding`.
 *
 *   npm run build && node dist/examples/node-https.js          (PORT=8443 by default)
 *   npx tokbind fetch --insecure https://127.0.0.1:8443/
 *
 * In your application: `import { createServer } from 'tokbind'`. This file imports from the
 * source tree so that it is type-checked with the library.
 */
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
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
  const server = createServer(
    // `required`: a request without Sec-Token-Binding is answered 400 before the handler runs,
    // as is any invalid one (bad signature, replayed from another connection, malformed, …).
    { key, cert, tokenBinding: { required: true, keyParameters: ['ecdsap256'] } },
    (req, res) => {
      const binding = req.tokenBinding!.provided; // never null under `required`
      res.setHeader('content-type', 'application/json');
      // `hash` is the `tbh` a token bound to this client carries in its `cnf` claim.
      res.end(JSON.stringify({ id: binding.id, tbh: binding.hash }));
    },
  );
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
  console.log(`listening on ${handle.url}/ (self-signed certificate; Ctrl-C to stop)`);
  process.once('SIGINT', () => void handle.close());
}
