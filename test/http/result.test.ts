/**
 * createVerifiedID (src/http/result.ts): one frozen VerifiedID per distinct TokenBindingID, shared
 * by every connection of its client, always the one of the exact bytes asked for; and
 * tokenBindingResult: one frozen result per ID for a provided binding alone.
 */
import { createHash, randomBytes } from 'node:crypto';
import test from 'ava';
import { parseTokenBindingID } from '../../src/codec/message.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { createVerifiedID } from '../../src/http/result.js';
import { verifyTokenBindingHeader } from '../../src/http/verify.js';

function ecID(bytes: Uint8Array): Uint8Array {
  return Uint8Array.from([2, 0x00, 0x41, 0x40, ...bytes]);
}

test('a client verified on two connections gets the same VerifiedID object, with its fields', (t) => {
  const key = generateTokenBindingKey();
  const a = { ekm: randomBytes(32), negotiatedKeyParameters: [2] };
  const b = { ekm: randomBytes(32), negotiatedKeyParameters: [2] };
  const ra = verifyTokenBindingHeader(createSecTokenBindingHeader({ provided: key, ekm: a.ekm }), a)!;
  const rb = verifyTokenBindingHeader(createSecTokenBindingHeader({ provided: key, ekm: b.ekm }), b)!;
  t.is(ra, rb, 'a provided binding alone: one frozen result per ID, whatever the connection');
  t.true(Object.isFrozen(ra));
  t.true(Object.isFrozen(ra.others));
  t.deepEqual([ra.referred, ra.others.length], [null, 0]);
  t.is(ra.provided, rb.provided, 'the ID object is shared');
  t.true(Object.isFrozen(ra.provided));
  t.is(ra.provided.id, Buffer.from(key.id.raw).toString('base64url'));
  t.is(ra.provided.hash, createHash('sha256').update(key.id.raw).digest('base64url'));
  t.deepEqual(JSON.parse(JSON.stringify(ra.provided)), { id: ra.provided.id, hash: ra.provided.hash, keyParameters: 'ecdsap256' });
  // `raw` is a fresh copy on each read: a caller writing into one cannot change the shared ID.
  const raw = ra.provided.raw;
  raw.fill(0);
  t.deepEqual(rb.provided.raw, Uint8Array.from(key.id.raw));
});

test('thousands of IDs (more than the cache holds, sharing its sets): each answer is the ID of the bytes asked for', (t) => {
  const ids = Array.from({ length: 3000 }, () => ecID(randomBytes(64)));
  const check = (raw: Uint8Array): boolean => {
    const verified = createVerifiedID(parseTokenBindingID(raw));
    return verified.id === Buffer.from(raw).toString('base64url') && verified.hash === createHash('sha256').update(raw).digest('base64url') && Buffer.from(verified.raw).equals(Buffer.from(raw));
  };
  let wrong = 0;
  for (let round = 0; round < 2; round++) for (const raw of ids) if (!check(raw)) wrong++;
  t.is(wrong, 0);
  // The caller's bytes changed after the call (the verifier decodes into a reused slab): the
  // cached ID keeps the bytes it was made from, and the changed bytes get their own ID.
  const scratch = Uint8Array.from(ids[0]!);
  const before = createVerifiedID(parseTokenBindingID(scratch));
  scratch[10] = scratch[10]! ^ 0xff;
  const after = createVerifiedID(parseTokenBindingID(scratch));
  t.not(after.id, before.id);
  t.is(before.id, Buffer.from(ids[0]!).toString('base64url'));
  t.is(createVerifiedID(parseTokenBindingID(ids[0]!)).id, before.id);
});

test('a result with a referred ID is its own, frozen, and names both IDs; another provided key gets another result', (t) => {
  const key = generateTokenBindingKey();
  const referredKey = generateTokenBindingKey();
  const c = { ekm: randomBytes(32), negotiatedKeyParameters: [2] };
  const alone = verifyTokenBindingHeader(createSecTokenBindingHeader({ provided: key, ekm: c.ekm }), c)!;
  const withReferred = verifyTokenBindingHeader(createSecTokenBindingHeader({ provided: key, referred: referredKey, ekm: c.ekm }), c)!;
  t.not(withReferred, alone);
  t.true(Object.isFrozen(withReferred));
  t.is(withReferred.provided, alone.provided);
  t.is(withReferred.referred?.id, Buffer.from(referredKey.id.raw).toString('base64url'));
  const other = verifyTokenBindingHeader(createSecTokenBindingHeader({ provided: referredKey, ekm: c.ekm }), c)!;
  t.not(other, alone);
  t.is(other.provided.id, Buffer.from(referredKey.id.raw).toString('base64url'));
  t.is(other.referred, null);
});
