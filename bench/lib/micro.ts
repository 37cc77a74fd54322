/**
 * Micro-benchmark loop: operations per second of a synchronous function, measured in timed
 * batches whose size is calibrated first (~5 ms), over several rounds; within a round the
 * baseline and the candidates alternate in short slices (A/B/A/B) so machine noise hits every
 * side, and each round gives one paired ratio.
 */
import { summarize, pairedRatio } from './stats.js';
import type { Summary } from './stats.js';

export interface MicroCase {
  readonly name: string;
  /** Runs `n` operations; its return value is kept alive so the work can't be optimised away. */
  readonly run: (n: number) => unknown;
}

export interface MicroOptions {
  readonly rounds: number;
  /** Time per case per round. */
  readonly roundMs: number;
  readonly warmupMs: number;
}

export interface MicroResult {
  readonly ops: Summary;
  /** Only for candidates: paired ratio against the first case (the baseline). */
  readonly ratio?: Summary;
}

const SLICE_MS = 20;

let sink: unknown;
/** Keeps benchmark results observable; read by nothing. */
export function consume(): unknown {
  return sink;
}

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Batch size for ~5 ms per batch, so the clock read costs nothing measurable. */
export function calibrate(c: MicroCase, warmupMs: number): number {
  let batch = 1;
  const start = now();
  for (;;) {
    const t0 = now();
    sink = c.run(batch);
    const dt = now() - t0;
    if (dt >= 5 || batch >= 1 << 22) {
      if (now() - start >= warmupMs) return Math.max(1, Math.round((batch * 5) / Math.max(dt, 0.001)));
    } else {
      batch *= 2;
    }
  }
}

/** Runs `c` in batches for about `ms` milliseconds; returns ops/s. */
export function runFor(c: MicroCase, batch: number, ms: number): number {
  let ops = 0;
  const t0 = now();
  let t = t0;
  do {
    sink = c.run(batch);
    ops += batch;
    t = now();
  } while (t - t0 < ms);
  return (ops * 1000) / (t - t0);
}

/**
 * Measures `cases` (the first is the baseline) and returns one result per case, keyed by name.
 */
export function compare(cases: readonly MicroCase[], options: MicroOptions): Map<string, MicroResult> {
  const batches = cases.map((c) => calibrate(c, options.warmupMs));
  const samples = cases.map(() => [] as number[]);
  for (let r = 0; r < options.rounds; r++) {
    // Within a round the cases take turns in ~20 ms slices, so a noisy stretch of a shared
    // machine lands on all of them rather than on whichever case ran during it.
    const ops = cases.map(() => 0);
    const time = cases.map(() => 0);
    while (Math.min(...time) < options.roundMs) {
      for (let k = 0; k < cases.length; k++) {
        const i = (k + r) % cases.length;
        const c = cases[i]!;
        const t0 = now();
        let t = t0;
        do {
          sink = c.run(batches[i]!);
          ops[i]! += batches[i]!;
          t = now();
        } while (t - t0 < SLICE_MS);
        time[i]! += t - t0;
      }
    }
    cases.forEach((_, i) => samples[i]!.push((ops[i]! * 1000) / time[i]!));
  }
  const out = new Map<string, MicroResult>();
  cases.forEach((c, i) => {
    const ops = summarize(samples[i]!);
    out.set(c.name, i === 0 ? { ops } : { ops, ratio: pairedRatio(samples[i]!, samples[0]!) });
  });
  return out;
}
