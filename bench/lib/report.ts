/**
 * Collects figures, prints the compact table and builds bench/results.json.
 *
 * JSON layout: the figures are nested by their dotted key (`verify.raw_ops` →
 * `{ verify: { raw_ops } }`) and hold the median; `spread` holds, per key, the rounds with
 * min/max/relative stdev; `targets` holds each target and whether this run met it.
 */
import type { Summary } from './stats.js';

export type Unit = 'ops/s' | 'req/s' | 'ns' | 'bytes' | 'x';

export interface Target {
  /** Which value the target applies to. */
  readonly on: 'ratio' | 'value';
  readonly op: '>=' | '<=';
  readonly value: number;
}

export interface FigureSpec {
  readonly key: string;
  readonly label?: string;
  readonly unit: Unit;
  readonly summary: Summary;
  /** The baseline this figure is compared with (its key must be recorded too). */
  readonly baseline?: { readonly key: string; readonly label: string; readonly summary: Summary };
  /** Key under which the paired ratio is stored, and the ratio itself. */
  readonly ratio?: { readonly key: string; readonly summary: Summary };
  readonly target?: Target;
  readonly note?: string;
  /**
   * HTTP figures: server CPU time per request (µs, medians over the rounds) of the candidate and
   * the baseline — far less sensitive than throughput to other work on a shared machine.
   */
  readonly cpuPerRequest?: { readonly candidateUs: number; readonly baselineUs: number };
  /**
   * The A/A control: the baseline measured against a second copy of itself in the same harness
   * and rounds. Its spread is what noise alone does to a ratio in this run: a ratio whose
   * distance from 1 is inside it is not a measured difference.
   */
  readonly control?: { readonly key: string; readonly summary: Summary };
}

interface Row {
  readonly figure: string;
  readonly median: string;
  readonly spread: string;
  readonly baseline: string;
  readonly ratio: string;
  readonly control: string;
  readonly cpu: string;
  readonly target: string;
  readonly met: string;
}

export function formatValue(v: number, unit: Unit): string {
  if (!Number.isFinite(v)) return 'n/a';
  switch (unit) {
    case 'ops/s':
    case 'req/s': {
      const s = v >= 1e6 ? `${(v / 1e6).toFixed(2)}M` : v >= 1e4 ? `${(v / 1e3).toFixed(1)}k` : v >= 1e3 ? `${(v / 1e3).toFixed(2)}k` : v.toFixed(0);
      return `${s} ${unit}`;
    }
    case 'ns':
      return v >= 1e4 ? `${(v / 1e3).toFixed(1)} µs` : `${v.toFixed(0)} ns`;
    case 'bytes':
      return Math.abs(v) >= 1e6 ? `${(v / 1048576).toFixed(2)} MiB` : Math.abs(v) >= 1e4 ? `${(v / 1024).toFixed(1)} KiB` : `${v.toFixed(0)} B`;
    case 'x':
      return v.toFixed(3);
  }
}

function spread(s: Summary, unit: Unit): string {
  if (s.rounds.length < 2) return `n=${s.rounds.length}`;
  if (unit === 'bytes' || unit === 'x') return `${formatValue(s.min, unit)}..${formatValue(s.max, unit)}`;
  return `±${(s.rsd * 100).toFixed(1)}% (n=${s.rounds.length})`;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function met(t: Target, value: number): boolean {
  return t.op === '>=' ? value >= t.value : value <= t.value;
}

export class Report {
  readonly results: Record<string, unknown> = {};
  readonly spread: Record<string, Summary> = {};
  readonly targets: Record<string, { target: string; value: number; met: boolean }> = {};
  readonly notes: string[] = [];
  readonly #rows: Row[] = [];

  /** Records a plain value (metadata-like, no spread). */
  set(key: string, value: unknown): void {
    const parts = key.split('.');
    let o = this.results;
    for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
    o[parts.at(-1)!] = value;
  }

  #record(key: string, s: Summary, unit: Unit): void {
    this.set(key, unit === 'x' ? Math.round(s.median * 1000) / 1000 : Math.round(s.median));
    this.spread[key] = s;
  }

  figure(f: FigureSpec): void {
    this.#record(f.key, f.summary, f.unit);
    if (f.baseline !== undefined) this.#record(f.baseline.key, f.baseline.summary, f.unit === 'ns' ? 'ns' : f.unit);
    if (f.ratio !== undefined) this.#record(f.ratio.key, f.ratio.summary, 'x');
    if (f.control !== undefined) this.#record(f.control.key, f.control.summary, 'x');
    if (f.cpuPerRequest !== undefined) {
      this.set(`${f.key}_cpu_us_per_req`, round1(f.cpuPerRequest.candidateUs));
      if (f.baseline !== undefined) this.set(`${f.baseline.key}_cpu_us_per_req`, round1(f.cpuPerRequest.baselineUs));
    }
    let targetText = '';
    let metText = '';
    if (f.target !== undefined) {
      const value = f.target.on === 'ratio' ? f.ratio?.summary.median : f.summary.median;
      if (value !== undefined) {
        const unit = f.target.on === 'ratio' ? 'x' : f.unit;
        targetText = `${f.target.on === 'ratio' ? 'ratio ' : ''}${f.target.op === '>=' ? '≥' : '≤'} ${f.target.on === 'ratio' ? f.target.value : formatValue(f.target.value, unit)}`;
        const ok = met(f.target, value);
        metText = ok ? '✓' : '✗';
        this.targets[f.target.on === 'ratio' ? f.ratio!.key : f.key] = { target: `${f.target.op} ${f.target.value}`, value, met: ok };
      }
    }
    this.#rows.push({
      figure: f.label ?? f.key,
      median: formatValue(f.summary.median, f.unit),
      spread: spread(f.summary, f.unit),
      baseline: f.baseline === undefined ? '' : `${f.baseline.label} ${formatValue(f.baseline.summary.median, f.unit)}`,
      ratio: f.ratio === undefined ? '' : `${f.ratio.summary.median.toFixed(3)} (${f.ratio.summary.min.toFixed(2)}..${f.ratio.summary.max.toFixed(2)})`,
      control: f.control === undefined ? '' : `${f.control.summary.median.toFixed(3)} (${f.control.summary.min.toFixed(2)}..${f.control.summary.max.toFixed(2)})`,
      cpu: f.cpuPerRequest === undefined ? '' : `${round1(f.cpuPerRequest.candidateUs)} / ${round1(f.cpuPerRequest.baselineUs)} µs`,
      target: targetText,
      met: metText,
    });
    if (f.note !== undefined) this.notes.push(`${f.key}: ${f.note}`);
  }

  note(text: string): void {
    this.notes.push(text);
  }

  table(): string {
    const head: Row = {
      figure: 'figure',
      median: 'median',
      spread: 'spread',
      baseline: 'baseline (same run)',
      ratio: 'ratio (min..max)',
      control: 'A/A control',
      cpu: 'server CPU/req',
      target: 'target',
      met: '',
    };
    const rows = [head, ...this.#rows];
    const cols = Object.keys(head) as (keyof Row)[];
    const width = (c: keyof Row): number => Math.max(...rows.map((r) => [...r[c]].length));
    const line = (r: Row): string => cols.map((c) => r[c] + ' '.repeat(width(c) - [...r[c]].length)).join('  ').trimEnd();
    return [line(head), cols.map((c) => '-'.repeat(width(c))).join('  '), ...this.#rows.map(line)].join('\n');
  }

  /** The markdown version of the table, for the README. */
  markdown(): string {
    const out = [
      '| figure | median | spread | baseline (same run) | ratio (min..max) | A/A control | server CPU/req | target | |',
      '|---|---|---|---|---|---|---|---|---|',
    ];
    for (const r of this.#rows) out.push(`| ${r.figure} | ${r.median} | ${r.spread} | ${r.baseline} | ${r.ratio} | ${r.control} | ${r.cpu} | ${r.target} | ${r.met} |`);
    return out.join('\n');
  }

  json(meta: Record<string, unknown>): Record<string, unknown> {
    return { meta, ...this.results, spread: this.spread, targets: this.targets, notes: this.notes };
  }
}
