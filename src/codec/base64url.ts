/**
 * base64url without padding (RFC 4648 §5), strict and hand-written: the Sec-Token-Binding header
 * is decoded on every request, and the encoder produces IDs and `tbh` values. Pure: no Node APIs.
 */
import { TokenBindingError } from '../errors.js';
import { carve } from './slab.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** char code (0..127) → sextet, 0xff for a character outside the alphabet. */
const DECODE = new Uint8Array(128).fill(0xff);
for (let i = 0; i < 64; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

/** 12-bit group → its two characters: one lookup per 1.5 input bytes instead of per 6 bits. */
const PAIRS: string[] = [];
for (let i = 0; i < 4096; i++) PAIRS.push(ALPHABET[i >>> 6]! + ALPHABET[i & 63]!);

/**
 * Encodes bytes as base64url without padding (RFC 4648 §5; the form RFC 8473 §2 requires).
 *
 * @example
 * ```ts
 * base64urlEncode(new Uint8Array([0xfb, 0xff])) // '-_8'
 * ```
 */
export function base64urlEncode(bytes: Uint8Array): string {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  const len = bytes.length;
  const full = len - (len % 3);
  let out = '';
  let i = 0;
  for (; i < full; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += PAIRS[n >>> 12]! + PAIRS[n & 0xfff]!;
  }
  if (len - full === 1) {
    const b = bytes[i]!;
    out += ALPHABET[b >>> 2]! + ALPHABET[(b & 3) << 4]!;
  } else if (len - full === 2) {
    const n = (bytes[i]! << 8) | bytes[i + 1]!;
    out += PAIRS[n >>> 4]! + ALPHABET[(n & 0xf) << 2]!;
  }
  return out;
}

function sextet(input: string, i: number): number {
  const c = input.charCodeAt(i);
  return c < 128 ? DECODE[c]! : 0xff;
}

/** The slow path: locate and describe the offending character. */
function invalidCharacter(input: string): TokenBindingError {
  let i = 0;
  while (i < input.length && sextet(input, i) !== 0xff) i++;
  const c = input.charCodeAt(i);
  return new TokenBindingError('ERR_TB_HEADER_ENCODING', `invalid base64url character at offset ${i}`, {
    field: 'base64url',
    expected: 'A-Z a-z 0-9 - _ (no padding, no whitespace)',
    actual: c === 0x3d ? 'padding' : `U+${c.toString(16).padStart(4, '0')}`,
    offset: i,
  });
}

/**
 * Decodes base64url without padding (RFC 4648 §5), strictly: only the 64 URL-safe characters,
 * no `=`, no whitespace, and canonical only — a length of 4n+1, or a final character whose unused
 * low bits are not zero, is rejected, so each byte string has exactly one accepted encoding.
 * One pass over the string into a new array of its own.
 *
 * @throws {TokenBindingError} `ERR_TB_HEADER_ENCODING`
 * @example
 * ```ts
 * base64urlDecode('-_8') // Uint8Array [0xfb, 0xff]
 * base64urlDecode('-_9') // throws ERR_TB_HEADER_ENCODING (non-canonical)
 * ```
 */
export function base64urlDecode(input: string): Uint8Array {
  if (typeof input !== 'string') throw new TypeError('input must be a string');
  return decodeInto(input, new Uint8Array(decodedLength(input)));
}

/**
 * {@link base64urlDecode} into a view of a shared slab (slab.ts) instead of an array of its own:
 * for the verifier's per-request decode, whose bytes never leave it (every ID it hands out is
 * copied). Not for results handed to callers: the view's `buffer` holds other requests' bytes.
 *
 * @internal
 */
export function base64urlDecodeTransient(input: string): Uint8Array {
  return decodeInto(input, carve(decodedLength(input)));
}

/** The decoded length of a base64url string, or the coded refusal of a 4n+1 length. */
function decodedLength(input: string): number {
  const len = input.length;
  const rem = len & 3;
  if (rem === 1) {
    throw new TokenBindingError('ERR_TB_HEADER_ENCODING', 'base64url length is 1 mod 4', {
      field: 'base64url',
      expected: 'length not 1 mod 4',
      actual: len,
    });
  }
  return (len >>> 2) * 3 + (rem === 0 ? 0 : rem - 1);
}

/** The strict decode of `input` into `out` (of exactly {@link decodedLength} bytes). */
function decodeInto(input: string, out: Uint8Array): Uint8Array {
  const len = input.length;
  const rem = len & 3;
  const full = len - rem;
  let o = 0;
  let i = 0;
  for (; i < full; i += 4) {
    const a = sextet(input, i);
    const b = sextet(input, i + 1);
    const c = sextet(input, i + 2);
    const d = sextet(input, i + 3);
    // 0xff marks an invalid character; any of them sets bits above the sextet range.
    if ((a | b | c | d) > 63) throw invalidCharacter(input);
    out[o++] = (a << 2) | (b >>> 4);
    out[o++] = ((b & 15) << 4) | (c >>> 2);
    out[o++] = ((c & 3) << 6) | d;
  }
  if (rem !== 0) {
    const a = sextet(input, i);
    const b = sextet(input, i + 1);
    const c = rem === 3 ? sextet(input, i + 2) : 0;
    if ((a | b | c) > 63) throw invalidCharacter(input);
    const unused = rem === 2 ? b & 15 : c & 3;
    if (unused !== 0) {
      throw new TokenBindingError('ERR_TB_HEADER_ENCODING', 'non-canonical base64url: unused bits set', {
        field: 'base64url',
        expected: 'unused low bits of the final character zero',
        actual: input[len - 1],
        offset: len - 1,
      });
    }
    out[o++] = (a << 2) | (b >>> 4);
    if (rem === 3) out[o] = ((b & 15) << 4) | (c >>> 2);
  }
  return out;
}
