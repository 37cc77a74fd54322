/**
 * Token-bound access tokens with Express 5 on tokbind's server: a toy token endpoint that binds
 * what it issues to the caller (`cnf.tbh` of its Token Binding ID, or `cnf.jkt` of the key that
 * signed its DPoP proof), and an API that verifies the token and its binding on every request.
 *
 *   npm run build && node dist/examples/token-server.js           (PORT=8443 by default)
 *
 * In your application: `import { signTokenBoundJwt, … } from 'tokbind/token'` and
 * `import { accessToken } from 'tokbind/token/express'`. A real authorization server lives
 * elsewhere and publishes its JWKS: give `accessToken({ jwks: new URL('https://as.example/jwks') })`.
 */
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import express from 'express';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { tokenBinding } from '../src/adapters/express.js';
import { createServer } from '../src/index.js';
import { createSelfSignedCertificate } from '../src/tls/certificate.js';
import {
  DPOP_ALGORITHMS,
  MemoryDpopReplayCache,
  normalizeHtu,
  selectTokenBindingID,
  signTokenBoundJwt,
  verifyDpopProof,
} from '../src/token/index.js';
import { accessToken } from '../src/token/express.js';
import type { ExampleHandle, ExampleOptions } from './express.js';

export const ISSUER = 'https://issuer.example';
export const AUDIENCE = 'https://api.example';

export async function createApp(): Promise<express.Express> {
  // The issuer's signing key and the JWKS the API trusts.
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] };
  const replayCache = new MemoryDpopReplayCache();

  const app = express();
  app.use(tokenBinding());

  // Token endpoint. With a DPoP proof: bound to its key (RFC 9449 §5). Otherwise bound to the
  // caller's provided Token Binding ID (draft-ietf-oauth-token-binding §3; a token for another
  // server would take selectTokenBindingID(req.tokenBinding, 'referred')).
  app.post('/token', async (req, res) => {
    try {
      const proof = req.headers.dpop;
      if (typeof proof === 'string') {
        const { jkt } = await verifyDpopProof(proof, {
          method: 'POST',
          htu: normalizeHtu(`https://${req.headers.host}/token`)!,
          algorithms: DPOP_ALGORITHMS,
          maxAge: 60,
          clockTolerance: 5,
          replayCache,
        });
        const token = await new SignJWT({ cnf: { jkt } }).setProtectedHeader({ alg: 'ES256', kid: 'k1' })
          .setIssuer(ISSUER).setAudience(AUDIENCE).setSubject('alice').setIssuedAt().setExpirationTime('5m').sign(privateKey);
        res.json({ access_token: token, token_type: 'DPoP' });
        return;
      }
      const token = await signTokenBoundJwt({ scope: 'read' }, {
        tokenBindingID: selectTokenBindingID(req.tokenBinding, 'provided'),
        key: privateKey, alg: 'ES256', kid: 'k1', issuer: ISSUER, audience: AUDIENCE, subject: 'alice',
      });
      res.json({ access_token: token, token_type: 'Bearer' });
    } catch (err) {
      // No binding to bind to, or an invalid proof: no token (RFC 6749 §5.2).
      res.status(400).json({ error: 'invalid_request', code: (err as { code?: string }).code });
    }
  });

  // The API: every request needs a valid token, bound to this very client.
  app.use('/api', accessToken({ issuer: ISSUER, audience: AUDIENCE, jwks }));
  app.get('/api/me', (req, res) => {
    res.json({ sub: req.accessToken!.payload.sub, cnf: req.accessToken!.method });
  });
  return app;
}

export async function start({ port = 0, host = '127.0.0.1', key, cert }: ExampleOptions): Promise<ExampleHandle> {
  const server = createServer({ key, cert }, await createApp());
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
  console.log(`listening on ${handle.url} (POST /token, GET /api/me; self-signed certificate; Ctrl-C to stop)`);
  process.once('SIGINT', () => void handle.close());
}
