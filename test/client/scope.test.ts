import test from 'ava';
import { isTokenBindingError } from '../../src/errors.js';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { tokenBindingScope } from '../../src/client/scope.js';

test('hosts under one registrable domain share its eTLD+1 scope (RFC 8473 §2.1)', (t) => {
  t.is(tokenBindingScope('a.example.co.uk'), 'example.co.uk');
  t.is(tokenBindingScope('b.example.co.uk'), 'example.co.uk');
  t.is(tokenBindingScope('https://deep.a.example.co.uk:8443/path?q'), 'example.co.uk');
  t.is(tokenBindingScope(new URL('https://login.example.com/')), 'example.com');
});

test('different registrable domains get different scopes', (t) => {
  t.not(tokenBindingScope('example.com'), tokenBindingScope('example.org'));
  t.not(tokenBindingScope('example.co.uk'), tokenBindingScope('other.co.uk'));
  // Private public-suffix entries count: two GitHub Pages sites are two servers.
  t.is(tokenBindingScope('alice.github.io'), 'alice.github.io');
  t.not(tokenBindingScope('alice.github.io'), tokenBindingScope('bob.github.io'));
});

test('IP addresses and localhost are their own scope', (t) => {
  t.is(tokenBindingScope('127.0.0.1'), '127.0.0.1');
  t.is(tokenBindingScope('127.0.0.1:8443'), '127.0.0.1');
  t.is(tokenBindingScope('https://127.0.0.1:8443/x'), '127.0.0.1');
  t.is(tokenBindingScope('https://[::1]:8443/'), '::1');
  t.is(tokenBindingScope('[::1]'), '::1');
  t.is(tokenBindingScope('localhost'), 'localhost');
  t.not(tokenBindingScope('127.0.0.1'), tokenBindingScope('127.0.0.2'));
});

test('one server, one spelling: case, trailing dot and IDN are normalised', (t) => {
  t.is(tokenBindingScope('WWW.Example.COM'), 'example.com');
  t.is(tokenBindingScope('www.example.com.'), 'example.com');
  t.is(tokenBindingScope('bücher.example'), tokenBindingScope('xn--bcher-kva.example'));
  // A public suffix itself has no eTLD+1: it stays as is (never wider).
  t.is(tokenBindingScope('co.uk'), 'co.uk');
});

test('input without a host name is ERR_TB_CLIENT; a wrong type is a TypeError', (t) => {
  for (const bad of ['', 'https://', 'http://[zz]/', 'a b']) {
    const err = t.throws(() => tokenBindingScope(bad));
    t.true(isTokenBindingError(err, 'ERR_TB_CLIENT'), bad);
  }
  t.throws(() => tokenBindingScope(42 as unknown as string), { instanceOf: TypeError });
});

test('a key store hands a.example.co.uk and b.example.co.uk the same key, example.com and example.org different ones', async (t) => {
  const store = new MemoryKeyStore();
  const a = await store.getOrCreateKey(tokenBindingScope('a.example.co.uk'), 'ecdsap256');
  const b = await store.getOrCreateKey(tokenBindingScope('https://b.example.co.uk/'), 'ecdsap256');
  t.is(a, b);
  const com = await store.getOrCreateKey(tokenBindingScope('example.com'), 'ecdsap256');
  const org = await store.getOrCreateKey(tokenBindingScope('example.org'), 'ecdsap256');
  t.notDeepEqual(com.id.raw, org.id.raw);
  t.notDeepEqual(com.id.raw, a.id.raw);
});
