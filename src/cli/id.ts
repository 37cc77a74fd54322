import { FileKeyStore } from '../client/keystore.js';
import { TokenBindingError } from '../errors.js';
import { defineCommand } from './args.js';
import { ExitCode, UsageError, reportError, writeJson } from './io.js';
import { KEY_PARAMETERS_OPTION, describeKey, keyParametersOption, scopeOption } from './keygen.js';

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
      const key = await new FileKeyStore(path).getKey(scope, keyParameters);
      if (key === undefined) {
        throw new TokenBindingError('ERR_TB_CLIENT', `no ${keyParameters} key for scope ${scope} in ${path} (create one with tokbind keygen)`, {
          field: 'scope',
          actual: scope,
        });
      }
      writeJson(io.stdout, describeKey(scope, keyParameters, key));
      return ExitCode.ok;
    } catch (err) {
      return reportError(io, err);
    }
  },
);
