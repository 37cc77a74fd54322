/**
 * registerTokenBindingMetrics against a real tokbind server and real TLS clients; the session,
 * token and proxy channels with contract-shaped messages (their publishers land separately).
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import test from 'ava';
import { Registry } from 'prom-client';
import { generateTokenBindingKey } from '../../src/crypto/sign.js';
import { TLS_CHANNEL_NAME, VERIFY_CHANNEL_NAME } from '../../src/http/metrics.js';
import {
  PROXY_CHANNEL_NAME,
  SESSION_CHANNEL_NAME,
  TOKEN_BINDING_METRICS,
  TOKEN_CHANNEL_NAME,
  registerTokenBindingMetrics,
} from '../../src/metrics/index.js';
import { RawHttpConnection, closed, within } from '../reliability/_net.js';
import { startServer } from '../reliability/_server.js';
import { validHeader } from '../reliability/_tb.js';
import { driveTraffic, families, parseExposition, total } from './_scrape.js';

const SSL_OP_NO_EXTENDED_MASTER_SECRET = 1;

async function scrape(registry: Registry): Promise<ReturnType<typeof parseExposition>> {
  return parseExposition(await registry.metrics());
}

test.serial('valid, invalid and replayed traffic at a real server: outcomes, codes, key parameters, latency', async (t) => {
  const registry = new Registry();
  const metrics = registerTokenBindingMetrics(registry);
  t.teardown(() => metrics.unregister());
  const srv = await startServer();
  t.teardown(() => srv.close());

  const traffic = await driveTraffic(srv.port, { valid: 5, invalid: 3, replayed: 2 });
  t.deepEqual(traffic.statuses, [200, 200, 200, 200, 200, 400, 400, 400, 400, 400]);
  t.deepEqual(traffic.codes.slice(5), Array(5).fill('ERR_TB_SIGNATURE_INVALID'));

  const s = await scrape(registry);
  const V = 'tokbind_verifications_total';
  t.is(total(s, V, { outcome: 'accepted', key_parameters: 'ecdsap256' }), 5);
  t.is(total(s, V, { outcome: 'rejected', key_parameters: 'ecdsap256' }), 3);
  t.is(total(s, V, { outcome: 'replayed', key_parameters: 'ecdsap256' }), 2);
  t.is(total(s, V), 10);
  t.is(total(s, 'tokbind_replays_total'), 2);
  t.is(total(s, 'tokbind_rejections_total', { code: 'ERR_TB_SIGNATURE_INVALID' }), 5);
  // One fresh verification per distinct (value, connection); the rest are cache hits.
  const D = 'tokbind_verification_duration_seconds_count';
  t.is(total(s, D, { cached: 'false' }), 1 + 3 + 2);
  t.is(total(s, D, { cached: 'true' }), 4);
  t.true(total(s, 'tokbind_verification_duration_seconds_sum', { cached: 'false' }) > 0);
  t.is(total(s, 'tokbind_verification_duration_seconds_bucket', { cached: 'false', le: '+Inf' }), 6);
});

test.serial('absent headers and required ones', async (t) => {
  const registry = new Registry();
  const metrics = registerTokenBindingMetrics(registry);
  t.teardown(() => metrics.unregister());
  const optional = await startServer();
  const required = await startServer({ required: true });
  t.teardown(() => Promise.all([optional.close(), required.close()]));
  for (const [srv, status] of [[optional, 200], [required, 400]] as const) {
    const c = await RawHttpConnection.open(srv.port);
    t.is((await c.request()).status, status);
    await c.close();
  }
  const s = await scrape(registry);
  t.is(total(s, 'tokbind_verifications_total', { outcome: 'absent', key_parameters: 'none' }), 1);
  t.is(total(s, 'tokbind_verifications_total', { outcome: 'rejected', key_parameters: 'none' }), 1);
  t.is(total(s, 'tokbind_rejections_total', { code: 'ERR_TB_HEADER_MISSING' }), 1);
  // Neither is a verification: nothing timed.
  t.is(total(s, 'tokbind_verification_duration_seconds_count'), 0);
});

test.serial('key parameters not accepted: the rejection carries the provided key parameters', async (t) => {
  const registry = new Registry();
  const metrics = registerTokenBindingMetrics(registry);
  t.teardown(() => metrics.unregister());
  const srv = await startServer({ keyParameters: [2] });
  t.teardown(() => srv.close());
  const c = await RawHttpConnection.open(srv.port);
  const rsa = generateTokenBindingKey('rsa2048_pss');
  t.is((await c.request([['Sec-Token-Binding', validHeader(rsa, c.ekm)]])).status, 400);
  await c.close();
  const s = await scrape(registry);
  t.is(total(s, 'tokbind_verifications_total', { outcome: 'rejected', key_parameters: 'rsa2048_pss' }), 1);
  t.is(total(s, 'tokbind_rejections_total', { code: 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED' }), 1);
});

test.serial('TLS conditions unmet: TLS 1.2 without EMS, below TLS 1.2, a renegotiation attempt', async (t) => {
  const registry = new Registry();
  const metrics = registerTokenBindingMetrics(registry);
  t.teardown(() => metrics.unregister());
  const srv = await startServer({}, { minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' });
  t.teardown(() => srv.close());

  const noEms = await RawHttpConnection.open(srv.port, { maxVersion: 'TLSv1.2', secureOptions: SSL_OP_NO_EXTENDED_MASTER_SECRET });
  t.is(noEms.socket.getProtocol(), 'TLSv1.2');
  t.is((await noEms.request([['Sec-Token-Binding', validHeader(generateTokenBindingKey(), noEms.ekm)]])).status, 400);
  await noEms.close();

  const old = await RawHttpConnection.open(srv.port, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' });
  t.is(old.socket.getProtocol(), 'TLSv1.1');
  await old.close();

  // A client that renegotiates after its first request (as a TLS 1.2 client-certificate
  // request mid-connection would).
  const reneg = await RawHttpConnection.open(srv.port, { maxVersion: 'TLSv1.2' });
  t.is((await reneg.request()).status, 200);
  reneg.socket.renegotiate({}, () => {});
  await within(closed(reneg.socket), 10_000, 'renegotiating connection closes');

  const s = await scrape(registry);
  const U = 'tokbind_tls_conditions_unmet_total';
  t.is(total(s, U, { reason: 'no-ems', protocol: 'TLSv1.2' }), 1);
  t.is(total(s, U, { reason: 'tls-version', protocol: 'TLSv1.1' }), 1);
  t.is(total(s, U, { reason: 'renegotiation', protocol: 'TLSv1.2' }), 1);
  t.is(total(s, U), 3);
  t.is(total(s, 'tokbind_rejections_total', { code: 'ERR_TB_TLS_CONDITIONS' }), 1);
});

test.serial('session, token and proxy channels: verdicts, stolen credentials, upstream errors and latency', async (t) => {
  const registry = new Registry();
  const metrics = registerTokenBindingMetrics(registry);
  t.teardown(() => metrics.unregister());
  const publish = (name: string, message: unknown): void => diagnosticsChannel.channel(name).publish(message);

  publish(SESSION_CHANNEL_NAME, { outcome: 'bound', method: 'token-binding' });
  publish(SESSION_CHANNEL_NAME, { outcome: 'accepted', method: 'token-binding' });
  publish(SESSION_CHANNEL_NAME, { outcome: 'rejected', method: 'token-binding', reason: 'mismatch', action: 'destroyed' });
  publish(SESSION_CHANNEL_NAME, { outcome: 'rejected', method: 'dbsc', reason: 'missing-binding', action: 'rejected' });
  publish(SESSION_CHANNEL_NAME, { outcome: 'rejected', method: null, reason: 'expired' });
  publish(TOKEN_CHANNEL_NAME, { outcome: 'accepted', method: 'tbh', stolen: false });
  publish(TOKEN_CHANNEL_NAME, { outcome: 'rejected', method: 'jkt', code: 'ERR_TB_SIGNATURE_INVALID', stolen: true });
  publish(TOKEN_CHANNEL_NAME, { outcome: 'rejected', method: 'x5t#S256', code: 'ERR_NOT_OURS', stolen: false });
  publish(PROXY_CHANNEL_NAME, { role: 'proxy', outcome: 'ok', status: 204, durationSeconds: 0.004 });
  publish(PROXY_CHANNEL_NAME, { role: 'forward', outcome: 'error', status: 502, durationSeconds: 0.2, code: 'ECONNREFUSED' });
  publish(PROXY_CHANNEL_NAME, { role: 'proxy', outcome: 'error', durationSeconds: Number.NaN, code: 'not a code' });

  const s = await scrape(registry);
  t.is(total(s, 'tokbind_session_verdicts_total'), 5);
  t.is(total(s, 'tokbind_session_verdicts_total', { outcome: 'rejected', method: 'none', reason: 'expired' }), 1);
  t.is(total(s, 'tokbind_stolen_credentials_total', { source: 'session', method: 'token-binding' }), 1);
  t.is(total(s, 'tokbind_stolen_credentials_total', { source: 'session', method: 'dbsc' }), 1);
  t.is(total(s, 'tokbind_stolen_credentials_total', { source: 'token', method: 'jkt' }), 1);
  t.is(total(s, 'tokbind_stolen_credentials_total'), 3, 'expired is not theft');
  t.is(total(s, 'tokbind_token_verdicts_total', { outcome: 'rejected', method: 'jkt', code: 'ERR_TB_SIGNATURE_INVALID' }), 1);
  t.is(total(s, 'tokbind_token_verdicts_total', { method: 'x5t#S256', code: 'other' }), 1, 'a code that is not tokbind’s is not a label');
  t.is(total(s, 'tokbind_proxy_requests_total', { role: 'proxy', outcome: 'ok', status_class: '2xx', code: 'none' }), 1);
  t.is(total(s, 'tokbind_proxy_requests_total', { role: 'forward', outcome: 'error', status_class: '5xx', code: 'ECONNREFUSED' }), 1);
  t.is(total(s, 'tokbind_proxy_requests_total', { role: 'proxy', outcome: 'error', status_class: 'none', code: 'other' }), 1);
  t.is(total(s, 'tokbind_proxy_upstream_duration_seconds_count'), 2, 'a NaN duration is not observed');
  t.is(total(s, 'tokbind_proxy_upstream_duration_seconds_bucket', { role: 'forward', le: '0.25' }), 1);
  t.is(total(s, 'tokbind_proxy_upstream_duration_seconds_bucket', { role: 'forward', le: '0.1' }), 0);
});

test.serial('hostile messages on the channels never become labels', async (t) => {
  const registry = new Registry();
  const metrics = registerTokenBindingMetrics(registry);
  t.teardown(() => metrics.unregister());
  const publish = (name: string, message: unknown): void => diagnosticsChannel.channel(name).publish(message);
  for (const name of [VERIFY_CHANNEL_NAME, TLS_CHANNEL_NAME, SESSION_CHANNEL_NAME, TOKEN_CHANNEL_NAME, PROXY_CHANNEL_NAME]) {
    publish(name, null);
    publish(name, 'a string');
    publish(name, { outcome: 'x-id-1234', method: '/path', reason: 'host.example', code: 'ERR_TB_<script>', keyParameters: 'id-abc', role: 'r', status: 99999, protocol: 'TLSv9' });
  }
  publish(VERIFY_CHANNEL_NAME, { outcome: 'accepted', keyParameters: 200, durationNs: -1, cached: false });
  // 40 distinct foreign codes: the first 32 become labels, the rest `other`.
  for (let i = 0; i < 40; i++) publish(PROXY_CHANNEL_NAME, { role: 'proxy', outcome: 'error', durationSeconds: 0, code: `E_CODE_${i}` });
  const text = await registry.metrics();
  t.false(/x-id-1234|\/path|host\.example|<script>|id-abc|TLSv9|99999/.test(text), text);
  const s = parseExposition(text);
  t.is(total(s, 'tokbind_verifications_total', { outcome: 'accepted', key_parameters: 'other' }), 1);
  t.is(total(s, 'tokbind_verifications_total', { outcome: 'other' }), 1);
  t.is(total(s, 'tokbind_tls_conditions_unmet_total', { reason: 'other', protocol: 'other' }), 1);
  const codes = new Set(s.filter((x) => x.name === 'tokbind_proxy_requests_total').map((x) => x.labels['code']));
  t.true(codes.size <= 32 + 2, `${codes.size} code labels`);
  t.true(codes.has('other'));
});

test.serial('unregister removes the metrics and stops counting; registering twice in one registry throws', async (t) => {
  const registry = new Registry();
  const metrics = registerTokenBindingMetrics(registry);
  t.throws(() => registerTokenBindingMetrics(registry), { message: /already been registered/ });
  t.deepEqual([...families(await registry.metrics()).keys()].sort(), Object.values(TOKEN_BINDING_METRICS).map((m) => m.name).sort());
  for (const def of Object.values(TOKEN_BINDING_METRICS)) t.is(families(await registry.metrics()).get(def.name), def.type);
  metrics.unregister();
  metrics.unregister();
  t.is((await registry.metrics()).trim(), '');
  diagnosticsChannel.channel(VERIFY_CHANNEL_NAME).publish({ outcome: 'accepted', durationNs: 1, cached: false });
  // A new registration after the old one: only the new one counts.
  const again = registerTokenBindingMetrics(registry);
  t.teardown(() => again.unregister());
  diagnosticsChannel.channel(VERIFY_CHANNEL_NAME).publish({ outcome: 'accepted', keyParameters: 'ecdsap256', durationNs: 1000, cached: false });
  t.is(total(await scrape(registry), 'tokbind_verifications_total'), 1);
});

test.serial('options are checked', (t) => {
  t.throws(() => registerTokenBindingMetrics(null as never), { instanceOf: TypeError });
  t.throws(() => registerTokenBindingMetrics({} as never), { instanceOf: TypeError });
  const registry = new Registry();
  t.throws(() => registerTokenBindingMetrics(registry, null as never), { instanceOf: TypeError });
  t.throws(() => registerTokenBindingMetrics(registry, { verificationBuckets: [] }), { instanceOf: TypeError });
  t.throws(() => registerTokenBindingMetrics(registry, { upstreamBuckets: [1, 0.5] }), { instanceOf: TypeError });
  t.is(registry.getMetricsAsArray().length, 0, 'nothing left behind by a refused registration');
  const custom = registerTokenBindingMetrics(registry, { verificationBuckets: [0.001, 0.01], upstreamBuckets: [1] });
  t.teardown(() => custom.unregister());
  t.is(registry.getMetricsAsArray().length, Object.keys(TOKEN_BINDING_METRICS).length);
});

test.serial('a registration that collides half-way leaves nothing behind', (t) => {
  const registry = new Registry();
  // Occupy a later name: the earlier metrics must be removed again.
  registry.registerMetric({ name: 'tokbind_session_verdicts_total', get: () => ({}) } as never);
  t.throws(() => registerTokenBindingMetrics(registry));
  t.deepEqual(registry.getMetricsAsArray().map((m) => (m as unknown as { name: string }).name), ['tokbind_session_verdicts_total']);
});
