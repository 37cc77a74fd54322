/**
 * RFC 9449 (DPoP) at a resource server: proof verification (§4.3), `htu` normalisation, a
 * bounded `jti` replay cache (§11.1) and stateless server nonces (§9).
 */
import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { calculateJwkThumbprint, errors as joseErrors, importJWK, jwtVerify, type CryptoKey, type JWK, type JWTHeaderParameters } from 'jose';
import { LruCache } from '../crypto/lru.js';
import { TokenBindingError } from '../errors.js';

/** Asymmetric JWS algorithms a DPoP proof may use (RFC 9449 §4.2: no `none`, no MAC). */
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512', 'EdDSA', 'Ed25519'] as const;

/** Longest `jti` accepted: the cache keeps each one for the `iat` window, so its size is bounded. */
export const MAX_JTI_LENGTH = 128;

function invalid(reason: string, field: string): TokenBindingError {
  return new TokenBindingError('ERR_TB_DPOP_INVALID', `invalid DPoP proof: ${reason}`, { field, scheme: 'DPoP' });
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * The form in which `htu` and the request URI are compared (RFC 9449 §4.3 step 9, RFC 3986
 * §6.2.2–6.2.3): scheme and host lower-cased, default port dropped, percent-encoded unreserved
 * characters decoded and the others' hex upper-cased, query and fragment removed. `null` when
 * the value is not an absolute http(s) URI.
 *
 * @example
 * ```ts
 * normalizeHtu('HTTPS://API.example:443/r%7ea?x=1') // 'https://api.example/r~a'
 * ```
 */
export function normalizeHtu(value: string): string | null {
  if (typeof value !== 'string' || value.length > 4096) return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '') return null;
  const path = url.pathname.includes('%')
    ? url.pathname.replace(/%[0-9a-fA-F]{2}/g, (m) => {
        const ch = String.fromCharCode(parseInt(m.slice(1), 16));
        return UNRESERVED.test(ch) ? ch : m.toUpperCase();
      })
    : url.pathname;
  return `${url.protocol}//${url.host}${path}`;
}

/**
 * Where a DPoP verifier records the `jti` of accepted proofs. `remember` answers `fresh` (now
 * recorded), `replayed` (seen and not expired) or `full` (no room without forgetting an
 * unexpired proof: the proof is refused, fail closed). May return a promise (a shared store).
 */
export interface DpopReplayCache {
  remember(jti: string, expiresAtSeconds: number, nowSeconds: number): 'fresh' | 'replayed' | 'full' | Promise<'fresh' | 'replayed' | 'full'>;
}

/**
 * The default {@link DpopReplayCache}: in memory, at most `size` entries (so at most
 * `size × (MAX_JTI_LENGTH + ~60)` bytes), each kept until its proof's `iat` window closes.
 * Entries are kept in insertion order; expired ones are dropped from the front as new ones
 * arrive. When every slot holds an unexpired proof, new proofs are refused (`full`) rather than
 * an old one forgotten — a forgotten `jti` could be replayed.
 *
 * @example
 * ```ts
 * const replayCache = new MemoryDpopReplayCache(1 << 18)
 * ```
 */
export class MemoryDpopReplayCache implements DpopReplayCache {
  readonly size: number;
  /** jti → expiry, in seconds since `#epoch` (small integers: V8 stores them unboxed). */
  readonly #seen = new Map<string, number>();
  readonly #epoch = Math.floor(Date.now() / 1000) - 1;

  constructor(size = 1 << 18) {
    if (!Number.isInteger(size) || size < 1 || size > 1 << 24) throw new TypeError('size must be an integer in 1..16777216');
    this.size = size;
  }

  /** Entries held now (expired ones included until they are dropped). */
  get count(): number {
    return this.#seen.size;
  }

  remember(jti: string, expiresAtSeconds: number, nowSeconds: number): 'fresh' | 'replayed' | 'full' {
    const seen = this.#seen;
    const now = nowSeconds - this.#epoch;
    const known = seen.get(jti);
    if (known !== undefined) {
      if (known >= now) return 'replayed';
      seen.delete(jti);
    }
    // Drop expired entries from the front: a few per insert keeps the map near its live size.
    for (const [key, expiry] of seen) {
      if (expiry >= now) break;
      seen.delete(key);
    }
    if (seen.size >= this.size) return 'full';
    seen.set(jti, expiresAtSeconds - this.#epoch);
    return 'fresh';
  }

  /** Seconds until the oldest entry expires (what a `Retry-After` can say when full). */
  retryAfter(nowSeconds: number): number {
    for (const expiry of this.#seen.values()) return Math.max(1, expiry - (nowSeconds - this.#epoch) + 1);
    return 1;
  }
}

/**
 * Stateless DPoP server nonces (RFC 9449 §9): a nonce names a time slot and carries an HMAC of
 * it, so any process holding `secret` can check it without shared state. A nonce is current for
 * `lifetime` seconds and accepted for one more slot (clients that just received the previous
 * one are not refused).
 *
 * @example
 * ```ts
 * const nonces = new DpopNonces({ secret: randomBytes(32), lifetime: 300 })
 * res.setHeader('DPoP-Nonce', nonces.current())
 * ```
 */
export class DpopNonces {
  readonly lifetime: number;
  readonly #secret: Uint8Array;
  #slot = -1;
  #current = '';

  constructor(options: { readonly secret?: Uint8Array | undefined; readonly lifetime?: number | undefined } = {}) {
    const { secret = randomBytes(32), lifetime = 300 } = options;
    if (!(secret instanceof Uint8Array) || secret.length < 16) throw new TypeError('secret must be at least 16 bytes');
    if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > 86_400) throw new TypeError('lifetime must be 1..86400 seconds');
    this.#secret = Uint8Array.from(secret);
    this.lifetime = lifetime;
  }

  #make(slot: number): string {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(slot >>> 0);
    const mac = createHmac('sha256', this.#secret).update(head).digest().subarray(0, 16);
    return Buffer.concat([head, mac]).toString('base64url');
  }

  /** The nonce to hand out now. */
  current(nowSeconds = Math.floor(Date.now() / 1000)): string {
    const slot = Math.floor(nowSeconds / this.lifetime);
    if (slot !== this.#slot) {
      this.#slot = slot;
      this.#current = this.#make(slot);
    }
    return this.#current;
  }

  /** True when `nonce` is the current nonce or the one before it. */
  check(nonce: unknown, nowSeconds = Math.floor(Date.now() / 1000)): boolean {
    if (typeof nonce !== 'string' || nonce.length !== 27) return false;
    const slot = Math.floor(nowSeconds / this.lifetime);
    const given = Buffer.from(nonce, 'base64url');
    if (given.length !== 20) return false;
    for (const candidate of [slot, slot - 1]) {
      const expected = Buffer.from(candidate === slot ? this.current(nowSeconds) : this.#make(candidate), 'base64url');
      if (timingSafeEqual(given, expected)) return true;
    }
    return false;
  }
}

/** What {@link verifyDpopProof} needs besides the proof. */
export interface DpopProofCheck {
  /** The request method (`htm`). */
  readonly method: string;
  /** The request URI, normalised with {@link normalizeHtu}. */
  readonly htu: string;
  /**
   * The access token presented with the proof: `ath` must be base64url(SHA-256(token)). Leave
   * it out at a token endpoint (no access token yet): `ath` is then not checked.
   */
  readonly accessToken?: string | undefined;
  readonly algorithms: readonly string[];
  /** How old a proof may be (`iat` in the past), seconds. */
  readonly maxAge: number;
  /** How far in the future `iat` may be, seconds. */
  readonly clockTolerance: number;
  readonly replayCache: DpopReplayCache;
  readonly nonces?: DpopNonces | undefined;
  readonly now?: number | undefined;
  /** Imported proof keys and their thumbprints, by public JWK (a client signs every proof with one key). */
  readonly keyCache?: DpopKeyCache | undefined;
}

/** Imported DPoP keys with their `jkt`, by algorithm and public members. */
export type DpopKeyCache = LruCache<string, { readonly key: CryptoKey | Uint8Array; readonly jkt: string }>;

/** A key cache for {@link verifyDpopProof} (importing a JWK costs about as much as the signature check). */
export function createDpopKeyCache(size = 1024): DpopKeyCache {
  return new LruCache(size);
}

/** The members RFC 7638 hashes for each key type: the public key, nothing else. */
const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = { EC: ['crv', 'x', 'y'], RSA: ['e', 'n'], OKP: ['crv', 'x'] };
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/**
 * Resolves the proof's embedded `jwk` (RFC 9449 §4.2: a public key, no private members) to an
 * imported key, through the cache. Only the public members are imported and hashed.
 */
async function embeddedKey(header: JWTHeaderParameters, cache: DpopKeyCache | undefined): Promise<{ key: CryptoKey | Uint8Array; jkt: string }> {
  const jwk = header.jwk as Record<string, unknown> | undefined;
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw invalid('jwk', 'jwk');
  const members = typeof jwk['kty'] === 'string' ? PUBLIC_MEMBERS[jwk['kty']] : undefined;
  if (members === undefined || !Object.hasOwn(PUBLIC_MEMBERS, jwk['kty'] as string)) throw invalid('jwk', 'jwk');
  for (const member of PRIVATE_MEMBERS) if (member in jwk) throw invalid('jwk holds a private key', 'jwk');
  const pub: Record<string, string> = { kty: jwk['kty'] as string };
  let id = `${header.alg}\0${pub['kty']}`;
  for (const member of members) {
    const value = jwk[member];
    if (typeof value !== 'string' || value.length === 0 || value.length > 1024) throw invalid('jwk', 'jwk');
    pub[member] = value;
    id += `\0${value}`;
  }
  const known = cache?.get(id);
  if (known !== undefined) return known;
  let entry: { key: CryptoKey | Uint8Array; jkt: string };
  try {
    entry = { key: await importJWK(pub, header.alg), jkt: await calculateJwkThumbprint(pub as JWK, 'sha256') };
  } catch {
    throw invalid('jwk', 'jwk');
  }
  cache?.set(id, entry);
  return entry;
}

/** An accepted proof: the key's thumbprint (compare with `cnf.jkt`) and the `jti`. */
export interface VerifiedDpopProof {
  readonly jkt: string;
  readonly jti: string;
}

/**
 * Verifies a DPoP proof at a resource server (RFC 9449 §4.3 and §7.1): a JWS with
 * `typ: dpop+jwt`, an allowed asymmetric `alg` and a public `jwk` header that verifies it;
 * `htm` and `htu` of this request; `iat` within the window; `ath` of the access token; the
 * server nonce when nonces are on; then `jti` recorded in the replay cache (last, so only
 * proofs that passed every check take a slot). Returns the key's thumbprint: the caller compares
 * it with `cnf.jkt` *before* the replay check matters to it — see {@link createAccessTokenVerifier}.
 *
 * @throws {TokenBindingError} `ERR_TB_DPOP_INVALID`, `ERR_TB_DPOP_NONCE`, `ERR_TB_DPOP_REPLAYED`,
 *   `ERR_TB_DPOP_REPLAY_CACHE_FULL`
 */
export async function verifyDpopProof(proof: string, check: DpopProofCheck, expectedJkt?: string): Promise<VerifiedDpopProof> {
  let payload: Record<string, unknown>;
  let jkt = '';
  try {
    const verified = await jwtVerify(
      proof,
      async (header) => {
        const resolved = await embeddedKey(header, check.keyCache);
        jkt = resolved.jkt;
        return resolved.key;
      },
      { typ: 'dpop+jwt', algorithms: check.algorithms as string[] },
    );
    payload = verified.payload;
  } catch (err) {
    if (err instanceof TokenBindingError) throw err;
    const reason = err instanceof joseErrors.JOSEError ? err.code : 'unreadable';
    throw invalid(reason, 'DPoP');
  }
  const now = check.now ?? Math.floor(Date.now() / 1000);
  const { jti, htm, htu, iat, ath } = payload;
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) throw invalid('jti', 'jti');
  if (htm !== check.method) throw invalid('htm', 'htm');
  if (typeof htu !== 'string' || normalizeHtu(htu) !== check.htu) throw invalid('htu', 'htu');
  if (typeof iat !== 'number' || !Number.isFinite(iat) || iat < now - check.maxAge || iat > now + check.clockTolerance) throw invalid('iat', 'iat');
  if (check.accessToken !== undefined && (typeof ath !== 'string' || ath !== hash('sha256', check.accessToken, 'base64url'))) throw invalid('ath', 'ath');
  if (expectedJkt !== undefined && jkt !== expectedJkt) {
    throw new TokenBindingError('ERR_TB_CNF_MISMATCH', undefined, { field: 'cnf.jkt', scheme: 'DPoP' });
  }
  if (check.nonces !== undefined && !check.nonces.check(payload['nonce'], now)) {
    throw new TokenBindingError('ERR_TB_DPOP_NONCE', undefined, { field: 'nonce', scheme: 'DPoP' });
  }
  const verdict = await check.replayCache.remember(jti, Math.floor(iat) + check.maxAge + 1, now);
  if (verdict === 'replayed') throw new TokenBindingError('ERR_TB_DPOP_REPLAYED', undefined, { field: 'jti', scheme: 'DPoP' });
  if (verdict === 'full') throw new TokenBindingError('ERR_TB_DPOP_REPLAY_CACHE_FULL', undefined, { field: 'jti', scheme: 'DPoP' });
  return { jkt, jti };
}
