/**
 * Metrics under node:cluster (`--workers N`): each worker counts in its own registry, labelled
 * `worker`; prom-client's `AggregatorRegistry` in the primary sums them per label set, so the
 * figures add up across workers and stay apart per worker. A scrape may land on any worker: the
 * worker asks the primary over the cluster IPC channel and answers with the aggregated text.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, Registry, type RegistryContentType } from 'prom-client';
import { registerTokenBindingMetrics, type TokenBindingMetricsOptions } from './prometheus.js';

const REQUEST = 'tokbind:metrics-request';
const RESPONSE = 'tokbind:metrics-response';

/** Options for {@link createClusterMetrics}. */
export interface ClusterMetricsOptions extends TokenBindingMetricsOptions {
  /** Worker side: the registry to count in (default: a new one). */
  readonly registry?: Registry<RegistryContentType>;
  /**
   * Worker side: the `worker` label. Default `TOKBIND_WORKER_INDEX` from the environment (a
   * primary that forks with a stable index keeps the label set bounded across restarts), else
   * `cluster.worker.id`.
   */
  readonly workerLabel?: string;
  /** Worker side: how long to wait for the primary's aggregate (ms). Default 5000. */
  readonly timeoutMs?: number;
}

/** The metrics of one process of a cluster. */
export interface ClusterMetrics {
  /** `process`: not in a cluster ({@link createServerMetrics} only). */
  readonly role: 'primary' | 'worker' | 'process';
  /** Primary: the `AggregatorRegistry`; worker: the worker's own registry. */
  readonly registry: Registry<RegistryContentType>;
  /** The exposition format's content type, for the `/metrics` response. */
  readonly contentType: string;
  /** The Prometheus text of every worker, aggregated by the primary. */
  metrics(): Promise<string>;
  /** Removes the listeners (and, in a worker, unregisters the metrics). */
  close(): void;
}

interface Message {
  readonly type?: unknown;
  readonly id?: unknown;
  readonly text?: unknown;
  readonly error?: unknown;
}

function isMessage(message: unknown): message is Message {
  return typeof message === 'object' && message !== null;
}

function primary(): ClusterMetrics {
  const aggregator = new AggregatorRegistry();
  const onMessage = (worker: Worker, message: unknown): void => {
    if (!isMessage(message) || message.type !== REQUEST) return;
    const id = message.id;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: RESPONSE, id, text }),
      (err: unknown) => worker.send({ type: RESPONSE, id, error: err instanceof Error ? err.message : String(err) }),
    );
  };
  cluster.on('message', onMessage);
  return {
    role: 'primary',
    registry: aggregator,
    contentType: aggregator.contentType,
    metrics: () => aggregator.clusterMetrics(),
    close: () => {
      cluster.off('message', onMessage);
    },
  };
}

function worker(options: ClusterMetricsOptions): ClusterMetrics {
  const registry = options.registry ?? new Registry();
  const label = options.workerLabel ?? process.env['TOKBIND_WORKER_INDEX'] ?? String(cluster.worker?.id ?? process.pid);
  registry.setDefaultLabels({ worker: label });
  const handle = registerTokenBindingMetrics(registry, options);
  // The constructor installs prom-client's listener that answers the primary's requests.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  const timeoutMs = options.timeoutMs ?? 5000;
  const pending = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  let next = 0;
  const onMessage = (message: unknown): void => {
    if (!isMessage(message) || message.type !== RESPONSE || typeof message.id !== 'number') return;
    const request = pending.get(message.id);
    if (request === undefined) return;
    pending.delete(message.id);
    clearTimeout(request.timer);
    if (typeof message.text === 'string') request.resolve(message.text);
    else request.reject(new Error(`the primary could not aggregate the metrics: ${String(message.error)}`));
  };
  process.on('message', onMessage);
  return {
    role: 'worker',
    registry,
    contentType: registry.contentType,
    metrics: () =>
      new Promise<string>((resolve, reject) => {
        const id = next++;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`the primary did not answer within ${timeoutMs} ms (does it call createClusterMetrics()?)`));
        }, timeoutMs);
        pending.set(id, { resolve, reject, timer });
        process.send!({ type: REQUEST, id });
      }),
    close: () => {
      process.off('message', onMessage);
      for (const request of pending.values()) {
        clearTimeout(request.timer);
        request.reject(new Error('cluster metrics closed'));
      }
      pending.clear();
      AggregatorRegistry.setRegistries([]);
      handle.unregister();
    },
  };
}

/**
 * The metrics side of a node:cluster server. Call it in the primary (before or after forking)
 * and in each worker: the worker side registers the Token Binding metrics in its registry with a
 * `worker` label; `metrics()` — on either side — resolves with the primary's aggregate of every
 * worker (prom-client `AggregatorRegistry`: counters and histograms summed per label set).
 *
 * @example
 * ```ts
 * import cluster from 'node:cluster'
 * import { createClusterMetrics } from 'tokbind/metrics'
 * const metrics = createClusterMetrics()
 * if (cluster.isPrimary) for (let i = 0; i < 2; i++) cluster.fork({ TOKBIND_WORKER_INDEX: String(i) })
 * else createServer(tls, async (req, res) => {
 *   if (req.url === '/metrics') return res.writeHead(200, { 'content-type': metrics.contentType }).end(await metrics.metrics())
 *   // ...
 * }).listen(8443)
 * ```
 */
export function createClusterMetrics(options: ClusterMetricsOptions = {}): ClusterMetrics {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  if (options.timeoutMs !== undefined && (!Number.isInteger(options.timeoutMs) || options.timeoutMs < 1)) {
    throw new TypeError('timeoutMs must be a positive integer');
  }
  return cluster.isPrimary ? primary() : worker(options);
}

/**
 * The metrics of a server process: in a node:cluster worker, {@link createClusterMetrics} (a
 * scrape answers with every worker's figures); otherwise a fresh registry of its own. What
 * `tokbind serve` serves at /metrics.
 *
 * @example
 * ```ts
 * const metrics = createServerMetrics()
 * res.writeHead(200, { 'content-type': metrics.contentType }).end(await metrics.metrics())
 * ```
 */
export function createServerMetrics(options: ClusterMetricsOptions = {}): ClusterMetrics {
  if (cluster.isWorker) return createClusterMetrics(options);
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  const registry = options.registry ?? new Registry();
  const handle = registerTokenBindingMetrics(registry, options);
  return {
    role: 'process',
    registry,
    contentType: registry.contentType,
    metrics: () => registry.metrics(),
    close: () => handle.unregister(),
  };
}
