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
