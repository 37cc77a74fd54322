/**
 * `tokbind proxy`: the binding-aware TLS-terminating reverse proxy (draft-ietf-tokbind-ttrp-09)
 * in front of any HTTP backend — a thin layer over `startProxy` (src/proxy).
 */
import { parseKeyParameters } from '../codec/keyparams.js';
import { createForwardingSigner } from '../http/assertion.js';
import type { TokenBindingServerOptions } from '../http/options.js';
import { createProxy, type TokenBindingProxy } from '../proxy/server.js';
import http from 'node:http';
import { createClusterMetrics, createServerMetrics, type ClusterMetrics } from '../metrics/cluster.js';
import { InputError, defineCommand, listenFailure, oneStdin, readFileArgument, serverOptions, tlsServerOptions } from './args.js';
import { clusterOptions, isClusterPrimary, listenAndServe, parseWorkerCount, runWorkers } from './cluster.js';
import { ExitCode, UsageError, reportError, writeLine } from './io.js';
import { checkCertificateOptions, serverCertificate, sharedCertificate } from './tls-files.js';

function keyParametersList(value: string): number[] {
  try {
    return value.split(',').map((k) => parseKeyParameters(k.trim()));
  } catch (err) {
    throw new UsageError(`--key-parameters: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export const proxy = defineCommand(
  {
    name: 'proxy',
    summary: 'run a binding-aware TLS-terminating reverse proxy in front of any HTTP backend',
    description:
      'Terminates TLS (HTTP/2 and HTTP/1.1), verifies every request\'s Sec-Token-Binding as `tokbind serve` does and ' +
      'forwards the valid ones to --upstream with Sec-Provided-Token-Binding-ID, Sec-Referred-Token-Binding-ID and ' +
      'Sec-Other-Token-Binding-ID (draft-ietf-tokbind-ttrp-09), Forwarded and X-Forwarded-For/Proto/Host; an invalid ' +
      'message gets 400 problem+json and never reaches the upstream. Client-sent copies of those headers are removed. ' +
      'With --forward-key, each request also carries a signed Sec-Token-Binding-Assertion (verify it with trustProxy.key). ' +
      'A self-signed certificate for localhost and --host is used unless --cert/--key are given. --workers N runs N ' +
      'processes on the port (node:cluster); --proxy-protocol reads a PROXY v1/v2 header before TLS (behind an L4 ' +
      'balancer), whose client address then goes into Forwarded / X-Forwarded-For. Prints ' +
      '"listening on https://HOST:PORT" once ready and runs until SIGINT/SIGTERM (then exits 0).',
    options: {
      ...serverOptions,
      ...clusterOptions,
      upstream: { type: 'string', required: true, placeholder: 'URL', description: 'the backend, http://HOST:PORT (an origin, no path)' },
      ...tlsServerOptions,
      required: { type: 'boolean', description: 'refuse requests without a valid Token Binding (400); they never reach the upstream' },
      'forward-key': {
        type: 'string',
        placeholder: 'FILE',
        description: 'private key (JWK JSON or PEM) to sign a Sec-Token-Binding-Assertion on every forwarded request',
      },
      'client-certs': {
        type: 'string',
        choices: ['none', 'request'],
        default: 'none',
        description:
          'request: ask TLS clients for a certificate (self-signed accepted, as RFC 8705 self_signed_tls_client_auth) and forward it as RFC 9440 Client-Cert (a client-sent Client-Cert is always removed)',
      },
      'metrics-port': {
        type: 'integer',
        min: 0,
        max: 65535,
        placeholder: 'N',
        description: 'also serve GET /metrics (Prometheus, plain HTTP) on --metrics-host:N — not on the proxy port, where every path goes upstream',
      },
      'metrics-host': { type: 'string', default: '127.0.0.1', placeholder: 'ADDRESS', description: 'address of the --metrics-port listener' },
    },
    exitCodes: {
      0: 'stopped by SIGINT/SIGTERM',
      1: 'certificate, key or forward key rejected ({"error":{"code","message"}} on stderr), or the port cannot be bound (one line on stderr)',
    },
    examples: [
      'tokbind proxy --upstream http://127.0.0.1:3000 --port 8443 --required',
      'tokbind proxy --upstream http://127.0.0.1:3000 --client-certs request --metrics-port 9464',
      'tokbind proxy --upstream http://10.0.0.7:8080 --cert cert.pem --key key.pem --forward-key proxy-key.jwk --host 0.0.0.0',
    ],
  },
  async ({ values }, io, signal) => {
    const keyParameters = keyParametersList(values['key-parameters']);
    checkCertificateOptions(values);
    oneStdin({ '--cert': values.cert, '--key': values.key, '--forward-key': values['forward-key'] });
    try {
      const url = new URL(values.upstream);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('scheme');
    } catch {
      throw new UsageError(`--upstream must be an http:// URL, got ${JSON.stringify(values.upstream)}`);
    }
    if (isClusterPrimary(values)) {
      if (values.cert === '-' || values.key === '-' || values['forward-key'] === '-') {
        throw new UsageError('--workers cannot read --cert/--key/--forward-key from stdin (each worker reads the files)');
      }
      const shared = sharedCertificate(values);
      // The primary aggregates the workers' metrics for a scrape of --metrics-port on any of them.
      const metrics = values['metrics-port'] === undefined ? undefined : createClusterMetrics();
      try {
        return await runWorkers({ command: 'proxy', workers: parseWorkerCount(values.workers), io, signal, shared });
      } finally {
        metrics?.close();
      }
    }
    let tls: { key: string; cert: string };
    let forwardKey: string | undefined;
    try {
      tls = await serverCertificate(values, io);
      if (values['forward-key'] !== undefined) {
        forwardKey = (await readFileArgument('--forward-key', values['forward-key'], io)).toString('utf8');
        try {
          createForwardingSigner(forwardKey);
        } catch (err) {
          const why = err instanceof SyntaxError ? 'not valid JSON' : err instanceof Error ? err.message : String(err);
          throw new InputError(`--forward-key ${values['forward-key']}: not a usable private key (JWK or PEM): ${why}`);
        }
      }
    } catch (err) {
      return reportError(io, err);
    }
    const tokenBinding: TokenBindingServerOptions = { keyParameters, required: values.required };
    let running: TokenBindingProxy;
    try {
      running = createProxy({
        upstream: values.upstream,
        ...tls,
        tokenBinding,
        ...(forwardKey === undefined ? {} : { forwardKey }),
        ...(values['client-certs'] === 'request' ? { tls: { requestCert: true, rejectUnauthorized: false } } : {}),
      });
    } catch (err) {
      if (err instanceof TypeError) throw new UsageError(err.message);
      return reportError(io, err);
    }
    let metrics: { server: http.Server; registry: ClusterMetrics } | undefined;
    if (values['metrics-port'] !== undefined) {
      const registry = createServerMetrics();
      const server = http.createServer((req, res) => {
        if (req.method !== 'GET' || (req.url ?? '/').split('?', 1)[0] !== '/metrics') {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('GET /metrics\n');
          return;
        }
        registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' }).end(text),
          () => res.writeHead(503, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
        );
      });
      const failure = await new Promise<Error | null>((resolve) => {
        server.once('error', resolve);
        server.listen(values['metrics-port'], values['metrics-host'], () => resolve(null));
      });
      if (failure !== null) {
        registry.close();
        await running.close();
        writeLine(io.stderr, listenFailure('proxy', values['metrics-host'], values['metrics-port']!, failure).replace('--port N or PORT=N', '--metrics-port N'));
        return ExitCode.failure;
      }
      metrics = { server, registry };
    }
    try {
      return await listenAndServe({
        command: 'proxy',
        server: running.server,
        scheme: 'https',
        host: values.host,
        port: values.port,
        proxyProtocol: values['proxy-protocol'],
        io,
        signal,
        onStop: () => running.close(),
      });
    } finally {
      if (metrics !== undefined) {
        metrics.server.closeAllConnections();
        metrics.server.close();
        metrics.registry.close();
      }
    }
  },
);
