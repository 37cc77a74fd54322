/**
 * createClusterMetrics with real node:cluster workers: this test process is the primary, two
 * workers run tokbind's server; traffic goes to each worker, and the primary's aggregate (and a
 * worker's /metrics, which asks the primary) holds both, summed and per worker.
 */
import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { createClusterMetrics, createServerMetrics } from '../../src/metrics/cluster.js';
import { testCertificate } from '../_tls.js';
import { RawHttpConnection, within } from '../reliability/_net.js';
import { driveTraffic, parseExposition, total } from './_scrape.js';

const WORKER = fileURLToPath(new URL('./_cluster-worker.js', import.meta.url));

test.serial('two workers: the primary aggregates, per worker and in total; a worker scrape is the same aggregate', async (t) => {
  t.true(cluster.isPrimary);
  const metrics = createClusterMetrics();
  t.is(metrics.role, 'primary');
  t.teardown(() => metrics.close());
  t.is(await metrics.metrics(), '', 'no worker yet: nothing to aggregate');

  cluster.setupPrimary({ exec: WORKER, silent: false });
  const workers: Worker[] = [];
  t.teardown(async () => {
    await Promise.all(
      workers.map(async (w) => {
        if (w.isDead()) return;
        const exited = once(w, 'exit');
        w.kill();
        await exited;
      }),
    );
  });
  const ports: number[] = [];
  for (let i = 0; i < 2; i++) {
    const worker = cluster.fork({ TOKBIND_WORKER_INDEX: String(i), TEST_TLS_KEY: testCertificate.key, TEST_TLS_CERT: testCertificate.cert, TEST_METRICS_TIMEOUT_MS: '1000' });
    workers.push(worker);
    const [message] = (await within(once(worker, 'message'), 20_000, `worker ${i} ready`)) as [{ type: string; port: number; role: string }];
    t.is(message.type, 'test:ready');
    t.is(message.role, 'worker');
    ports.push(message.port);
  }

  await driveTraffic(ports[0]!, { valid: 3, invalid: 1, replayed: 1 });
  await driveTraffic(ports[1]!, { valid: 2, invalid: 2, replayed: 0 });

  const text = await metrics.metrics();
  const s = parseExposition(text);
  const V = 'tokbind_verifications_total';
  t.is(total(s, V, { outcome: 'accepted' }), 5);
  t.is(total(s, V, { outcome: 'accepted', worker: '0' }), 3);
  t.is(total(s, V, { outcome: 'accepted', worker: '1' }), 2);
  t.is(total(s, V, { outcome: 'rejected' }), 3);
  t.is(total(s, V, { outcome: 'replayed', worker: '0' }), 1);
  t.is(total(s, 'tokbind_replays_total'), 1);
  t.is(total(s, 'tokbind_verification_duration_seconds_count', { cached: 'false' }), 1 + 1 + 1 + 1 + 2);
  t.is(total(s, 'tokbind_verification_duration_seconds_bucket', { le: '+Inf' }), total(s, 'tokbind_verification_duration_seconds_count'));

  // A scrape landing on a worker: the worker asks the primary for the same aggregate.
  const c = await RawHttpConnection.open(ports[1]!);
  const res = await c.request([], '/metrics');
  await c.close();
  t.is(res.status, 200);
  const viaWorker = parseExposition(res.body);
  t.is(total(viaWorker, V, { outcome: 'accepted' }), 5);
  t.is(total(viaWorker, V, { outcome: 'rejected', worker: '1' }), 2);

  // A primary that no longer answers (closed): the worker's scrape fails after its timeout.
  metrics.close();
  const d = await RawHttpConnection.open(ports[0]!);
  const unanswered = await d.request([], '/metrics');
  await d.close();
  t.is(unanswered.status, 503);
  t.regex(unanswered.body, /did not answer within 1000 ms/);
});

test.serial('outside a cluster, createServerMetrics is a registry of its own; options are checked', async (t) => {
  const own = createServerMetrics();
  t.is(own.role, 'process');
  t.regex(await own.metrics(), /# TYPE tokbind_verifications_total counter/);
  own.close();
  t.throws(() => createClusterMetrics(null as never), { instanceOf: TypeError });
  t.throws(() => createClusterMetrics({ timeoutMs: 0 }), { instanceOf: TypeError });
  t.throws(() => createServerMetrics(null as never), { instanceOf: TypeError });
});
