/**
 * Counters, histogram, diagnostics events and the Prometheus text. Serial: the counters are
 * process-wide (each test file runs in its own process).
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import {
  formatPrometheusMetrics,
  getMetricsSnapshot,
  recordTlsConditionsUnmet,
  recordVerification,
  resetMetrics,
  VERIFY_CHANNEL_NAME,
} from '../../src/http/metrics.js';
import { verifyTokenBindingHeader } from '../../src/http/verify.js';

const ekm = new Uint8Array(randomBytes(32));
const key = generateTokenBindingKey();
const valid = createSecTokenBindingHeader({ provided: key, ekm });
const connection = { ekm, negotiatedKeyParameters: [2] };
const facts = { protocol: 'TLSv1.3', extendedMasterSecret: true, ekm, eligible: true, clientHello: null, negotiatedKeyParameters: [2] };

function drive(): void {
  const state = { verified: new Map(), distinct: 0, maxDistinctMessages: 8 };
  verifyTokenBindingHeader(valid, connection);
  verifyTokenBindingHeader(valid, { facts, state });
  verifyTokenBindingHeader(valid, { facts, state });
  verifyTokenBindingHeader(undefined, connection);
  for (const bad of ['AAA', 'AAA', '***']) {
    try {
      verifyTokenBindingHeader(bad, connection);
    } catch {
      // counted
    }
  }
  recordTlsConditionsUnmet('no-ems');
}

test.serial('the snapshot counts outcomes, codes, cache lookups and TLS conditions', (t) => {
  resetMetrics();
  drive();
  const s = getMetricsSnapshot();
  t.deepEqual(s.verifications, { accepted: 3, rejected: 3, absent: 1 });
  t.deepEqual(s.rejections, { ERR_TB_MALFORMED: 2, ERR_TB_HEADER_ENCODING: 1 });
  t.deepEqual(s.cache, { hits: 1, misses: 5 });
  t.deepEqual(s.tlsConditionsUnmet, { 'no-ems': 1 });
  // The histogram sees the verification work (misses) only.
  t.is(s.latency.count, 5);
  t.is(s.latency.buckets.at(-1)!.count, 5);
  t.is(s.latency.buckets.at(-1)!.leNs, Infinity);
  t.true(s.latency.sumNs > 0);
  for (let i = 1; i < s.latency.buckets.length; i++) t.true(s.latency.buckets[i]!.count >= s.latency.buckets[i - 1]!.count);
  t.true(s.latency.p50Ns! <= s.latency.p95Ns! && s.latency.p95Ns! <= s.latency.p99Ns!);
});

test.serial('quantiles interpolate inside the bucket that holds the rank', (t) => {
  resetMetrics();
  t.is(getMetricsSnapshot().latency.p50Ns, null);
  // 100 observations: 50 at 20 µs (bucket 10–25 µs), 50 at 80 µs (bucket 50–100 µs).
  for (let i = 0; i < 50; i++) recordVerification('accepted', 20_000, false);
  for (let i = 0; i < 50; i++) recordVerification('accepted', 80_000, false);
  const { latency } = getMetricsSnapshot();
  t.is(latency.p50Ns, 25_000);
  t.is(latency.p95Ns, 50_000 + 50_000 * (45 / 50));
  t.is(latency.p99Ns, 50_000 + 50_000 * (49 / 50));
  // Beyond the last bound: the estimate is that bound.
  resetMetrics();
  recordVerification('rejected', 5e9, false, 'ERR_TB_SIGNATURE_INVALID');
  t.is(getMetricsSnapshot().latency.p99Ns, 100_000_000);
});

test.serial('events go to subscribers only, without key material', (t) => {
  const seen: unknown[] = [];
  const onMessage = (m: unknown) => seen.push(m);
  t.false(diagnosticsChannel.channel(VERIFY_CHANNEL_NAME).hasSubscribers);
  verifyTokenBindingHeader(valid, connection);
  diagnosticsChannel.subscribe(VERIFY_CHANNEL_NAME, onMessage);
  try {
    verifyTokenBindingHeader(valid, connection);
    t.throws(() => verifyTokenBindingHeader('AAA', connection));
    verifyTokenBindingHeader(undefined, connection);
  } finally {
    diagnosticsChannel.unsubscribe(VERIFY_CHANNEL_NAME, onMessage);
  }
  verifyTokenBindingHeader(valid, connection);
  t.is(seen.length, 3);
  t.like(seen[0], { outcome: 'accepted', cached: false, keyParameters: 'ecdsap256' });
  t.like(seen[1], { outcome: 'rejected', code: 'ERR_TB_MALFORMED', cached: false });
  t.deepEqual(seen[2], { outcome: 'absent', durationNs: 0, cached: false });
  for (const event of seen) {
    t.deepEqual(
      Object.keys(event as object).filter((k) => !['outcome', 'code', 'durationNs', 'cached', 'keyParameters'].includes(k)),
      [],
    );
    t.false(JSON.stringify(event).includes(valid.slice(0, 20)));
  }
});

test.serial('Prometheus text: seven families, cumulative buckets ending at +Inf = count', (t) => {
  resetMetrics();
  drive();
  const text = formatPrometheusMetrics();
  t.true(text.endsWith('\n'));
  const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]);
  t.deepEqual(types, [
    ['tokbind_verifications_total', 'counter'],
    ['tokbind_rejections_total', 'counter'],
    ['tokbind_cache_lookups_total', 'counter'],
    ['tokbind_tls_conditions_unmet_total', 'counter'],
    ['tokbind_verification_duration_seconds', 'histogram'],
    ['tokbind_sessions_total', 'counter'],
    ['tokbind_session_rejections_total', 'counter'],
  ]);
  const value = (series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(series + ' '));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  t.is(value('tokbind_verifications_total{outcome="accepted"}'), 3);
  t.is(value('tokbind_verifications_total{outcome="absent"}'), 1);
  t.is(value('tokbind_rejections_total{code="ERR_TB_MALFORMED"}'), 2);
  t.is(value('tokbind_cache_lookups_total{result="hit"}'), 1);
  t.is(value('tokbind_tls_conditions_unmet_total{reason="no-ems"}'), 1);
  t.is(value('tokbind_verification_duration_seconds_bucket{le="+Inf"}'), 5);
  t.is(value('tokbind_verification_duration_seconds_count'), 5);
  t.true(value('tokbind_verification_duration_seconds_sum')! > 0);
  t.is(value('tokbind_verification_duration_seconds_bucket{le="0.00001"}')! <= 5, true);
  // Every sample line is `name{labels} number` or `name number`.
  for (const line of text.trimEnd().split('\n').filter((l) => !l.startsWith('#'))) {
    t.regex(line, /^[a-z_]+(\{[a-z]+="[^"\\\n]*"\})? [0-9.e+-]+$/, line);
  }
});

test.serial('label values are escaped', (t) => {
  resetMetrics();
  recordTlsConditionsUnmet('a"b\\c\nd');
  t.true(formatPrometheusMetrics().includes('tokbind_tls_conditions_unmet_total{reason="a\\"b\\\\c\\nd"} 1'));
});
