/**
 * What a server learns from a verified Sec-Token-Binding header (RFC 8471 §4.2, RFC 8473 §2).
 */
import { keyParametersName } from '../codec/keyparams.js';
import type { KeyParametersName, TokenBindingID } from '../codec/types.js';
import { tokenBindingHash } from '../crypto/hash.js';

/**
 * A Token Binding ID whose signature verified on this connection. JSON shows `id`, `hash` and
 * `keyParameters`; `raw` (the wire bytes) is non-enumerable so it never lands in logs by accident.
 */
export interface VerifiedID {
  /** base64url of the TokenBindingID wire bytes (what `Sec-Provided-Token-Binding-ID` carries). */
  readonly id: string;
  /** `tbh`: base64url(SHA-256(TokenBindingID)), the `cnf` value of bound tokens. */
  readonly hash: string;
  /** The RFC name of registered key parameters, the number otherwise. */
  readonly keyParameters: KeyParametersName | number;
  /** The TokenBindingID wire bytes (non-enumerable; a fresh copy on each read). */
  readonly raw: Uint8Array;
}

/** A binding of a type other than provided/referred whose signature verified. */
export interface OtherVerifiedBinding {
  readonly type: number;
  readonly id: VerifiedID;
}

/**
 * The verdict on an accepted Sec-Token-Binding. Frozen: it is cached on the connection and shared
 * by every request that repeats the same header.
 */
export interface TokenBindingResult {
  /** The provided Token Binding ID: the key the client uses with this server. */
  readonly provided: VerifiedID;
  /**
   * The referred Token Binding ID (RFC 8473 §5), or null when none was sent — or when its key
   * parameters could not be evaluated (RFC 8471 §4.2: not an error, but nothing to expose).
   */
  readonly referred: VerifiedID | null;
  /** Verified bindings of other (unknown) types. */
  readonly others: readonly OtherVerifiedBinding[];
}

/**
 * A class rather than a literal with a defined property: `raw` lives in a private field behind a
 * prototype getter (non-enumerable, so JSON shows id/hash/keyParameters), which is several times
 * cheaper to build than `Object.defineProperty` on every verified ID.
 */
class VerifiedTokenBindingID implements VerifiedID {
  readonly id: string;
  readonly hash: string;
  readonly keyParameters: KeyParametersName | number;
  readonly #raw: Uint8Array;

  constructor(id: TokenBindingID) {
    // Own copy: the parser hands out views into the decoded header.
    const raw = id.raw.slice();
    // Buffer's encoder returns a flat string; this one is kept for the life of the connection.
    this.id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url');
    this.hash = tokenBindingHash(raw);
    this.keyParameters = keyParametersName(id.keyParameters);
    this.#raw = raw;
    Object.freeze(this);
  }

  /** A typed array cannot be frozen and this ID is shared by every request on the connection: each read gets a copy. */
  get raw(): Uint8Array {
    return this.#raw.slice();
  }
}

/** Builds the frozen VerifiedID: base64url and the hash are computed once, here, on success only. */
export function createVerifiedID(id: TokenBindingID): VerifiedID {
  return new VerifiedTokenBindingID(id);
}
