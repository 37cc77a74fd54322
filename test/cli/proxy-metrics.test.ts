/**
 * `tokbind proxy --metrics-port N`: Prometheus /metrics on its own plain-HTTP listener (every path
 * of the proxy port goes upstream), counting proxied requests; `--client-certs request` accepted.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { TokenBindingAgent } from '../../src/client/agent.js';
import { freePort } from '../_tools.js';
import { spawnBin } from './_bin.js';

function get(url: string, agent?: http.Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? import('node:https') : Promise.resolve(http);
    void mod.then((m) =>
      m
        .get(url, { agent, rejectUnauthorized: false } as http.RequestOptions, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (s: string) => (body += s));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
        .on('error', reject),
    );
  });
}

test('proxy --metrics-port: /metrics counts the proxied requests; other paths are 404 there', async (t) => {
  const upstream = http.createServer((_req, res) => res.end('ok'));
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  t.teardown(() => {
    upstream.closeAllConnections();
    upstream.close();
  });
  const metricsPort = await freePort();
  const child = spawnBin(['proxy', '--upstream', `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, '--port', '0', '--metrics-port', String(metricsPort), '--client-certs', 'request']);
  const exited = once(child, 'exit');
  t.teardown(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m !== null) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`proxy exited ${code}`)));
  });
  const agent = new TokenBindingAgent({ rejectUnauthorized: false });
  t.teardown(() => agent.destroy());
  for (let i = 0; i < 3; i++) t.is((await get(`https://127.0.0.1:${port}/x`, agent)).status, 200);
  const scrape = await get(`http://127.0.0.1:${metricsPort}/metrics`);
  t.is(scrape.status, 200);
  t.regex(scrape.body, /tokbind_proxy_requests_total\{[^}]*role="proxy"[^}]*\} 3/);
  t.regex(scrape.body, /tokbind_verifications_total\{[^}]*outcome="accepted"[^}]*\} 3/);
  t.is((await get(`http://127.0.0.1:${metricsPort}/other`)).status, 404);
  child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  t.is(code, 0);
});
