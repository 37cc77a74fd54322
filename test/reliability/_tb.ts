/**
 * Builds Token Binding messages the way a hostile client would: any type byte, any key parameters
 * in the signed data, any signature, and the offset of every length field so a test can break one
 * precisely. Signing is node:crypto, as in src/crypto/sign.ts, but over signed data the test
 * chooses (a client may sign one thing and send another).
 */
import { constants, sign as cryptoSign } from 'node:crypto';
import { tokenBindingSignedData } from '../../src/codec/signed-data.js';
import type { TokenBindingExtension } from '../../src/codec/types.js';
import type { TokenBindingKey } from '../../src/crypto/sign.js';

/** Signs `type || keyParameters || ekm` with `key` by the algorithm of `key` (not of `keyParameters`). */
export function signAs(key: TokenBindingKey, type: number, keyParameters: number, ekm: Uint8Array): Uint8Array {
  const data = tokenBindingSignedData(type, keyParameters, ekm);
  let signature: Buffer;
  if (key.keyParameters === 2) signature = cryptoSign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  else if (key.keyParameters === 1) signature = cryptoSign('sha256', data, { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  else signature = cryptoSign('sha256', data, { key: key.privateKey, padding: constants.RSA_PKCS1_PADDING });
  return new Uint8Array(signature);
}

/** One binding as it goes on the wire: every field free. */
export interface WireBinding {
  type: number;
  keyParameters: number;
  key: Uint8Array;
  signature: Uint8Array;
  extensions: readonly TokenBindingExtension[];
}

/** Where each field of one encoded binding sits in the message. */
export interface BindingLayout {
  readonly start: number;
  readonly keyParametersAt: number;
  readonly keyLengthAt: number;
  readonly keyAt: number;
  readonly signatureLengthAt: number;
  readonly signatureAt: number;
  readonly extensionsLengthAt: number;
  readonly end: number;
}

export interface EncodedMessage {
  readonly bytes: Uint8Array;
  readonly layout: readonly BindingLayout[];
}

const u16 = (n: number): number[] => [n >>> 8, n & 0xff];

/** Encodes bindings without any check (the codec's encoder rightly refuses what tests need). */
export function encodeWire(bindings: readonly WireBinding[]): EncodedMessage {
  const body: number[] = [];
  const layout: BindingLayout[] = [];
  for (const b of bindings) {
    const start = 2 + body.length;
    body.push(b.type, b.keyParameters, ...u16(b.key.length), ...b.key);
    const signatureLengthAt = 2 + body.length;
    body.push(...u16(b.signature.length), ...b.signature);
    const extensionsLengthAt = 2 + body.length;
    const ext: number[] = [];
    for (const e of b.extensions) ext.push(e.type, ...u16(e.data.length), ...e.data);
    body.push(...u16(ext.length), ...ext);
    layout.push({
      start,
      keyParametersAt: start + 1,
      keyLengthAt: start + 2,
      keyAt: start + 4,
      signatureLengthAt,
      signatureAt: signatureLengthAt + 2,
      extensionsLengthAt,
      end: 2 + body.length,
    });
  }
  return { bytes: Uint8Array.from([...u16(body.length), ...body]), layout };
}

/** A correctly signed binding of `key`. */
export function signedBinding(key: TokenBindingKey, type: number, ekm: Uint8Array, extensions: readonly TokenBindingExtension[] = []): WireBinding {
  return { type, keyParameters: key.keyParameters, key: key.id.key, signature: signAs(key, type, key.keyParameters, ekm), extensions };
}

/** The Sec-Token-Binding value for a message: unpadded base64url. */
export const headerOf = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

/** base64url of a key's TokenBindingID: what the server reports as `provided.id`. */
export const idOf = (key: TokenBindingKey): string => Buffer.from(key.id.raw).toString('base64url');

/** A header value with one correctly signed provided binding (and optionally a referred one). */
export function validHeader(key: TokenBindingKey, ekm: Uint8Array, referred?: TokenBindingKey): string {
  const bindings = [signedBinding(key, 0, ekm)];
  if (referred !== undefined) bindings.push(signedBinding(referred, 1, ekm));
  return headerOf(encodeWire(bindings).bytes);
}
