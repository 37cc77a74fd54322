import test from 'ava';
import { DEFAULT_KEY_CACHE_SIZE, LruCache, idCacheKey } from '../../src/crypto/lru.js';

test('default size is 1024', (t) => {
  t.is(new LruCache().maxSize, DEFAULT_KEY_CACHE_SIZE);
  t.is(DEFAULT_KEY_CACHE_SIZE, 1024);
});

test('evicts the least recently used entry, and get refreshes recency', (t) => {
  const lru = new LruCache<string, number>(2);
  lru.set('a', 1);
  lru.set('b', 2);
  t.is(lru.get('a'), 1); // a is now the most recent
  lru.set('c', 3); // evicts b
  t.is(lru.size, 2);
  t.is(lru.get('b'), undefined);
  t.is(lru.get('a'), 1);
  t.is(lru.get('c'), 3);
  lru.set('d', 4); // evicts a (c was touched after a)
  t.is(lru.get('a'), undefined);
  t.deepEqual([lru.get('c'), lru.get('d')], [3, 4]);
});

test('set on an existing key replaces it and refreshes it', (t) => {
  const lru = new LruCache<string, number>(2);
  lru.set('a', 1);
  lru.set('b', 2);
  lru.set('a', 10);
  lru.set('c', 3); // evicts b, not a
  t.is(lru.get('a'), 10);
  t.is(lru.get('b'), undefined);
});

test('falsy values other than undefined are cached', (t) => {
  const lru = new LruCache<string, number | null>(4);
  lru.set('zero', 0);
  lru.set('null', null);
  t.is(lru.get('zero'), 0);
  t.is(lru.get('null'), null);
  t.throws(() => lru.set('u', undefined as unknown as number), { instanceOf: TypeError });
});

test('size 0 caches nothing; bad sizes are API misuse', (t) => {
  const lru = new LruCache<string, number>(0);
  lru.set('a', 1);
  t.is(lru.get('a'), undefined);
  t.is(lru.size, 0);
  for (const bad of [-1, 1.5, Number.NaN]) t.throws(() => new LruCache(bad), { instanceOf: TypeError });
});

test('clear empties the cache', (t) => {
  const lru = new LruCache<string, number>(3);
  lru.set('a', 1);
  lru.clear();
  t.is(lru.size, 0);
  t.is(lru.get('a'), undefined);
});

test('idCacheKey is injective on bytes and ignores the view offset', (t) => {
  const bytes = new Uint8Array([9, 0, 1, 255, 128, 0]);
  t.is(idCacheKey(bytes.subarray(1, 4)), idCacheKey(new Uint8Array([0, 1, 255])));
  t.not(idCacheKey(new Uint8Array([0, 1])), idCacheKey(new Uint8Array([0, 1, 0])));
  t.not(idCacheKey(new Uint8Array([0xc3, 0xa9])), idCacheKey(new Uint8Array([0xe9])));
  t.is(idCacheKey(new Uint8Array(256).map((_, i) => i)).length, 256);
});
