/**
 * Token Binding Key Parameters registry (RFC 8471 §3, §6.1): numbers ⇄ the RFC's names.
 */
import { TokenBindingKeyParameters, type KeyParametersName } from './types.js';

const NAMES: readonly KeyParametersName[] = ['rsa2048_pkcs1.5', 'rsa2048_pss', 'ecdsap256'];

/**
 * The RFC's name of registered key parameters, or the number itself for any other value.
 *
 * @example
 * ```ts
 * keyParametersName(2)  // 'ecdsap256'
 * keyParametersName(88) // 88
 * ```
 */
export function keyParametersName(keyParameters: number): KeyParametersName | number {
  return NAMES[keyParameters] ?? keyParameters;
}

/**
 * Turns a key parameters name (`'ecdsap256'`, `'rsa2048_pss'`, `'rsa2048_pkcs1.5'`), a number
 * 0..255 or a decimal string of one into the registry number (RFC 8471 §3).
 *
 * @throws {TypeError} for an unknown name or a number outside 0..255 (API misuse)
 * @example
 * ```ts
 * parseKeyParameters('ecdsap256') // 2
 * parseKeyParameters('1')         // 1
 * ```
 */
export function parseKeyParameters(nameOrNumber: KeyParametersName | number | string): number {
  if (typeof nameOrNumber === 'number') {
    if (Number.isInteger(nameOrNumber) && nameOrNumber >= 0 && nameOrNumber <= 255) return nameOrNumber;
    throw new TypeError(`key parameters must be an integer in 0..255, got ${nameOrNumber}`);
  }
  if (typeof nameOrNumber === 'string') {
    switch (nameOrNumber) {
      case 'rsa2048_pkcs1.5':
        return TokenBindingKeyParameters.rsa2048_pkcs1_5;
      case 'rsa2048_pss':
        return TokenBindingKeyParameters.rsa2048_pss;
      case 'ecdsap256':
        return TokenBindingKeyParameters.ecdsap256;
    }
    if (/^(?:0|[1-9][0-9]{0,2})$/.test(nameOrNumber) && Number(nameOrNumber) <= 255) return Number(nameOrNumber);
  }
  throw new TypeError(`unknown key parameters ${JSON.stringify(nameOrNumber)}; expected ${NAMES.join(', ')} or 0..255`);
}
