/**
 * The server under test: tokbind's `createServer` (HTTPS, HTTP/1.1) on 127.0.0.1:0 with the test
 * certificate, answering every accepted request 200 with the verified IDs as JSON. Hostile
 * clients are counted through the server's own events.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type https from 'node:https';
import { createServer, type TokenBindingHttpsServerOptions } from '../../src/http/server.js';
import type { TokenBindingServerOptions } from '../../src/http/options.js';
import { listen, testCertificate } from '../_tls.js';

export interface ServerUnderTest {
  readonly server: https.Server;
  readonly port: number;
  /** Requests that reached the handler. */
  readonly handled: () => number;
  /** 'tlsClientError' events (handshakes that failed or were cut). */
  readonly tlsClientErrors: () => number;
  close(): Promise<void>;
}

/** The handler: 200 with the provided and referred IDs (or null). */
export function answer(req: IncomingMessage, res: ServerResponse): void {
  const tb = req.tokenBinding ?? null;
  const body = JSON.stringify({ id: tb?.provided.id ?? null, referred: tb?.referred?.id ?? null });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export async function startServer(
  tokenBinding: TokenBindingServerOptions = {},
  httpsOptions: Omit<TokenBindingHttpsServerOptions, 'tokenBinding'> = {},
): Promise<ServerUnderTest> {
  let handled = 0;
  let tlsClientErrors = 0;
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert, ...httpsOptions, tokenBinding }, (req, res) => {
    handled++;
    answer(req, res);
  });
  server.on('tlsClientError', () => {
    tlsClientErrors++;
  });
  const listening = await listen(server);
  return {
    server,
    port: listening.port,
    handled: () => handled,
    tlsClientErrors: () => tlsClientErrors,
    close: listening.close,
  };
}
