/**
 * Bytes the per-request path hands to native code are built outside the JavaScript heap (slab.ts):
 * a typed array of 64 bytes or fewer lives on the heap, and node:crypto, asking for its buffer,
 * moves it out — a backing store allocated per signature checked or made. A view's `buffer` tells
 * which it is: a small array of its own has a buffer of its own length, a carved view the slab.
 * Carved views are never reused, so a backend that keeps one keeps its bytes.
 */
import test from 'ava';
import { encodeSecTokenBindingHeader } from '../../src/codec/header.js';
import { encodeTokenBindingMessage } from '../../src/codec/message.js';
import type { TokenBindingID } from '../../src/codec/types.js';
import type { VerificationBackend } from '../../src/crypto/backend.js';
import { nodeBackend } from '../../src/crypto/node-backend.js';
import { generateTokenBindingKey, signTokenBinding } from '../../src/crypto/sign.js';
import { verifyTokenBinding } from '../../src/crypto/verify.js';
import { verifyTokenBindingHeader } from '../../src/http/verify.js';

const ekm = new Uint8Array(32).map((_, i) => i + 1);

/** A backend that keeps what it is handed (a copy, and the view itself) and answers as nodeBackend. */
function recording(): VerificationBackend & { seen: { view: Uint8Array; copy: Uint8Array }[] } {
  const seen: { view: Uint8Array; copy: Uint8Array }[] = [];
  return {
    name: 'recording',
    seen,
    verify(id: TokenBindingID, signedData: Uint8Array, signature: Uint8Array): boolean {
      seen.push({ view: signedData, copy: signedData.slice() });
      return nodeBackend.verify(id, signedData, signature);
    },
  };
}

test('the verifier and verifyTokenBinding hand the backend signed data outside the heap, never rewritten later', async (t) => {
  const key = await generateTokenBindingKey('ecdsap256');
  const backend = recording();
  for (let i = 0; i < 300; i++) {
    const value = encodeSecTokenBindingHeader(encodeTokenBindingMessage({ bindings: [signTokenBinding(key, 0, ekm)] }));
    t.not(verifyTokenBindingHeader(value, { ekm, negotiatedKeyParameters: [2] }, { backend }), null);
    t.true(verifyTokenBinding(signTokenBinding(key, 0, ekm), ekm, backend));
  }
  t.is(backend.seen.length, 600);
  for (const { view, copy } of backend.seen) {
    t.is(view.length, 34);
    t.true(view.buffer.byteLength > 64, 'a view of a slab, not a small array of its own (which lives on the heap)');
    t.deepEqual(view, copy, 'the bytes a backend kept are unchanged after hundreds more verifications');
  }
  t.deepEqual([...backend.seen[0]!.copy.subarray(0, 2)], [0, 2]);
});
