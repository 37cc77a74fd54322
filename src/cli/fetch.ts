import { TokenBindingDispatcher, tokbindFetch } from '../client/dispatcher.js';
import { FileKeyStore, MemoryKeyStore } from '../client/keystore.js';
import { tokenBindingScope } from '../client/scope.js';
import { TokenBindingError } from '../errors.js';
import { missingKey } from './id.js';
import { defineCommand, oneStdin, readInput } from './args.js';
import { ExitCode, UsageError, reportError, writeJson, writeLine } from './io.js';
import { KEY_PARAMETERS_OPTION, keyParametersOption } from './keygen.js';
import { readCertificates } from './tls-files.js';

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The code of a response whose status is 400 or more (without `--no-fail`); not a library error. */
export const BAD_PORT_ERROR = 'ERR_FETCH_BAD_PORT';

/** Certificate verification failures (OpenSSL codes as Node reports them). */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_UNTRUSTED',
]);

function rootCause(err: unknown): unknown {
  let e = err;
  while (!(e instanceof TokenBindingError) && e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e;
}

/** A failure as the user of `tokbind fetch` needs it: what happened and what to do. */
function explainFailure(err: unknown, url: URL, usedCa: boolean): unknown {
  const cause = rootCause(err);
  if (!(cause instanceof Error)) return err;
  const code = (cause as { code?: unknown }).code;
  if (typeof code === 'string' && UNTRUSTED.has(code)) {
    const hint = usedCa
      ? 'the --ca file does not hold the CA that issued it'
      : "pass the server's CA (or its self-signed certificate) with --ca FILE, or skip the check with --insecure (-k; testing only)";
    return Object.assign(new Error(`${cause.message}: ${url.host}'s certificate is not trusted: ${hint}`), { code });
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return Object.assign(new Error(`${cause.message} (${url.host}): fix the server's certificate, or skip the check with --insecure (-k; testing only)`), { code });
  }
  if (cause.message === 'bad port') {
    // tokbind fetch is a WHATWG fetch (undici), which refuses these ports for every hop, the
    // first one included: a redirect must not turn a request into one to another protocol's
    // server (SMTP, IRC, …). The list is the Fetch standard's, not ours to shorten.
    return Object.assign(
      new Error(
        `bad port: ${url.href} (or a redirect from it) names a port on the Fetch standard's blocked-port list (ports of other protocols, refused so that a request or a redirect cannot talk to e.g. an SMTP server); tokbind fetch keeps that rule: run the server on another port`,
      ),
      { code: BAD_PORT_ERROR },
    );
  }
  return err;
}

/** The code of a response whose status is 400 or more (without `--no-fail`); not a library error. */
export const HTTP_STATUS_ERROR = 'ERR_HTTP_STATUS';

/**
 * `tokbind fetch <url>`: one Token-Bound request (redirects followed, referred bindings sent when a
 * redirect asks, RFC 8473 §5); prints the response body, preceded by the status line and headers
 * with `--include`. Like `curl --fail-with-body`: a final status of 400 or more still prints the
 * body but exits 1 with `{"error":{"code":"ERR_HTTP_STATUS",…}}` on stderr, unless `--no-fail`.
 * Without `--key-store` the key lives only for this run.
 */
export const fetch = defineCommand(
  {
    name: 'fetch',
    summary: 'make one Token-Bound HTTPS request and print the response body',
    description:
      'Redirects are followed and referred bindings sent when a redirect asks (RFC 8473 §5). The body goes to stdout ' +
      '(after the status line and headers with --include). A final status of 400 or more exits 1 with ' +
      `{"error":{"code":"${HTTP_STATUS_ERROR}","message","status"}} on stderr, the body still printed (like curl --fail-with-body); ` +
      '--no-fail exits 0 for any status. Without --key-store the key lives only for this run.',
    options: {
      method: { type: 'string', short: 'X', placeholder: 'METHOD', description: 'request method (default: GET, or POST with --data)' },
      data: {
        type: 'string',
        short: 'd',
        placeholder: 'DATA',
        description:
          'request body: text, @FILE for a file, - for stdin (from a file or stdin without CR/LF, as curl --data; implies POST; Content-Type application/x-www-form-urlencoded unless -H gives one)',
      },
      header: { type: 'string', short: 'H', multiple: true, placeholder: "'NAME: VALUE'", description: 'add a request header' },
      include: { type: 'boolean', short: 'i', description: 'print the status line and response headers before the body' },
      'no-fail': { type: 'boolean', description: 'exit 0 whatever the response status' },
      'key-store': { type: 'string', placeholder: 'FILE', description: 'key store file (created if missing; see tokbind keygen)' },
      'key-parameters': KEY_PARAMETERS_OPTION,
      ca: { type: 'string', placeholder: 'FILE', description: "PEM CA certificate(s) to trust for the server's certificate (- reads stdin)" },
      insecure: { type: 'boolean', short: 'k', description: "do not check the server's certificate" },
    },
    positionals: [{ name: 'url', description: 'an https:// URL', required: true }],
    exitCodes: {
      0: 'response with a status below 400 (any status with --no-fail): body on stdout',
      1: `request failed, or status >= 400 (${HTTP_STATUS_ERROR}): {"error":{"code","message"}} on stderr`,
    },
    examples: [
      'tokbind fetch https://127.0.0.1:8443/whoami --insecure',
      "tokbind fetch https://127.0.0.1:8443/login -d 'user=alice' -H 'Content-Type: application/x-www-form-urlencoded' -k -i",
      'tokbind fetch https://api.example.com/items -X PUT -d @item.json -H "Content-Type: application/json" --key-store keys.json',
    ],
  },
  async ({ values, positionals, given }, io) => {
    let url: URL;
    try {
      url = new URL(positionals[0]!);
    } catch {
      throw new UsageError(`<url> is not an absolute URL: ${positionals[0]!}`);
    }
    if (url.protocol === 'http:') throw new UsageError(`<url> ${url.href} is plain HTTP: Token Binding needs TLS, use https://`);
    if (url.protocol !== 'https:') throw new UsageError(`<url>: unsupported scheme ${url.protocol} (Token Binding needs https://)`);
    const keyParameters = keyParametersOption(values['key-parameters']);
    const headers: [string, string][] = [];
    for (const line of values.header) {
      const colon = line.indexOf(':');
      const name = colon > 0 ? line.slice(0, colon).trim() : '';
      if (!HEADER_NAME.test(name)) throw new UsageError(`-H/--header expects 'Name: value', got ${JSON.stringify(line)}`);
      headers.push([name, line.slice(colon + 1).trim()]);
    }
    if (values.method !== undefined && !METHOD.test(values.method)) throw new UsageError(`-X/--method is not a method token: ${JSON.stringify(values.method)}`);
    oneStdin({ '--data': values.data, '--ca': values.ca });
    const method = values.method?.toUpperCase() ?? (values.data === undefined ? 'GET' : 'POST');
    if ((method === 'GET' || method === 'HEAD') && values.data !== undefined) throw new UsageError(`-d/--data cannot go with ${method} (a body needs another method, e.g. -X POST)`);
    // As curl -d: a body without a Content-Type is sent as a form.
    if (values.data !== undefined && !headers.some(([n]) => n.toLowerCase() === 'content-type')) {
      headers.push(['content-type', 'application/x-www-form-urlencoded']);
    }
    const path = values['key-store'];
    let dispatcher: TokenBindingDispatcher | undefined;
    try {
      const ca = values.ca === undefined ? undefined : (await readCertificates('--ca', values.ca, io)).pem;
      // As curl's --data: a body read from a file or stdin loses its carriage returns and
      // newlines (a file saved by an editor ends in one), so `-d @form.txt` sends the form as typed.
      const fromInput = values.data !== undefined && (values.data === '-' || values.data.startsWith('@'));
      const raw = values.data === undefined ? undefined : await readInput('--data', values.data, io, true);
      const body = raw === undefined || !fromInput ? raw : Buffer.from(raw.toString('utf8').replace(/[\r\n]/g, ''), 'utf8');
      const keyStore = path === undefined ? new MemoryKeyStore() : new FileKeyStore(path);
      // The default key parameters never quietly add a second identity beside the one a store holds.
      if (keyStore instanceof FileKeyStore && !given.has('key-parameters')) {
        const scope = tokenBindingScope(url);
        if ((await keyStore.getKey(scope, keyParameters)) === undefined && (await keyStore.list()).some((e) => e.scope === scope)) {
          throw await missingKey(keyStore, scope, keyParameters, true);
        }
      }
      dispatcher = new TokenBindingDispatcher({
        keyStore,
        keyParameters,
        connect: { rejectUnauthorized: !values.insecure, ...(ca === undefined ? {} : { ca }) },
      });
      const response = await tokbindFetch(url, { dispatcher, headers, method, ...(body === undefined ? {} : { body: new Uint8Array(body) }) });
      if (values.include) {
        writeLine(io.stdout, `HTTP/1.1 ${response.status} ${response.statusText}`);
        for (const [name, value] of response.headers) writeLine(io.stdout, `${name}: ${value}`);
        writeLine(io.stdout, '');
      }
      io.stdout.write(new Uint8Array(await response.arrayBuffer()));
      if (response.status >= 400 && !values['no-fail']) {
        writeJson(io.stderr, {
          error: { code: HTTP_STATUS_ERROR, message: `HTTP ${response.status} ${response.statusText} from ${url.origin}`.trimEnd(), status: response.status },
        });
        return ExitCode.failure;
      }
      return ExitCode.ok;
    } catch (err) {
      return reportError(io, explainFailure(err, url, values.ca !== undefined));
    } finally {
      await dispatcher?.close().catch(() => {});
    }
  },
);
