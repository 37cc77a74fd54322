/**
 * Counting work, not time: two deterministic meters for the bounded-work and growth tests.
 *
 * - {@link countBlocks}: V8 precise block coverage (the counters `NODE_V8_COVERAGE` and c8 use)
 *   summed over tokbind's own compiled code — every function call and every execution of a
 *   block (a loop body, a branch) is one count. The same input gives the same count on every run,
 *   whatever the machine's load. Under c8 the process's counts are flushed to disk first and each
 *   window's counts are written back as one more coverage report, so measuring loses no coverage.
 * - {@link countCopies}: bytes copied through `Buffer.concat`, `TypedArray.prototype.set` and
 *   `Buffer.prototype.copy` (how a reassembling reader would go quadratic), with a budget that
 *   aborts a runaway at once instead of letting it run for minutes.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import v8 from 'node:v8';

interface Range {
  readonly count: number;
}
interface ScriptCoverage {
  readonly url: string;
  readonly functions: readonly { readonly ranges: readonly Range[] }[];
}

let session: Session | undefined;
let windows = 0;

async function take(s: Session): Promise<ScriptCoverage[]> {
  const { result } = (await s.post('Profiler.takePreciseCoverage')) as { result: ScriptCoverage[] };
  return result;
}

async function started(): Promise<Session> {
  if (session !== undefined) return session;
  const s = new Session();
  s.connect();
  await s.post('Profiler.enable');
  // Whatever NODE_V8_COVERAGE counted so far goes to disk before our takes reset the counters.
  if (process.env.NODE_V8_COVERAGE) v8.takeCoverage();
  await s.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  session = s;
  return s;
}

/** Is this script tokbind's library code (compiled), as opposed to tests, Node or dependencies? */
const isLibrary = (url: string): boolean => url.includes('/dist/src/');

/**
 * Runs `fn` and returns how many block executions it cost in tokbind's library code. Run
 * measured code alone (`test.serial`): anything else the process does meanwhile is counted too.
 *
 * @example
 * ```ts
 * const ops = await countBlocks(() => parseTokenBindingMessage(bytes))
 * ```
 */
export async function countBlocks(fn: () => unknown): Promise<number> {
  const s = await started();
  await take(s);
  await fn();
  const result = await take(s);
  const dir = process.env.NODE_V8_COVERAGE;
  if (dir) {
    // Give c8 the counts this window took from it.
    writeFileSync(path.join(dir, `coverage-${process.pid}-${Date.now()}-window${windows++}.json`), JSON.stringify({ result }));
  }
  let count = 0;
  for (const script of result) {
    if (!isLibrary(script.url)) continue;
    for (const f of script.functions) for (const r of f.ranges) count += r.count;
  }
  return count;
}

/** Thrown by {@link countCopies} when the budget is spent: the code under test is running away. */
export class WorkBudgetExceeded extends Error {
  constructor(readonly budget: number) {
    super(`more than ${budget} bytes copied`);
  }
}

/**
 * Runs `fn` (synchronously) and counts the bytes it copies through `Buffer.concat` (plus one per
 * list entry it walks), `TypedArray.prototype.set` and `Buffer.prototype.copy`, and the calls made
 * to them. Throws
 * {@link WorkBudgetExceeded} as soon as more than `budget` bytes were copied.
 */
export function countCopies<T>(fn: () => T, budget = Number.POSITIVE_INFINITY): { result: T; bytes: number; calls: number } {
  let bytes = 0;
  let calls = 0;
  const add = (n: number): void => {
    calls++;
    bytes += n;
    if (bytes > budget) throw new WorkBudgetExceeded(budget);
  };
  const concat = Buffer.concat;
  const copy = Buffer.prototype.copy;
  const typedArray = Object.getPrototypeOf(Uint8Array.prototype) as { set: Uint8Array["set"] };
  const typedSet = typedArray.set;
  Buffer.concat = function (list: readonly Uint8Array[], totalLength?: number): Buffer {
    const out = concat.call(Buffer, list, totalLength);
    add(out.length + list.length);
    return out;
  } as typeof Buffer.concat;
  typedArray.set = function (this: Uint8Array, source: ArrayLike<number>, offset?: number): void {
    add(source.length);
    typedSet.call(this, source, offset);
  };
  Buffer.prototype.copy = function (this: Buffer, target: Uint8Array, ...rest: number[]): number {
    const n = copy.call(this, target, ...rest);
    add(n);
    return n;
  };
  try {
    return { result: fn(), bytes, calls };
  } finally {
    Buffer.concat = concat;
    typedArray.set = typedSet;
    Buffer.prototype.copy = copy;
  }
}
