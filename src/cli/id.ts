import { stat } from 'node:fs/promises';
import { FileKeyStore } from '../client/keystore.js';
import type { KeyParametersName } from '../codec/types.js';
import { TokenBindingError } from '../errors.js';
import { defineCommand } from './args.js';
import { ExitCode, UsageError, reportError, writeJson } from './io.js';
import { KEY_PARAMETERS_OPTION, describeKey, keyParametersOption, scopeOption } from './keygen.js';

/** A key store named on the command line that does not exist: an ERR_TB_KEY_STORE saying so. */
export async function mustExist(path: string): Promise<void> {
  try {
    await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return; // the store reports other failures itself
    throw new TokenBindingError('ERR_TB_KEY_STORE', `key store ${path} does not exist (create it, and a key, with tokbind keygen --key-store ${path} --url URL)`, {
      field: 'path',
    });
  }
}

/**
 * The error for a scope without a key of `keyParameters`: names the key parameters the store does
 * hold for that scope (and the option that selects them), or says there is none.
 */
export async function missingKey(store: FileKeyStore, scope: string, keyParameters: KeyParametersName, canCreate = false): Promise<TokenBindingError> {
  const others = (await store.list()).filter((e) => e.scope === scope).map((e) => e.keyParameters);
  const message =
    others.length === 0
      ? `no key for scope ${scope} in ${store.path} (create one with tokbind keygen --key-store ${store.path} --scope ${scope})`
      : `no ${keyParameters} key for scope ${scope} in ${store.path}, which holds ${others.join(' and ')} for it: ` +
        `select it with --key-parameters ${others[0]}` +
        (canCreate ? ` (or give --key-parameters ${keyParameters} to create a new ${keyParameters} key beside it)` : '');
  return new TokenBindingError('ERR_TB_CLIENT', message, { field: 'keyParameters', expected: keyParameters, actual: others });
}

/**
 * `tokbind id --key-store file --url <url> [--key-parameters ...]`: prints
 * `{"scope","keyParameters","id","hash"}` — the Token Binding ID (base64url of the RFC 8471 §3
 * TokenBindingID) and its `tbh` hash that a server at `url` will see from this key store. Never
 * creates a key: a store without one for that scope is an `ERR_TB_CLIENT` error.
 */
export const id = defineCommand(
  {
    name: 'id',
    summary: 'print the Token Binding ID and hash a server will see for a URL',
    description:
      'Prints {"scope","keyParameters","id","hash"}: the Token Binding ID (base64url of the RFC 8471 §3 TokenBindingID) and ' +
      'its tbh hash that a server at the URL will see from this key store. Never creates a key or a store. A store keeps one ' +
      'key per scope and key parameters: a key made with --key-parameters rsa2048_pss is found with the same option.',
    options: {
      'key-store': { type: 'string', placeholder: 'FILE', required: true, description: 'the key store file' },
      url: { type: 'string', placeholder: 'URL', required: true, description: 'the URL whose scope is looked up' },
      'key-parameters': KEY_PARAMETERS_OPTION,
    },
    exitCodes: { 0: 'the key exists: JSON on stdout', 1: 'no such store or key, or an invalid store: {"error":{"code","message"}} on stderr' },
    examples: ['tokbind id --key-store keys.json --url https://app.example.com/', 'tokbind id --key-store keys.json --url https://127.0.0.1:8443/ --key-parameters rsa2048_pss'],
  },
  async ({ values }, io) => {
    const path = values['key-store'];
    if (path === '') throw new UsageError('--key-store FILE must not be empty');
    const keyParameters = keyParametersOption(values['key-parameters']);
    const scope = scopeOption(values.url, undefined)!;
    try {
      await mustExist(path);
      const store = new FileKeyStore(path);
      const key = await store.getKey(scope, keyParameters);
      if (key === undefined) throw await missingKey(store, scope, keyParameters);
      writeJson(io.stdout, describeKey(scope, keyParameters, key));
      return ExitCode.ok;
    } catch (err) {
      return reportError(io, err);
    }
  },
);
