/**
 * `tokbind serve`: a binding-aware HTTPS server to try clients against — `GET /whoami` answers
 * with the request's verified Token Binding, `GET /metrics` with the Prometheus text.
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseKeyParameters } from '../codec/keyparams.js';
import { formatPrometheusMetrics } from '../http/metrics.js';
import type { TokenBindingServerOptions } from '../http/options.js';
import { createServer } from '../http/server.js';
import { createSelfSignedCertificate } from '../tls/certificate.js';
import { ExitCode, UsageError, untilStopped, writeLine, type CliIo } from './io.js';

interface ServeArguments {
  port: number;
  host: string;
  cert?: string;
  key?: string;
  keyParameters?: number[];
  required: boolean;
}

function parseArguments(argv: readonly string[]): ServeArguments {
  const args: ServeArguments = { port: 8443, host: '127.0.0.1', required: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = (): string => {
      const value = argv[++i];
      if (value === undefined) throw new UsageError(`${arg} needs a value`);
      return value;
    };
    switch (arg) {
      case '--port': {
        const value = next();
        const port = Number(value);
        if (!/^[0-9]+$/.test(value) || port > 65535) throw new UsageError(`--port must be 0..65535, got ${value}`);
        args.port = port;
        break;
      }
      case '--host':
        args.host = next();
        break;
      case '--cert':
        args.cert = next();
        break;
      case '--key':
        args.key = next();
        break;
      case '--key-parameters':
        try {
          args.keyParameters = next().split(',').map((k) => parseKeyParameters(k));
        } catch (err) {
          throw new UsageError(err instanceof Error ? err.message : String(err));
        }
        break;
      case '--required':
        args.required = true;
        break;
      default:
        throw new UsageError(`unknown argument ${arg}`);
    }
  }
  if ((args.cert === undefined) !== (args.key === undefined)) throw new UsageError('--cert and --key go together');
  return args;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function route(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?', 1)[0];
  if (req.method === 'GET' && path === '/whoami') return json(res, 200, { tokenBinding: req.tokenBinding ?? null });
  if (req.method === 'GET' && path === '/metrics') {
    const text = formatPrometheusMetrics();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  json(res, 404, { error: 'not found' });
}

/**
 * The `serve` command: a binding-aware HTTPS server (RFC 8473) on `--host` (127.0.0.1) and
 * `--port` (8443; 0 picks a free one), with a self-signed certificate for localhost and the host
 * unless `--cert`/`--key` are given. Prints `listening on https://HOST:PORT` once ready and runs
 * until SIGINT/SIGTERM — or until `signal` aborts (tests, embedding) — then exits 0.
 *
 * @example
 * ```sh
 * tokbind serve --port 8443 --key-parameters ecdsap256,rsa2048_pss --required
 * curl -k https://127.0.0.1:8443/metrics
 * ```
 */
export async function serve(argv: readonly string[], io: CliIo, signal?: AbortSignal): Promise<number> {
  const args = parseArguments(argv);
  let tls: { key: string | Buffer; cert: string | Buffer };
  if (args.cert !== undefined && args.key !== undefined) {
    try {
      tls = { cert: await readFile(args.cert), key: await readFile(args.key) };
    } catch (err) {
      writeLine(io.stderr, `tokbind serve: cannot read the certificate or key: ${err instanceof Error ? err.message : String(err)}`);
      return ExitCode.failure;
    }
  } else {
    tls = createSelfSignedCertificate({ altNames: [...new Set(['localhost', '127.0.0.1', args.host])] });
  }
  const tokenBinding: TokenBindingServerOptions = {
    required: args.required,
    ...(args.keyParameters === undefined ? {} : { keyParameters: args.keyParameters }),
  };

  let server: ReturnType<typeof createServer>;
  try {
    server = createServer({ ...tls, tokenBinding }, route);
  } catch (err) {
    // A certificate and key that do not load or match.
    writeLine(io.stderr, `tokbind serve: ${err instanceof Error ? err.message : String(err)}`);
    return ExitCode.failure;
  }
  // Handshakes that fail (scanners, untrusting clients) are the client's problem, not ours.
  server.on('tlsClientError', () => {});
  const failure = await new Promise<Error | null>((resolve) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      resolve(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve(null);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(args.port, args.host);
  });
  if (failure !== null) {
    writeLine(io.stderr, `tokbind serve: ${failure.message}`);
    return ExitCode.failure;
  }
  const { port } = server.address() as AddressInfo;
  const host = args.host.includes(':') ? `[${args.host}]` : args.host;
  writeLine(io.stdout, `listening on https://${host}:${port}`);

  await untilStopped(signal);
  const closed = once(server, 'close');
  server.close();
  server.closeAllConnections();
  await closed;
  return ExitCode.ok;
}
