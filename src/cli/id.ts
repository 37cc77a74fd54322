import { parseArgs } from 'node:util';
import { FileKeyStore } from '../client/keystore.js';
import { TokenBindingError } from '../errors.js';
import { ExitCode, UsageError, parseCommandLine, reportError, writeJson, type CliCommand } from './io.js';
import { describeKey, keyParametersOption, scopeOption } from './keygen.js';

/**
 * `tokbind id --key-store file --url <url> [--key-parameters ...]`: prints
 * `{"scope","keyParameters","id","hash"}` — the Token Binding ID (base64url of the RFC 8471 §3
 * TokenBindingID) and its `tbh` hash that a server at `url` will see from this key store. Never
 * creates a key: a store without one for that scope is an `ERR_TB_CLIENT` error.
 */
export const id: CliCommand = async (argv, io) => {
  const { values, positionals } = parseCommandLine(() =>
    parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        'key-store': { type: 'string' },
        url: { type: 'string' },
        'key-parameters': { type: 'string' },
      },
    }),
  );
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const path = values['key-store'];
  if (path === undefined || path === '') throw new UsageError('--key-store is required');
  if (values.url === undefined) throw new UsageError('--url is required');
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
};
