/**
 * A small bounded LRU over `Map`, whose iteration order is insertion order: a hit moves the entry
 * to the end, an insert past the bound drops the first (least recently used) entry. Used for the
 * imported-public-key caches of the verification backends, keyed by TokenBindingID bytes.
 */

/** Default number of imported keys a backend keeps. */
export const DEFAULT_KEY_CACHE_SIZE = 1024;

/** @internal */
export class LruCache<K, V> {
  readonly #map = new Map<K, V>();
  /** Entries kept; 0 disables the cache (every `set` is dropped). */
  readonly maxSize: number;

  constructor(maxSize: number = DEFAULT_KEY_CACHE_SIZE) {
    if (!Number.isSafeInteger(maxSize) || maxSize < 0) throw new TypeError('cache size must be a non-negative integer');
    this.maxSize = maxSize;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: K): V | undefined {
    const map = this.#map;
    const value = map.get(key);
    // `undefined` is never stored (see set), so this is a miss.
    if (value === undefined) return undefined;
    map.delete(key);
    map.set(key, value);
    return value;
  }

  set(key: K, value: V): void {
    if (value === undefined) throw new TypeError('undefined cannot be cached');
    if (this.maxSize === 0) return;
    const map = this.#map;
    map.delete(key);
    map.set(key, value);
    if (map.size > this.maxSize) map.delete(map.keys().next().value as K);
  }

  clear(): void {
    this.#map.clear();
  }
}

/**
 * The cache key for a TokenBindingID: its wire bytes as a latin1 string (one char per byte, so
 * distinct IDs give distinct keys). Strings hash in V8's Map; a Uint8Array would compare by identity.
 *
 * @internal
 */
export function idCacheKey(raw: Uint8Array): string {
  return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');
}

/** A per-process seed for {@link IdCache}'s slot hash: which IDs share a set is not known outside. */
const SEED = (Math.random() * 0x1_0000_0000) >>> 0;

/** Seeded FNV-1a over the bytes (fast, not cryptographic: it only spreads IDs over sets). */
function hashBytes(bytes: Uint8Array): number {
  let h = (0x811c9dc5 ^ SEED) >>> 0;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return (h ^ (h >>> 15)) >>> 0;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A bounded cache keyed by TokenBindingID wire bytes, for the per-connection verification path:
 * two-way set-associative (an ID hashes to a set of two entries; a new ID replaces the one of the
 * two used less recently), the bytes compared on a hit. Compared with {@link LruCache} over
 * {@link idCacheKey} strings, a lookup reads the ID's bytes and one set, where the string costs a
 * native call, its hashing and the Map's reordering: ~4 µs against ~0.5 µs per new connection
 * measured with the CPU caches cold, as they are between two TLS handshakes. The price is that
 * three hot IDs in one set evict each other, which a true LRU of the same size would not; the
 * slot hash is seeded per process, so IDs cannot be aimed at one set from outside.
 *
 * @internal
 */
export class IdCache<V> {
  /** Entries kept; 0 disables the cache (every `set` is dropped). */
  readonly maxSize: number;
  readonly #sets: number;
  readonly #hashes: Uint32Array;
  readonly #keys: (Uint8Array | undefined)[];
  readonly #values: (V | undefined)[];
  /** Per set: the way (0 or 1) hit or filled last. */
  readonly #recent: Uint8Array;

  constructor(maxSize: number = DEFAULT_KEY_CACHE_SIZE) {
    if (!Number.isSafeInteger(maxSize) || maxSize < 0) throw new TypeError('cache size must be a non-negative integer');
    this.maxSize = maxSize;
    this.#sets = Math.ceil(maxSize / 2);
    this.#hashes = new Uint32Array(maxSize);
    this.#keys = new Array<Uint8Array | undefined>(maxSize).fill(undefined);
    this.#values = new Array<V | undefined>(maxSize).fill(undefined);
    this.#recent = new Uint8Array(this.#sets);
  }

  get size(): number {
    let n = 0;
    for (const k of this.#keys) if (k !== undefined) n++;
    return n;
  }

  /** Entry index of `raw` in its set, or -1. */
  #find(raw: Uint8Array, h: number, set: number): number {
    for (let i = set * 2; i < set * 2 + 2 && i < this.maxSize; i++) {
      const k = this.#keys[i];
      if (k !== undefined && this.#hashes[i] === h && sameBytes(k, raw)) return i;
    }
    return -1;
  }

  get(raw: Uint8Array): V | undefined {
    if (this.maxSize === 0) return undefined;
    const h = hashBytes(raw);
    const set = h % this.#sets;
    const i = this.#find(raw, h, set);
    if (i < 0) return undefined;
    this.#recent[set] = i & 1;
    return this.#values[i];
  }

  /** Keeps `value` for a copy of `raw`. */
  set(raw: Uint8Array, value: V): void {
    if (value === undefined) throw new TypeError('undefined cannot be cached');
    if (this.maxSize === 0) return;
    const h = hashBytes(raw);
    const set = h % this.#sets;
    const i = this.#find(raw, h, set);
    this.#put(i < 0 ? this.#claim(raw, h, set) : i, set, value);
  }

  /**
   * The value cached for `raw`, or else `create(raw)`, cached and returned: what `get` then `set`
   * do, with the bytes hashed and the set searched once.
   */
  getOrCreate(raw: Uint8Array, create: (raw: Uint8Array) => V): V {
    if (this.maxSize === 0) return create(raw);
    const h = hashBytes(raw);
    const set = h % this.#sets;
    const i = this.#find(raw, h, set);
    if (i >= 0) {
      this.#recent[set] = i & 1;
      return this.#values[i]!;
    }
    const value = create(raw);
    if (value === undefined) throw new TypeError('undefined cannot be cached');
    this.#put(this.#claim(raw, h, set), set, value);
    return value;
  }

  /** The way a new key takes in its set (an empty one first, otherwise the one not used last), holding a copy of `raw`. */
  #claim(raw: Uint8Array, h: number, set: number): number {
    const first = set * 2;
    const hasSecond = first + 1 < this.maxSize;
    let i: number;
    if (this.#keys[first] === undefined || !hasSecond) i = first;
    else if (this.#keys[first + 1] === undefined) i = first + 1;
    else i = first + (this.#recent[set] === 0 ? 1 : 0);
    this.#keys[i] = raw.slice();
    this.#hashes[i] = h;
    return i;
  }

  #put(i: number, set: number, value: V): void {
    this.#values[i] = value;
    this.#recent[set] = i & 1;
  }

  clear(): void {
    this.#keys.fill(undefined);
    this.#values.fill(undefined);
  }
}
