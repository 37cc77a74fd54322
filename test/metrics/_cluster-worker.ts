/**
 * A node:cluster worker for the cluster metrics test: tokbind's server on its own port (exclusive,
 * so the test can aim traffic at one worker; the test's certificate from the environment), /metrics answering with the primary's aggregate.
 */
import type { AddressInfo } from 'node:net';
import { createServer } from '../../src/http/server.js';
import { createClusterMetrics } from '../../src/metrics/cluster.js';

const metrics = createClusterMetrics({ timeoutMs: Number(process.env['TEST_METRICS_TIMEOUT_MS'] ?? 5000) });
const server = createServer({ key: process.env['TEST_TLS_KEY']!, cert: process.env['TEST_TLS_CERT']!, tokenBinding: {} }, (req, res) => {
  if (req.url === '/metrics') {
    metrics.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text) }).end(text),
      (err: Error) => res.writeHead(503, { 'content-length': Buffer.byteLength(err.message) }).end(err.message),
    );
    return;
  }
  res.writeHead(200, { 'content-length': '2' }).end('ok');
});
server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
  process.send!({ type: 'test:ready', port: (server.address() as AddressInfo).port, role: metrics.role });
});
