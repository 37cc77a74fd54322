/**
 * The per-request metrics, counted as plain numbers and handed to prom-client when scraped.
 *
 * A verification is published on every request, and prom-client's `inc(labels)` and
 * `observe(labels, v)` hash the label object and allocate on every call (~250 and ~370 ns
 * measured; with the channel and label handling, ~1 µs per verification, about 5 % of what a
 * cached keep-alive request costs the server in all — and more in a real server, from the
 * garbage). Here an observation is two Map lookups of constant strings and a few additions
 * (~100 ns for the whole subscriber); the Counter gets the totals through its public
 * `inc(labels, n)` from its `collect` hook, and the histogram is a metric object of its own whose
 * `get()` returns exactly what prom-client's Histogram returns for the same observations
 * (test/metrics/tally.test.ts compares the two, as text, as JSON and through AggregatorRegistry).
 */
import { Counter, type Registry, type RegistryContentType } from 'prom-client';

type Labels<K extends string> = Partial<Record<K, string>>;

interface Entry<K extends string> {
  readonly labels: Labels<K>;
  n: number;
}

/** Counts per label set (one or two labels, values from closed lists), flushed into a Counter. */
export interface CounterTally {
  /** One more (or `n` more) for the label values `a` (and `b`). */
  add(a: string, b?: string, n?: number): void;
}

/**
 * A prom-client Counter, registered in `registers`, whose increments are tallied here and handed
 * to it (`inc(labels, n)`) when the registry collects it; `reset()` drops what was tallied too.
 */
export function tallyCounter<K extends string>(config: {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly K[];
  readonly registers: Registry<RegistryContentType>[];
}): { readonly counter: Counter<K>; readonly tally: CounterTally } {
  const [first, second] = config.labelNames;
  // Indexed by label values; flushed in the order first seen, as prom-client orders its series.
  const index = new Map<string, Map<string, Entry<K>>>();
  let entries: Entry<K>[] = [];
  const counter = new Counter<K>({
    name: config.name,
    help: config.help,
    labelNames: config.labelNames,
    registers: config.registers,
    collect() {
      for (const entry of entries) {
        if (entry.n === 0) continue;
        this.inc(entry.labels, entry.n);
        entry.n = 0;
      }
    },
  });
  const reset = counter.reset.bind(counter);
  counter.reset = () => {
    index.clear();
    entries = [];
    reset();
  };
  const tally: CounterTally = {
    add(a, b = '', n = 1) {
      let inner = index.get(a);
      if (inner === undefined) index.set(a, (inner = new Map()));
      let entry = inner.get(b);
      if (entry === undefined) {
        const labels: Labels<K> = {};
        if (first !== undefined) labels[first] = a;
        if (second !== undefined) labels[second] = b;
        inner.set(b, (entry = { labels: Object.freeze(labels), n: 0 }));
        entries.push(entry);
      }
      entry.n += n;
    },
  };
  return { counter, tally };
}

interface Series {
  readonly value: string;
  /** Per bucket, not cumulative; the last one is +Inf. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

type LabelValues = Record<string, string | number>;

/** prom-client's metric JSON (`Registry#getMetricsAsJSON`, what AggregatorRegistry sums). */
interface MetricJson<V> {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram';
  readonly values: V[];
  readonly aggregator: 'sum';
}

/** A value as prom-client's Histogram formats it: own labels (`le`) apart from the series' labels. */
interface SharedValue {
  value: number;
  metricName: string;
  exemplar?: null | undefined;
  labels: LabelValues;
  sharedLabels: LabelValues;
}

interface SplayedValue {
  value: number;
  metricName: string;
  exemplar?: null | undefined;
  labels: LabelValues;
}

/**
 * A histogram with one label, observed with plain additions. It is a prom-client metric as the
 * Registry uses one (`name`, `help`, `type`, `aggregator`, `get()`, `reset()`), and `get()`
 * answers what prom-client's `Histogram` with the same buckets and observations answers.
 */
export class TallyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: readonly number[];
  readonly #label: string;
  #series = new Map<string, Series>();

  constructor(
    readonly name: string,
    readonly help: string,
    label: string,
    buckets: readonly number[],
    registers: Registry<RegistryContentType>[],
  ) {
    this.#label = label;
    this.#bounds = [...buckets];
    // prom-client's Registry keeps whatever has a name and get(): this is what its metrics are to it.
    for (const registry of registers) registry.registerMetric(this as never);
  }

  /** One observation of `seconds` for the label value `value`. */
  observe(value: string, seconds: number): void {
    let series = this.#series.get(value);
    if (series === undefined) {
      series = { value, counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 };
      this.#series.set(value, series);
    }
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    series.counts[i]!++;
    series.sum += seconds;
    series.count++;
  }

  /** The exposition's values, as prom-client's Histogram gives them to the Registry (label order included). */
  getForPromString(): Promise<MetricJson<SharedValue>> {
    const values: SharedValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.#series.values()) {
      const shared = { [this.#label]: s.value };
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += s.counts[i]!;
        values.push({ value: cumulative, metricName: bucket, exemplar: null, labels: { le }, sharedLabels: shared });
      });
      values.push({ value: s.count, metricName: bucket, exemplar: null, labels: { le: '+Inf' }, sharedLabels: shared });
      values.push({ value: s.sum, metricName: `${this.name}_sum`, exemplar: undefined, labels: {}, sharedLabels: shared });
      values.push({ value: s.count, metricName: `${this.name}_count`, exemplar: undefined, labels: {}, sharedLabels: shared });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  /** The metric's JSON, as prom-client's Histogram#get gives it (`getMetricsAsJSON`, AggregatorRegistry). */
  async get(): Promise<MetricJson<SplayedValue>> {
    const data = await this.getForPromString();
    const values = data.values.map(({ sharedLabels, labels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } }));
    return { ...data, values };
  }

  reset(): void {
    this.#series = new Map();
  }
}
