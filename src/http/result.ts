/**
 * What a server learns from a verified Sec-Token-Binding header (RFC 8471 §4.2, RFC 8473 §2).
 */
import { keyParametersName } from '../codec/keyparams.js';
import type { KeyParametersName, TokenBindingID } from '../codec/types.js';
import { tokenBindingHash } from '../crypto/hash.js';
import { DEFAULT_KEY_CACHE_SIZE, IdCache } from '../crypto/lru.js';

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
  /** The result of a message whose only binding is this ID, made on first use (see `tokenBindingResult`). */
  #alone: TokenBindingResult | undefined = undefined;

  /** `wire`: a TokenBindingID's wire bytes, key_parameters first (as the parser's `id.raw`). */
  constructor(wire: Uint8Array) {
    // Own copy: the parser hands out views into the decoded header.
    const raw = wire.slice();
    // Buffer's encoder returns a flat string; this one is kept as long as the ID is cached.
    this.id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url');
    this.hash = tokenBindingHash(raw);
    this.keyParameters = keyParametersName(raw[0]!);
    this.#raw = raw;
    Object.freeze(this);
  }

  /** A typed array cannot be frozen and this ID is shared by every connection of its client: each read gets a copy. */
  get raw(): Uint8Array {
    return this.#raw.slice();
  }

  /** A private field, so it can be set on this frozen object. */
  static alone(id: VerifiedTokenBindingID): TokenBindingResult {
    return (id.#alone ??= Object.freeze({ provided: id, referred: null, others: NO_OTHERS }));
  }
}

const NO_OTHERS: readonly OtherVerifiedBinding[] = Object.freeze([]);

/**
 * The frozen result for verified IDs. The common message — a provided binding alone — gets one
 * shared result per ID, kept with its VerifiedID: it is a pure function of that (frozen) ID, and a
 * new connection then allocates and freezes nothing for it. `others` is frozen as given.
 *
 * @internal Shared by verification and the trusted-proxy path.
 */
export function tokenBindingResult(provided: VerifiedID, referred: VerifiedID | null, others: OtherVerifiedBinding[] | undefined): TokenBindingResult {
  if (referred === null && (others === undefined || others.length === 0)) {
    if (provided instanceof VerifiedTokenBindingID) return VerifiedTokenBindingID.alone(provided);
    return Object.freeze({ provided, referred, others: NO_OTHERS });
  }
  return Object.freeze({ provided, referred, others: others === undefined ? NO_OTHERS : Object.freeze(others) });
}

/**
 * Verified IDs by wire bytes. A client signs with the same key on each of its connections, and a
 * VerifiedID is a pure function of the ID's bytes (frozen, `raw` copied on each read), so one
 * object serves them all: a new connection then costs a lookup, not a copy, two base64url
 * encodings and a SHA-256.
 *
 * Kept in an `IdCache` (the backends' kind of cache, two-way set-associative, keyed by the bytes):
 * about 0.5 KiB per cached ECDSA ID.
 */
const verifiedIDs = new IdCache<VerifiedTokenBindingID>(DEFAULT_KEY_CACHE_SIZE);

/** The frozen VerifiedID of a verified TokenBindingID: base64url and the hash computed once per distinct ID. */
export function createVerifiedID(id: TokenBindingID): VerifiedID {
  // `id.raw[0]` is `id.keyParameters`: the parser reads both from the same byte.
  return verifiedIDs.getOrCreate(id.raw, newVerifiedID);
}

/** One function for every miss: a closure over `id` would be allocated on every hit too. */
function newVerifiedID(raw: Uint8Array): VerifiedTokenBindingID {
  return new VerifiedTokenBindingID(raw);
}
