/**
 * A deliberately low-level Token Binding test client: one real TLS connection to 127.0.0.1 whose
 * EKM the test reads itself, so it can sign for this connection, replay on another one, send two
 * headers or garbage. HTTP/1.1 (keep-alive, every request on the same socket) or HTTP/2.
 */
import { once } from 'node:events';
import https from 'node:https';
import http2 from 'node:http2';
import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { connectTls, testCertificate } from '../_tls.js';

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

export interface TestResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface TestConnection {
  /** `EXPORTER-Token-Binding`, 32 bytes, no context: what a Token Binding client signs. */
  readonly ekm: Uint8Array;
  readonly protocol: string | null;
  readonly alpn: string | false | null;
  request(path: string, headers?: Record<string, string | string[]>): Promise<TestResponse>;
  close(): Promise<void>;
}

export interface ConnectOptions {
  readonly tls: TlsVersion;
  readonly http2?: boolean;
  /** OpenSSL options for the client, e.g. `0x1` (SSL_OP_NO_EXTENDED_MASTER_SECRET) to refuse EMS. */
  readonly secureOptions?: number;
}

/** Opens one TLS connection (pinned to one TLS version) and speaks HTTP/1.1 or HTTP/2 on it. */
export async function openConnection(port: number, options: ConnectOptions): Promise<TestConnection> {
  const socket = await connectTls(port, {
    minVersion: options.tls,
    maxVersion: options.tls,
    ALPNProtocols: options.http2 === true ? ['h2'] : ['http/1.1'],
    ca: testCertificate.ca,
    ...(options.secureOptions !== undefined && { secureOptions: options.secureOptions }),
  });
  // Taken here with Node's API, not src/tls, so the server's EKM is checked against an independent
  // computation. No context argument (RFC 5705 "no context"; @types/node wrongly requires one).
  const exportNoContext = socket.exportKeyingMaterial as (length: number, label: string) => Buffer;
  const ekm = new Uint8Array(exportNoContext.call(socket, 32, 'EXPORTER-Token-Binding'));
  const base = { ekm, protocol: socket.getProtocol(), alpn: socket.alpnProtocol };
  return options.http2 === true ? { ...base, ...http2Client(port, socket) } : { ...base, ...http1Client(socket) };
}

function http1Client(socket: TLSSocket): Pick<TestConnection, 'request' | 'close'> {
  // The agent hands out our already-connected socket once; a second call would mean the server
  // closed the connection and a new one is needed — a test bug, so fail loudly.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  let handedOut = false;
  agent.createConnection = () => {
    if (handedOut) throw new Error('test connection was closed by the server; open a new one');
    handedOut = true;
    return socket;
  };
  return {
    request: (path, headers = {}) =>
      new Promise((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', servername: 'localhost', path, headers, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      }),
    close: async () => {
      agent.destroy();
      if (!socket.destroyed) {
        socket.destroy();
        await once(socket, 'close');
      }
    },
  };
}

function http2Client(port: number, socket: TLSSocket): Pick<TestConnection, 'request' | 'close'> {
  const session = http2.connect(`https://localhost:${port}`, { createConnection: () => socket });
  session.on('error', () => {});
  return {
    request: (path, headers = {}) =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':path': path, ...headers });
        let status = 0;
        let responseHeaders: IncomingHttpHeaders = {};
        const chunks: Buffer[] = [];
        stream.on('response', (h) => {
          status = Number(h[':status']);
          responseHeaders = h as IncomingHttpHeaders;
        });
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks).toString('utf8') }));
        stream.on('error', reject);
        stream.end();
      }),
    close: () =>
      new Promise<void>((resolve) => {
        if (session.closed || session.destroyed) return resolve();
        session.close(() => resolve());
        // A server-side reset can leave close() waiting; destroying the socket ends it.
        socket.destroy();
      }),
  };
}
