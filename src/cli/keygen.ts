import { base64urlEncode } from '../codec/base64url.js';
import type { KeyParametersName } from '../codec/types.js';
import { tokenBindingHash } from '../crypto/hash.js';
import type { TokenBindingKey } from '../crypto/sign.js';
import { FileKeyStore } from '../client/keystore.js';
import { parse } from 'tldts';
import { tokenBindingScope } from '../client/scope.js';
import { defineCommand, type StringOption } from './args.js';
import { ExitCode, UsageError, reportError, writeJson } from './io.js';

const KEY_PARAMETERS: readonly string[] = ['ecdsap256', 'rsa2048_pss', 'rsa2048_pkcs1.5'];

/** `--key-parameters` of the client commands: one of the three names, ecdsap256 by default. */
export function keyParametersOption(value: string | undefined): KeyParametersName {
  if (value === undefined) return 'ecdsap256';
  if (!KEY_PARAMETERS.includes(value)) throw new UsageError(`--key-parameters must be one of ${KEY_PARAMETERS.join(', ')}, got ${JSON.stringify(value)}`);
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
 * Refuses a scope that is a listed public suffix (`com`, `co.uk`, `github.io`): a key for it
 * would stand for every site under it. Hosts the list does not know (`localhost`) are their own
 * scope and fine.
 */
export function refusePublicSuffix(option: string, input: string, scope: string): void {
  const info = parse(scope, { allowPrivateDomains: true });
  if (info.isIp !== true && info.domain === null && (info.isIcann === true || info.isPrivate === true)) {
    throw new UsageError(
      `${option} ${input}: ${scope} is a public suffix (like com, co.uk or github.io), shared by unrelated sites; ` +
        'a Token Binding key is scoped to one registrable domain (eTLD+1, RFC 8473 §2.1): give one, e.g. example.' + scope,
    );
  }
}

/** The `--key-parameters` declaration of the client commands. */
export const KEY_PARAMETERS_OPTION = {
  type: 'string',
  choices: ['ecdsap256', 'rsa2048_pss', 'rsa2048_pkcs1.5'],
  default: 'ecdsap256',
  placeholder: 'NAME',
  description: 'key parameters of the key (ecdsap256, rsa2048_pss or rsa2048_pkcs1.5); a store keeps one key per scope and key parameters',
} as const satisfies StringOption;

/**
 * `tokbind keygen --key-store file [--url <url> | --scope <scope>] [--key-parameters ...]`:
 * creates a key store (mode 0600), or adds to it the key for a URL's scope (eTLD+1). An existing
 * key is kept, never replaced. Prints `{"scope","keyParameters","id","hash","created"}`, or
 * `{"keyStore","created"}` without a scope.
 */
export const keygen = defineCommand(
  {
    name: 'keygen',
    summary: 'create a key store, or add a key for a scope to one',
    description:
      'Creates the key store (mode 0600) if missing; with --url or --scope adds the key for that scope (the eTLD+1 of the ' +
      'host, RFC 8473 §2.1). An existing key is kept, never replaced. Prints {"scope","keyParameters","id","hash","created"}, ' +
      'or {"keyStore","created"} without a scope. Safe to run from several processes on one store.',
    options: {
      'key-store': { type: 'string', placeholder: 'FILE', required: true, description: 'the key store file' },
      url: { type: 'string', placeholder: 'URL', description: "the URL whose scope gets a key (not with --scope)" },
      scope: { type: 'string', placeholder: 'HOST', description: 'a host or scope (reduced to its eTLD+1; not with --url)' },
      'key-parameters': KEY_PARAMETERS_OPTION,
    },
    exitCodes: { 0: 'key (or store) exists: JSON on stdout', 1: 'key store unreadable or invalid: {"error":{"code","message"}} on stderr' },
    examples: [
      'tokbind keygen --key-store keys.json',
      'tokbind keygen --key-store keys.json --url https://app.example.com/',
      'tokbind keygen --key-store keys.json --scope example.com --key-parameters rsa2048_pss',
    ],
  },
  async ({ values }, io) => {
    const path = values['key-store'];
    if (path === '') throw new UsageError('--key-store FILE must not be empty');
    const keyParameters = keyParametersOption(values['key-parameters']);
    const scope = scopeOption(values.url, values.scope);
    if (scope !== undefined) refusePublicSuffix(values.url === undefined ? '--scope' : '--url', values.url ?? values.scope!, scope);
    const store = new FileKeyStore(path);
    try {
      if (scope === undefined) {
        writeJson(io.stdout, { keyStore: path, created: await store.init() });
        return ExitCode.ok;
      }
      const { key, created } = await store.ensureKey(scope, keyParameters);
      writeJson(io.stdout, { ...describeKey(scope, keyParameters, key), created });
      return ExitCode.ok;
    } catch (err) {
      return reportError(io, err);
    }
  },
);
