import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { TokenBindingDispatcher, tokbindFetch } from '../client/dispatcher.js';
import { FileKeyStore, MemoryKeyStore } from '../client/keystore.js';
import { ExitCode, UsageError, parseCommandLine, reportError, writeLine, type CliCommand } from './io.js';
import { keyParametersOption } from './keygen.js';

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * `tokbind fetch <url> [--key-store file] [--key-parameters ...] [--insecure] [--ca file]
 * [-H 'Name: value'] [--include]`: one Token-Bound request (redirects followed, referred
 * bindings sent when a redirect asks, RFC 8473 §5); prints the response body, preceded by the
 * status line and headers with `--include`. Exit 0 on 2xx/3xx, 1 otherwise or on an error
 * (`{"error":{"code","message"}}` on stderr), 2 on a usage error. Without `--key-store` the key
 * lives only for this run.
 */
export const fetch: CliCommand = async (argv, io) => {
  const { values, positionals } = parseCommandLine(() =>
    parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        'key-store': { type: 'string' },
        'key-parameters': { type: 'string' },
        insecure: { type: 'boolean', short: 'k' },
        ca: { type: 'string' },
        header: { type: 'string', short: 'H', multiple: true },
        include: { type: 'boolean', short: 'i' },
      },
    }),
  );
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'a URL is required' : 'give exactly one URL');
  let url: URL;
  try {
    url = new URL(positionals[0]!);
  } catch {
    throw new UsageError(`not an absolute URL: ${positionals[0]!}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`unsupported scheme ${url.protocol}`);
  const keyParameters = keyParametersOption(values['key-parameters']);
  const headers: [string, string][] = [];
  for (const line of values.header ?? []) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : '';
    if (!HEADER_NAME.test(name)) throw new UsageError(`-H expects 'Name: value', got ${JSON.stringify(line)}`);
    headers.push([name, line.slice(colon + 1).trim()]);
  }
  const path = values['key-store'];
  let dispatcher: TokenBindingDispatcher | undefined;
  try {
    const ca = values.ca === undefined ? undefined : await readFile(values.ca, 'utf8');
    dispatcher = new TokenBindingDispatcher({
      keyStore: path === undefined ? new MemoryKeyStore() : new FileKeyStore(path),
      keyParameters,
      connect: { rejectUnauthorized: values.insecure !== true, ...(ca === undefined ? {} : { ca }) },
    });
    const response = await tokbindFetch(url, { dispatcher, headers });
    if (values.include === true) {
      writeLine(io.stdout, `HTTP/1.1 ${response.status} ${response.statusText}`);
      for (const [name, value] of response.headers) writeLine(io.stdout, `${name}: ${value}`);
      writeLine(io.stdout, '');
    }
    io.stdout.write(new Uint8Array(await response.arrayBuffer()));
    return response.status >= 200 && response.status < 400 ? ExitCode.ok : ExitCode.failure;
  } catch (err) {
    return reportError(io, err);
  } finally {
    await dispatcher?.close().catch(() => {});
  }
};
