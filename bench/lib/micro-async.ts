/**
 * The asynchronous twin of lib/micro.ts for promise-returning operations (jose verifies
 * asynchronously): `run(n)` awaits n operations one after another, cases alternate in ~20 ms
 * slices within a round, and each round gives one paired ratio against the first case.
 */
import type { MicroOptions, MicroResult } from './micro.js';
import { pairedRatio, summarize } from './stats.js';

export interface AsyncMicroCase {
  readonly name: string;
  /** Runs `n` operations in sequence. */
  readonly run: (n: number) => Promise<unknown>;
}

const SLICE_MS = 20;

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

async function calibrate(c: AsyncMicroCase, warmupMs: number): Promise<number> {
  let batch = 1;
  const start = now();
  for (;;) {
    const t0 = now();
    await c.run(batch);
    const dt = now() - t0;
    if (dt >= 2 || batch >= 1 << 16) {
      if (now() - start >= warmupMs) return Math.max(1, Math.round((batch * 2) / Math.max(dt, 0.001)));
    } else {
      batch *= 2;
    }
  }
}

/** Measures `cases` (the first is the baseline); one result per case, by name. */
export async function compareAsync(cases: readonly AsyncMicroCase[], options: MicroOptions): Promise<Map<string, MicroResult>> {
  const batches: number[] = [];
  for (const c of cases) batches.push(await calibrate(c, options.warmupMs));
  const samples = cases.map(() => [] as number[]);
  for (let r = 0; r < options.rounds; r++) {
    const ops = cases.map(() => 0);
    const time = cases.map(() => 0);
    while (Math.min(...time) < options.roundMs) {
      for (let k = 0; k < cases.length; k++) {
        const i = (k + r) % cases.length;
        const t0 = now();
        let t = t0;
        do {
          await cases[i]!.run(batches[i]!);
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
    const s = summarize(samples[i]!);
    out.set(c.name, i === 0 ? { ops: s } : { ops: s, ratio: pairedRatio(samples[i]!, samples[0]!) });
  });
  return out;
}
