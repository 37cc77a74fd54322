/**
 * The servers the shared case table runs against: tokbind's own servers (the reference), Express
 * and Fastify on plain Node TLS servers (facts taken lazily) and on tokbind's server (verdict
 * reused). Every one answers a request the same way: JSON with what the handler saw.
 */
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import express from 'express';
import Fastify from 'fastify';
import type { FastifyInstance, RawServerBase } from 'fastify';
import { tokenBinding as expressTokenBinding, tokenBindingErrorHandler } from '../../src/adapters/express.js';
import { tokenBinding as fastifyTokenBinding } from '../../src/adapters/fastify.js';
import type { TokenBindingAdapterOptions } from '../../src/adapters/request.js';
import { createSecureServer } from '../../src/http/http2.js';
import type { TokenBindingResult } from '../../src/http/result.js';
import { createServer } from '../../src/http/server.js';
import { listen, testCertificate, type Listening } from '../_tls.js';

/** What every target's handler answers with. */
export interface Seen {
  /** `'unset'`: the handler ran without a verdict on the request (a bug in the glue). */
  readonly tokenBinding: TokenBindingResult | null | 'unset';
  /** TTRP header names the handler could still see, in `headers` or `rawHeaders`. */
  readonly ttrp: string[];
}

export interface Target {
  readonly name: string;
  /** Speaks HTTP/2 (the client must use h2). */
  readonly http2: boolean;
  start(options: TokenBindingAdapterOptions): Promise<Listening>;
}

const TTRP = ['sec-provided-token-binding-id', 'sec-referred-token-binding-id', 'sec-other-token-binding-id'];

function seen(tokenBinding: TokenBindingResult | null | undefined, headers: IncomingHttpHeaders, rawHeaders: readonly string[]): string {
  const names = new Set<string>();
  for (const name of Object.keys(headers)) if (TTRP.includes(name)) names.add(name);
  for (let i = 0; i < rawHeaders.length; i += 2) if (TTRP.includes(rawHeaders[i]!.toLowerCase())) names.add(rawHeaders[i]!.toLowerCase());
  // `undefined` would vanish from the JSON and pass for null: make a missing verdict visible.
  const body: Seen = { tokenBinding: tokenBinding === undefined ? 'unset' : tokenBinding, ttrp: [...names] };
  return JSON.stringify(body);
}

const { key, cert } = testCertificate;

function expressApp(options: TokenBindingAdapterOptions): express.Express {
  const app = express();
  app.use(expressTokenBinding(options));
  app.get('/', (req, res) => {
    res.type('application/json').send(seen(req.tokenBinding, req.headers, req.rawHeaders));
  });
  app.use(tokenBindingErrorHandler());
  return app;
}

function fastifyRoutes<S extends RawServerBase>(app: FastifyInstance<S>, options: TokenBindingAdapterOptions): void {
  void app.register(fastifyTokenBinding, options);
  app.get('/', async (request, reply) => {
    void reply.type('application/json');
    return seen(request.tokenBinding, request.headers, request.raw.rawHeaders);
  });
}

async function listenFastify<S extends RawServerBase>(app: FastifyInstance<S>): Promise<Listening> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  return { port: address.port, close: () => app.close() };
}

export const targets: readonly Target[] = [
  {
    name: 'tokbind createServer',
    http2: false,
    start: (options) =>
      listen(createServer({ key, cert, tokenBinding: options }, (req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(seen(req.tokenBinding, req.headers, req.rawHeaders));
      })),
  },
  {
    name: 'express on https.createServer',
    http2: false,
    start: (options) => listen(https.createServer({ key, cert }, expressApp(options))),
  },
  {
    name: 'express on tokbind createServer',
    http2: false,
    start: (options) => listen(createServer({ key, cert, tokenBinding: options }, expressApp(options))),
  },
  {
    name: 'fastify with https option',
    http2: false,
    start: (options) => {
      const app = Fastify({ https: { key, cert }, forceCloseConnections: true });
      fastifyRoutes(app, options);
      return listenFastify(app);
    },
  },
  {
    name: 'fastify with tokbind serverFactory',
    http2: false,
    start: (options) => {
      const app = Fastify({
        serverFactory: (handler) => createServer({ key, cert, tokenBinding: options }, handler),
        forceCloseConnections: true,
      });
      fastifyRoutes(app, options);
      return listenFastify(app);
    },
  },
  {
    name: 'tokbind createSecureServer (HTTP/2)',
    http2: true,
    start: (options) =>
      listen(createSecureServer({ key, cert, tokenBinding: options }, (req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(seen(req.tokenBinding, req.headers, req.rawHeaders));
      })),
  },
  {
    name: 'fastify with http2 + tokbind createSecureServer serverFactory',
    http2: true,
    start: (options) => {
      const app = Fastify({
        http2: true,
        https: {},
        serverFactory: (handler) => createSecureServer({ key, cert, tokenBinding: options }, handler),
      });
      fastifyRoutes(app, options);
      return listenFastify(app);
    },
  },
  {
    name: 'fastify with http2 + https options',
    http2: true,
    start: (options) => {
      const app = Fastify({ http2: true, https: { key, cert } });
      fastifyRoutes(app, options);
      return listenFastify(app);
    },
  },
];
