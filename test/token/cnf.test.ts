/** The pure confirmation helpers and the issuing side (jose signs, jose verifies). */
import { createHash, X509Certificate } from 'node:crypto';
import test from 'ava';
import { createLocalJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { generateTokenBindingKey } from '../../src/crypto/sign.js';
import { createVerifiedID, type TokenBindingResult } from '../../src/http/result.js';
import {
  certificateConfirmation,
  checkConfirmation,
  checkTokenBindingConfirmation,
  confirmationMethod,
  dpopConfirmation,
  selectTokenBindingID,
  tokenBindingConfirmation,
} from '../../src/token/cnf.js';
import { bindClaims, signTokenBoundJwt } from '../../src/token/issue.js';
import { testCertificate } from '../_tls.js';

const provided = createVerifiedID(generateTokenBindingKey('ecdsap256').id);
const referred = createVerifiedID(generateTokenBindingKey('ecdsap256').id);
const withReferred: TokenBindingResult = { provided, referred, others: [] };
const providedOnly: TokenBindingResult = { provided, referred: null, others: [] };

test('tbh is base64url(SHA-256(TokenBindingID)) whatever form the ID comes in', (t) => {
  const key = generateTokenBindingKey('ecdsap256');
  const expected = createHash('sha256').update(key.id.raw).digest('base64url');
  t.deepEqual(tokenBindingConfirmation(key.id), { tbh: expected });
  t.deepEqual(tokenBindingConfirmation(key.id.raw), { tbh: expected });
  t.deepEqual(tokenBindingConfirmation(createVerifiedID(key.id)), { tbh: expected });
  t.throws(() => tokenBindingConfirmation({} as never), { instanceOf: TypeError });
});

test('x5t#S256 is the SHA-256 thumbprint of the DER; jkt the RFC 7638 thumbprint of a public JWK', async (t) => {
  const der = new X509Certificate(testCertificate.cert).raw;
  t.deepEqual(certificateConfirmation(der), { 'x5t#S256': createHash('sha256').update(der).digest('base64url') });
  t.throws(() => certificateConfirmation(new Uint8Array(0)), { instanceOf: TypeError });
  // RFC 7638 §3.1's example key and thumbprint.
  const jwk = {
    kty: 'RSA',
    n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
    e: 'AQAB',
  };
  t.deepEqual(await dpopConfirmation(jwk), { jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' });
  await t.throwsAsync(dpopConfirmation({ ...jwk, d: 'x' }), { instanceOf: TypeError });
  await t.throwsAsync(dpopConfirmation({ kty: 'oct', k: 'x' }), { instanceOf: TypeError });
  await t.throwsAsync(dpopConfirmation(null as never), { instanceOf: TypeError });
});

test('selectTokenBindingID: provided for this server, referred for another; no ID, no bound token', (t) => {
  t.is(selectTokenBindingID(withReferred, 'provided'), provided);
  t.is(selectTokenBindingID(withReferred, 'referred'), referred);
  t.throws(() => selectTokenBindingID(providedOnly, 'referred'), { code: 'ERR_TB_BINDING_UNAVAILABLE' } as never);
  t.throws(() => selectTokenBindingID(null, 'provided'), { code: 'ERR_TB_BINDING_UNAVAILABLE' } as never);
  t.throws(() => selectTokenBindingID(undefined, 'provided'), { code: 'ERR_TB_BINDING_UNAVAILABLE' } as never);
  t.throws(() => selectTokenBindingID(withReferred, 'other' as never), { instanceOf: TypeError });
});

test('confirmationMethod fails closed on anything but one supported, well-formed method', (t) => {
  t.is(confirmationMethod({}), null);
  t.is(confirmationMethod({ cnf: { tbh: 'a' } }), 'tbh');
  t.is(confirmationMethod({ cnf: { jkt: 'a' } }), 'jkt');
  t.is(confirmationMethod({ cnf: { 'x5t#S256': 'a' } }), 'x5t#S256');
  const code = (claims: Record<string, unknown>, supported?: ('tbh' | 'jkt' | 'x5t#S256')[]): string | undefined => {
    try {
      confirmationMethod(claims, supported);
      return undefined;
    } catch (err) {
      return (err as { code?: string }).code;
    }
  };
  t.is(code({ cnf: { jwk: {} } }), 'ERR_TB_CNF_UNSUPPORTED');
  t.is(code({ cnf: { tbh: 'a', jkt: 'b' } }), 'ERR_TB_CNF_UNSUPPORTED');
  t.is(code({ cnf: {} }), 'ERR_TB_CNF_UNSUPPORTED');
  t.is(code({ cnf: { jkt: 'a' } }, ['tbh']), 'ERR_TB_CNF_UNSUPPORTED');
  t.is(code({ cnf: null }), 'ERR_TB_TOKEN_INVALID');
  t.is(code({ cnf: ['tbh'] }), 'ERR_TB_TOKEN_INVALID');
  t.is(code({ cnf: { tbh: '' } }), 'ERR_TB_TOKEN_INVALID');
  t.is(code({ cnf: { tbh: 'x'.repeat(257) } }), 'ERR_TB_TOKEN_INVALID');
});

test('checkConfirmation and checkTokenBindingConfirmation: present and wrong is always a rejection', (t) => {
  t.notThrows(() => checkConfirmation('tbh', 'a', 'a'));
  t.throws(() => checkConfirmation('tbh', 'a', 'b'), { code: 'ERR_TB_CNF_MISMATCH' } as never);
  t.throws(() => checkConfirmation('jkt', 'a', null), { code: 'ERR_TB_CNF_MISSING' } as never);
  t.notThrows(() => checkTokenBindingConfirmation({ cnf: { tbh: provided.hash } }, providedOnly));
  t.throws(() => checkTokenBindingConfirmation({ cnf: { tbh: referred.hash } }, providedOnly), { code: 'ERR_TB_CNF_MISMATCH' } as never);
  t.throws(() => checkTokenBindingConfirmation({ cnf: { tbh: provided.hash } }, null), { code: 'ERR_TB_CNF_MISSING' } as never);
  t.throws(() => checkTokenBindingConfirmation({}, providedOnly), { code: 'ERR_TB_TOKEN_UNBOUND' } as never);
  t.throws(() => checkTokenBindingConfirmation({ cnf: { jkt: 'x' } }, providedOnly), { code: 'ERR_TB_CNF_UNSUPPORTED' } as never);
});

test('bindClaims adds cnf to a copy and refuses a second one', (t) => {
  const claims = { sub: 'alice' };
  t.deepEqual(bindClaims(claims, { tbh: 'h' }), { sub: 'alice', cnf: { tbh: 'h' } });
  t.deepEqual(claims, { sub: 'alice' });
  t.throws(() => bindClaims({ cnf: { jkt: 'x' } }, { tbh: 'h' }), { instanceOf: TypeError });
  t.throws(() => bindClaims(null as never, { tbh: 'h' }), { instanceOf: TypeError });
  t.throws(() => bindClaims([] as never, { tbh: 'h' }), { instanceOf: TypeError });
});

test('signTokenBoundJwt: a JWT that jose verifies, with cnf.tbh of the referred ID for another server', async (t) => {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] });
  const token = await signTokenBoundJwt(
    { scope: 'read' },
    { tokenBindingID: selectTokenBindingID(withReferred, 'referred'), key: privateKey, alg: 'ES256', kid: 'k1', typ: 'at+jwt', issuer: 'https://as.test', audience: 'https://rs.test', subject: 'alice', expiresIn: 60 },
  );
  const { payload } = await jwtVerify(token, jwks, { issuer: 'https://as.test', audience: 'https://rs.test', typ: 'at+jwt' });
  t.deepEqual(payload.cnf, { tbh: referred.hash });
  t.is(payload.sub, 'alice');
  t.is(payload.scope, 'read');
  t.is(payload.exp! - payload.iat!, 60);
  t.deepEqual(decodeProtectedHeader(token), { alg: 'ES256', kid: 'k1', typ: 'at+jwt' });
  // Defaults: five minutes, no kid/typ; a time span string works too.
  const plain = await signTokenBoundJwt({}, { tokenBindingID: provided, key: privateKey, alg: 'ES256' });
  const decoded = JSON.parse(Buffer.from(plain.split('.')[1]!, 'base64url').toString()) as { exp: number; iat: number; cnf: unknown };
  t.is(decoded.exp - decoded.iat, 300);
  t.deepEqual(decoded.cnf, { tbh: provided.hash });
  t.truthy(await signTokenBoundJwt({}, { tokenBindingID: provided, key: privateKey, alg: 'ES256', expiresIn: '2m' }));
  await t.throwsAsync(signTokenBoundJwt({}, { tokenBindingID: provided, key: privateKey, alg: 'none' }), { instanceOf: TypeError });
  await t.throwsAsync(signTokenBoundJwt({}, { tokenBindingID: provided, key: undefined as never, alg: 'ES256' }), { instanceOf: TypeError });
  await t.throwsAsync(signTokenBoundJwt({}, null as never), { instanceOf: TypeError });
  await t.throwsAsync(signTokenBoundJwt({ cnf: { jkt: 'x' } }, { tokenBindingID: provided, key: privateKey, alg: 'ES256' }), { instanceOf: TypeError });
});
