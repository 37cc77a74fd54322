/**
 * RFC 8473 §2: the Sec-Token-Binding header value, `EncodedTokenBindingMessage` — base64url
 * (RFC 4648 §5) of one TokenBindingMessage, no padding, no whitespace.
 */
import { TokenBindingError } from '../errors.js';
import { base64urlDecode, base64urlDecodeTransient, base64urlEncode } from './base64url.js';
import { parseTokenBindingMessage } from './message.js';
import type { TokenBindingMessage } from './types.js';

/** Default cap on the header value, in characters: ~3 KiB of message, room for several RSA bindings. */
export const DEFAULT_MAX_HEADER_LENGTH = 4096;

export interface SecTokenBindingHeaderOptions {
  /** Longest accepted header value in characters, checked before decoding. Default 4096. */
  readonly maxLength?: number;
}

function maxLengthOf(options: SecTokenBindingHeaderOptions | undefined): number {
  const max = options?.maxLength ?? DEFAULT_MAX_HEADER_LENGTH;
  if (!Number.isSafeInteger(max) || max < 0) throw new TypeError('maxLength must be a non-negative integer');
  return max;
}

/**
 * Decodes a Sec-Token-Binding header value into TokenBindingMessage bytes (RFC 8473 §2). The
 * length cap is enforced before any decoding work; the decoding is strict base64url (see
 * `base64urlDecode`).
 *
 * @throws {TokenBindingError} `ERR_TB_HEADER_TOO_LARGE` over `maxLength` characters;
 *   `ERR_TB_HEADER_ENCODING` for anything but canonical unpadded base64url
 * @example
 * ```ts
 * const bytes = decodeSecTokenBindingHeader(req.headers['sec-token-binding'], { maxLength: 2048 })
 * ```
 */
export function decodeSecTokenBindingHeader(value: string, options?: SecTokenBindingHeaderOptions): Uint8Array {
  checkHeaderLength(value, options);
  return base64urlDecode(value);
}

/**
 * {@link decodeSecTokenBindingHeader} into a shared slab (see `base64urlDecodeTransient`): for the
 * verifier, which copies every byte it hands out.
 *
 * @internal
 */
export function decodeSecTokenBindingHeaderTransient(value: string, options?: SecTokenBindingHeaderOptions): Uint8Array {
  checkHeaderLength(value, options);
  return base64urlDecodeTransient(value);
}

/** The length cap, checked before any decoding work. */
function checkHeaderLength(value: string, options: SecTokenBindingHeaderOptions | undefined): void {
  if (typeof value !== 'string') throw new TypeError('value must be a string');
  const max = maxLengthOf(options);
  if (value.length > max) {
    throw new TokenBindingError('ERR_TB_HEADER_TOO_LARGE', `Sec-Token-Binding longer than ${max} characters`, {
      field: 'Sec-Token-Binding',
      expected: `<= ${max} characters`,
      actual: value.length,
    });
  }
}

/**
 * Encodes TokenBindingMessage bytes as a Sec-Token-Binding header value (RFC 8473 §2).
 *
 * @example
 * ```ts
 * headers['sec-token-binding'] = encodeSecTokenBindingHeader(encodeTokenBindingMessage(message))
 * ```
 */
export function encodeSecTokenBindingHeader(bytes: Uint8Array): string {
  return base64urlEncode(bytes);
}

/**
 * Decodes and parses a Sec-Token-Binding header value (RFC 8473 §2, RFC 8471 §3). The result
 * views a buffer private to this call.
 *
 * @throws {TokenBindingError} `ERR_TB_HEADER_TOO_LARGE`, `ERR_TB_HEADER_ENCODING`, `ERR_TB_MALFORMED`
 * @example
 * ```ts
 * const { bindings } = parseSecTokenBindingHeader(value)
 * ```
 */
export function parseSecTokenBindingHeader(value: string, options?: SecTokenBindingHeaderOptions): TokenBindingMessage {
  return parseTokenBindingMessage(decodeSecTokenBindingHeader(value, options));
}
