import test from 'ava';
import fc from 'fast-check';
import { DEFAULT_KEY_CACHE_SIZE, IdCache, LruCache, idCacheKey } from '../../src/crypto/lru.js';

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

test('idCacheKey is the latin1 string of the bytes, as Buffer makes it', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(8), (bytes, offset) => {
      const view = new Uint8Array(offset + bytes.length);
      view.set(bytes, offset);
      return idCacheKey(view.subarray(offset)) === Buffer.from(bytes).toString('latin1');
    }),
  );
  t.pass();
});

test('IdCache answers like a map of the bytes, for any sequence of sets, gets and getOrCreates, and never holds more than its size', (t) => {
  // Few distinct keys and a small cache: sets collide, ways get evicted, keys come back.
  const key = fc.uint8Array({ minLength: 1, maxLength: 6 }).map((b) => b.map((x) => x & 3));
  const op = fc.record({ set: fc.boolean(), create: fc.boolean(), key, value: fc.nat(1000) });
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 7 }), fc.array(op, { maxLength: 200 }), (size, ops) => {
      const cache = new IdCache<number>(size);
      const truth = new Map<string, number>();
      for (const o of ops) {
        const k = Buffer.from(o.key).toString('hex');
        if (o.set) {
          // The caller may reuse its buffer: the cache keeps a copy.
          const scratch = Uint8Array.from(o.key);
          cache.set(scratch, o.value);
          scratch.fill(9);
          truth.set(k, o.value);
        } else if (o.create) {
          // getOrCreate: a hit is the latest value for these bytes and creates nothing; a miss
          // creates the value (from these bytes), which is then what the cache holds.
          let created = false;
          const got = cache.getOrCreate(o.key, (raw) => {
            created = true;
            if (Buffer.from(raw).toString('hex') !== k) throw new Error('created from other bytes');
            return o.value;
          });
          if (created) {
            if (got !== o.value) return false;
            if (size > 0) truth.set(k, o.value);
          } else if (got !== truth.get(k)) return false;
        } else {
          const got = cache.get(o.key);
          // A hit is always the latest value set for these exact bytes; a miss is allowed (evicted).
          if (got !== undefined && got !== truth.get(k)) return false;
        }
        if (cache.size > size) return false;
      }
      return true;
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

test('IdCache keeps two IDs that share a set and evicts the one used less recently', (t) => {
  const cache = new IdCache<string>(2); // one set of two ways
  const a = new Uint8Array([1]);
  const b = new Uint8Array([2]);
  const c = new Uint8Array([3]);
  cache.set(a, 'a');
  cache.set(b, 'b');
  t.is(cache.get(a), 'a');
  cache.set(c, 'c'); // b was used less recently
  t.deepEqual([cache.get(a), cache.get(b), cache.get(c)], ['a', undefined, 'c']);
  t.is(cache.get(new Uint8Array([1, 0])), undefined, 'a longer key is another key');
  cache.set(a, 'a2');
  t.is(cache.get(a), 'a2');
  t.is(cache.size, 2);
  cache.clear();
  t.is(cache.size, 0);
  t.is(cache.get(a), undefined);
  const none = new IdCache<string>(0);
  none.set(a, 'a');
  t.is(none.get(a), undefined);
  t.throws(() => cache.set(a, undefined as unknown as string), { instanceOf: TypeError });
  for (const bad of [-1, 1.5, Number.NaN]) t.throws(() => new IdCache(bad), { instanceOf: TypeError });
  t.is(new IdCache().maxSize, DEFAULT_KEY_CACHE_SIZE);
});
