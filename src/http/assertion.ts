/**
 * The forwarding assertion: a short-lived JWS (RFC 7515, compact, via jose) in which a tokbind
 * proxy vouches for what it forwards — the TTRP headers (draft-ietf-tokbind-ttrp-09 §2), the
 * method, the path and the time — so a backend need not trust its network position alone.
 *
 * Header `Sec-Token-Binding-Assertion`, a JWT with protected header
 * `{ "alg": <from the key>, "typ": "tokbind-forwarded+jwt" }` and claims
 *
 *     iat, exp   NumericDate; exp = iat + lifetime (default 30 s)
 *     jti        16 random bytes, base64url (a backend refuses a jti it has seen)
 *     htm        the request method, as forwarded
 *     htp        the request-target, as forwarded (origin-form: path and query)
 *     provided, referred, other
 *                the exact Sec-Provided/Referred/Other-Token-Binding-ID values, or null
 *
 * `alg` follows the key: EC P-256 ES256, P-384 ES384, P-521 ES512, Ed25519 EdDSA, RSA RS256.
 * The verifier derives it from its own key the same way and accepts no other.
 */
import { createPrivateKey, createPublicKey, randomBytes, type JsonWebKey, type KeyObject } from 'node:crypto';
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import { ecdsaJwsAlgorithm } from '../crypto/jws.js';
import { TokenBindingError } from '../errors.js';

/** The JWS `typ` of a forwarding assertion. */
export const FORWARDING_ASSERTION_TYPE = 'tokbind-forwarded+jwt';
/** Default lifetime of an assertion, in seconds. */
export const DEFAULT_ASSERTION_LIFETIME_SECONDS = 30;
/** Default clock skew tolerated between proxy and backend, in seconds. */
export const DEFAULT_ASSERTION_CLOCK_TOLERANCE_SECONDS = 5;

/** What an assertion vouches for. */
export interface ForwardingAssertionClaims {
  readonly htm: string;
  readonly htp: string;
  readonly provided: string | null;
  readonly referred: string | null;
  readonly other: string | null;
}

/** A key as configuration gives it: a KeyObject, a JWK, or PEM text. */
export type ForwardingKeyInput = KeyObject | JsonWebKey | string | Buffer;

function isKeyObject(value: unknown): value is KeyObject {
  return typeof value === 'object' && value !== null && typeof (value as KeyObject).asymmetricKeyType !== 'undefined' && typeof (value as KeyObject).export === 'function';
}

/** The JWS algorithm for an asymmetric key; TypeError for keys tokbind does not sign with. */
export function assertionAlgorithm(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const algorithm = ecdsaJwsAlgorithm(key);
      if (algorithm === undefined) throw new TypeError(`unsupported EC curve for a forwarding key: ${String(key.asymmetricKeyDetails?.namedCurve)}`);
      return algorithm;
    }
    case 'ed25519':
      return 'EdDSA';
    case 'rsa':
      return 'RS256';
    default:
      // rsa-pss KeyObjects included: node:crypto has no JWK form for them, which jose needs.
      throw new TypeError(`unsupported forwarding key type: ${String(key.asymmetricKeyType)}`);
  }
}

function asKey(input: ForwardingKeyInput, kind: 'private' | 'public'): KeyObject {
  if (isKeyObject(input)) {
    if (input.type === 'secret') throw new TypeError('a forwarding key must be asymmetric (EC, Ed25519 or RSA)');
    if (kind === 'private' && input.type !== 'private') throw new TypeError('the forwarding key must be a private key');
    return kind === 'public' && input.type === 'private' ? createPublicKey(input) : input;
  }
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    const text = input.toString();
    if (text.trimStart().startsWith('{')) return asKey(JSON.parse(text) as JsonWebKey, kind);
    return kind === 'private' ? createPrivateKey(text) : createPublicKey(text);
  }
  if (typeof input === 'object' && input !== null && typeof (input as JsonWebKey).kty === 'string') {
    const jwk = input as JsonWebKey;
    if (jwk.kty === 'oct') throw new TypeError('a forwarding key must be asymmetric (EC, Ed25519 or RSA)');
    if (kind === 'private') {
      if (jwk.d === undefined) throw new TypeError('the forwarding key must be a private JWK (with "d")');
      return createPrivateKey({ key: jwk, format: 'jwk' });
    }
    return createPublicKey({ key: jwk, format: 'jwk' });
  }
  throw new TypeError('a forwarding key must be a KeyObject, a JWK or PEM text');
}

/** Signs forwarding assertions with one private key. */
export interface ForwardingSigner {
  readonly algorithm: string;
  sign(claims: ForwardingAssertionClaims): Promise<string>;
}

/**
 * A signer for forwarding assertions from a private key (KeyObject, private JWK, or PKCS#8 /
 * SEC1 / PKCS#1 PEM).
 *
 * @throws {TypeError} for a key that is not an asymmetric private key tokbind signs with
 * @example
 * ```ts
 * const signer = createForwardingSigner(readFileSync('forward-key.pem', 'utf8'))
 * headers['sec-token-binding-assertion'] = await signer.sign({ htm: 'GET', htp: '/', provided: null, referred: null, other: null })
 * ```
 */
export function createForwardingSigner(input: ForwardingKeyInput, options: { readonly lifetimeSeconds?: number } = {}): ForwardingSigner {
  const key = asKey(input, 'private');
  const algorithm = assertionAlgorithm(key);
  const lifetime = options.lifetimeSeconds ?? DEFAULT_ASSERTION_LIFETIME_SECONDS;
  if (!Number.isSafeInteger(lifetime) || lifetime < 1) throw new TypeError('lifetimeSeconds must be a positive integer');
  return {
    algorithm,
    sign: (claims) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ ...claims })
        .setProtectedHeader({ alg: algorithm, typ: FORWARDING_ASSERTION_TYPE })
        .setIssuedAt(now)
        .setExpirationTime(now + lifetime)
        .setJti(randomBytes(16).toString('base64url'))
        .sign(key);
    },
  };
}

/** Verifies forwarding assertions with one public key, refusing replays. */
export interface ForwardingVerifier {
  readonly algorithm: string;
  /**
   * Verifies `jws` against what the request actually carries.
   *
   * @throws {TokenBindingError} `ERR_TB_FORWARDED_ASSERTION`
   */
  verify(jws: string | undefined, expected: ForwardingAssertionClaims): Promise<void>;
}

export interface ForwardingVerifierOptions {
  /** Clock skew tolerated, seconds (default 5). */
  readonly clockToleranceSeconds?: number;
  /** Oldest `iat` accepted, seconds (default 60: twice the signer's default lifetime). */
  readonly maxAgeSeconds?: number;
  /** Most jti values remembered for replay detection (default 100 000). */
  readonly maxRemembered?: number;
}

function assertionError(reason: string): TokenBindingError {
  return new TokenBindingError('ERR_TB_FORWARDED_ASSERTION', undefined, { field: 'Sec-Token-Binding-Assertion', actual: reason });
}

/** Why jose refused, as a short stable word (never the token or the key). */
function joseReason(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'expired';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `claim-${err.claim}`;
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm';
  return 'invalid';
}

/**
 * A verifier for forwarding assertions from the proxy's public key (KeyObject, JWK or SPKI PEM;
 * a private key is reduced to its public half). Checks the signature with the one algorithm the
 * key implies, `typ`, `exp` and `iat` (age at most `maxAgeSeconds`, with `clockToleranceSeconds`
 * of skew), then that method, path and the three TTRP values are exactly those of the request,
 * and that its `jti` was not seen before (remembered until it expires, at most `maxRemembered`).
 *
 * @example
 * ```ts
 * const verifier = createForwardingVerifier(proxyPublicJwk)
 * await verifier.verify(req.headers['sec-token-binding-assertion'], { htm: req.method, htp: req.url, provided, referred: null, other: null })
 * ```
 */
export function createForwardingVerifier(input: ForwardingKeyInput, options: ForwardingVerifierOptions = {}): ForwardingVerifier {
  const key = asKey(input, 'public');
  const algorithm = assertionAlgorithm(key);
  const tolerance = options.clockToleranceSeconds ?? DEFAULT_ASSERTION_CLOCK_TOLERANCE_SECONDS;
  const maxAge = options.maxAgeSeconds ?? 2 * DEFAULT_ASSERTION_LIFETIME_SECONDS;
  const maxRemembered = options.maxRemembered ?? 100_000;
  for (const [name, value] of [
    ['clockToleranceSeconds', tolerance],
    ['maxAgeSeconds', maxAge],
    ['maxRemembered', maxRemembered],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`trustProxy.${name} must be a non-negative integer`);
  }
  /** jti → exp. Insertion order is close to exp order (same lifetime), so the oldest go first. */
  const seen = new Map<string, number>();
  const remember = (jti: string, exp: number): void => {
    const now = Math.floor(Date.now() / 1000);
    for (const [old, oldExp] of seen) {
      if (seen.size < maxRemembered && oldExp + tolerance >= now) break;
      seen.delete(old);
    }
    seen.set(jti, exp);
  };
  return {
    algorithm,
    async verify(jws, expected) {
      if (typeof jws !== 'string' || jws.length === 0) throw assertionError('missing');
      if (jws.length > 8192) throw assertionError('too-large');
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(jws, key, {
          algorithms: [algorithm],
          typ: FORWARDING_ASSERTION_TYPE,
          clockTolerance: tolerance,
          maxTokenAge: maxAge,
          requiredClaims: ['iat', 'exp', 'jti', 'htm', 'htp'],
        }));
      } catch (err) {
        throw assertionError(joseReason(err));
      }
      for (const name of ['htm', 'htp', 'provided', 'referred', 'other'] as const) {
        const claim = payload[name] ?? null;
        if (claim !== expected[name]) throw assertionError(`mismatch-${name}`);
      }
      const jti = payload['jti'];
      if (typeof jti !== 'string' || jti.length === 0 || jti.length > 128) throw assertionError('claim-jti');
      if (seen.has(jti)) throw assertionError('replayed');
      remember(jti, payload['exp'] as number);
    },
  };
}
