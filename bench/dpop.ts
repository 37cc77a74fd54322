/**
 * The DPoP (RFC 9449) comparison: the same HTTPS server verifying one DPoP proof per request with
 * `jose`, and the client side that pre-generates the proofs (single-use, so one per request).
 *
 * Server checks (RFC 9449 §4.3): exactly one DPoP header; a JWS with `typ: dpop+jwt`, an
 * asymmetric `alg` (ES256 here) and a public `jwk` in its header that verifies the signature
 * (jose `EmbeddedJWK`); `htm` and `htu` match the request; `iat` within 60 s either way; `jti`
 * not seen before (a bounded replay cache). The JWK thumbprint (`jkt`) is computed for every
 * request, as a resource server would to compare it with the access token's `cnf.jkt`.
 */
import { randomBytes, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify } from 'jose';
import { generateKeyPair } from './lib/keys.js';

const MAX_SKEW_S = 60;

export interface DpopVerifierOptions {
  /** The `htu` this server expects: scheme, host and path of the request, no query/fragment. */
  readonly origin: string;
  /** Replay cache size cap (the cache also forgets proofs older than the `iat` window). */
  readonly replayCap?: number;
}

/** Returns the proof's `jkt`, or throws when the request carries no valid, fresh DPoP proof. */
export type DpopVerifier = (req: IncomingMessage) => Promise<string>;

export function createDpopVerifier(options: DpopVerifierOptions): DpopVerifier {
  const cap = options.replayCap ?? 1 << 20;
  // jti → expiry (ms). Insertion order is expiry order (iat is bounded), so the oldest is first.
  const seen = new Map<string, number>();
  return async (req) => {
    const value = req.headers.dpop;
    // Node joins repeated unknown headers with ", "; a compact JWS has no comma.
    if (typeof value !== 'string' || value.includes(',')) throw new Error('exactly one DPoP header required');
    const { payload, protectedHeader } = await jwtVerify(value, EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: ['ES256'],
      maxTokenAge: MAX_SKEW_S,
    });
    const now = Date.now();
    if (typeof payload.iat !== 'number' || payload.iat * 1000 > now + MAX_SKEW_S * 1000) throw new Error('iat out of window');
    if (payload.htm !== req.method) throw new Error('htm mismatch');
    const path = (req.url ?? '/').split(/[?#]/, 1)[0];
    if (payload.htu !== options.origin + path) throw new Error('htu mismatch');
    const jti = payload.jti;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) throw new Error('bad jti');
    for (const [k, exp] of seen) {
      if (exp > now && seen.size < cap) break;
      seen.delete(k);
    }
    if (seen.has(jti)) throw new Error('replayed jti');
    seen.set(jti, now + 2 * MAX_SKEW_S * 1000);
    return calculateJwkThumbprint(protectedHeader.jwk!, 'sha256');
  };
}

function b64u(s: string | Uint8Array): string {
  return Buffer.from(s).toString('base64url');
}

/** Client keys for DPoP: ES256 keys with their ready-made JWS header segment. */
export interface DpopClientKey {
  readonly privateKey: KeyObject;
  readonly headerSegment: string;
}

export function createDpopClientKeys(n: number): DpopClientKey[] {
  const keys: DpopClientKey[] = [];
  for (let i = 0; i < n; i++) {
    const { privateKey, publicKey } = generateKeyPair('ec');
    const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
    keys.push({ privateKey, headerSegment: b64u(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } })) });
  }
  return keys;
}

/**
 * `count` fresh proofs for `GET htu`, round-robin over `keys`. Signed with node:crypto directly
 * (a compact JWS is small enough to write by hand, and jose's SignJWT would only make the
 * pre-generation slower; the server's jose verifies every one of them).
 */
export function createDpopProofs(keys: readonly DpopClientKey[], count: number, htu: string): string[] {
  const jtis = randomBytes(16 * count);
  const iat = Math.floor(Date.now() / 1000);
  const proofs = new Array<string>(count);
  for (let i = 0; i < count; i++) {
    const key = keys[i % keys.length]!;
    const jti = jtis.subarray(16 * i, 16 * i + 16).toString('base64url');
    const input = `${key.headerSegment}.${b64u(JSON.stringify({ jti, htm: 'GET', htu, iat }))}`;
    const sig = sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
    proofs[i] = `${input}.${sig.toString('base64url')}`;
  }
  return proofs;
}
