/**
 * The demo app on tokbind's server, with the session store it is asked for: what `tokbind demo`
 * runs its walkthrough against, and what `tokbind demo --serve` keeps running on its own.
 * express-session (and, for Redis, connect-redis + redis) are optional peer dependencies of
 * tokbind: they are loaded here, when the demo runs, with a clear error when missing.
 */
import { once } from 'node:events';
import type { RequestListener } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { Store } from 'express-session';
import { createServer } from '../http/server.js';
import { createSelfSignedCertificate } from '../tls/certificate.js';
import type { DeviceBoundSessionOptions } from '../session/dbsc.js';
import { acceptProxyProtocol } from '../tls/proxy-protocol.js';

/** `memory`, or a Redis server (`redis://HOST:PORT`). */
export type DemoSessionStore = { readonly kind: 'memory' } | { readonly kind: 'redis'; readonly url: string };

/** The demo could not start: a message for the user (and the listen error, when that was it). */
export class DemoStartError extends Error {
  override readonly name = 'DemoStartError';
  /** Set when the server could not listen (EADDRINUSE, EACCES, …). */
  readonly listenError: Error | undefined;

  constructor(message: string, listenError?: Error) {
    super(message);
    this.listenError = listenError;
  }
}

/**
 * Parses `--session-store`: `memory` or `redis://HOST:PORT` (optional `/DB`).
 *
 * @throws {TypeError} for anything else (the CLI turns it into a usage error)
 */
export function parseDemoSessionStore(value: string): DemoSessionStore {
  if (value === 'memory') return { kind: 'memory' };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`--session-store must be memory or redis://HOST:PORT, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'redis:' || url.hostname === '' || url.search !== '' || url.hash !== '' || !/^(\/\d{0,2})?$/.test(url.pathname)) {
    throw new TypeError(`--session-store must be memory or redis://HOST:PORT, got ${JSON.stringify(value)}`);
  }
  return { kind: 'redis', url: url.href };
}

interface OpenedStore {
  readonly store: Store | undefined;
  close(): Promise<void>;
}

function missing(what: string, err: unknown): never {
  const code = (err as { code?: string }).code;
  if (code === 'ERR_MODULE_NOT_FOUND') throw new DemoStartError(`the demo needs ${what}: npm install ${what}`);
  throw err;
}

async function openStore(spec: DemoSessionStore): Promise<OpenedStore> {
  if (spec.kind === 'memory') return { store: undefined, close: async () => {} };
  const [{ RedisStore }, { createClient }] = await Promise.all([
    import('connect-redis').catch((err: unknown) => missing('connect-redis redis', err)),
    import('redis').catch((err: unknown) => missing('connect-redis redis', err)),
  ]);
  let connected = false;
  const client = createClient({
    url: spec.url,
    socket: {
      connectTimeout: 5000,
      // Retry a connection that was up; a server that is not there at start is an error now.
      reconnectStrategy: (retries: number) => (connected ? Math.min(100 * retries, 2000) : new Error('cannot connect')),
    },
  });
  // Errors surface through the commands that fail (a 500); without a listener they would crash the process.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    const reason = (err as { code?: string }).code ?? (err as Error).message;
    await client.destroy();
    throw new DemoStartError(`cannot reach the session store ${spec.url}: ${reason}`);
  }
  connected = true;
  return {
    store: new RedisStore({ client, prefix: 'tokbind-demo:' }),
    close: async () => {
      await client.close().catch(() => client.destroy());
    },
  };
}

/** Options of {@link startDemoServer}. */
export interface DemoServerOptions {
  /** 0 picks a free port. */
  readonly port: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default memory. */
  readonly sessionStore?: DemoSessionStore;
  /** An app to serve instead of the demo app (tests). */
  readonly app?: RequestListener;
  /** Offer DBSC on login (`--dbsc`; options such as `cookieTtlSeconds`). Default off. */
  readonly dbsc?: DeviceBoundSessionOptions | boolean;
  /** Certificate and key. Default: a fresh self-signed one for localhost and 127.0.0.1. */
  readonly tls?: { readonly key: string; readonly cert: string };
  /** The session cookie signing secret: the same on every node that shares a store. Default: random. */
  readonly secret?: string;
  /** Read a PROXY protocol header before TLS on every connection (behind an L4 balancer). */
  readonly proxyProtocol?: boolean;
}

/** A running demo server. */
export interface DemoServer {
  /** `https://HOST:PORT` (IPv6 hosts in brackets). */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The self-signed certificate's PEM (trust it as `ca`). */
  readonly cert: string;
  /** The TLS server (TLS session ticket keys, events). */
  readonly server: ReturnType<typeof createServer>;
  close(): Promise<void>;
}

/**
 * Starts tokbind's server with the demo app (or `app`) on `host:port`, sessions in the given store.
 *
 * @throws {DemoStartError} when the port cannot be bound, the store cannot be reached, or a
 *   library the demo needs is not installed
 */
export async function startDemoServer(options: DemoServerOptions): Promise<DemoServer> {
  const { port, host = '127.0.0.1', sessionStore = { kind: 'memory' } } = options;
  const opened = options.app === undefined ? await openStore(sessionStore) : { store: undefined, close: async () => {} };
  let app = options.app;
  try {
    if (app === undefined) {
      const { createDemoApp } = await import('./app.js').catch((err: unknown) => missing('express-session', err));
      app = createDemoApp({
        ...(opened.store === undefined ? {} : { store: opened.store }),
        ...(options.dbsc === undefined ? {} : { dbsc: options.dbsc }),
        ...(options.secret === undefined ? {} : { secret: options.secret }),
      }).handler;
    }
  } catch (err) {
    await opened.close();
    throw err;
  }
  const { key, cert } = options.tls ?? createSelfSignedCertificate({ altNames: ['localhost', '127.0.0.1'], days: 30 });
  // Not `required`: a request without Sec-Token-Binding reaches the app, which explains itself.
  const server = createServer({ key, cert, tokenBinding: { required: false } }, app);
  server.on('tlsClientError', () => {});
  const listener: NetServer = options.proxyProtocol === true ? acceptProxyProtocol(server) : server;
  try {
    listener.listen(port, host);
    await once(listener, 'listening');
  } catch (err) {
    await opened.close();
    const code = (err as { code?: string }).code;
    throw new DemoStartError(`cannot listen on ${host}:${port}: ${code ?? String(err)}`, err as Error);
  }
  const listening = (listener.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `https://${shown}:${listening}`,
    host,
    port: listening,
    cert,
    server,
    close: async () => {
      const closed = [once(listener, 'close'), ...(listener === server ? [] : [once(server, 'close')])];
      listener.close();
      if (listener !== server) server.close();
      server.closeAllConnections();
      await Promise.all(closed);
      await opened.close();
    },
  };
}
