/**
 * Replay detection: a Sec-Token-Binding value whose signature fails on this connection but
 * verified earlier on another one is a captured message being replayed.
 *
 * The signature of a Token Binding covers the connection's EKM (RFC 8471 §3.3), and a verdict is
 * a pure function of (value, EKM, backend): a value that verified once and now fails its
 * signature check was necessarily presented on another TLS connection (renegotiation, which would
 * change the EKM, is refused). So remembering *which* values verified is enough — no connection
 * identity needs to be stored.
 *
 * Memory is fixed: a direct-mapped table of 64-bit fingerprints (a keyed, truncated SHA-256 of
 * the header value: never the value itself, and not linkable to it without the process-local
 * key, which also stops a client from aiming its own messages at another client's slot). A newer
 * value overwrites an older one in its slot, so detection is best-effort for old messages — which
 * is why a replay keeps the stable code `ERR_TB_SIGNATURE_INVALID` and only says so in
 * `cause.replayed`: the code never depends on what the table still remembers.
 */
import { hash, randomBytes } from 'node:crypto';
import { TokenBindingError } from '../errors.js';

/** Slots in the table (a power of two): 16384 × 8 bytes = 128 KiB, allocated once. */
export const REPLAY_TABLE_SLOTS = 1 << 14;

// A process-local key, as hex: hashed as one string with the value (one-shot `crypto.hash`, the
// cheapest SHA-256 Node offers for a ~200-byte input).
const KEY = randomBytes(16).toString('hex');
/** Two 32-bit halves per slot; 0/0 is an empty slot (a fingerprint is never all zero). */
const table = new Uint32Array(REPLAY_TABLE_SLOTS * 2);

interface Fingerprint {
  readonly slot: number;
  readonly hi: number;
  readonly lo: number;
}

function fingerprint(value: string): Fingerprint {
  const digest = hash('sha256', KEY + value, 'buffer');
  const slot = digest.readUInt32LE(0) & (REPLAY_TABLE_SLOTS - 1);
  // `| 1` keeps a real fingerprint from ever looking like an empty slot.
  return { slot: slot * 2, hi: digest.readUInt32LE(4), lo: (digest.readUInt32LE(8) | 1) >>> 0 };
}

/**
 * Remembers that `value` verified (called on the success path of a fresh verification, never on
 * a cache hit).
 *
 * @internal
 */
export function rememberVerified(value: string): void {
  const f = fingerprint(value);
  table[f.slot] = f.hi;
  table[f.slot + 1] = f.lo;
}

/**
 * The verdict for a failed fresh verification: `err` itself, or — when it is a signature failure
 * of a value that verified earlier on another connection — the same code with `cause.replayed`
 * set to `true`.
 *
 * @internal
 */
export function markIfReplayed(value: string, err: TokenBindingError): TokenBindingError {
  if (err.code !== 'ERR_TB_SIGNATURE_INVALID') return err;
  const f = fingerprint(value);
  if (table[f.slot] !== f.hi || table[f.slot + 1] !== f.lo) return err;
  const cause = err.cause instanceof Error || err.cause === undefined ? {} : err.cause;
  return new TokenBindingError(err.code, err.message, { ...cause, replayed: true });
}

/** True when `err` is a rejection that {@link markIfReplayed} recognised as a replay. */
export function isReplayed(err: TokenBindingError): boolean {
  const cause = err.cause;
  return cause !== undefined && !(cause instanceof Error) && cause.replayed === true;
}

/**
 * Forgets every remembered value (tests).
 *
 * @internal
 */
export function clearReplayTable(): void {
  table.fill(0);
}
