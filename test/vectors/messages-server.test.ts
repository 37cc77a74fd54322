/**
 * The server verdict (RFC 8471 §4.2, RFC 8473 §2) on every case of vectors/messages.json that
 * states one, in one mechanical loop: `negotiatedKeyParameters` is the accepted set (null: all
 * three). Accepted cases also expose exactly the expected provided, referred and other IDs.
 */
import test from 'ava';
import { TokenBindingError } from '../../src/errors.js';
import { verifyTokenBindingHeader } from '../../src/http/verify.js';
import { hexToBytes, messageCases } from './_messages.js';

const cases = messageCases.filter((c) => c.ekm !== null && c.expect.accept !== undefined);

test('the vectors hold server verdicts both ways', (t) => {
  t.true(cases.filter((c) => c.expect.accept === true).length >= 5);
  t.true(cases.filter((c) => c.expect.accept === false).length >= 5);
});

for (const c of cases) {
  test(c.id, (t) => {
    const connection = { ekm: hexToBytes(c.ekm!), negotiatedKeyParameters: c.negotiatedKeyParameters ?? [0, 1, 2] };
    if (c.expect.accept === false) {
      t.throws(() => verifyTokenBindingHeader(c.header, connection), { instanceOf: TokenBindingError });
      return;
    }
    const result = verifyTokenBindingHeader(c.header, connection);
    t.not(result, null, 'a present header never yields null');
    const expected = c.expect.bindings;
    if (result === null || expected === undefined) return;
    const view = (b: { id: string; hash: string; keyParameters: number }) => ({ id: b.id, hash: b.hash, keyParameters: b.keyParameters });
    const provided = expected.find((b) => b.type === 0)!;
    const referred = expected.find((b) => b.type === 1 && b.signature === 'valid');
    const others = expected.filter((b) => b.type > 1 && b.signature === 'valid');
    const numeric = (v: { id: string; hash: string; raw: Uint8Array }) => ({ id: v.id, hash: v.hash, keyParameters: v.raw[0]! });
    t.deepEqual(numeric(result.provided), view(provided));
    t.deepEqual(result.referred === null ? null : numeric(result.referred), referred === undefined ? null : view(referred));
    t.deepEqual(
      result.others.map((o) => ({ type: o.type, ...numeric(o.id) })),
      others.map((b) => ({ type: b.type, ...view(b) })),
    );
  });
}
