/**
 * Time boxes for the fuzz and property tests, and the one-line summaries the reliability suite
 * prints (quoted in docs/reliability.md).
 *
 * `npm test` runs each target for a few seconds; `npm run fuzz` (TOKBIND_FUZZ=long) for a minute
 * each. Either way a target must reach a minimum number of inputs, so a generator that stalls (or
 * a box that closes too early) fails instead of passing on nothing.
 */
import fc from 'fast-check';
import { TokenBindingError, type TokenBindingErrorCode } from '../../src/errors.js';

/** True under `npm run fuzz`. */
export const LONG = process.env.TOKBIND_FUZZ === 'long';

/** Milliseconds one fuzz target runs: `normalMs` in `npm test`, `longMs` under TOKBIND_FUZZ=long. */
export function fuzzTime(normalMs: number, longMs = 60_000): number {
  return LONG ? longMs : normalMs;
}

/*
 * Fuzz tests are synchronous and declared with `test.serial`: ava reports a test's result only
 * when the worker's event loop turns, so concurrently declared synchronous tests would report
 * together at the end — past ava's 2-minute timeout in long mode.
 */

/** fast-check parameters: unbounded runs, stopped (as a success) when the time box closes. */
export function fuzzParameters(timeMs: number, seed?: number): fc.Parameters<unknown> {
  const parameters: fc.Parameters<unknown> = {
    numRuns: Number.MAX_SAFE_INTEGER,
    plugins: [fc.interruptAfterTimeLimit(timeMs)],
  };
  return seed === undefined ? parameters : { ...parameters, seed };
}

/** What one fuzz target saw. */
export interface FuzzTally {
  inputs: number;
  accepted: number;
  /** Rejections by code. */
  readonly codes: Map<TokenBindingErrorCode, number>;
}

export function newTally(): FuzzTally {
  return { inputs: 0, accepted: 0, codes: new Map() };
}

/**
 * Runs `fn` on one input: a return counts as accepted, a TokenBindingError with one of `allowed`
 * codes as a clean rejection. Anything else — a RangeError, a TypeError, a code outside `allowed`
 * — is rethrown and fails the property (fast-check then shrinks it to a minimal input).
 */
export function expectCoded<T>(
  tally: FuzzTally,
  allowed: ReadonlySet<TokenBindingErrorCode>,
  fn: () => T,
): T | undefined {
  tally.inputs++;
  try {
    const result = fn();
    tally.accepted++;
    return result;
  } catch (err) {
    if (err instanceof TokenBindingError && allowed.has(err.code)) {
      tally.codes.set(err.code, (tally.codes.get(err.code) ?? 0) + 1);
      return undefined;
    }
    throw err;
  }
}

/** The summary line every reliability area prints: `reliability | area | k=v, k=v`. */
export function summaryLine(area: string, numbers: Record<string, number | string>): string {
  const fields = Object.entries(numbers).map(([k, v]) => `${k}=${typeof v === 'number' ? v.toLocaleString('en-US') : v}`);
  return `reliability | ${area} | ${fields.join(', ')}`;
}

/** Prints {@link summaryLine} (ava shows a worker's console.log with the run's output). */
export function printSummary(area: string, numbers: Record<string, number | string>): void {
  console.log(summaryLine(area, numbers));
}

/** Rejection counts in a stable order, for a summary. */
export function codesText(codes: ReadonlyMap<string, number>): string {
  return [...codes.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, n]) => `${code.replace(/^ERR_TB_/, '')}:${n}`)
    .join(' ');
}
