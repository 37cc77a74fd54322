/**
 * `tokbind serve`: a binding-aware HTTPS server to try clients against — `GET /whoami` answers
 * with the request's verified Token Binding, `GET /metrics` with the Prometheus text.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseKeyParameters } from '../codec/keyparams.js';
import { formatPrometheusMetrics } from '../http/metrics.js';
import type { TokenBindingServerOptions } from '../http/options.js';
import { createServer } from '../http/server.js';
import { createSelfSignedCertificate } from '../tls/certificate.js';
import { TokenBindingError } from '../errors.js';
import { sendProblem } from '../http/problem.js';
import { defineCommand, oneStdin, serverOptions } from './args.js';
import { loadCertificateAndKey } from './tls-files.js';
import { UsageError, reportError } from './io.js';
import { clusterOptions, isClusterPrimary, listenAndServe, parseWorkerCount, runWorkers, sharedFromPrimary } from './cluster.js';

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** The routes of `tokbind serve`; `/metrics` never asks for a binding (Prometheus sends none). */
function router(required: boolean) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method === 'GET' && path === '/metrics') {
      const text = formatPrometheusMetrics();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    // `--required` is applied here, not by the server, so that /metrics stays scrapeable; an
    // invalid header is still rejected by the server itself (unless --on-invalid ignore, where it
    // counts as no binding and is refused here).
    if (required && (req.tokenBinding === null || req.tokenBinding === undefined)) {
      return sendProblem(res, new TokenBindingError('ERR_TB_HEADER_MISSING'));
    }
    if (req.method === 'GET' && path === '/whoami') return json(res, 200, { tokenBinding: req.tokenBinding ?? null });
    json(res, 404, { error: 'not found' });
  };
}

export const serve = defineCommand(
  {
    name: 'serve',
    summary: 'run a binding-aware HTTPS server (GET /whoami, GET /metrics)',
    description:
      'A binding-aware HTTPS server (RFC 8473) with a self-signed certificate for localhost and --host unless --cert/--key ' +
      'are given. GET /whoami answers {"tokenBinding": …}; GET /metrics the Prometheus text (never subject to --required). ' +
      'Prints "listening on https://HOST:PORT" once ready and runs until SIGINT/SIGTERM (then exits 0).',
    options: {
      ...serverOptions,
      ...clusterOptions,
      cert: { type: 'string', placeholder: 'FILE', description: 'PEM certificate chain (with --key; - reads stdin)' },
      key: { type: 'string', placeholder: 'FILE', description: 'PEM private key (with --cert; - reads stdin)' },
      'key-parameters': {
        type: 'string',
        placeholder: 'LIST',
        default: 'ecdsap256,rsa2048_pss,rsa2048_pkcs1.5',
        description: 'comma-separated key parameters accepted, in order of preference',
      },
      required: { type: 'boolean', description: 'refuse requests without a valid Token Binding (400), except GET /metrics' },
      'on-invalid': {
        type: 'string',
        choices: ['reject', 'ignore'],
        default: 'reject',
        description: 'an invalid Sec-Token-Binding: reject with 400, or ignore it (request proceeds unbound)',
      },
      'inspect-client-hello': {
        type: 'boolean',
        description: "read each ClientHello's token_binding extension to tell unmet TLS conditions apart (metrics)",
      },
    },
    exitCodes: {
      0: 'stopped by SIGINT/SIGTERM',
      1: 'certificate or key rejected ({"error":{"code","message"}} on stderr), or the port cannot be bound (one line on stderr)',
    },
    examples: [
      'tokbind serve --port 8443 --key-parameters ecdsap256,rsa2048_pss --required',
      'PORT=0 tokbind serve --cert cert.pem --key key.pem',
      'curl -k https://127.0.0.1:8443/metrics',
    ],
  },
  async ({ values, given }, io, signal) => {
    let keyParameters: number[] | undefined;
    if (given.has('key-parameters')) {
      try {
        keyParameters = values['key-parameters'].split(',').map((k) => parseKeyParameters(k));
      } catch (err) {
        throw new UsageError(`--key-parameters: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError('--cert and --key go together');
    oneStdin({ '--cert': values.cert, '--key': values.key });
    const selfSigned = (): { key: string; cert: string } => createSelfSignedCertificate({ altNames: [...new Set(['localhost', '127.0.0.1', values.host])] });
    if (isClusterPrimary(values)) {
      if (values.cert === '-' || values.key === '-') throw new UsageError('--workers cannot read --cert/--key from stdin (each worker reads the files)');
      // Workers share one self-signed certificate (made here), so every connection presents the same.
      const shared = values.cert === undefined ? { tls: selfSigned() } : {};
      return runWorkers({ command: 'serve', workers: parseWorkerCount(values.workers), io, signal, shared });
    }
    let tls: { key: string | Buffer; cert: string | Buffer };
    try {
      tls =
        values.cert !== undefined && values.key !== undefined
          ? await loadCertificateAndKey(values.cert, values.key, io)
          : (sharedFromPrimary<{ tls?: { key: string; cert: string } }>()?.tls ?? selfSigned());
    } catch (err) {
      return reportError(io, err);
    }
    const tokenBinding: TokenBindingServerOptions = {
      onInvalid: values['on-invalid'] as 'reject' | 'ignore',
      ...(values['inspect-client-hello'] ? { inspectClientHello: true } : {}),
      ...(keyParameters === undefined ? {} : { keyParameters }),
    };

    let server: ReturnType<typeof createServer>;
    try {
      server = createServer({ ...tls, tokenBinding }, router(values.required));
    } catch (err) {
      return reportError(io, err);
    }
    // Handshakes that fail (scanners, untrusting clients) are the client's problem, not ours.
    server.on('tlsClientError', () => {});
    return listenAndServe({
      command: 'serve',
      server,
      scheme: 'https',
      host: values.host,
      port: values.port,
      proxyProtocol: values['proxy-protocol'],
      io,
      signal,
    });
  },
);
