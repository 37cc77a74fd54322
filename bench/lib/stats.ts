/** Summary statistics over benchmark rounds: median and spread, never a single best run. */

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** Relative standard deviation (stdev / mean), 0..1. */
  readonly rsd: number;
  readonly rounds: readonly number[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function summarize(values: readonly number[]): Summary {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  return {
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    rsd: mean === 0 ? 0 : Math.sqrt(variance) / Math.abs(mean),
    rounds: values,
  };
}

/**
 * Candidate over baseline, paired per round (A/B interleaved), then the median of the ratios:
 * a slow minute on a shared machine then moves both sides of one pair, not just one figure.
 */
export function pairedRatio(candidate: readonly number[], baseline: readonly number[]): Summary {
  const ratios = candidate.map((c, i) => c / baseline[i]!);
  return summarize(ratios);
}
