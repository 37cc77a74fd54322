/**
 * The codec against every case of vectors/messages.json, in one mechanical loop. Signature and
 * server verdicts are checked by the crypto and http vector tests.
 */
import test from 'ava';
import {
  decodeSecTokenBindingHeader,
  decodeTokenBindingPublicKey,
  encodeEcP256PublicKey,
  encodeRsaPublicKey,
  encodeSecTokenBindingHeader,
  encodeTokenBindingMessage,
  formatTokenBindingID,
  parseTokenBindingMessage,
} from '../../src/codec/index.js';
import { tokenBindingHash } from '../../src/crypto/hash.js';
import { TokenBindingError } from '../../src/errors.js';
import { messageCases } from './_messages.js';

const REGISTERED = new Set([0, 1, 2]);

for (const c of messageCases) {
  test(c.id, (t) => {
    const bytes = decodeSecTokenBindingHeader(c.header);
    const expected = c.expect.bindings;

    // A TokenBindingMessage holds at least one binding: expecting none means the bytes are malformed.
    if (expected !== undefined && expected.length === 0) {
      const err = t.throws(() => parseTokenBindingMessage(bytes), { instanceOf: TokenBindingError });
      t.is(err?.code, 'ERR_TB_MALFORMED');
      return;
    }

    const message = parseTokenBindingMessage(bytes);
    t.true(message.bindings.length > 0);

    // Every accepted message round-trips, not only the `reencodeEqualsInput` ones: header → bytes →
    // message → bytes → header is the identity.
    t.deepEqual(encodeTokenBindingMessage(message), bytes);
    t.is(encodeSecTokenBindingHeader(encodeTokenBindingMessage(message)), c.header);

    if (expected !== undefined) {
      t.deepEqual(
        message.bindings.map((b) => ({ type: b.type, keyParameters: b.id.keyParameters, id: formatTokenBindingID(b.id), hash: tokenBindingHash(b.id) })),
        expected.map((b) => ({ type: b.type, keyParameters: b.keyParameters, id: b.id, hash: b.hash })),
      );
    }

    // Keys of registered parameters decode and re-encode to the same bytes; others are unsupported.
    for (const b of message.bindings) {
      if (REGISTERED.has(b.id.keyParameters)) {
        const key = decodeTokenBindingPublicKey(b.id);
        const reencoded = key.kind === 'ec' ? encodeEcP256PublicKey(key.x, key.y) : encodeRsaPublicKey(key.modulus, key.exponent);
        t.deepEqual(reencoded, b.id.key);
        t.is(key.kind, b.id.keyParameters === 2 ? 'ec' : 'rsa');
      } else {
        const err = t.throws(() => decodeTokenBindingPublicKey(b.id), { instanceOf: TokenBindingError });
        t.is(err?.code, 'ERR_TB_KEY_PARAMETERS_UNSUPPORTED');
      }
    }
  });
}

test('the vector file is not empty and covers malformed, EC, RSA and unknown key parameters', (t) => {
  t.true(messageCases.length >= 40);
  const all = messageCases.flatMap((c) => c.expect.bindings ?? []);
  for (const kp of [0, 1, 2]) t.true(all.some((b) => b.keyParameters === kp), `key parameters ${kp}`);
  t.true(all.some((b) => !REGISTERED.has(b.keyParameters)));
  t.true(messageCases.some((c) => c.expect.bindings?.length === 0));
  t.true(messageCases.some((c) => c.expect.reencodeEqualsInput === true));
});
