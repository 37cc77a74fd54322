/**
 * A header value as Node's HTTP parser hands it over: a flat one-byte string. Values built with
 * `+=` (as base64url encoders do) are V8 rope strings, which index more slowly until flattened —
 * timing the decoder on a rope would charge it for the bench's own string building.
 */
export function asHeaderString(value: string): string {
  return Buffer.from(value, 'latin1').toString('latin1');
}
