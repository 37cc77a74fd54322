/**
 * registerTokenBindingTelemetry with the OpenTelemetry SDK's in-memory exporters: spans and
 * metrics for real traffic at a real server, and what their attributes hold.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import test from 'ava';
import { SpanStatusCode } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { PROXY_CHANNEL_NAME, SESSION_CHANNEL_NAME, TOKEN_CHANNEL_NAME, registerTokenBindingTelemetry } from '../../src/metrics/index.js';
import { startServer } from '../reliability/_server.js';
import { inMemoryTelemetry, otelTotal } from './_otel.js';
import { driveTraffic } from './_scrape.js';

test.serial('a span per verification and the same metrics through the meter', async (t) => {
  const telemetry = await inMemoryTelemetry();
  t.teardown(() => telemetry.close());
  const srv = await startServer();
  t.teardown(() => srv.close());
  await driveTraffic(srv.port, { valid: 3, invalid: 2, replayed: 1 });

  const spans = telemetry.spans.getFinishedSpans().filter((s) => s.name === 'tokbind.verify');
  t.is(spans.length, 6, 'absent headers make no span');
  const outcomes = spans.map((s) => s.attributes['tokbind.outcome']).sort();
  t.deepEqual(outcomes, ['accepted', 'accepted', 'accepted', 'rejected', 'rejected', 'replayed']);
  for (const span of spans) {
    t.deepEqual(Object.keys(span.attributes).sort(), span.attributes['tokbind.outcome'] === 'accepted'
      ? ['tokbind.cached', 'tokbind.key_parameters', 'tokbind.outcome']
      : ['tokbind.cached', 'tokbind.code', 'tokbind.key_parameters', 'tokbind.outcome']);
    t.is(span.attributes['tokbind.key_parameters'], 'ecdsap256');
    t.is(span.status.code, span.attributes['tokbind.outcome'] === 'accepted' ? SpanStatusCode.UNSET : SpanStatusCode.ERROR);
    t.is(span.events.length, 0);
    t.is(span.instrumentationScope.name, 'tokbind');
  }
  t.is(spans.filter((s) => s.attributes['tokbind.cached'] === true).length, 2);
  t.true(spans.every((s) => s.attributes['tokbind.code'] === undefined || s.attributes['tokbind.code'] === 'ERR_TB_SIGNATURE_INVALID'));

  const m = await telemetry.collect();
  t.is(otelTotal(m, 'tokbind.verifications', { outcome: 'accepted', key_parameters: 'ecdsap256' }), 3);
  t.is(otelTotal(m, 'tokbind.verifications', { outcome: 'rejected' }), 2);
  t.is(otelTotal(m, 'tokbind.verifications', { outcome: 'replayed' }), 1);
  t.is(otelTotal(m, 'tokbind.replays'), 1);
  t.is(otelTotal(m, 'tokbind.rejections', { code: 'ERR_TB_SIGNATURE_INVALID' }), 3);
  t.is(otelTotal(m, 'tokbind.verification.duration', { cached: 'false' }), 4);
  t.is(otelTotal(m, 'tokbind.verification.duration', { cached: 'true' }), 2);
  t.is(m.find((x) => x.descriptor.name === 'tokbind.verification.duration')?.descriptor.unit, 's');
});

test.serial('session, token and proxy events through the meter', async (t) => {
  const telemetry = await inMemoryTelemetry();
  t.teardown(() => telemetry.close());
  diagnosticsChannel.channel(SESSION_CHANNEL_NAME).publish({ outcome: 'rejected', method: 'token-binding', reason: 'mismatch', action: 'destroyed' });
  diagnosticsChannel.channel(TOKEN_CHANNEL_NAME).publish({ outcome: 'rejected', method: 'tbh', code: 'ERR_TB_SIGNATURE_INVALID', stolen: true });
  diagnosticsChannel.channel(PROXY_CHANNEL_NAME).publish({ role: 'forward', outcome: 'error', status: 504, durationSeconds: 1.5, code: 'UND_ERR_HEADERS_TIMEOUT' });
  diagnosticsChannel.channel('tokbind:tls').publish({ outcome: 'unmet', reason: 'no-ems', protocol: 'TLSv1.2' });
  const m = await telemetry.collect();
  t.is(otelTotal(m, 'tokbind.session.verdicts', { outcome: 'rejected', reason: 'mismatch' }), 1);
  t.is(otelTotal(m, 'tokbind.token.verdicts', { method: 'tbh' }), 1);
  t.is(otelTotal(m, 'tokbind.stolen_credentials', { source: 'session' }), 1);
  t.is(otelTotal(m, 'tokbind.stolen_credentials', { source: 'token', method: 'tbh' }), 1);
  t.is(otelTotal(m, 'tokbind.proxy.requests', { role: 'forward', status_class: '5xx', code: 'UND_ERR_HEADERS_TIMEOUT' }), 1);
  t.is(otelTotal(m, 'tokbind.proxy.upstream.duration', { role: 'forward', outcome: 'error' }), 1);
  t.is(otelTotal(m, 'tokbind.tls_conditions_unmet', { reason: 'no-ems', protocol: 'TLSv1.2' }), 1);
  t.is(telemetry.spans.getFinishedSpans().length, 0, 'spans are for verifications only');
});

test.serial('global providers by default; spans can be turned off; unregister stops it', async (t) => {
  const global = await registerTokenBindingTelemetry();
  global.unregister();
  global.unregister();
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const quiet = await registerTokenBindingTelemetry({ tracerProvider, spans: false });
  diagnosticsChannel.channel('tokbind:verify').publish({ outcome: 'accepted', keyParameters: 'ecdsap256', durationNs: 5000, cached: false });
  quiet.unregister();
  t.is(spans.getFinishedSpans().length, 0);
  await t.throwsAsync(registerTokenBindingTelemetry(null as never), { instanceOf: TypeError });
  await tracerProvider.shutdown();
});
