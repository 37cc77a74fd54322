/**
 * `tokbind decode <header | ->`: prints a Sec-Token-Binding value as JSON — every binding's type,
 * key parameters, ID, `tbh`, decoded key, signature and extensions. Parse only: nothing is
 * verified (no EKM here).
 */
import { parseSecTokenBindingHeader } from '../codec/header.js';
import { keyParametersName } from '../codec/keyparams.js';
import { decodeTokenBindingPublicKey } from '../codec/keys.js';
import { base64urlEncode } from '../codec/base64url.js';
import { formatTokenBindingID } from '../codec/message.js';
import type { TokenBinding } from '../codec/types.js';
import { tokenBindingHash } from '../crypto/hash.js';
import { TokenBindingError } from '../errors.js';
import { defineCommand, readStream } from './args.js';
import { ExitCode, writeJson } from './io.js';

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
export const decode = defineCommand(
  {
    name: 'decode',
    summary: 'decode a Sec-Token-Binding header value to JSON (parse only, nothing verified)',
    options: {},
    positionals: [{ name: 'value', description: 'the Sec-Token-Binding header value (base64url), or - to read it from stdin', required: true }],
    exitCodes: { 0: 'decoded: JSON on stdout', 1: 'malformed value: {"error":{"code","message"}} on stderr' },
    examples: ['tokbind decode AIkAAgBBQFzK4_bh...', 'printf %s "$HEADER" | tokbind decode -'],
  },
  async ({ positionals }, io) => {
    // Only the line ending a file or a pipe adds is removed; any other whitespace is the value's.
    const value = positionals[0] === '-' ? (await readStream(io.stdin)).toString('utf8').replace(/(?:\r?\n)+$/, '') : positionals[0]!;
    try {
      const message = parseSecTokenBindingHeader(value);
      io.stdout.write(JSON.stringify({ bindings: message.bindings.map(describeBinding) }, null, 2) + '\n');
      return ExitCode.ok;
    } catch (err) {
      if (!(err instanceof TokenBindingError)) throw err;
      writeJson(io.stderr, { error: { code: err.code, message: err.message } });
      return ExitCode.failure;
    }
  },
);
