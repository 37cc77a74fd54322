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
 * A message that names the usual mistakes in a pasted value, for a value the codec refused as
 * not unpadded base64url: the header name pasted with it, `=` padding, standard base64, quotes,
 * whitespace. Null when none applies (the codec's own message stands).
 */
export function headerValueMistake(value: string): string | null {
  if (/^\s*sec-token-binding\s*:/i.test(value)) return 'the value starts with the header name "Sec-Token-Binding:": give only what follows the colon';
  if (/^\s*(?:sec-provided-token-binding-id|sec-referred-token-binding-id)\s*:/i.test(value)) {
    return 'that is a TTRP header line (Sec-Provided/Referred-Token-Binding-ID), not Sec-Token-Binding';
  }
  if (/^(["']).*\1$/s.test(value)) return 'the value is in quotes: remove them';
  if (/=+$/.test(value.trim())) return 'the value ends in "=" padding: Sec-Token-Binding is base64url without padding (RFC 8473 §2): remove the trailing "="';
  if (/[+/]/.test(value)) return 'the value contains "+" or "/": that is standard base64; Sec-Token-Binding is base64url ("-" and "_", RFC 8473 §2)';
  if (/\s/.test(value)) return 'the value contains whitespace (a line break from copying?): Sec-Token-Binding is one base64url string';
  return null;
}

/** The error to print for a value the codec refused, with {@link headerValueMistake}'s hint. */
export function explainHeaderError(err: TokenBindingError, value: string): { code: string; message: string } {
  const hint = err.code === 'ERR_TB_HEADER_ENCODING' || err.code === 'ERR_TB_MALFORMED' ? headerValueMistake(value) : null;
  return { code: err.code, message: hint === null ? err.message : `${hint} (${err.message})` };
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
      writeJson(io.stderr, { error: explainHeaderError(err, value) });
      return ExitCode.failure;
    }
  },
);
