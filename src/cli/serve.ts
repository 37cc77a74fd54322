/**
 * `tokbind serve`: a binding-aware HTTPS server to try clients against — `GET /whoami` answers
 * with the request's verified Token Binding (and, with `--jwks`, its verified access token),
 * `GET /metrics` with the Prometheus text.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseKeyParameters } from '../codec/keyparams.js';
import type { TokenBindingServerOptions } from '../http/options.js';
import { createServer } from '../http/server.js';
import { TokenBindingError } from '../errors.js';
import { createClusterMetrics, createServerMetrics, type ClusterMetrics } from '../metrics/cluster.js';
import { sendProblem } from '../http/problem.js';
import { sendAccessTokenChallenge, verifyForGlue } from '../token/respond.js';
import { createAccessTokenVerifier, loadJwksFile, type AccessTokenVerifier } from '../token/verify.js';
import { defineCommand, oneStdin, serverOptions, tlsServerOptions } from './args.js';
import { checkCertificateOptions, serverCertificate, sharedCertificate } from './tls-files.js';
import { UsageError, reportError } from './io.js';
import { clusterOptions, isClusterPrimary, listenAndServe, parseWorkerCount, runWorkers } from './cluster.js';

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** The access token check of `--jwks`: `undefined` when off. */
interface TokenCheck {
  readonly verifier: AccessTokenVerifier;
  readonly requireToken: boolean;
}

/** The routes of `tokbind serve`; `/metrics` never asks for a binding (Prometheus sends none). */
function router(required: boolean, tokens: TokenCheck | undefined, metrics: ClusterMetrics) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method === 'GET' && path === '/metrics') {
      // prom-client (tokbind/metrics); under node:cluster, every worker's figures.
      metrics.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
          res.end(text);
        },
        (err: unknown) => json(res, 503, { error: err instanceof Error ? err.message : String(err) }),
      );
      return;
    }
    // `--required` is applied here, not by the server, so that /metrics stays scrapeable; an
    // invalid header is still rejected by the server itself (unless --on-invalid ignore, where it
    // counts as no binding and is refused here).
    if (required && (req.tokenBinding === null || req.tokenBinding === undefined)) {
      return sendProblem(res, new TokenBindingError('ERR_TB_HEADER_MISSING'));
    }
    if (tokens === undefined) return answer(req, res, path, undefined);
    // --jwks: every route but /metrics needs a valid, bound access token (or none, without --require-token).
    verifyForGlue(req, tokens).then(
      (token) => {
        if (token instanceof TokenBindingError) return sendAccessTokenChallenge(res, tokens.verifier, token);
        if (token?.dpopNonce !== undefined) res.setHeader('dpop-nonce', token.dpopNonce);
        answer(req, res, path, token === null ? null : { sub: token.payload.sub ?? null, cnf: token.method });
      },
      () => json(res, 500, { error: 'internal error' }),
    );
  };
}

function answer(req: IncomingMessage, res: ServerResponse, path: string | undefined, token: { sub: unknown; cnf: unknown } | null | undefined): void {
  if (req.method === 'GET' && path === '/whoami') {
    return json(res, 200, token === undefined ? { tokenBinding: req.tokenBinding ?? null } : { tokenBinding: req.tokenBinding ?? null, token });
  }
  json(res, 404, { error: 'not found' });
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
      ...tlsServerOptions,
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
      jwks: {
        type: 'string',
        placeholder: 'FILE',
        description:
          'verify JWT access tokens against this JWKS (with --issuer, --audience): cnf.tbh, cnf.jkt (DPoP) and cnf["x5t#S256"] ' +
          'are checked, unbound or wrongly bound tokens get 401; /whoami adds {"token":{"sub","cnf"}}',
      },
      issuer: { type: 'string', placeholder: 'ISS', description: 'the access tokens\' iss (with --jwks)' },
      audience: { type: 'string', placeholder: 'AUD', description: 'the access tokens\' aud: this server (with --jwks)' },
      'require-token': { type: 'boolean', description: 'refuse requests without an access token (401), except GET /metrics (with --jwks)' },
      'client-certs': {
        type: 'string',
        choices: ['none', 'request'],
        default: 'none',
        description: 'request: ask TLS clients for a certificate, self-signed accepted (RFC 8705 self_signed_tls_client_auth), for cnf["x5t#S256"]',
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
      'tokbind serve --jwks jwks.json --issuer https://as.example --audience https://api.example --require-token --client-certs request',
    ],
  },
  async ({ values, given }, io, signal) => {
    let keyParameters: number[];
    try {
      keyParameters = values['key-parameters'].split(',').map((k) => parseKeyParameters(k));
    } catch (err) {
      throw new UsageError(`--key-parameters: ${err instanceof Error ? err.message : String(err)}`);
    }
    checkCertificateOptions(values);
    oneStdin({ '--cert': values.cert, '--key': values.key });
    // Checked before any worker starts: a usage error or an unusable JWKS stops the command at once.
    let tokens: TokenCheck | undefined;
    if (values.jwks === undefined) {
      for (const option of ['issuer', 'audience', 'require-token'] as const) {
        if (given.has(option)) throw new UsageError(`--${option} needs --jwks`);
      }
    } else {
      if (values.issuer === undefined || values.audience === undefined) throw new UsageError('--jwks needs --issuer and --audience');
      try {
        tokens = {
          verifier: createAccessTokenVerifier({ jwks: loadJwksFile(values.jwks), issuer: values.issuer, audience: values.audience }),
          requireToken: values['require-token'],
        };
      } catch (err) {
        if (err instanceof TypeError) throw new UsageError(err.message);
        return reportError(io, err);
      }
    }
    if (isClusterPrimary(values)) {
      // Each worker would keep its own DPoP replay cache: a proof replayed to another worker would pass.
      if (tokens !== undefined) throw new UsageError('--jwks cannot be combined with --workers (the DPoP replay cache is per process)');
      if (values.cert === '-' || values.key === '-') throw new UsageError('--workers cannot read --cert/--key from stdin (each worker reads the files)');
      const shared = sharedCertificate(values);
      // The primary aggregates the workers' metrics for a /metrics scrape on any of them.
      const metrics = createClusterMetrics();
      try {
        return await runWorkers({ command: 'serve', workers: parseWorkerCount(values.workers), io, signal, shared });
      } finally {
        metrics.close();
      }
    }
    let tls: { key: string; cert: string };
    try {
      tls = await serverCertificate(values, io);
    } catch (err) {
      return reportError(io, err);
    }
    const tokenBinding: TokenBindingServerOptions = {
      onInvalid: values['on-invalid'] as 'reject' | 'ignore',
      ...(values['inspect-client-hello'] ? { inspectClientHello: true } : {}),
      keyParameters,
    };

    let server: ReturnType<typeof createServer>;
    const metrics = createServerMetrics();
    try {
      const clientCerts = values['client-certs'] === 'request' ? { requestCert: true, rejectUnauthorized: false } : {};
      server = createServer({ ...tls, ...clientCerts, tokenBinding }, router(values.required, tokens, metrics));
    } catch (err) {
      metrics.close();
      return reportError(io, err);
    }
    // Handshakes that fail (scanners, untrusting clients) are the client's problem, not ours.
    server.on('tlsClientError', () => {});
    try {
      return await listenAndServe({
        command: 'serve',
        server,
        scheme: 'https',
        host: values.host,
        port: values.port,
        proxyProtocol: values['proxy-protocol'],
        io,
        signal,
      });
    } finally {
      metrics.close();
    }
  },
);
