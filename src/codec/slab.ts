/**
 * Short-lived bytes of the per-request path carved from shared slabs outside the JavaScript heap.
 *
 * A typed array of more than 64 bytes gets a backing store of its own outside the heap, and making
 * one costs ~1–2 µs (measured on Node 20: `new Uint8Array(139)`, the size of one ECDSA message,
 * ~1.9 µs against ~0.07 µs for 64 bytes) plus the collector's work to free it. A smaller one lives
 * on the heap, and V8 moves it out — allocating that backing store after all — the first time
 * native code asks for its buffer, as node:crypto does for the data it verifies. A view into a
 * shared slab costs ~0.05 µs either way.
 *
 * Views never overlap and a slab is never reused, only dropped when full, so a view kept by
 * mistake keeps its bytes (and its slab) alive but never sees them change. Not for results
 * handed to callers: a view's `buffer` holds other requests' bytes.
 */

const SLAB_BYTES = 8192;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

/** The largest view carved from a slab; a longer one gets an array of its own. */
export const MAX_CARVED_BYTES = SLAB_BYTES / 4;

/**
 * `n` zeroed bytes (a fresh slab is zeroed; no view is carved twice from the same bytes), as a
 * view of a shared slab when `n` ≤ {@link MAX_CARVED_BYTES}, otherwise an array of their own.
 *
 * @internal For the verifier's per-request bytes, which never leave it.
 */
export function carve(n: number): Uint8Array {
  if (n > MAX_CARVED_BYTES) return new Uint8Array(n);
  if (slabUsed + n > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = new Uint8Array(slab, slabUsed, n);
  // 8-byte aligned starts, like Node's Buffer pool.
  slabUsed += (n + 7) & ~7;
  return out;
}
