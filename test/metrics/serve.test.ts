/**
 * The real thing: `tokbind serve` spawned as the installed binary would run, valid, invalid and
 * replayed traffic from real TLS clients, /metrics scraped over HTTPS — the scraped values are
 * the traffic's, and `promtool check metrics` accepts the text.
 */
import { spawnSync } from 'node:child_process';
import test from 'ava';
import { requireTool } from '../_tools.js';
import { RawHttpConnection } from '../reliability/_net.js';
import { driveTraffic, parseExposition, total } from './_scrape.js';
import { scrapeMetrics, spawnServe } from './_serve.js';

test('tokbind serve: the scraped figures are the traffic driven at it, and promtool accepts them', async (t) => {
  const promtool = requireTool('promtool');
  const port = await spawnServe(t, ['--required']);
  const traffic = await driveTraffic(port, { valid: 4, invalid: 2, replayed: 3 }, '/whoami');
  t.deepEqual(traffic.statuses, [200, 200, 200, 200, 400, 400, 400, 400, 400]);
  // A request without the header, refused by --required in the router: not a verification failure.
  const bare = await RawHttpConnection.open(port);
  t.is((await bare.request([], '/whoami')).status, 400);
  await bare.close();

  const { text, type } = await scrapeMetrics(port);
  t.is(type, 'text/plain; version=0.0.4; charset=utf-8');
  const s = parseExposition(text);
  const V = 'tokbind_verifications_total';
  t.is(total(s, V, { outcome: 'accepted', key_parameters: 'ecdsap256' }), 4);
  t.is(total(s, V, { outcome: 'rejected', key_parameters: 'ecdsap256' }), 2);
  t.is(total(s, V, { outcome: 'replayed', key_parameters: 'ecdsap256' }), 3);
  // The bare request and the two /metrics scrapes' connections: no header, not required by the server.
  t.true(total(s, V, { outcome: 'absent' }) >= 2);
  t.is(total(s, 'tokbind_replays_total'), 3);
  t.is(total(s, 'tokbind_rejections_total', { code: 'ERR_TB_SIGNATURE_INVALID' }), 5);
  t.is(total(s, 'tokbind_verification_duration_seconds_count', { cached: 'false' }), 1 + 2 + 3);
  t.is(total(s, 'tokbind_verification_duration_seconds_count', { cached: 'true' }), 3);
  t.is(total(s, 'tokbind_stolen_credentials_total'), 0);

  const check = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  t.is(check.status, 0, `${check.stdout}${check.stderr}`);
  t.is(check.stdout.trim() + check.stderr.trim(), '', 'no lint finding');
});

test('tokbind serve --workers 2: a scrape on any worker is the aggregate of both, per worker', async (t) => {
  const port = await spawnServe(t, ['--workers', '2']);
  await driveTraffic(port, { valid: 3, invalid: 4, replayed: 2 }, '/whoami');
  const { text } = await scrapeMetrics(port);
  const s = parseExposition(text);
  const V = 'tokbind_verifications_total';
  t.is(total(s, V, { outcome: 'accepted' }), 3);
  // A replay is recognised by the worker that saw the message verify; on the other worker it is
  // a plain signature failure (the replay table is per process).
  t.is(total(s, V, { outcome: 'rejected' }) + total(s, V, { outcome: 'replayed' }), 6);
  t.is(total(s, 'tokbind_rejections_total', { code: 'ERR_TB_SIGNATURE_INVALID' }), 6);
  const workers = new Set<string | undefined>(s.filter((x) => x.name === V).map((x) => x.labels['worker']));
  t.false(workers.has(undefined), 'every series is labelled by worker');
  t.true(workers.size >= 1 && workers.size <= 2, [...workers].join(','));
  // Another scrape (a new connection: the same or the other worker) gives the same aggregate.
  const again = parseExposition((await scrapeMetrics(port)).text);
  t.is(total(again, V, { outcome: 'accepted' }), 3);
});
