/**
 * Replay detection: a Sec-Token-Binding message whose provided signature fails on this connection
 * but verified earlier on another one is a captured message being replayed.
 *
 * The signature of a Token Binding covers the connection's EKM (RFC 8471 §3.3), and a verdict is
 * a pure function of (value, EKM, backend): a signature that verified once and now fails was
 * necessarily presented on another TLS connection (renegotiation, which would change the EKM, is
 * refused). So remembering *which* provided signatures verified is enough — no connection
 * identity needs to be stored. The provided signature is what is remembered (not the whole
 * header value): it is what a replay must carry unchanged, so a captured message replayed with
 * something changed around it (an extension, another referred binding) is still recognised.
 *
 * Memory is fixed: a direct-mapped table of 64-bit fingerprints (a keyed, truncated SHA-256 of
 * the signature: never the signature itself, and not linkable to it without the process-local
 * key, which also stops a client from aiming its own messages at another client's slot). A newer
 * signature overwrites an older one in its slot, so detection is best-effort for old messages —
 * which is why a replay keeps the stable code `ERR_TB_SIGNATURE_INVALID` and only says so in
 * `cause.replayed`: the code never depends on what the table still remembers.
 */
import { createHash, hash, randomBytes } from 'node:crypto';
import { TokenBindingError } from '../errors.js';

/** Slots in the table (a power of two): 16384 × 8 bytes = 128 KiB, allocated once. */
export const REPLAY_TABLE_SLOTS = 1 << 14;

const KEY_LENGTH = 16;
/** The longest signature a registered key parameter makes (RSA-2048; P-256 makes 64): longer ones are hashed the long way. */
const MAX_SIGNATURE = 256;
/**
 * Verified signatures not fingerprinted yet, hashed together once {@link BATCH} have gathered or
 * a failure needs the table ({@link markIfReplayed}), whichever comes first: the table then reads
 * exactly as if each had been hashed on its own. On a server taking new connections, one hash
 * between two TLS handshakes runs with Node's and OpenSSL's hashing code and data out of the CPU
 * caches: measured at ~13 µs per request in tokbind's server against ~0.7 µs in a loop. A batch
 * pays that once. The signatures wait here (public values the client sent, also held by the
 * connection's cache under their header value) and are wiped when hashed.
 */
const BATCH = 32;
/**
 * One entry per waiting signature: the key, then room for the signature, hashed in place as one
 * buffer by one-shot `crypto.hash` (the cheapest SHA-256 Node offers) with no allocation or
 * second copy. Entry 0 is also where {@link markIfReplayed} hashes the signature it checks.
 */
const ENTRY = KEY_LENGTH + MAX_SIGNATURE;
const pending = Buffer.alloc(BATCH * ENTRY);
const key = randomBytes(KEY_LENGTH);
for (let i = 0; i < BATCH; i++) key.copy(pending, i * ENTRY);
const pendingLengths = new Uint16Array(BATCH);
let pendingCount = 0;
/** Two 32-bit halves per slot; 0/0 is an empty slot (a fingerprint is never all zero). */
const table = new Uint32Array(REPLAY_TABLE_SLOTS * 2);

interface Fingerprint {
  readonly slot: number;
  readonly hi: number;
  readonly lo: number;
}

/**
 * The fingerprint in a keyed SHA-256 digest. The digest comes out as a `'binary'` (latin1)
 * string, one char per byte, not a Buffer: a Buffer made by native code gets a backing store of
 * its own, ~1 µs more per call than the string (Node 20).
 */
function fingerprintOf(digest: string): Fingerprint {
  const slot = word(digest, 0) & (REPLAY_TABLE_SLOTS - 1);
  // `| 1` keeps a real fingerprint from ever looking like an empty slot.
  return { slot: slot * 2, hi: word(digest, 4), lo: (word(digest, 8) | 1) >>> 0 };
}

/** Four digest bytes from `at`, little-endian, as an unsigned 32-bit integer. */
function word(digest: string, at: number): number {
  return (digest.charCodeAt(at) | (digest.charCodeAt(at + 1) << 8) | (digest.charCodeAt(at + 2) << 16) | (digest.charCodeAt(at + 3) << 24)) >>> 0;
}

/** Copies a signature (at most MAX_SIGNATURE bytes) into entry `i`, after its key. */
function place(i: number, signature: Uint8Array): void {
  // A plain loop: `pending.set(signature, at)` goes through a builtin whose code is cold here.
  const at = i * ENTRY + KEY_LENGTH;
  for (let k = 0; k < signature.length; k++) pending[at + k] = signature[k]!;
  pendingLengths[i] = signature.length;
}

/** The fingerprint of the signature in entry `i`, which is wiped. */
function hashEntry(i: number): Fingerprint {
  const base = i * ENTRY;
  const end = base + KEY_LENGTH + pendingLengths[i]!;
  const digest = hash('sha256', pending.subarray(base, end), 'binary');
  pending.fill(0, base + KEY_LENGTH, end);
  return fingerprintOf(digest);
}

function fingerprint(signature: Uint8Array): Fingerprint {
  // A signature no registered key parameters make (it will fail): hashed the long way.
  if (signature.length > MAX_SIGNATURE) return fingerprintOf(createHash('sha256').update(key).update(signature).digest('binary'));
  // Only called with no signature waiting (after a flush): entry 0 is free.
  place(0, signature);
  return hashEntry(0);
}

function store(f: Fingerprint): void {
  table[f.slot] = f.hi;
  table[f.slot + 1] = f.lo;
}

function flush(): void {
  for (let i = 0; i < pendingCount; i++) store(hashEntry(i));
  pendingCount = 0;
}

/**
 * Remembers that the message with this provided signature verified (called on the success path
 * of a fresh verification, never on a cache hit).
 *
 * @internal
 */
export function rememberVerified(signature: Uint8Array): void {
  if (signature.length > MAX_SIGNATURE) {
    flush();
    store(fingerprint(signature));
    return;
  }
  place(pendingCount, signature);
  if (++pendingCount === BATCH) flush();
}

/**
 * The verdict for a failed fresh verification: `err` itself, or — when it is a signature failure
 * of a message whose provided signature verified earlier on another connection — the same code
 * with `cause.replayed` set to `true`.
 *
 * @internal
 */
export function markIfReplayed(signature: Uint8Array, err: TokenBindingError): TokenBindingError {
  if (err.code !== 'ERR_TB_SIGNATURE_INVALID') return err;
  flush();
  const f = fingerprint(signature);
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
  for (let i = 0; i < BATCH; i++) pending.fill(0, i * ENTRY + KEY_LENGTH, (i + 1) * ENTRY);
  pendingCount = 0;
  table.fill(0);
}
