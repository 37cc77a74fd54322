import test from 'ava';
import { TOKEN_BINDING_EKM_LENGTH, tokenBindingSignedData } from '../../src/codec/signed-data.js';

const EKM = Uint8Array.from({ length: 32 }, (_, i) => i + 1);

test('signed data is type || key_parameters || EKM, 34 bytes (RFC 8471 §3.3)', (t) => {
  t.is(TOKEN_BINDING_EKM_LENGTH, 32);
  const data = tokenBindingSignedData(1, 2, EKM);
  t.is(data.length, 34);
  t.deepEqual(data, Uint8Array.from([1, 2, ...EKM]));
  t.deepEqual(tokenBindingSignedData(77, 200, EKM).subarray(0, 2), Uint8Array.of(77, 200));
});

test('the result is a fresh buffer', (t) => {
  const ekm = EKM.slice();
  const data = tokenBindingSignedData(0, 2, ekm);
  ekm[0] = 99;
  t.is(data[2], 1);
});

test('an EKM that is not 32 bytes is API misuse: TypeError', (t) => {
  for (const ekm of [new Uint8Array(31), new Uint8Array(33), new Uint8Array(0), Array.from(EKM), 'x'.repeat(32)]) {
    t.throws(() => tokenBindingSignedData(0, 2, ekm as never), { instanceOf: TypeError });
  }
});

test('type and key parameters outside 0..255 are TypeErrors', (t) => {
  for (const v of [-1, 256, 1.5, Number.NaN, '0']) {
    t.throws(() => tokenBindingSignedData(v as never, 2, EKM), { instanceOf: TypeError });
    t.throws(() => tokenBindingSignedData(0, v as never, EKM), { instanceOf: TypeError });
  }
});
