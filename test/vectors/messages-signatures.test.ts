/**
 * Signature verdicts of vectors/messages.json, one mechanical loop: for every case with an EKM and
 * every binding with a `valid` / `invalid` verdict, every backend gives that verdict;
 * `unevaluated` bindings have key parameters `canVerify` refuses.
 */
import test from 'ava';
import { formatTokenBindingID, parseSecTokenBindingHeader } from '../../src/codec/index.js';
import { canVerify } from '../../src/crypto/backend.js';
import { verifyTokenBinding } from '../../src/crypto/verify.js';
import { backends, hex } from '../crypto/_backends.js';
import { messageCases } from './_messages.js';

const withVerdicts = messageCases.filter((c) => c.ekm !== null && c.expect.bindings?.some((b) => b.signature !== undefined));

test('the vectors hold signature verdicts of every kind', (t) => {
  const kinds = new Set(withVerdicts.flatMap((c) => c.expect.bindings!.map((b) => b.signature)));
  t.true(kinds.has('valid') && kinds.has('invalid') && kinds.has('unevaluated'));
});

for (const c of withVerdicts) {
  test(c.id, (t) => {
    const ekm = hex(c.ekm!);
    const { bindings } = parseSecTokenBindingHeader(c.header);
    const expected = c.expect.bindings!;
    t.is(bindings.length, expected.length);
    for (const [i, e] of expected.entries()) {
      const binding = bindings[i]!;
      t.is(formatTokenBindingID(binding.id), e.id, `binding ${i} is the expected one`);
      if (e.signature === undefined) continue;
      if (e.signature === 'unevaluated') {
        t.false(canVerify(binding.id.keyParameters), `binding ${i}: unevaluated`);
        continue;
      }
      t.true(canVerify(binding.id.keyParameters), `binding ${i}`);
      for (const { label, backend } of backends) {
        t.is(verifyTokenBinding(binding, ekm, backend), e.signature === 'valid', `binding ${i} on ${label}`);
      }
    }
  });
}
