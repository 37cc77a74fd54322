/**
 * The tallied verification metrics (src/metrics/tally.ts) against prom-client itself: the same
 * observations through prom-client's Counter and Histogram and through the tallies give the same
 * exposition text, the same JSON, and the same sums through AggregatorRegistry (what --workers
 * serves); reset, OpenMetrics and default labels included. Property-based over random traffic.
 */
import test from 'ava';
import fc from 'fast-check';
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { TallyHistogram, tallyCounter } from '../../src/metrics/tally.js';
import { VERIFICATION_BUCKETS_SECONDS } from '../../src/metrics/prometheus.js';

const OUTCOMES = ['accepted', 'rejected', 'replayed', 'absent', 'other'] as const;
const KEY_PARAMETERS = ['ecdsap256', 'rsa2048_pss', 'rsa2048_pkcs1.5', 'other', 'none'] as const;
const CODES = ['ERR_TB_SIGNATURE_INVALID', 'ERR_TB_MALFORMED', 'other'] as const;

interface Observation {
  readonly outcome: (typeof OUTCOMES)[number];
  readonly keyParameters: (typeof KEY_PARAMETERS)[number];
  readonly code: (typeof CODES)[number];
  readonly cached: boolean;
  readonly seconds: number;
}

const observation = fc.record({
  outcome: fc.constantFrom(...OUTCOMES),
  keyParameters: fc.constantFrom(...KEY_PARAMETERS),
  code: fc.constantFrom(...CODES),
  cached: fc.boolean(),
  // Every bucket, its exact bounds, and past the last one (+Inf only).
  seconds: fc.oneof(fc.double({ min: 0, max: 0.5, noNaN: true }), fc.constantFrom(...VERIFICATION_BUCKETS_SECONDS, 0, 1)),
});

/** The verification metrics both ways: prom-client's own objects, and the tallies. */
function both(openMetrics = false) {
  // (prom-client's types have no constructor argument; its Registry takes the content type.)
  const make = (): Registry => (openMetrics ? new (Registry as unknown as new (type: string) => Registry)(Registry.OPENMETRICS_CONTENT_TYPE) : new Registry());
  const library = make();
  const tallied = make();
  const buckets = [...VERIFICATION_BUCKETS_SECONDS];
  const counter = new Counter({ name: 'v_total', help: 'h', labelNames: ['outcome', 'key_parameters'], registers: [library] });
  const codes = new Counter({ name: 'r_total', help: 'h', labelNames: ['code'], registers: [library] });
  const plain = new Counter({ name: 'p_total', help: 'h', registers: [library] });
  const histogram = new Histogram({ name: 'd_seconds', help: 'h', labelNames: ['cached'], buckets, registers: [library] });
  const v = tallyCounter({ name: 'v_total', help: 'h', labelNames: ['outcome', 'key_parameters'], registers: [tallied] }).tally;
  const r = tallyCounter({ name: 'r_total', help: 'h', labelNames: ['code'], registers: [tallied] }).tally;
  const p = tallyCounter({ name: 'p_total', help: 'h', labelNames: [], registers: [tallied] }).tally;
  const d = new TallyHistogram('d_seconds', 'h', 'cached', buckets, [tallied]);
  return {
    library,
    tallied,
    observe(o: Observation): void {
      counter.inc({ outcome: o.outcome, key_parameters: o.keyParameters });
      v.add(o.outcome, o.keyParameters);
      if (o.outcome === 'rejected') {
        codes.inc({ code: o.code });
        r.add(o.code);
      }
      if (o.outcome === 'replayed') {
        plain.inc();
        p.add('');
      }
      histogram.observe({ cached: String(o.cached) }, o.seconds);
      d.observe(String(o.cached), o.seconds);
    },
  };
}

test('the same traffic gives the same exposition text and JSON as prom-client, scraped between batches', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.array(observation, { maxLength: 40 }), { minLength: 1, maxLength: 4 }), async (batches) => {
      const m = both();
      for (const batch of batches) {
        for (const o of batch) m.observe(o);
        // Scraped after every batch: what was handed over is not handed over twice.
        t.is(await m.tallied.metrics(), await m.library.metrics());
      }
      t.deepEqual(await m.tallied.getMetricsAsJSON(), await m.library.getMetricsAsJSON());
    }),
    { numRuns: 60 },
  );
});

test('OpenMetrics, default labels and resetMetrics() behave as prom-client does', async (t) => {
  const m = both(true);
  const traffic: Observation[] = [
    { outcome: 'accepted', keyParameters: 'ecdsap256', code: 'other', cached: true, seconds: 0.000002 },
    { outcome: 'rejected', keyParameters: 'none', code: 'ERR_TB_MALFORMED', cached: false, seconds: 0.00004 },
    { outcome: 'replayed', keyParameters: 'rsa2048_pss', code: 'other', cached: false, seconds: 2 },
  ];
  for (const o of traffic) m.observe(o);
  for (const registry of [m.library, m.tallied]) registry.setDefaultLabels({ worker: '3' });
  t.is(await m.tallied.metrics(), await m.library.metrics());
  // A reset drops what was counted but not yet scraped, too.
  m.observe(traffic[0]!);
  m.library.resetMetrics();
  m.tallied.resetMetrics();
  t.is(await m.tallied.metrics(), await m.library.metrics());
  m.observe(traffic[1]!);
  t.is(await m.tallied.metrics(), await m.library.metrics());
});

test('AggregatorRegistry sums tallied workers as it sums prom-client ones', async (t) => {
  const workers = [both(), both()];
  const traffic: Observation[][] = [
    [
      { outcome: 'accepted', keyParameters: 'ecdsap256', code: 'other', cached: true, seconds: 0.000001 },
      { outcome: 'accepted', keyParameters: 'ecdsap256', code: 'other', cached: false, seconds: 0.00006 },
    ],
    [{ outcome: 'rejected', keyParameters: 'ecdsap256', code: 'ERR_TB_SIGNATURE_INVALID', cached: false, seconds: 0.00007 }],
  ];
  workers.forEach((w, i) => traffic[i]!.forEach((o) => w.observe(o)));
  const library = AggregatorRegistry.aggregate(await Promise.all(workers.map((w) => w.library.getMetricsAsJSON())));
  const tallied = AggregatorRegistry.aggregate(await Promise.all(workers.map((w) => w.tallied.getMetricsAsJSON())));
  t.is(await tallied.metrics(), await library.metrics());
  t.regex(await tallied.metrics(), /^v_total\{outcome="accepted",key_parameters="ecdsap256"\} 2$/m);
});
