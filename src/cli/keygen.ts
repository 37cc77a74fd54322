import { parseArgs } from 'node:util';
import { base64urlEncode } from '../codec/base64url.js';
import type { KeyParametersName } from '../codec/types.js';
import { tokenBindingHash } from '../crypto/hash.js';
import type { TokenBindingKey } from '../crypto/sign.js';
import { FileKeyStore } from '../client/keystore.js';
import { tokenBindingScope } from '../client/scope.js';
import { ExitCode, UsageError, parseCommandLine, reportError, writeJson, type CliCommand } from './io.js';

const KEY_PARAMETERS: readonly string[] = ['ecdsap256', 'rsa2048_pss', 'rsa2048_pkcs1.5'];

/** `--key-parameters` of the client commands: one of the three names, ecdsap256 by default. */
export function keyParametersOption(value: string | undefined): KeyParametersName {
  if (value === undefined) return 'ecdsap256';
  if (!KEY_PARAMETERS.includes(value)) throw new UsageError(`--key-parameters must be one of ${KEY_PARAMETERS.join(', ')}`);
  return value as KeyParametersName;
}

/** The JSON the client commands print for a key: what a server will see (RFC 8471 §3). */
export function describeKey(scope: string, keyParameters: KeyParametersName, key: TokenBindingKey): Record<string, string> {
  return { scope, keyParameters, id: base64urlEncode(key.id.raw), hash: tokenBindingHash(key.id) };
}

/** The scope of `--url` or `--scope` (a scope is its own scope; a host is reduced to its eTLD+1). */
export function scopeOption(url: string | undefined, scope: string | undefined): string | undefined {
  if (url !== undefined && scope !== undefined) throw new UsageError('give --url or --scope, not both');
  if (url !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`--url is not an absolute URL: ${url}`);
    }
    return tokenBindingScope(parsed);
  }
  if (scope !== undefined) {
    try {
      return tokenBindingScope(scope);
    } catch {
      throw new UsageError(`--scope is not a host name: ${scope}`);
    }
  }
  return undefined;
}

/**
 * `tokbind keygen --key-store file [--url <url> | --scope <scope>] [--key-parameters ...]`:
 * creates a key store (mode 0600), or adds to it the key for a URL's scope (eTLD+1). An existing
 * key is kept, never replaced. Prints `{"scope","keyParameters","id","hash","created"}`, or
 * `{"keyStore","created"}` without a scope.
 */
export const keygen: CliCommand = async (argv, io) => {
  const { values, positionals } = parseCommandLine(() =>
    parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        'key-store': { type: 'string' },
        url: { type: 'string' },
        scope: { type: 'string' },
        'key-parameters': { type: 'string' },
      },
    }),
  );
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const path = values['key-store'];
  if (path === undefined || path === '') throw new UsageError('--key-store is required');
  const keyParameters = keyParametersOption(values['key-parameters']);
  const scope = scopeOption(values.url, values.scope);
  const store = new FileKeyStore(path);
  try {
    if (scope === undefined) {
      writeJson(io.stdout, { keyStore: path, created: await store.init() });
      return ExitCode.ok;
    }
    const existing = await store.getKey(scope, keyParameters);
    const key = existing ?? (await store.getOrCreateKey(scope, keyParameters));
    writeJson(io.stdout, { ...describeKey(scope, keyParameters, key), created: existing === undefined });
    return ExitCode.ok;
  } catch (err) {
    return reportError(io, err);
  }
};
