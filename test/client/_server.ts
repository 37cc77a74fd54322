/**
 * A plain node:https server that checks Token Binding itself — independent of src/http: it
 * takes the EKM of the very connection a request came on, parses `Sec-Token-Binding` with the
 * codec and verifies every binding with src/crypto. Each request is recorded with the
 * connection it arrived on, so tests can tell first requests on fresh connections apart.
 */
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { base64urlEncode } from '../../src/codec/base64url.js';
import { parseSecTokenBindingHeader } from '../../src/codec/header.js';
import { verifyTokenBinding } from '../../src/crypto/verify.js';
import { listen, testCertificate } from '../_tls.js';

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  /** 1, 2, … in the order connections were accepted. */
  readonly connection: number;
  /** 0 for the first request on its connection. */
  readonly indexOnConnection: number;
  /** How many Sec-Token-Binding header lines the request carried. */
  readonly headerCount: number;
  /** Every binding parsed and its signature verified over this connection's EKM. */
  readonly valid: boolean;
  readonly reason: string | null;
  /** base64url TokenBindingIDs. */
  readonly provided: string | null;
  readonly referred: string | null;
  readonly body: string;
  /** The TLS session was resumed (abbreviated handshake). */
  readonly resumed: boolean;
}

export type Route = (req: http.IncomingMessage, res: http.ServerResponse, seen: SeenRequest) => void;

export interface CheckingServer {
  readonly port: number;
  readonly seen: SeenRequest[];
  url(path?: string, host?: string): string;
  close(): Promise<void>;
}

export interface CheckingServerOptions {
  readonly tls?: https.ServerOptions;
  readonly routes?: Record<string, Route>;
  /** Plain HTTP instead of HTTPS. */
  readonly plain?: boolean;
}

function check(req: http.IncomingMessage): Pick<SeenRequest, 'headerCount' | 'valid' | 'reason' | 'provided' | 'referred'> {
  const lines: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === 'sec-token-binding') lines.push(req.rawHeaders[i + 1]!);
  }
  const none = { headerCount: lines.length, provided: null, referred: null };
  if (lines.length !== 1) return { ...none, valid: false, reason: lines.length === 0 ? 'no header' : 'duplicate header' };
  const socket = req.socket as TLSSocket;
  if (typeof socket.exportKeyingMaterial !== 'function') return { ...none, valid: false, reason: 'not TLS' };
  // No context argument (RFC 8471 §3.3); @types/node wrongly makes it mandatory.
  const exportKeyingMaterial = socket.exportKeyingMaterial as (length: number, label: string) => Buffer;
  const ekm = new Uint8Array(exportKeyingMaterial.call(socket, 32, 'EXPORTER-Token-Binding'));
  try {
    const message = parseSecTokenBindingHeader(lines[0]!);
    const provided = message.bindings.filter((b) => b.type === 0);
    const referred = message.bindings.filter((b) => b.type === 1);
    const valid = provided.length === 1 && referred.length <= 1 && message.bindings.every((b) => verifyTokenBinding(b, ekm));
    return {
      headerCount: 1,
      valid,
      reason: valid ? null : 'bad bindings or signature',
      provided: provided[0] === undefined ? null : base64urlEncode(provided[0].id.raw),
      referred: referred[0] === undefined ? null : base64urlEncode(referred[0].id.raw),
    };
  } catch (err) {
    return { ...none, headerCount: 1, valid: false, reason: (err as Error).message };
  }
}

/**
 * Starts the server on 127.0.0.1:0 with the test certificate (SANs localhost and 127.0.0.1).
 * Unrouted paths answer 200 with the SeenRequest as JSON when valid, 400 otherwise.
 */
export async function startCheckingServer(options: CheckingServerOptions = {}): Promise<CheckingServer> {
  const seen: SeenRequest[] = [];
  const connections = new WeakMap<object, { id: number; requests: number }>();
  let nextConnection = 1;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let facts = connections.get(req.socket);
      if (facts === undefined) {
        facts = { id: nextConnection++, requests: 0 };
        connections.set(req.socket, facts);
      }
      const url = new URL(req.url ?? '/', 'https://x');
      const entry: SeenRequest = {
        method: req.method ?? '',
        path: url.pathname,
        connection: facts.id,
        indexOnConnection: facts.requests++,
        ...check(req),
        body: Buffer.concat(chunks).toString(),
        resumed: typeof (req.socket as TLSSocket).isSessionReused === 'function' && (req.socket as TLSSocket).isSessionReused(),
      };
      seen.push(entry);
      const route = options.routes?.[url.pathname];
      if (route !== undefined) return route(req, res, entry);
      res.writeHead(entry.valid ? 200 : 400, { 'content-type': 'application/json' });
      res.end(JSON.stringify(entry));
    });
  };
  const server =
    options.plain === true
      ? http.createServer(handler)
      : https.createServer({ key: testCertificate.key, cert: testCertificate.cert, ...options.tls }, handler);
  server.on('tlsClientError', () => {});
  const listening = await listen(server);
  return {
    port: listening.port,
    seen,
    url: (path = '/', host = '127.0.0.1') => `${options.plain === true ? 'http' : 'https'}://${host}:${listening.port}${path}`,
    close: listening.close,
  };
}

/** OpenSSL's SSL_OP_NO_EXTENDED_MASTER_SECRET (not in node:crypto's constants). */
export const SSL_OP_NO_EXTENDED_MASTER_SECRET = 0x1;
