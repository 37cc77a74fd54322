/**
 * The forwarding assertion (a JWS via jose): what the proxy signs, what the backend accepts.
 */
import { generateKeyPairSync } from 'node:crypto';
import test from 'ava';
import { SignJWT } from 'jose';
import { TokenBindingError } from '../../src/errors.js';
import {
  FORWARDING_ASSERTION_TYPE,
  assertionAlgorithm,
  createForwardingSigner,
  createForwardingVerifier,
  type ForwardingAssertionClaims,
} from '../../src/http/assertion.js';

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const claims: ForwardingAssertionClaims = { htm: 'GET', htp: '/me?x=1', provided: 'AgBBQ', referred: null, other: null };

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof TokenBindingError && err.code === 'ERR_TB_FORWARDED_ASSERTION') return String((err.cause as { actual: unknown }).actual);
    throw err;
  }
  return 'accepted';
}

test('every supported key type signs and verifies, with the algorithm the key implies (JWK, PEM, KeyObject)', async (t) => {
  const keys = [
    ['ES256', ec],
    ['ES384', generateKeyPairSync('ec', { namedCurve: 'P-384' })],
    ['ES512', generateKeyPairSync('ec', { namedCurve: 'P-521' })],
    ['EdDSA', generateKeyPairSync('ed25519')],
    ['RS256', generateKeyPairSync('rsa', { modulusLength: 2048 })],
  ] as const;
  for (const [alg, pair] of keys) {
    const inputs: (readonly [unknown, unknown])[] = [
      [pair.privateKey, pair.publicKey],
      [pair.privateKey.export({ format: 'pem', type: 'pkcs8' }), pair.publicKey.export({ format: 'pem', type: 'spki' })],
      // A private key given to the verifier is reduced to its public half.
      [pair.privateKey, pair.privateKey],
    ];
    inputs.push([pair.privateKey.export({ format: 'jwk' }), pair.publicKey.export({ format: 'jwk' })]);
    inputs.push([JSON.stringify(pair.privateKey.export({ format: 'jwk' })), Buffer.from(JSON.stringify(pair.publicKey.export({ format: 'jwk' })))]);
    for (const [privateInput, publicInput] of inputs) {
      const signer = createForwardingSigner(privateInput as never);
      const verifier = createForwardingVerifier(publicInput as never);
      t.is(signer.algorithm, alg);
      t.is(verifier.algorithm, alg);
      const jws = await signer.sign(claims);
      t.is(JSON.parse(Buffer.from(jws.split('.')[0]!, 'base64url').toString()).typ, FORWARDING_ASSERTION_TYPE);
      await t.notThrowsAsync(verifier.verify(jws, claims));
    }
  }
});

test('forged, tampered, expired, too old, wrong typ, wrong algorithm, replayed, missing or mismatched: refused with a reason', async (t) => {
  const signer = createForwardingSigner(ec.privateKey);
  const verifier = createForwardingVerifier(ec.publicKey);
  t.is(await reason(verifier.verify(await createForwardingSigner(other.privateKey).sign(claims), claims)), 'signature');
  const genuine = await signer.sign(claims);
  const [h, p, s] = genuine.split('.');
  const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
  const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, htp: '/admin' })).toString('base64url')}.${s}`;
  t.is(await reason(verifier.verify(tampered, { ...claims, htp: '/admin' })), 'signature');
  const now = Math.floor(Date.now() / 1000);
  const craft = (header: Record<string, unknown>, body: Record<string, unknown>) =>
    new SignJWT({ ...claims, ...body }).setProtectedHeader({ alg: 'ES256', typ: FORWARDING_ASSERTION_TYPE, ...header }).sign(ec.privateKey);
  t.is(await reason(verifier.verify(await craft({}, { iat: now - 600, exp: now - 570, jti: 'a' }), claims)), 'expired');
  // Older than maxAgeSeconds though not yet expired: jose reports it as expired too.
  t.is(await reason(verifier.verify(await craft({}, { iat: now - 600, exp: now + 600, jti: 'b' }), claims)), 'expired');
  t.is(await reason(verifier.verify(await craft({}, { iat: now + 600, exp: now + 630, jti: 'b2' }), claims)), 'claim-iat');
  t.is(await reason(verifier.verify(await craft({ typ: 'JWT' }, { iat: now, exp: now + 30, jti: 'c' }), claims)), 'claim-typ');
  t.is(await reason(verifier.verify(await craft({}, { iat: now, exp: now + 30 }), claims)), 'claim-jti');
  t.is(await reason(verifier.verify(await craft({}, { iat: now, exp: now + 30, jti: 5 }), claims)), 'claim-jti');
  const ed = generateKeyPairSync('ed25519');
  t.is(await reason(verifier.verify(await createForwardingSigner(ed.privateKey).sign(claims), claims)), 'algorithm');
  t.is(await reason(verifier.verify(undefined, claims)), 'missing');
  t.is(await reason(verifier.verify('', claims)), 'missing');
  t.is(await reason(verifier.verify('x'.repeat(9000), claims)), 'too-large');
  t.is(await reason(verifier.verify('not.a.jws', claims)), 'invalid');
  for (const [name, value] of [
    ['htm', 'POST'],
    ['htp', '/me'],
    ['provided', null],
    ['referred', 'AgBBQ'],
    ['other', '4d.AgBBQ'],
  ] as const) {
    t.is(await reason(verifier.verify(await signer.sign(claims), { ...claims, [name]: value })), `mismatch-${name}`);
  }
  t.is(await reason(verifier.verify(genuine, claims)), 'accepted');
  t.is(await reason(verifier.verify(genuine, claims)), 'replayed');
});

test('the replay memory is bounded and forgets the oldest first', async (t) => {
  const signer = createForwardingSigner(ec.privateKey);
  const verifier = createForwardingVerifier(ec.publicKey, { maxRemembered: 2 });
  const tokens = await Promise.all([1, 2, 3].map(() => signer.sign(claims)));
  for (const jws of tokens) t.is(await reason(verifier.verify(jws, claims)), 'accepted');
  t.is(await reason(verifier.verify(tokens[2]!, claims)), 'replayed');
  t.is(await reason(verifier.verify(tokens[0]!, claims)), 'accepted');
});

test('keys and options that cannot work are refused at setup', (t) => {
  const secret = { kty: 'oct', k: 'c2VjcmV0' };
  t.throws(() => createForwardingSigner(secret as never), { instanceOf: TypeError });
  t.throws(() => createForwardingVerifier(secret as never), { instanceOf: TypeError });
  t.throws(() => createForwardingSigner(ec.publicKey), { instanceOf: TypeError });
  t.throws(() => createForwardingSigner(ec.publicKey.export({ format: 'jwk' }) as never), { instanceOf: TypeError });
  t.throws(() => createForwardingSigner(5 as never), { instanceOf: TypeError });
  t.throws(() => createForwardingSigner(ec.privateKey, { lifetimeSeconds: 0 }), { instanceOf: TypeError });
  t.throws(() => createForwardingVerifier(ec.publicKey, { maxAgeSeconds: -1 }), { instanceOf: TypeError });
  t.throws(() => assertionAlgorithm(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey), { instanceOf: TypeError });
  t.throws(() => assertionAlgorithm(generateKeyPairSync('x25519').publicKey), { instanceOf: TypeError });
  t.throws(() => assertionAlgorithm(generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).publicKey), { instanceOf: TypeError });
});
