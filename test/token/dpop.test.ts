/** DPoP building blocks: htu normalisation, the bounded replay cache, nonces, option checks. */
import test from 'ava';
import { DpopNonces, MemoryDpopReplayCache, normalizeHtu } from '../../src/token/dpop.js';
import { createAccessTokenVerifier } from '../../src/token/verify.js';
import { TokenBindingError } from '../../src/errors.js';

test('normalizeHtu: RFC 9449 §4.3 comparison form', (t) => {
  t.is(normalizeHtu('HTTPS://API.Example:443/a/b?q=1#f'), 'https://api.example/a/b');
  t.is(normalizeHtu('http://h:80/'), 'http://h/');
  t.is(normalizeHtu('https://h:8443'), 'https://h:8443/');
  t.is(normalizeHtu('https://h/%7euser/%2f%41'), 'https://h/~user/%2FA');
  t.is(normalizeHtu('https://[::1]:443/x'), 'https://[::1]/x');
  for (const bad of ['/relative', 'ftp://h/x', 'https://u:p@h/x', 'not a url', 'x'.repeat(5000), 42 as never]) t.is(normalizeHtu(bad), null);
});

test('MemoryDpopReplayCache: a jti is refused until its window closes; full means refused, never forgotten', (t) => {
  const now = Math.floor(Date.now() / 1000);
  const cache = new MemoryDpopReplayCache(2);
  t.is(cache.remember('a', now + 10, now), 'fresh');
  t.is(cache.remember('a', now + 10, now), 'replayed');
  t.is(cache.remember('b', now + 20, now), 'fresh');
  t.is(cache.remember('c', now + 20, now), 'full');
  t.is(cache.count, 2);
  t.is(cache.retryAfter(now), 11);
  // After a's window: a is dropped, c fits, a is fresh again.
  t.is(cache.remember('c', now + 30, now + 11), 'fresh');
  t.is(cache.remember('a', now + 30, now + 21), 'fresh');
  t.is(cache.remember('b', now + 30, now + 21), 'full');
  t.is(cache.count, 2);
  t.is(new MemoryDpopReplayCache(1).retryAfter(now), 1);
  for (const size of [0, -1, 1.5, 1 << 25]) t.throws(() => new MemoryDpopReplayCache(size), { instanceOf: TypeError });
});

test('DpopNonces: the current and the previous nonce are accepted; others, forged or old ones are not', (t) => {
  const secret = new Uint8Array(32).fill(7);
  const nonces = new DpopNonces({ secret, lifetime: 10 });
  const t0 = 1_000_000;
  const n0 = nonces.current(t0);
  t.regex(n0, /^[A-Za-z0-9_-]{27}$/);
  t.is(nonces.current(t0 + 1), n0);
  t.true(nonces.check(n0, t0));
  const n1 = nonces.current(t0 + 10);
  t.not(n1, n0);
  t.true(nonces.check(n0, t0 + 10), 'the previous nonce still passes');
  t.false(nonces.check(n0, t0 + 20), 'two slots later it does not');
  t.false(new DpopNonces({ secret: new Uint8Array(32).fill(8), lifetime: 10 }).check(n1, t0 + 10), 'another secret');
  t.true(new DpopNonces({ secret, lifetime: 10 }).check(n1, t0 + 10), 'stateless: another instance with the secret');
  for (const bad of [undefined, 42, '', 'A'.repeat(27), `${n1}x`, '!'.repeat(27)]) t.false(nonces.check(bad, t0 + 10));
  t.regex(new DpopNonces().current(), /^[A-Za-z0-9_-]{27}$/);
  t.throws(() => new DpopNonces({ secret: new Uint8Array(8) }), { instanceOf: TypeError });
  t.throws(() => new DpopNonces({ lifetime: 0 }), { instanceOf: TypeError });
});

test('createAccessTokenVerifier checks its options at setup', (t) => {
  const base = { issuer: 'https://as.test', audience: 'https://rs.test', jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }] } };
  t.truthy(createAccessTokenVerifier(base));
  const bad: Record<string, unknown>[] = [
    { issuer: '' },
    { audience: [] },
    { audience: [1] },
    { algorithms: ['HS256'] },
    { algorithms: ['none'] },
    { algorithms: [] },
    { clockTolerance: 301 },
    { clockTolerance: -1 },
    { clockTolerance: 1.5 },
    { methods: ['jwk'] },
    { requireBinding: 'yes' },
    { clientCertificate: 'x' },
    { tokenBinding: 1 },
    { origin: 'ftp://x' },
    { typ: '' },
    { jwks: 42 },
    { jwks: new URL('file:///etc/jwks') },
    { dpop: { maxAge: 0 } },
    { dpop: { clockTolerance: 61 } },
    { dpop: { algorithms: ['HS256'] } },
    { dpop: { nonce: 'yes' } },
    { dpop: { replayCache: {} } },
    { dpop: { replayCacheSize: 0 } },
  ];
  for (const options of bad) t.throws(() => createAccessTokenVerifier({ ...base, ...options } as never), { instanceOf: TypeError }, JSON.stringify(options));
  t.throws(() => createAccessTokenVerifier(null as never), { instanceOf: TypeError });
  const verifier = createAccessTokenVerifier({ ...base, methods: ['tbh'], origin: 'https://API.test:443', algorithms: ['ES256'], dpop: { algorithms: ['ES256'] } });
  t.deepEqual(verifier.options.methods, ['tbh']);
  t.throws(() => verifier.challenge(new Error('x') as never), { instanceOf: TypeError });
  t.deepEqual(verifier.challenge(new TokenBindingError('ERR_TB_DPOP_REPLAY_CACHE_FULL')).status, 503);
  t.deepEqual(verifier.challenge(new TokenBindingError('ERR_TB_DPOP_NONCE', undefined, { scheme: 'DPoP' })).headers, { 'www-authenticate': 'DPoP error="use_dpop_nonce", algs="ES256"' });
});
