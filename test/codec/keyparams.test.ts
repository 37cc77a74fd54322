import test from 'ava';
import { keyParametersName, parseKeyParameters } from '../../src/codec/keyparams.js';
import { TokenBindingKeyParameters } from '../../src/codec/types.js';

test('names of the registered key parameters (RFC 8471 §3)', (t) => {
  t.is(keyParametersName(0), 'rsa2048_pkcs1.5');
  t.is(keyParametersName(1), 'rsa2048_pss');
  t.is(keyParametersName(2), 'ecdsap256');
  t.is(keyParametersName(3), 3);
  t.is(keyParametersName(255), 255);
});

test('parseKeyParameters accepts names, numbers and decimal strings', (t) => {
  t.is(parseKeyParameters('rsa2048_pkcs1.5'), TokenBindingKeyParameters.rsa2048_pkcs1_5);
  t.is(parseKeyParameters('rsa2048_pss'), TokenBindingKeyParameters.rsa2048_pss);
  t.is(parseKeyParameters('ecdsap256'), TokenBindingKeyParameters.ecdsap256);
  t.is(parseKeyParameters(0), 0);
  t.is(parseKeyParameters(255), 255);
  t.is(parseKeyParameters('2'), 2);
  t.is(parseKeyParameters('200'), 200);
  for (const n of [0, 1, 2, 7, 255]) t.is(parseKeyParameters(keyParametersName(n)), n);
});

test('parseKeyParameters: unknown names and out-of-range numbers are TypeErrors', (t) => {
  for (const bad of ['ECDSAP256', 'rsa2048_pkcs1_5', '', ' 2', '02', '256', '-1', '1e2', -1, 256, 1.5, Number.NaN, null, undefined, {}]) {
    t.throws(() => parseKeyParameters(bad as never), { instanceOf: TypeError }, String(bad));
  }
});
