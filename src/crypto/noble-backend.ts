/**
 * A second verification backend: ECDSA P-256 in JavaScript on @noble/curves, RSA delegated to
 * node:crypto. It exists to cross-check OpenSSL (the test suite runs both on every vector) and for
 * deployments that want the P-256 arithmetic out of the native library.
 */
import { createHash } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import type { WeierstrassPoint } from '@noble/curves/abstract/weierstrass.js';
import { TokenBindingKeyParameters, type TokenBindingID } from '../codec/types.js';
import { ECDSA_P256_SIGNATURE_BYTES, assertVerifyArguments, decodeVerifiableKey, type VerificationBackend } from './backend.js';
import { DEFAULT_KEY_CACHE_SIZE, LruCache, idCacheKey } from './lru.js';
import { createNodeBackend } from './node-backend.js';

type Point = WeierstrassPoint<bigint>;
const { Point, Signature } = p256;
const { Fn } = Point;

/** Options of {@link createNobleBackend}. */
export interface NobleBackendOptions {
  /** Decoded, validated P-256 points kept by TokenBindingID bytes (default 1024; 0 disables). Also
   * the size of the key cache of the node:crypto RSA delegate. */
  readonly cacheSize?: number;
  /** Keys kept with a precomputed multiplication table (default 64, ~100 KB each; 0 disables). */
  readonly precomputedKeys?: number;
}

/** A key gets its table on its 4th verification: building it costs ~2.5 verifications and then
 * saves ~60% of each (measured on Node 20), so only keys that recur are worth it. */
const PRECOMPUTE_AFTER_USES = 4;
/** wNAF window of per-key tables: 2.7× faster multiplication for ~100 KB (W=6: 3.4×, ~190 KB). */
const PRECOMPUTE_WINDOW = 4;

interface PointEntry {
  /** null: the ID holds no usable P-256 point (cached so a repeated bad ID costs a lookup). */
  readonly point: Point | null;
  uses: number;
}

function decodePoint(raw: Uint8Array): Point | null {
  const key = decodeVerifiableKey(raw);
  if (key === null || key.kind !== 'ec') return null;
  const sec1 = new Uint8Array(65);
  sec1[0] = 0x04;
  sec1.set(key.x, 1);
  sec1.set(key.y, 33);
  try {
    // fromBytes checks 0 <= x, y < p and the curve equation; the identity has no encoding.
    return Point.fromBytes(sec1);
  } catch {
    return null;
  }
}

/**
 * ECDSA verification (SEC 1 v2 §4.1.4) with an already validated public point. It is the body of
 * noble's `p256.verify(sig, msg, key, { lowS: false, prehash: true, format: 'compact' })` — which
 * the tests check it against — minus the per-call key decoding, so that a cached point (and its
 * precomputed table) can be used: noble v2's verify only takes the key as bytes.
 */
function verifyP256(P: Point, message: Uint8Array, signature: Uint8Array): boolean {
  let r: bigint;
  let s: bigint;
  try {
    // R || S, each in 1..n-1, else it throws. High S is valid in Token Binding: no low-S rule.
    ({ r, s } = Signature.fromBytes(signature, 'compact'));
  } catch {
    return false;
  }
  // bits2int_modN: SHA-256 output and n are both 256 bits, so no truncation, one reduction.
  const h = Fn.create(bytesToNumberBE(createHash('sha256').update(message).digest()));
  const sInv = Fn.inv(s);
  const u1 = Fn.mul(h, sInv);
  const u2 = Fn.mul(r, sInv);
  // Two multiplications (not mulAddUnsafe) so both use their tables: BASE always has one, P when hot.
  const R = Point.BASE.multiplyUnsafe(u1).add(P.multiplyUnsafe(u2));
  if (R.is0()) return false;
  return Fn.create(R.toAffine().x) === r;
}

/**
 * A backend on @noble/curves (RFC 8471 §3.3) with its own caches; see {@link nobleBackend} for
 * what it verifies how.
 *
 * @example
 * ```ts
 * const backend = createNobleBackend({ cacheSize: 4096, precomputedKeys: 0 })
 * verifySignature(binding.id, signedData, binding.signature, backend)
 * ```
 */
export function createNobleBackend(options: NobleBackendOptions = {}): VerificationBackend {
  const cacheSize = options.cacheSize ?? DEFAULT_KEY_CACHE_SIZE;
  const points = new LruCache<string, PointEntry>(cacheSize);
  const hot = new LruCache<string, Point>(options.precomputedKeys ?? 64);
  const rsa = createNodeBackend({ cacheSize });

  function point(raw: Uint8Array): Point | null {
    const cacheKey = idCacheKey(raw);
    const fast = hot.get(cacheKey);
    if (fast !== undefined) return fast;
    let entry = points.get(cacheKey);
    if (entry === undefined) {
      entry = { point: decodePoint(raw), uses: 0 };
      points.set(cacheKey, entry);
    }
    // `===`, not `>=`: a key whose table was evicted gets a new one only after it has left `points`
    // and recurred again, so a churning table cache never costs a table build per verification.
    if (entry.point !== null && ++entry.uses === PRECOMPUTE_AFTER_USES && hot.maxSize > 0) {
      // A copy: the table hangs off the point object (a WeakMap in noble) and must be freed
      // when the key leaves the small `hot` cache, not when it leaves the large one.
      const copy = Point.fromAffine(entry.point.toAffine()).precompute(PRECOMPUTE_WINDOW);
      hot.set(cacheKey, copy);
      return copy;
    }
    return entry.point;
  }

  return {
    name: '@noble/curves',
    verify(id: TokenBindingID, signedData: Uint8Array, signature: Uint8Array): boolean {
      assertVerifyArguments(id, signedData, signature);
      const raw = id.raw;
      if (raw[0] !== TokenBindingKeyParameters.ecdsap256) return rsa.verify(id, signedData, signature);
      if (signature.length !== ECDSA_P256_SIGNATURE_BYTES) return false;
      const P = point(raw);
      return P !== null && verifyP256(P, signedData, signature);
    },
  };
}

/**
 * The pure-JavaScript P-256 backend (RFC 8471 §3.3): ecdsap256 signatures (R || S, SHA-256, high S
 * accepted) verified with @noble/curves point arithmetic. noble has no RSA, so rsa2048_pss and
 * rsa2048_pkcs1.5 are **delegated to node:crypto** (the same code as {@link nodeBackend}, with
 * its own key cache); unknown key parameters answer `false`. Decoded points are cached by
 * TokenBindingID bytes (1024), and keys seen 4 times or more get a precomputed table (64 keys).
 * ECDSA is 10× (key with a table) to 25× slower than {@link nodeBackend}: use it to cross-check
 * OpenSSL, not by default.
 *
 * @example
 * ```ts
 * import { nobleBackend, verifyTokenBinding } from 'tokbind'
 * verifyTokenBinding(binding, ekm, nobleBackend)
 * ```
 */
export const nobleBackend: VerificationBackend = createNobleBackend();
