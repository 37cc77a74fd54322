/**
 * The benchmark server (a child process, pinned to its own core). Three variants behind the same
 * tiny handler (200, two bytes, Content-Length):
 *
 * - `plain`: `https.createServer`, no Token Binding — the baseline;
 * - `tokbind`: tokbind's `createServer` (default options: ecdsap256, not required, no ClientHello
 *   inspection); the handler answers 500 unless the request came with a verified binding, so a
 *   run where verification silently did not happen fails instead of flattering the figure;
 * - `dpop`: `https.createServer` verifying an RFC 9449 DPoP proof per request with jose (401 on
 *   failure);
 * - `floor`: `https.createServer` doing the least any in-line Token Binding server must do per
 *   connection — export the EKM at 'secureConnection' and verify one ECDSA P-256 signature with a
 *   pre-imported key on the connection's first request — and nothing else (no parsing, no
 *   checks). The ceiling for a new-connection ratio on this machine.
 *
 * - `plain_h2` / `tokbind_h2`: `http2.createSecureServer` and tokbind's `createSecureServer`, the
 *   same handler (tokbind's answers 500 without a verified binding).
 *
 * Every variant sets SSL_OP_NO_TICKET (no resumption) unless `resumption: true` and a long keep-alive timeout (idle
 * connections stay open for the memory figure). Commands: `listen`, `cpu`, `heap`, `connections`, `snapshot`, `exit`.
 */
import { constants, randomBytes, sign, verify } from 'node:crypto';
import { writeHeapSnapshot } from 'node:v8';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { createSecureServer as createPlainHttp2Server, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { TokenBindingServerOptions } from '../src/http/options.js';
import { createDpopVerifier } from './dpop.js';
import { generateKeyPair } from './lib/keys.js';
import { serveParent } from './lib/proc.js';

export type ServerKind = 'plain' | 'tokbind' | 'dpop' | 'floor' | 'plain_h2' | 'tokbind_h2' | 'tokbind_metrics';

export interface ListenConfig {
  readonly kind: ServerKind;
  readonly key: string;
  readonly cert: string;
  readonly tokenBinding?: TokenBindingServerOptions;
  /** Issue TLS session tickets (resumption), instead of SSL_OP_NO_TICKET. Default false. */
  readonly resumption?: boolean;
}

const BODY = Buffer.from('ok');
const HEADERS = { 'content-type': 'text/plain', 'content-length': String(BODY.length) };

function ok(res: ServerResponse): void {
  res.writeHead(200, HEADERS);
  res.end(BODY);
}

function fail(res: ServerResponse, status: number): void {
  res.writeHead(status, HEADERS);
  res.end(BODY);
}

function okH2(res: Http2ServerResponse): void {
  res.writeHead(200, HEADERS);
  res.end(BODY);
}

function failH2(res: Http2ServerResponse, status: number): void {
  res.writeHead(status, HEADERS);
  res.end(BODY);
}

let server: https.Server | Http2SecureServer | null = null;

async function create(cfg: ListenConfig): Promise<https.Server | Http2SecureServer> {
  const tls = { key: cfg.key, cert: cfg.cert, secureOptions: cfg.resumption === true ? 0 : constants.SSL_OP_NO_TICKET };
  if (cfg.kind === 'plain') return https.createServer(tls, (_req, res) => ok(res));
  if (cfg.kind === 'plain_h2') return createPlainHttp2Server(tls, (_req, res) => okH2(res));
  if (cfg.kind === 'tokbind_h2') {
    const { createSecureServer } = await import('../src/http/http2.js');
    const { getTokenBinding } = await import('../src/http/server.js');
    return createSecureServer({ ...tls, tokenBinding: cfg.tokenBinding ?? {} }, (req: Http2ServerRequest, res: Http2ServerResponse) => {
      if (getTokenBinding(req)?.provided === undefined) failH2(res, 500);
      else okH2(res);
    });
  }
  if (cfg.kind === 'tokbind_metrics') {
    // tokbind with tokbind/metrics attached: a prom-client registry subscribed to every channel
    // (so cache hits are timed too) — what a scraped production server runs.
    const { Registry } = await import('prom-client');
    const { registerTokenBindingMetrics } = await import('../src/metrics/prometheus.js');
    registerTokenBindingMetrics(new Registry());
  }
  if (cfg.kind === 'tokbind' || cfg.kind === 'tokbind_metrics') {
    // Loaded only here: the baseline processes never load tokbind at all.
    const { createServer: createTokbindServer, getTokenBinding } = await import('../src/http/server.js');
    return createTokbindServer({ ...tls, tokenBinding: cfg.tokenBinding ?? {} }, (req: IncomingMessage, res: ServerResponse) => {
      if (getTokenBinding(req)?.provided === undefined) fail(res, 500);
      else ok(res);
    });
  }
  if (cfg.kind === 'floor') return floorServer(tls);
  let verify: ReturnType<typeof createDpopVerifier> | null = null;
  const s = https.createServer(tls, (req, res) => {
    verify!(req).then(
      () => ok(res),
      () => fail(res, 401),
    );
  });
  s.once('listening', () => {
    verify = createDpopVerifier({ origin: `https://127.0.0.1:${(s.address() as AddressInfo).port}` });
  });
  return s;
}

function floorServer(tls: https.ServerOptions): https.Server {
  const { privateKey, publicKey } = generateKeyPair('ec');
  const data = randomBytes(34);
  const key = { key: publicKey, dsaEncoding: 'ieee-p1363' as const };
  const sig = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const ekms = new WeakMap<object, Buffer>();
  const verified = new WeakSet<object>();
  const s = https.createServer(tls, (req, res) => {
    const socket = req.socket;
    if (!verified.has(socket)) {
      if (ekms.get(socket) === undefined || !verify('sha256', data, key, sig)) return fail(res, 500);
      verified.add(socket);
    }
    ok(res);
  });
  s.prependListener('secureConnection', (socket: TLSSocket) => {
    // No context argument (RFC 8471 §3.3); @types/node declares it required.
    const exportEkm = socket.exportKeyingMaterial as (length: number, label: string) => Buffer;
    ekms.set(socket, exportEkm.call(socket, 32, 'EXPORTER-Token-Binding'));
  });
  return s;
}

async function listen(cfg: ListenConfig): Promise<{ port: number }> {
  const s = await create(cfg);
  server = s;
  if (s instanceof https.Server) {
    // Idle connections must outlive the memory figure; the default (5 s) would close them.
    s.keepAliveTimeout = 600_000;
    s.headersTimeout = 60_000;
  }
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return { port: (s.address() as AddressInfo).port };
}

async function heap(): Promise<Record<string, number>> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('the server needs --expose-gc for memory figures');
  // Several passes with a turn of the event loop between them: weak maps and finalizers
  // (closed sockets) settle over more than one collection.
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, external: m.external, rss: m.rss, arrayBuffers: m.arrayBuffers };
}

serveParent(async (msg) => {
  switch (msg.cmd) {
    case 'listen':
      return listen(msg.config as ListenConfig);
    case 'cpu': {
      const c = process.cpuUsage();
      return { cpuUs: c.user + c.system, at: performance.now() };
    }
    case 'heap':
      return heap();
    case 'snapshot': {
      // For investigating the memory figure (bench/profile.ts style tooling): a heap snapshot.
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      return { path: writeHeapSnapshot(msg.path as string) };
    }
    case 'connections':
      return { connections: await new Promise<number>((resolve) => server!.getConnections((_e: Error | null, n: number) => resolve(n))) };
    default:
      throw new Error(`unknown command ${String(msg.cmd)}`);
  }
});
