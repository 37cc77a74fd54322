/**
 * The client side of RFC 9449 (DPoP): a key that signs one proof per request (`htm`, `htu`,
 * `iat`, a fresh `jti`, `ath` of the access token, the server's nonce once learnt). The key can
 * live in the same key store as the Token Binding keys.
 */
import { KeyObject, createPublicKey, hash, randomBytes } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, type JWK } from 'jose';
import { ecdsaJwsAlgorithm } from '../crypto/jws.js';
import type { TokenBindingKeyStore } from './keystore.js';

/** Key store scope prefix of DPoP keys: never a Token Binding scope (those are host names). */
export const DPOP_KEY_SCOPE_PREFIX = 'dpop:';

function algorithmFor(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const algorithm = ecdsaJwsAlgorithm(key);
      if (algorithm === undefined) throw new TypeError(`unsupported EC curve ${String(key.asymmetricKeyDetails?.namedCurve)}`);
      return algorithm;
    }
    case 'rsa':
    case 'rsa-pss':
      return 'PS256';
    case 'ed25519':
      return 'EdDSA';
    default:
      throw new TypeError(`unsupported key type ${String(key.asymmetricKeyType)}`);
  }
}

/** What a proof is for. */
export interface DpopProofRequest {
  readonly method: string;
  /** The request URL; query and fragment are left out of `htu` (RFC 9449 §4.2). */
  readonly url: string | URL;
  /** The access token sent with the proof (adds `ath`). */
  readonly accessToken?: string | undefined;
  /** A server nonce; default: the last one this signer learnt from the URL's origin. */
  readonly nonce?: string | undefined;
}

/**
 * A DPoP key pair that signs proofs (RFC 9449 §4.2) with jose: `typ: dpop+jwt`, the public key
 * as `jwk`, ES256 for the P-256 keys a tokbind key store holds. It remembers the latest
 * `DPoP-Nonce` of each origin ({@link rememberNonce}) and puts it in later proofs.
 *
 * @example
 * ```ts
 * const dpop = await DpopSigner.fromKeyStore(keyStore)
 * const jkt = await dpop.thumbprint() // what the authorization server puts in cnf.jkt
 * const res = await tokbindFetch(url, { dispatcher, accessToken, dpop })
 * ```
 */
export class DpopSigner {
  readonly alg: string;
  /** The public key as a JWK (what every proof carries). */
  readonly publicJwk: JWK;
  readonly #privateKey: KeyObject;
  readonly #nonces = new Map<string, string>();
  #thumbprint: Promise<string> | undefined;

  constructor(privateKey: KeyObject) {
    if (!(privateKey instanceof KeyObject) || privateKey.type !== 'private') throw new TypeError('privateKey must be a private KeyObject');
    this.alg = algorithmFor(privateKey);
    const { kty, crv, x, y, n, e } = createPublicKey(privateKey).export({ format: 'jwk' });
    const jwk: Record<string, string> = { kty: kty! };
    for (const [name, value] of Object.entries({ crv, x, y, n, e })) if (value !== undefined) jwk[name] = value;
    this.publicJwk = Object.freeze(jwk) as JWK;
    this.#privateKey = privateKey;
  }

  /**
   * The signer for the key the store keeps under `dpop:<name>` (ecdsap256, so ES256), created
   * on first use. One DPoP key per client: the authorization server and every resource server
   * see the same one, since the token is bound to it.
   */
  static async fromKeyStore(keyStore: TokenBindingKeyStore, name = 'default'): Promise<DpopSigner> {
    if (typeof name !== 'string' || name === '') throw new TypeError('name must be a non-empty string');
    const key = await keyStore.getOrCreateKey(`${DPOP_KEY_SCOPE_PREFIX}${name}`, 'ecdsap256');
    return new DpopSigner(key.privateKey);
  }

  /** The RFC 7638 SHA-256 thumbprint of the public key: `cnf.jkt` of tokens bound to it. */
  thumbprint(): Promise<string> {
    this.#thumbprint ??= calculateJwkThumbprint(this.publicJwk, 'sha256');
    return this.#thumbprint;
  }

  /** Keeps `nonce` (a `DPoP-Nonce` response header) for later proofs to `url`'s origin. */
  rememberNonce(url: string | URL, nonce: string): void {
    if (typeof nonce !== 'string' || nonce === '' || nonce.length > 1024) return;
    this.#nonces.set(new URL(url).origin, nonce);
  }

  /** The nonce last learnt from `url`'s origin. */
  nonceFor(url: string | URL): string | undefined {
    return this.#nonces.get(new URL(url).origin);
  }

  /** A fresh proof for one request. */
  async proof(request: DpopProofRequest): Promise<string> {
    const url = new URL(request.url);
    if (typeof request.method !== 'string' || request.method === '') throw new TypeError('method must be a non-empty string');
    const nonce = request.nonce ?? this.nonceFor(url);
    const claims: Record<string, unknown> = {
      jti: randomBytes(16).toString('base64url'),
      htm: request.method.toUpperCase(),
      htu: `${url.origin}${url.pathname}`,
    };
    if (request.accessToken !== undefined) claims['ath'] = hash('sha256', request.accessToken, 'base64url');
    if (nonce !== undefined) claims['nonce'] = nonce;
    return new SignJWT(claims).setProtectedHeader({ typ: 'dpop+jwt', alg: this.alg, jwk: this.publicJwk }).setIssuedAt().sign(this.#privateKey);
  }
}

/**
 * The headers that present `accessToken` on one request made with `TokenBindingAgent` (or any
 * client): `Authorization: Bearer …`, or with `dpop`, `Authorization: DPoP …` and a fresh
 * `DPoP` proof for `method` and `url` (RFC 9449 §7.1).
 *
 * @example
 * ```ts
 * const headers = await accessTokenHeaders(token, { method: 'GET', url, dpop })
 * https.get(url, { agent, headers }, onResponse)
 * ```
 */
export async function accessTokenHeaders(
  accessToken: string,
  request: { readonly method: string; readonly url: string | URL; readonly dpop?: DpopSigner | undefined },
): Promise<Record<string, string>> {
  if (typeof accessToken !== 'string' || accessToken === '') throw new TypeError('accessToken must be a non-empty string');
  if (request.dpop === undefined) return { authorization: `Bearer ${accessToken}` };
  return { authorization: `DPoP ${accessToken}`, dpop: await request.dpop.proof({ method: request.method, url: request.url, accessToken }) };
}
