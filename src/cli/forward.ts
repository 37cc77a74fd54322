/**
 * `tokbind forward`: the client sidecar — plain HTTP on loopback in, Token-Bound TLS out. A thin
 * layer over `startForwarder` (src/proxy/forward.ts).
 */
import { FileKeyStore, MemoryKeyStore } from '../client/keystore.js';
import { isLoopbackHost, startForwarder, type ListeningForwarder } from '../proxy/forward.js';
import { defineCommand, listenFailure } from './args.js';
import { ExitCode, UsageError, reportError, untilStopped, writeLine } from './io.js';
import { KEY_PARAMETERS_OPTION, keyParametersOption } from './keygen.js';
import { readCertificates } from './tls-files.js';

export const forward = defineCommand(
  {
    name: 'forward',
    summary: 'run a client sidecar: plain HTTP on loopback in, Token-Bound TLS to --target out',
    description:
      'Any HTTP client (curl, a Python or Go program) gets Token Binding by pointing at the sidecar: each request goes ' +
      'to --target with the same method, path, headers and body over TLS with a Sec-Token-Binding signed for that ' +
      'connection (one key per scope from --key-store, connections reused), and the response streams back. Listens ' +
      'on loopback only, and answers 403 to requests a web page could send through a browser (a non-loopback Host or ' +
      'Origin, a cross-site Sec-Fetch-Site), unless --allow-remote: whoever reaches the sidecar signs with these keys. Prints ' +
      '"listening on http://HOST:PORT" once ready and runs until SIGINT/SIGTERM (then exits 0).',
    options: {
      port: { type: 'integer', min: 0, max: 65535, default: 8080, env: 'PORT', placeholder: 'N', description: 'TCP port to listen on (0 picks a free one)' },
      host: { type: 'string', default: '127.0.0.1', placeholder: 'ADDRESS', description: 'address to listen on (loopback unless --allow-remote)' },
      target: { type: 'string', required: true, placeholder: 'URL', description: 'the Token Binding server, https://HOST:PORT (an origin, no path)' },
      'key-store': { type: 'string', placeholder: 'FILE', description: 'key store file (created if missing; without it keys live only for this run)' },
      'key-parameters': KEY_PARAMETERS_OPTION,
      ca: { type: 'string', placeholder: 'FILE', description: "PEM CA certificate(s) to trust for the target's certificate" },
      insecure: { type: 'boolean', short: 'k', description: "do not check the target's certificate" },
      'allow-remote': { type: 'boolean', description: 'allow a non-loopback --host, and requests from any Host or Origin' },
    },
    exitCodes: {
      0: 'stopped by SIGINT/SIGTERM',
      1: 'CA file or key store rejected ({"error":{"code","message"}} on stderr), or the port cannot be bound (one line on stderr)',
    },
    examples: [
      'tokbind forward --target https://api.example.com --port 8080 --key-store keys.json',
      'tokbind forward --target https://127.0.0.1:8443 --insecure --port 0',
      'curl http://127.0.0.1:8080/whoami',
    ],
  },
  async ({ values }, io, signal) => {
    let target: URL;
    try {
      target = new URL(values.target);
    } catch {
      throw new UsageError(`--target is not an absolute URL: ${values.target}`);
    }
    if (target.protocol !== 'https:') throw new UsageError(`--target must be https:// (Token Binding needs TLS), got ${target.protocol}`);
    if (values.insecure && values.ca !== undefined) throw new UsageError('--insecure and --ca exclude each other');
    if (!values['allow-remote'] && !isLoopbackHost(values.host)) {
      throw new UsageError(`--host ${values.host} is not a loopback address: whoever reaches the sidecar signs with its keys; add --allow-remote to do it anyway`);
    }
    const keyParameters = keyParametersOption(values['key-parameters']);
    let ca: string | undefined;
    try {
      if (values.ca !== undefined) ca = (await readCertificates('--ca', values.ca, io)).pem;
    } catch (err) {
      return reportError(io, err);
    }
    const keyStorePath = values['key-store'];
    let running: ListeningForwarder;
    try {
      running = await startForwarder({
        target,
        port: values.port,
        host: values.host,
        allowRemote: values['allow-remote'],
        dispatcher: {
          keyStore: keyStorePath === undefined ? new MemoryKeyStore() : new FileKeyStore(keyStorePath),
          keyParameters,
          connect: { rejectUnauthorized: !values.insecure, ...(ca === undefined ? {} : { ca }) },
        },
      });
    } catch (err) {
      if (err instanceof TypeError) throw new UsageError(err.message);
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && code.startsWith('E') && !code.startsWith('ERR_')) {
        writeLine(io.stderr, listenFailure('forward', values.host, values.port, err as Error));
        return ExitCode.failure;
      }
      return reportError(io, err);
    }
    const stopped = untilStopped(signal);
    writeLine(io.stdout, `listening on ${running.url}`);
    await stopped;
    await running.close();
    return ExitCode.ok;
  },
);
