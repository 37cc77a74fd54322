/**
 * The relays of the proxy and sidecar benchmarks, each with its far end in the same process (so
 * the server core carries both, in every variant alike):
 *
 * - `proxy_plain`: an HTTPS front relaying to a plain-HTTP backend through an undici `Pool` —
 *   the same library tokbind proxy relays with, doing what any reverse proxy does per request
 *   (hop-by-hop headers dropped, `X-Forwarded-For/Proto/Host` and `Forwarded` added, bodies
 *   streamed) and no Token Binding. The baseline.
 * - `proxy_tokbind`: `createProxy` (tokbind/proxy, HTTP/1.1 front) to the same backend, which
 *   answers 500 unless the request came with `Sec-Provided-Token-Binding-ID` — so a run where
 *   verification silently did not happen fails.
 * - `forward_plain`: a plain-HTTP front on loopback relaying to an HTTPS target through an undici
 *   `Agent` (no binding). The baseline.
 * - `forward_tokbind`: `createForwarder` (tokbind forward) to the same target, a tokbind
 *   `createServer` that answers 500 unless the request was bound.
 */
import { constants } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Agent, Pool, type Dispatcher } from 'undici';
import { HOP_BY_HOP_HEADERS } from '../src/proxy/headers.js';
import { serveParent } from './lib/proc.js';

export type RelayKind = 'proxy_plain' | 'proxy_tokbind' | 'forward_plain' | 'forward_tokbind';

const BODY = Buffer.from('ok');
const HEADERS = { 'content-type': 'text/plain', 'content-length': String(BODY.length) };

function listen(server: http.Server | https.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** What the baseline relay needs of an undici dispatcher. */
interface Streamer {
  stream(options: Dispatcher.RequestOptions, factory: Dispatcher.StreamFactory, callback: (err: Error | null) => void): void;
}

/** The baseline relay: undici, streaming both ways, the usual forwarding headers, no binding. */
function plainRelay(dispatcher: Streamer, scheme: 'http' | 'https') {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !HOP_BY_HOP_HEADERS.has(name) && name !== 'host') headers[name] = value;
    }
    const client = req.socket.remoteAddress ?? '';
    headers['x-forwarded-for'] = client;
    headers['x-forwarded-proto'] = scheme;
    headers['x-forwarded-host'] = req.headers.host ?? '';
    headers['forwarded'] = `for=${client};proto=${scheme}`;
    dispatcher.stream(
      { path: req.url ?? '/', method: req.method as Dispatcher.HttpMethod, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req },
      ({ statusCode, headers: upstream }) => {
        const out: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(upstream)) if (value !== undefined && !HOP_BY_HOP_HEADERS.has(name)) out[name] = value;
        res.writeHead(statusCode, out);
        return res;
      },
      (err) => {
        if (err !== null && !res.headersSent) res.writeHead(502).end();
        else if (err !== null) res.destroy();
      },
    );
  };
}

let close: () => Promise<void> = async () => {};

async function start(cfg: { kind: RelayKind; key: string; cert: string }): Promise<{ port: number }> {
  const tls = { key: cfg.key, cert: cfg.cert, secureOptions: constants.SSL_OP_NO_TICKET };
  if (cfg.kind === 'proxy_plain' || cfg.kind === 'proxy_tokbind') {
    const bound = cfg.kind === 'proxy_tokbind';
    const backend = http.createServer((req, res) => {
      res.writeHead(bound && req.headers['sec-provided-token-binding-id'] === undefined ? 500 : 200, HEADERS).end(BODY);
    });
    backend.keepAliveTimeout = 600_000;
    const upstream = `http://127.0.0.1:${await listen(backend)}`;
    if (!bound) {
      const pool = new Pool(upstream, { connections: 128 });
      const front = https.createServer(tls, plainRelay(pool, 'https'));
      front.keepAliveTimeout = 600_000;
      const port = await listen(front);
      close = async () => {
        front.closeAllConnections();
        await pool.close();
        backend.closeAllConnections();
      };
      return { port };
    }
    const { createProxy } = await import('../src/proxy/server.js');
    const proxy = createProxy({ upstream, key: cfg.key, cert: cfg.cert, tls: { secureOptions: constants.SSL_OP_NO_TICKET }, http2: false });
    const port = await listen(proxy.server as https.Server);
    close = async () => {
      await proxy.close();
      backend.closeAllConnections();
    };
    return { port };
  }
  // The sidecar benchmarks: the far end is a tokbind server (verifying when a header comes).
  const bound = cfg.kind === 'forward_tokbind';
  const { createServer, getTokenBinding } = await import('../src/http/server.js');
  const target = createServer({ ...tls, tokenBinding: {} }, (req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(bound && getTokenBinding(req)?.provided === undefined ? 500 : 200, HEADERS).end(BODY);
  });
  target.keepAliveTimeout = 600_000;
  const targetUrl = `https://127.0.0.1:${await listen(target)}`;
  if (!bound) {
    const agent = new Agent({ connect: { rejectUnauthorized: false }, connections: 128 });
    const relay = plainRelay(new OriginDispatcher(agent, targetUrl), 'http');
    const front = http.createServer(relay);
    front.keepAliveTimeout = 600_000;
    const port = await listen(front);
    close = async () => {
      front.closeAllConnections();
      await agent.close();
      target.closeAllConnections();
    };
    return { port };
  }
  const { createForwarder } = await import('../src/proxy/forward.js');
  const forwarder = createForwarder({ target: targetUrl, dispatcher: { connect: { rejectUnauthorized: false }, connections: 128 } });
  forwarder.server.keepAliveTimeout = 600_000;
  const port = await listen(forwarder.server);
  close = async () => {
    await forwarder.close();
    target.closeAllConnections();
  };
  return { port };
}

/** An undici Agent fixed to one origin, for `stream` calls without `origin`. */
class OriginDispatcher implements Streamer {
  constructor(
    readonly agent: Agent,
    readonly origin: string,
  ) {}
  stream(options: Dispatcher.RequestOptions, factory: Dispatcher.StreamFactory, callback: (err: Error | null) => void): void {
    this.agent.stream({ ...options, origin: this.origin }, factory, (err: Error | null) => callback(err));
  }
}

serveParent(async (msg) => {
  switch (msg.cmd) {
    case 'listen':
      return start(msg.config as { kind: RelayKind; key: string; cert: string });
    case 'cpu': {
      const c = process.cpuUsage();
      return { cpuUs: c.user + c.system, at: performance.now() };
    }
    case 'close':
      await close();
      return {};
    default:
      throw new Error(`unknown command ${String(msg.cmd)}`);
  }
});
