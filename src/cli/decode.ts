/**
 * `tokbind decode <header | ->`: prints a Sec-Token-Binding value as JSON — every binding's type,
 * key parameters, ID, `tbh`, decoded key, signature and extensions. Parse only: nothing is
 * verified (no EKM here).
 */
import type { Readable } from 'node:stream';
import { parseSecTokenBindingHeader } from '../codec/header.js';
import { keyParametersName } from '../codec/keyparams.js';
import { decodeTokenBindingPublicKey } from '../codec/keys.js';
import { base64urlEncode } from '../codec/base64url.js';
import { formatTokenBindingID } from '../codec/message.js';
import type { TokenBinding } from '../codec/types.js';
import { tokenBindingHash } from '../crypto/hash.js';
import { TokenBindingError } from '../errors.js';
import { ExitCode, UsageError, writeJson, type CliCommand } from './io.js';

export const decodeUsage = 'tokbind decode <Sec-Token-Binding value | ->   (- reads the value from stdin)';

type JsonKey = { kty: 'EC'; crv: 'P-256'; x: string; y: string } | { kty: 'RSA'; n: string; e: string };

const hex = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

function typeName(type: number): 'provided' | 'referred' | number {
  return type === 0 ? 'provided' : type === 1 ? 'referred' : type;
}

function describeBinding(b: TokenBinding) {
  let key: JsonKey | null = null;
  let keyError: string | undefined;
  try {
    const k = decodeTokenBindingPublicKey(b.id);
    key =
      k.kind === 'ec'
        ? { kty: 'EC', crv: 'P-256', x: base64urlEncode(k.x), y: base64urlEncode(k.y) }
        : { kty: 'RSA', n: base64urlEncode(k.modulus), e: base64urlEncode(k.exponent) };
  } catch (err) {
    if (!(err instanceof TokenBindingError)) throw err;
    keyError = err.code;
  }
  return {
    type: typeName(b.type),
    keyParameters: keyParametersName(b.id.keyParameters),
    id: formatTokenBindingID(b.id),
    hash: tokenBindingHash(b.id),
    key,
    ...(keyError === undefined ? {} : { keyError }),
    signature: hex(b.signature),
    extensions: b.extensions.map((e) => ({ type: e.type, data: hex(e.data) })),
  };
}

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The `decode` command. Exit 0 with the JSON on stdout; exit 1 with
 * `{"error":{"code","message"}}` on stderr for a malformed value; a usage error throws
 * {@link UsageError} (exit 2).
 *
 * @example
 * ```sh
 * tokbind decode AIkAAgBBQFzK4_bh...
 * printf %s "$HEADER" | tokbind decode -
 * ```
 */
export const decode: CliCommand = async (argv, io) => {
  const positional: string[] = [];
  let optionsDone = false;
  for (const arg of argv) {
    if (!optionsDone && arg === '--') optionsDone = true;
    else if (!optionsDone && arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown option ${arg}`);
    else positional.push(arg);
  }
  if (positional.length === 0) throw new UsageError('missing the Sec-Token-Binding value');
  if (positional.length > 1) throw new UsageError(`expected one Sec-Token-Binding value, got ${positional.length} arguments`);

  // Only the line ending a file or a pipe adds is removed; any other whitespace is the value's.
  const value = positional[0] === '-' ? (await readAll(io.stdin)).replace(/(?:\r?\n)+$/, '') : positional[0]!;
  try {
    const message = parseSecTokenBindingHeader(value);
    io.stdout.write(JSON.stringify({ bindings: message.bindings.map(describeBinding) }, null, 2) + '\n');
    return ExitCode.ok;
  } catch (err) {
    if (!(err instanceof TokenBindingError)) throw err;
    writeJson(io.stderr, { error: { code: err.code, message: err.message } });
    return ExitCode.failure;
  }
};
