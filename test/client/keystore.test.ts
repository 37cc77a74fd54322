import test from 'ava';
import { chmod, mkdtemp, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileKeyStore, MemoryKeyStore } from '../../src/client/keystore.js';
import { isTokenBindingError } from '../../src/errors.js';

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-keystore-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('MemoryKeyStore: one key per scope and key parameters, created once', async (t) => {
  const store = new MemoryKeyStore();
  t.is(await store.getKey('example.com', 'ecdsap256'), undefined);
  const key = await store.getOrCreateKey('example.com', 'ecdsap256');
  t.is(key.keyParameters, 2);
  t.is(await store.getOrCreateKey('example.com', 'ecdsap256'), key);
  t.is(await store.getKey('example.com', 'ecdsap256'), key);
  t.not(await store.getOrCreateKey('example.org', 'ecdsap256'), key);
  await t.throwsAsync(() => store.getOrCreateKey('', 'ecdsap256'), { instanceOf: TypeError });
  await t.throwsAsync(() => store.getOrCreateKey('example.com', 'rsa4096' as 'ecdsap256'), { instanceOf: TypeError });
});

test('FileKeyStore: keys survive a new store on the same file (ecdsap256 and rsa2048_pss)', async (t) => {
  const path = join(await tempDir(t), 'keys.json');
  const first = new FileKeyStore(path);
  const ec = await first.getOrCreateKey('example.com', 'ecdsap256');
  const rsa = await first.getOrCreateKey('example.com', 'rsa2048_pss');
  t.is(rsa.keyParameters, 1);

  const second = new FileKeyStore(path);
  const ecAgain = await second.getKey('example.com', 'ecdsap256');
  const rsaAgain = await second.getOrCreateKey('example.com', 'rsa2048_pss');
  t.deepEqual(ecAgain?.id.raw, ec.id.raw);
  t.deepEqual(rsaAgain.id.raw, rsa.id.raw);
  t.is(await second.getKey('example.org', 'ecdsap256'), undefined);
  t.deepEqual(
    (await second.list()).map(({ scope, keyParameters }) => `${keyParameters} ${scope}`).sort(),
    ['ecdsap256 example.com', 'rsa2048_pss example.com'],
  );
  const file = JSON.parse(await readFile(path, 'utf8')) as { tokbind: string; version: number; keys: Record<string, Record<string, { jwk: { kty: string; d?: string } }>> };
  t.is(file.tokbind, 'key-store');
  t.is(file.version, 1);
  t.is(file.keys['example.com']?.['ecdsap256']?.jwk.kty, 'EC');
  t.is(file.keys['example.com']?.['rsa2048_pss']?.jwk.kty, 'RSA');
});

test('FileKeyStore: the file is created with mode 0600 and no temporary file is left behind', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'keys.json');
  const previous = process.umask(0o000);
  try {
    await new FileKeyStore(path).getOrCreateKey('example.com', 'ecdsap256');
  } finally {
    process.umask(previous);
  }
  t.is((await stat(path)).mode & 0o777, 0o600);
  t.deepEqual(await readdir(dir), ['keys.json']);
});

test('FileKeyStore: a write replaces the file by rename, never rewrites it in place', async (t) => {
  const path = join(await tempDir(t), 'keys.json');
  const store = new FileKeyStore(path);
  await store.getOrCreateKey('a.example', 'ecdsap256');
  const before = await readFile(path, 'utf8');
  const inodeBefore = (await stat(path)).ino;
  // A reader holding the old file keeps reading the complete old version.
  const reader = await open(path, 'r');
  t.teardown(() => reader.close());
  await store.getOrCreateKey('b.example', 'ecdsap256');
  t.not((await stat(path)).ino, inodeBefore);
  t.is(await reader.readFile('utf8'), before);
  const after = JSON.parse(await readFile(path, 'utf8')) as { keys: Record<string, unknown> };
  t.deepEqual(Object.keys(after.keys).sort(), ['a.example', 'b.example']);
});

test('FileKeyStore: concurrent requests for one scope create one key', async (t) => {
  const path = join(await tempDir(t), 'keys.json');
  const store = new FileKeyStore(path);
  const keys = await Promise.all(Array.from({ length: 8 }, () => store.getOrCreateKey('example.com', 'ecdsap256')));
  for (const key of keys) t.deepEqual(key.id.raw, keys[0]!.id.raw);
  t.is((await new FileKeyStore(path).list()).length, 1);
});

test('FileKeyStore: a key another store added to the file meanwhile is kept, not overwritten', async (t) => {
  const path = join(await tempDir(t), 'keys.json');
  const one = new FileKeyStore(path);
  const two = new FileKeyStore(path);
  await one.getOrCreateKey('seen-by-one.example', 'ecdsap256'); // `one` has now read the file
  const fromTwo = await two.getOrCreateKey('shared.example', 'ecdsap256');
  // `one` never saw shared.example: asking for it must find two's key in the file, not make a new one.
  const fromOne = await one.getOrCreateKey('shared.example', 'ecdsap256');
  t.deepEqual(fromOne.id.raw, fromTwo.id.raw);
  await one.getOrCreateKey('third.example', 'ecdsap256');
  t.deepEqual((await new FileKeyStore(path).list()).map((e) => e.scope).sort(), ['seen-by-one.example', 'shared.example', 'third.example']);
});

test('FileKeyStore: a missing file is an empty store; init() creates it empty with mode 0600', async (t) => {
  const path = join(await tempDir(t), 'keys.json');
  const store = new FileKeyStore(path);
  t.is(await store.getKey('example.com', 'ecdsap256'), undefined);
  t.true(await store.init());
  t.false(await store.init());
  t.is((await stat(path)).mode & 0o777, 0o600);
  t.deepEqual(JSON.parse(await readFile(path, 'utf8')), { tokbind: 'key-store', version: 1, keys: {} });
});

const corrupt: [string, string][] = [
  ['not JSON', '{"tokbind": "key-store", '],
  ['empty file', ''],
  ['not a key store', '{"hello": "world"}'],
  ['unknown version', '{"tokbind":"key-store","version":2,"keys":{}}'],
  ['keys not an object', '{"tokbind":"key-store","version":1,"keys":[]}'],
  ['unknown key parameters', '{"tokbind":"key-store","version":1,"keys":{"example.com":{"ecdsap384":{"created":"x","jwk":{}}}}}'],
  ['JWK that does not load', '{"tokbind":"key-store","version":1,"keys":{"example.com":{"ecdsap256":{"created":"x","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}}}}}'],
];

for (const [name, text] of corrupt) {
  test(`FileKeyStore: ${name} is ERR_TB_KEY_STORE and the file is left untouched`, async (t) => {
    const path = join(await tempDir(t), 'keys.json');
    await writeFile(path, text, { mode: 0o600 });
    const store = new FileKeyStore(path);
    const err = await t.throwsAsync(() => store.getOrCreateKey('example.com', 'ecdsap256'));
    t.true(isTokenBindingError(err, 'ERR_TB_KEY_STORE'), String(err));
    const again = await t.throwsAsync(() => store.getKey('example.com', 'ecdsap256'));
    t.true(isTokenBindingError(again, 'ERR_TB_KEY_STORE'));
    t.is(await readFile(path, 'utf8'), text);
  });
}

test('FileKeyStore: a public-only JWK, or a key of the wrong type for its parameters, is ERR_TB_KEY_STORE', async (t) => {
  const dir = await tempDir(t);
  const source = join(dir, 'source.json');
  await new FileKeyStore(source).getOrCreateKey('example.com', 'ecdsap256');
  const file = JSON.parse(await readFile(source, 'utf8')) as { keys: Record<string, Record<string, { jwk: Record<string, unknown> }>> };
  const entry = file.keys['example.com']!['ecdsap256']!;

  const mislabelled = join(dir, 'mislabelled.json');
  await writeFile(mislabelled, JSON.stringify({ ...file, keys: { 'example.com': { rsa2048_pss: entry } } }), { mode: 0o600 });
  t.true(isTokenBindingError(await t.throwsAsync(() => new FileKeyStore(mislabelled).getKey('example.com', 'rsa2048_pss')), 'ERR_TB_KEY_STORE'));

  const { d: _d, ...publicJwk } = entry.jwk;
  const publicOnly = join(dir, 'public.json');
  await writeFile(publicOnly, JSON.stringify({ ...file, keys: { 'example.com': { ecdsap256: { ...entry, jwk: publicJwk } } } }), { mode: 0o600 });
  t.true(isTokenBindingError(await t.throwsAsync(() => new FileKeyStore(publicOnly).getKey('example.com', 'ecdsap256')), 'ERR_TB_KEY_STORE'));
});

test('FileKeyStore: a file that group or others may read is refused with ERR_TB_KEY_STORE', async (t) => {
  if (process.platform === 'win32') {
    t.pass('Windows has no POSIX modes');
    return;
  }
  const path = join(await tempDir(t), 'keys.json');
  const store = new FileKeyStore(path);
  const key = await store.getOrCreateKey('example.com', 'ecdsap256');
  await chmod(path, 0o644);
  const err = await t.throwsAsync(() => new FileKeyStore(path).getKey('example.com', 'ecdsap256'));
  t.true(isTokenBindingError(err, 'ERR_TB_KEY_STORE'));
  await chmod(path, 0o600);
  t.deepEqual((await new FileKeyStore(path).getKey('example.com', 'ecdsap256'))?.id.raw, key.id.raw);
});

test('FileKeyStore: a directory or an unreadable path is ERR_TB_KEY_STORE', async (t) => {
  const dir = await tempDir(t);
  const err = await t.throwsAsync(() => new FileKeyStore(dir).getKey('example.com', 'ecdsap256'));
  t.true(isTokenBindingError(err, 'ERR_TB_KEY_STORE'));
  const inMissingDir = new FileKeyStore(join(dir, 'missing', 'keys.json'));
  const writeErr = await t.throwsAsync(() => inMissingDir.getOrCreateKey('example.com', 'ecdsap256'));
  t.true(isTokenBindingError(writeErr, 'ERR_TB_KEY_STORE'));
});

test('FileKeyStore: scopes __proto__, constructor and other Object.prototype names are data, persisted, nothing polluted', async (t) => {
  const path = join(await tempDir(t), 'keys.json');
  const scopes = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];
  const store = new FileKeyStore(path);
  const made = new Map<string, Uint8Array>();
  for (const scope of scopes) made.set(scope, (await store.getOrCreateKey(scope, 'ecdsap256')).id.raw);
  // Nothing reached Object.prototype or Object itself.
  t.is(({} as Record<string, unknown>)['ecdsap256'], undefined);
  t.is((Object as unknown as Record<string, unknown>)['ecdsap256'], undefined);
  t.is(typeof ({} as { toString: unknown }).toString, 'function');
  // Persisted: the file names every scope, and a fresh store reads each key back.
  const text = await readFile(path, 'utf8');
  const file = JSON.parse(text) as { keys: Record<string, unknown> };
  t.deepEqual(Object.keys(file.keys).sort(), [...scopes].sort());
  const again = new FileKeyStore(path);
  for (const scope of scopes) t.deepEqual((await again.getKey(scope, 'ecdsap256'))?.id.raw, made.get(scope), scope);
  t.deepEqual((await again.list()).map((e) => e.scope).sort(), [...scopes].sort());
  // The same through the memory store.
  const memory = new MemoryKeyStore();
  const proto = await memory.getOrCreateKey('__proto__', 'ecdsap256');
  t.is(await memory.getKey('__proto__', 'ecdsap256'), proto);
  t.is(await memory.getKey('constructor', 'ecdsap256'), undefined);
});

test('FileKeyStore.ensureKey says whether it created the key; concurrent callers get one key, one creator', async (t) => {
  const path = join(await tempDir(t), 'keys.json');
  const [a, b] = [new FileKeyStore(path), new FileKeyStore(path)];
  const results = await Promise.all([a.ensureKey('example.com', 'ecdsap256'), b.ensureKey('example.com', 'ecdsap256'), a.ensureKey('example.com', 'ecdsap256')]);
  t.is(results.filter((r) => r.created).length, 1);
  for (const r of results) t.deepEqual(r.key.id.raw, results[0]!.key.id.raw);
  t.false((await new FileKeyStore(path).ensureKey('example.com', 'ecdsap256')).created);
});

test('FileKeyStore: a lock left by a crashed writer is taken over once stale; a live lock is waited for, boundedly', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'keys.json');
  const { mkdir, utimes } = await import('node:fs/promises');
  // A fresh lock (as a live writer holds it): the bounded wait ends in ERR_TB_KEY_STORE naming the lock.
  await mkdir(`${path}.lock`);
  const err = await t.throwsAsync(() => new FileKeyStore(path, { lockWaitMs: 300 }).getOrCreateKey('example.com', 'ecdsap256'));
  t.true(isTokenBindingError(err, 'ERR_TB_KEY_STORE'));
  t.regex(err!.message, /locked by another process for more than 300 ms .*remove .*keys\.json\.lock/);
  await t.throwsAsync(() => new FileKeyStore(path, { lockWaitMs: 0 }).init());
  // The same lock 11 s old (its writer stopped refreshing it): taken over, the key written, the lock gone.
  const old = new Date(Date.now() - 11_000);
  await utimes(`${path}.lock`, old, old);
  const key = await new FileKeyStore(path, { lockWaitMs: 300 }).getOrCreateKey('example.com', 'ecdsap256');
  t.deepEqual((await new FileKeyStore(path).getKey('example.com', 'ecdsap256'))?.id.raw, key.id.raw);
  t.deepEqual(await readdir(dir), ['keys.json']);
  // Options are checked.
  t.throws(() => new FileKeyStore(path, { lockWaitMs: -1 }), { instanceOf: TypeError });
  t.throws(() => new FileKeyStore(path, { lockStaleMs: 100 }), { instanceOf: TypeError });
});

test('FileKeyStore: a store in a directory that does not exist says so', async (t) => {
  const path = join(await tempDir(t), 'no', 'such', 'keys.json');
  const err = await t.throwsAsync(() => new FileKeyStore(path).getOrCreateKey('example.com', 'ecdsap256'));
  t.true(isTokenBindingError(err, 'ERR_TB_KEY_STORE'));
  t.regex(err!.message, /the directory .*no\/such does not exist/);
});
