/**
 * The `tbh` of independent implementations, run mechanically through the federation helpers:
 * for every Token Binding ID in vectors/ whose source states its hash (Ping Identity's
 * token-binding-java, Chrome's and Edge's messages), an ID token the identity provider side
 * issues for that ID carries exactly that `cnf.tbh`, and the relying party side accepts it for a
 * connection with that provided ID and refuses it for any other vector's ID (present but wrong).
 */
import test from 'ava';
import { decodeJwt, exportJWK, generateKeyPair } from 'jose';
import type { TokenBindingError } from '../../src/errors.js';
import { createIdTokenVerifier } from '../../src/federation/rp.js';
import { signIdToken } from '../../src/federation/provider.js';
import type { TokenBindingResult } from '../../src/http/result.js';
import { messageCases } from './_messages.js';

const ids = new Map<string, string>();
for (const c of messageCases) for (const b of c.expect.bindings ?? []) ids.set(b.id, b.hash);

const ISSUER = 'https://idp.vectors.test';
const CLIENT = 'rp.vectors.test';
const { privateKey, publicKey } = await generateKeyPair('ES256');
const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'v1', alg: 'ES256' }] };
const verifier = createIdTokenVerifier({ issuer: ISSUER, clientId: CLIENT, jwks });

/** What the relying party's connection reports: only the provided ID and its hash matter here. */
const connection = (id: string, hash: string): TokenBindingResult => ({ provided: { id, hash } }) as unknown as TokenBindingResult;

test('vectors carry Token Binding IDs with their independent tbh', (t) => {
  t.true(ids.size >= 5, `found ${ids.size}`);
});

test('every vector ID: the ID token issued for it has its cnf.tbh; accepted for that ID, refused for another', async (t) => {
  const entries = [...ids];
  for (const [index, [id, hash]] of entries.entries()) {
    const idToken = await signIdToken({}, { tokenBindingID: Buffer.from(id, 'base64url'), key: privateKey, alg: 'ES256', kid: 'v1', issuer: ISSUER, audience: CLIENT, subject: 'alice', nonce: 'n' });
    t.deepEqual(decodeJwt(idToken)['cnf'], { tbh: hash }, id.slice(0, 16));
    t.is((await verifier.verify(idToken, connection(id, hash), 'n')).method, 'tbh');
    const [otherId, otherHash] = entries[(index + 1) % entries.length]!;
    const refused = await verifier.verify(idToken, connection(otherId, otherHash), 'n').catch((e: TokenBindingError) => e.code);
    t.is(refused, 'ERR_TB_CNF_MISMATCH');
  }
});
