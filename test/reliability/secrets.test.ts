/**
 * No secrets leak (issue 7). Real connections to `createServer` go through every kind of verdict
 * (accepted, bad signature, replay, malformed, padded, duplicated, too large, too many messages,
 * key parameters not accepted, TLS 1.2 without EMS). Everything the server emits is captured —
 * console output and stderr, `tokbind:verify` events, the error objects handed to `onReject`
 * (message, stack, cause, JSON, util.inspect), the 400 responses (status line, headers, body),
 * the metrics (snapshot and Prometheus text; tokbind/metrics' prom-client registry; the
 * OpenTelemetry spans — names, attributes, events, status — and metric data points;
 * `tokbind:tls` events) and what the application sees (`req.tokenBinding`) —
 * and searched for the hex, base64, base64url and Node-inspect forms of each connection's EKM,
 * TLS session DER and master secret, each client's private key (JWK `d`) and each full header
 * value. A positive control proves the search finds each secret where it was planted.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import type { KeyObject } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { inspect, format } from 'node:util';
import test from 'ava';
import * as asn1js from 'asn1js';
import { generateTokenBindingKey, type TokenBindingKey } from '../../src/crypto/sign.js';
import type { TokenBindingError } from '../../src/errors.js';
import { formatPrometheusMetrics, getMetricsSnapshot } from '../../src/http/metrics.js';
import { sendProblem } from '../../src/http/problem.js';
import { Registry } from 'prom-client';
import { registerTokenBindingMetrics } from '../../src/metrics/index.js';
import { inMemoryTelemetry } from '../metrics/_otel.js';
import { printSummary } from '../fuzz/_fuzz.js';
import { RawHttpConnection, ekmOf, type RawResponse } from './_net.js';
import { startServer } from './_server.js';
import { encodeWire, headerOf, signedBinding, validHeader } from './_tb.js';

const SSL_OP_NO_EXTENDED_MASTER_SECRET = 1;

interface Secret {
  readonly name: string;
  readonly needles: readonly string[];
}

/** Every printable form a byte string could take in a log line. */
function byteNeedles(bytes: Uint8Array): string[] {
  const b = Buffer.from(bytes);
  const needles = new Set<string>();
  const hex = b.toString('hex');
  needles.add(hex.slice(0, 32));
  needles.add(hex.slice(-32));
  needles.add(hex.slice(0, 32).toUpperCase());
  // base64 and base64url at each alignment: a secret inside a longer encoded blob still shows.
  for (let a = 0; a < 3; a++) {
    for (const enc of ['base64', 'base64url'] as const) needles.add(b.subarray(a).toString(enc).slice(0, 20));
  }
  // `<Buffer 1a 2b …>` and `Uint8Array(32) [ 26, 43, … ]`.
  needles.add([...b.subarray(0, 8)].map((x) => x.toString(16).padStart(2, '0')).join(' '));
  needles.add([...b.subarray(0, 6)].join(', '));
  return [...needles];
}

/**
 * A header value: whole, and its tail — the signature end of the message. (Its head and middle
 * hold the TokenBindingID, which the server exposes on purpose as `provided.id`.)
 */
function stringNeedles(value: string): string[] {
  const tail = value.slice(-28, -4);
  return [value, tail, Buffer.from(value, 'base64url').toString('base64').slice(-28, -4)];
}

/** OpenSSL SSL_SESSION: SEQUENCE { version, ssl_version, cipher, session_id, master_key, … }. */
function masterKeyOf(der: Uint8Array): Uint8Array {
  const parsed = asn1js.fromBER(Uint8Array.from(der));
  const fields = (parsed.result as asn1js.Sequence).valueBlock.value;
  const master = fields[4] as asn1js.OctetString;
  return new Uint8Array(master.valueBlock.valueHexView);
}

function privateD(key: KeyObject): Uint8Array {
  return Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url');
}

function findLeaks(haystacks: ReadonlyMap<string, string>, secrets: readonly Secret[]): string[] {
  const leaks: string[] = [];
  // Also whitespace-free: inspect() aligns numbers in columns and wraps long lines.
  const compact = (s: string): string => s.replace(/\s+/g, '');
  for (const [where, text] of haystacks) {
    const flat = compact(text);
    for (const secret of secrets) {
      for (const needle of secret.needles) {
        if (needle.length >= 8 && (text.includes(needle) || flat.includes(compact(needle)))) leaks.push(`${secret.name} in ${where} (as ${JSON.stringify(needle.slice(0, 24))})`);
      }
    }
  }
  return leaks;
}

test('EKM, session DER, master secret, private keys and header values appear in no output', async (t) => {
  const haystacks = new Map<string, string>();
  const sink = (where: string, text: string): void => {
    haystacks.set(where, (haystacks.get(where) ?? '') + text + '\n');
  };
  const secrets: Secret[] = [];
  const keys: TokenBindingKey[] = [];
  const addKey = (key: TokenBindingKey): TokenBindingKey => {
    keys.push(key);
    secrets.push({ name: `private key ${keys.length}`, needles: byteNeedles(privateD(key.privateKey)) });
    return key;
  };
  const headerValues: string[] = [];
  const addHeader = (value: string): string => {
    headerValues.push(value);
    secrets.push({ name: `header ${value.slice(0, 10)}…`, needles: stringNeedles(value) });
    return value;
  };

  // Capture everything the process prints from here on.
  const methods = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;
  const saved = methods.map((m) => console[m]);
  for (const m of methods) console[m] = (...args: unknown[]) => sink('console', format(...args));
  const stderrWrite = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    sink('stderr', typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('latin1'));
    return (stderrWrite as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  const onVerify = (event: unknown): void => {
    sink('tokbind:verify', JSON.stringify(event));
    sink('tokbind:verify', inspect(event, { depth: Infinity, showHidden: true }));
  };
  diagnosticsChannel.subscribe('tokbind:verify', onVerify);
  const onTls = (event: unknown): void => sink('tokbind:tls', JSON.stringify(event) + inspect(event, { depth: Infinity, showHidden: true }));
  diagnosticsChannel.subscribe('tokbind:tls', onTls);
  const registry = new Registry();
  const promMetrics = registerTokenBindingMetrics(registry);
  const telemetry = await inMemoryTelemetry();

  const errors: TokenBindingError[] = [];
  const srv = await startServer({
    onReject: (_req, res, error) => {
      errors.push(error);
      sendProblem(res, error);
    },
  });
  srv.server.on('request', (req) => {
    sink('req.tokenBinding', JSON.stringify(req.tokenBinding) + inspect(req.tokenBinding, { depth: Infinity }));
  });
  srv.server.on('secureConnection', (socket: TLSSocket) => {
    const der = socket.getSession();
    if (der === undefined) return;
    secrets.push({ name: 'server session DER', needles: byteNeedles(der) });
    secrets.push({ name: 'master secret', needles: byteNeedles(masterKeyOf(der)) });
  });

  const responses: RawResponse[] = [];
  const send = async (connection: RawHttpConnection, headers: [string, string][]): Promise<RawResponse> => {
    const res = await connection.request(headers);
    responses.push(res);
    return res;
  };
  const open = async (options = {}): Promise<RawHttpConnection> => {
    const connection = await RawHttpConnection.open(srv.port, options);
    ekms.push(connection.ekm);
    secrets.push({ name: 'EKM', needles: byteNeedles(connection.ekm) });
    const der = connection.socket.getSession();
    if (der !== undefined) secrets.push({ name: 'client session DER', needles: byteNeedles(der) });
    return connection;
  };
  const statuses: number[] = [];
  const ekms: Uint8Array[] = [];

  try {
    for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
      const a = await open({ maxVersion: version });
      const b = await open({ maxVersion: version });
      const key = addKey(generateTokenBindingKey());
      const own = addHeader(validHeader(key, a.ekm));
      const bad = signedBinding(key, 0, a.ekm);
      bad.signature[10]! ^= 4;
      const flipped = addHeader(headerOf(encodeWire([bad]).bytes));
      const bytes = Buffer.from(own, 'base64url');
      const cases: [string, string][][] = [
        [['Sec-Token-Binding', own]],
        [['Sec-Token-Binding', flipped]],
        [['Sec-Token-Binding', addHeader(headerOf(bytes.subarray(0, bytes.length - 3)))]],
        [['Sec-Token-Binding', `${own}=`]],
        [['Sec-Token-Binding', own], ['Sec-Token-Binding', own]],
        [['Sec-Token-Binding', `${own}${'A'.repeat(4096)}`]],
        [['Sec-Token-Binding', addHeader(validHeader(addKey(generateTokenBindingKey('rsa2048_pss')), a.ekm))]],
      ];
      for (const c of cases) statuses.push((await send(a, c)).status);
      statuses.push((await send(b, [['Sec-Token-Binding', own]])).status); // replay
      // Too many messages: fresh valid messages until the cap refuses them.
      for (let i = 0; i < 10; i++) statuses.push((await send(b, [['Sec-Token-Binding', addHeader(validHeader(key, b.ekm))]])).status);
      await Promise.all([a.close(), b.close()]);
    }
    const noEms = await open({ maxVersion: 'TLSv1.2', secureOptions: SSL_OP_NO_EXTENDED_MASTER_SECRET });
    statuses.push((await send(noEms, [['Sec-Token-Binding', addHeader(validHeader(addKey(generateTokenBindingKey()), ekmOf(noEms.socket)))]])).status);
    await noEms.close();
  } finally {
    diagnosticsChannel.unsubscribe('tokbind:verify', onVerify);
    diagnosticsChannel.unsubscribe('tokbind:tls', onTls);
    process.stderr.write = stderrWrite as typeof process.stderr.write;
    methods.forEach((m, i) => (console[m] = saved[i]!));
    await srv.close();
  }

  for (const res of responses) {
    if (res.status !== 200) sink('400 responses', `${res.status} ${JSON.stringify(res.headers)} ${res.body}`);
  }
  for (const err of errors) {
    sink('errors', `${err.message}\n${err.stack ?? ''}\n${JSON.stringify(err)}\n${JSON.stringify(err.cause ?? null)}\n${String(err)}`);
    sink('errors', inspect(err, { depth: Infinity, showHidden: true }));
  }
  sink('metrics', JSON.stringify(getMetricsSnapshot()) + formatPrometheusMetrics());
  sink('prom-client', (await registry.metrics()) + JSON.stringify(await registry.getMetricsAsJSON()));
  promMetrics.unregister();
  const otelMetrics = await telemetry.collect();
  const spans = telemetry.spans.getFinishedSpans();
  await telemetry.close();
  for (const span of spans) {
    sink('otel spans', `${span.name} ${JSON.stringify(span.attributes)} ${JSON.stringify(span.events)} ${JSON.stringify(span.status)} ${JSON.stringify(span.links)}`);
    sink('otel spans', inspect({ attributes: span.attributes, events: span.events, status: span.status, resource: span.resource.attributes }, { depth: 6 }));
  }
  sink('otel metrics', JSON.stringify(otelMetrics.map((m) => ({ descriptor: m.descriptor, dataPoints: m.dataPoints }))));
  t.true(spans.some((span) => span.attributes['tokbind.outcome'] === 'replayed'), 'a replay went through the spans');
  t.true(haystacks.has('tokbind:tls') && haystacks.get('prom-client')!.includes('tokbind_replays_total 2'));

  const codes = new Set(errors.map((e) => e.code));
  for (const code of [
    'ERR_TB_SIGNATURE_INVALID',
    'ERR_TB_MALFORMED',
    'ERR_TB_HEADER_ENCODING',
    'ERR_TB_HEADER_DUPLICATE',
    'ERR_TB_HEADER_TOO_LARGE',
    'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED',
    'ERR_TB_TOO_MANY_MESSAGES',
    'ERR_TB_TLS_CONDITIONS',
  ]) {
    t.true(codes.has(code as TokenBindingError['code']), `the scenarios reached ${code}`);
  }
  t.true(statuses.includes(200));
  t.true(haystacks.has('tokbind:verify') && haystacks.has('errors') && haystacks.has('400 responses') && haystacks.has('req.tokenBinding'));

  const leaks = findLeaks(haystacks, secrets);
  t.deepEqual(leaks, []);

  // Positive control: each kind of secret is found where it is planted in a typical careless form.
  const key = keys[0]!;
  const ekmSecret = secrets.find((s) => s.name === 'EKM')!;
  const plantedEkm = Buffer.from(ekms[0]!);
  const planted = new Map([
    ['inspect(Buffer)', inspect({ ekm: plantedEkm })],
    ['inspect(Uint8Array)', inspect({ ekm: new Uint8Array(plantedEkm) })],
    ['base64', `ekm=${plantedEkm.subarray(1).toString('base64')}`],
    ['jwk', JSON.stringify(key.privateKey.export({ format: 'jwk' }))],
    ['cause', JSON.stringify({ field: 'signature', actual: headerValues[0]!.slice(-40) })],
  ]);
  const controlSecrets = [ekmSecret, secrets.find((s) => s.name === 'private key 1')!, secrets.find((s) => s.name.startsWith('header'))!];
  const found = findLeaks(planted, controlSecrets);
  for (const where of ['inspect(Buffer)', 'inspect(Uint8Array)', 'base64', 'jwk', 'cause']) {
    t.true(found.some((f) => f.includes(`in ${where}`)), `the search finds a secret planted as ${where}`);
  }

  printSummary('no secrets leak', {
    secrets: secrets.length,
    needles: secrets.reduce((n, s) => n + s.needles.length, 0),
    'sinks searched': haystacks.size,
    'bytes searched': [...haystacks.values()].reduce((n, s) => n + s.length, 0),
    requests: statuses.length,
    'error objects': errors.length,
    leaks: leaks.length,
  });
});
