/**
 * Under load, still correct (issue 7): 200 concurrent TLS connections to `createServer`, each with
 * its own key, 40 requests each in a shuffled mix — its own valid message (repeated: the
 * per-connection cache), messages replayed from other connections, corrupted messages (a flipped
 * signature bit, truncated, padded, a second header), and no header. Every valid request must be
 * accepted with that connection's own ID (no cross-talk), every bad one rejected with its code,
 * and nothing logged or emitted as an error for the valid traffic. Each connection uses at most 6
 * distinct header values, under the default cap of 8, so no TOO_MANY_MESSAGES is expected.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { once } from 'node:events';
import http2 from 'node:http2';
import tls from 'node:tls';
import test from 'ava';
import { generateTokenBindingKey, type TokenBindingKey } from '../../src/crypto/sign.js';
import { createSecureServer } from '../../src/http/http2.js';
import type { VerifyEvent } from '../../src/http/metrics.js';
import { codesText, printSummary } from '../fuzz/_fuzz.js';
import { listen, testCertificate } from '../_tls.js';
import { RawHttpConnection, ekmOf, within } from './_net.js';
import { startServer } from './_server.js';
import { encodeWire, headerOf, idOf, signedBinding, validHeader } from './_tb.js';

const CONNECTIONS = 200;
const REQUESTS_PER_CONNECTION = 40;

interface Planned {
  readonly kind: 'valid' | 'replayed' | 'bitflip' | 'truncated' | 'padded' | 'duplicate' | 'none';
  readonly headers: readonly (readonly [string, string])[];
  /** 200 with this ID (null: unbound), or 400 with this code. */
  readonly expect: { readonly status: 200; readonly id: string | null } | { readonly status: 400; readonly code: string };
}

interface Client {
  readonly key: TokenBindingKey;
  readonly connection: RawHttpConnection;
  readonly header: string;
}

/** Deterministic shuffle (the test must be reproducible). */
function shuffle<T>(items: T[], seed: number): T[] {
  let s = seed;
  for (let i = items.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

function plan(client: Client, others: readonly Client[], index: number): Planned[] {
  const own = client.header;
  const bad = signedBinding(client.key, 0, client.connection.ekm);
  bad.signature[index % 64]! ^= 0x10;
  const flipped = headerOf(encodeWire([bad]).bytes);
  const ownBytes = Buffer.from(own, 'base64url');
  const truncated = headerOf(ownBytes.subarray(0, ownBytes.length - 6));
  const replay1 = others[(index + 1) % others.length]!.header;
  const replay2 = others[(index + 7) % others.length]!.header;
  const ok = { status: 200, id: idOf(client.key) } as const;
  const reject = (code: string) => ({ status: 400, code }) as const;
  const items: Planned[] = [];
  for (let i = 0; i < 8; i++) items.push({ kind: 'valid', headers: [['Sec-Token-Binding', own]], expect: ok });
  items.push(
    { kind: 'replayed', headers: [['Sec-Token-Binding', replay1]], expect: reject('ERR_TB_SIGNATURE_INVALID') },
    { kind: 'replayed', headers: [['Sec-Token-Binding', replay1]], expect: reject('ERR_TB_SIGNATURE_INVALID') },
    { kind: 'replayed', headers: [['Sec-Token-Binding', replay2]], expect: reject('ERR_TB_SIGNATURE_INVALID') },
    { kind: 'bitflip', headers: [['Sec-Token-Binding', flipped]], expect: reject('ERR_TB_SIGNATURE_INVALID') },
    { kind: 'bitflip', headers: [['Sec-Token-Binding', flipped]], expect: reject('ERR_TB_SIGNATURE_INVALID') },
    { kind: 'truncated', headers: [['Sec-Token-Binding', truncated]], expect: reject('ERR_TB_MALFORMED') },
    { kind: 'padded', headers: [['Sec-Token-Binding', `${own}=`]], expect: reject('ERR_TB_HEADER_ENCODING') },
    { kind: 'duplicate', headers: [['Sec-Token-Binding', own], ['Sec-Token-Binding', own]], expect: reject('ERR_TB_HEADER_DUPLICATE') },
    { kind: 'none', headers: [], expect: { status: 200, id: null } },
  );
  while (items.length < REQUESTS_PER_CONNECTION) items.push({ kind: 'valid', headers: [['Sec-Token-Binding', own]], expect: ok });
  // The first request is always the valid one: the others then hit a connection with a cached verdict.
  return [items[0]!, ...shuffle(items.slice(1), index + 1)];
}

test.serial('200 connections, 8,000 requests of valid, replayed and corrupted messages: every verdict right', async (t) => {
  const logged: string[] = [];
  const methods = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;
  const saved = methods.map((m) => console[m]);
  const onWarning = (w: Error): void => {
    logged.push(`warning: ${w.message}`);
  };
  const events: VerifyEvent[] = [];
  const onVerify = (e: unknown): void => {
    events.push(e as VerifyEvent);
  };
  const srv = await startServer();
  const serverErrors: string[] = [];
  srv.server.on('clientError', (err: Error) => serverErrors.push(`clientError ${err.message}`));
  srv.server.on('tlsClientError', (err: Error) => serverErrors.push(`tlsClientError ${err.message}`));

  const outcomes = new Map<string, number>();
  const codes = new Map<string, number>();
  const wrong: string[] = [];
  let requests = 0;
  let crossTalk = 0;
  const started = Date.now();
  try {
    const clients: Client[] = await within(
      Promise.all(
        Array.from({ length: CONNECTIONS }, async () => {
          const connection = await RawHttpConnection.open(srv.port);
          const key = generateTokenBindingKey();
          return { key, connection, header: validHeader(key, connection.ekm) };
        }),
      ),
      60_000,
      'open 200 connections',
    );
    // Count from here on: everything below is the load itself.
    for (const m of methods) console[m] = (...args: unknown[]) => void logged.push(`${m}: ${args.map(String).join(' ')}`);
    process.on('warning', onWarning);
    diagnosticsChannel.subscribe('tokbind:verify', onVerify);

    await within(
      Promise.all(
        clients.map(async (client, index) => {
          for (const item of plan(client, clients, index)) {
            const res = await client.connection.request(item.headers);
            requests++;
            outcomes.set(item.kind, (outcomes.get(item.kind) ?? 0) + 1);
            let got: string;
            if (res.status === 200) {
              const id = (JSON.parse(res.body) as { id: string | null }).id;
              if (id !== null && id !== idOf(client.key)) crossTalk++;
              got = `200 ${id ?? 'unbound'}`;
            }
            else {
              const code = (JSON.parse(res.body) as { code: string }).code;
              codes.set(code, (codes.get(code) ?? 0) + 1);
              got = `${res.status} ${code}`;
            }
            const want = item.expect.status === 200 ? `200 ${item.expect.id ?? 'unbound'}` : `400 ${item.expect.code}`;
            if (got !== want) wrong.push(`connection ${index} ${item.kind}: expected ${want}, got ${got}`);
          }
        }),
      ),
      120_000,
      '8,000 requests',
    );
    await Promise.all(clients.map((c) => c.connection.close()));
  } finally {
    diagnosticsChannel.unsubscribe('tokbind:verify', onVerify);
    process.off('warning', onWarning);
    methods.forEach((m, i) => (console[m] = saved[i]!));
    await srv.close();
  }
  const seconds = (Date.now() - started) / 1000;

  t.is(requests, CONNECTIONS * REQUESTS_PER_CONNECTION);
  t.deepEqual(wrong, []);
  t.is(crossTalk, 0, "a response carried another connection's ID");
  t.deepEqual(logged, [], 'nothing logged');
  t.deepEqual(serverErrors, [], 'no client or TLS errors on the server');
  const valid = (outcomes.get('valid') ?? 0) + (outcomes.get('none') ?? 0);
  // The channel saw every request; accepted ones are exactly the valid ones.
  t.is(events.length, requests);
  t.is(events.filter((e) => e.outcome === 'accepted').length, outcomes.get('valid') ?? -1);
  t.is(events.filter((e) => e.outcome === 'absent').length, outcomes.get('none') ?? -1);
  t.false(codes.has('ERR_TB_TOO_MANY_MESSAGES'));
  const misses = events.filter((e) => !e.cached && e.outcome !== 'absent' && e.code !== 'ERR_TB_HEADER_DUPLICATE').length;
  t.is(misses, CONNECTIONS * 6, 'each connection verified its 6 distinct values once');
  printSummary('under load', {
    connections: CONNECTIONS,
    requests,
    'valid accepted': valid,
    rejected: requests - valid,
    'wrong verdicts': wrong.length,
    'cross-talk': crossTalk,
    'errors logged': logged.length + serverErrors.length,
    verifications: misses,
    seconds: seconds.toFixed(1),
    codes: codesText(codes),
  });
});

test.serial('HTTP/2: 50 sessions × 40 concurrent streams of valid and replayed messages: no cross-talk', async (t) => {
  const server = createSecureServer({ key: testCertificate.key, cert: testCertificate.cert, tokenBinding: {} }, (req, res) => {
    const body = JSON.stringify({ id: req.tokenBinding?.provided.id ?? null });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  const listening = await listen(server);
  const sessions = await Promise.all(
    Array.from({ length: 50 }, async () => {
      const socket = tls.connect({ host: '127.0.0.1', port: listening.port, servername: 'localhost', ca: testCertificate.ca, ALPNProtocols: ['h2'] });
      await once(socket, 'secureConnect');
      const key = generateTokenBindingKey();
      const header = validHeader(key, ekmOf(socket));
      const session = http2.connect(`https://localhost:${listening.port}`, { createConnection: () => socket });
      session.on('error', () => {});
      return { key, header, session };
    }),
  );
  const request = (session: http2.ClientHttp2Session, header: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const stream = session.request({ ':path': '/', 'sec-token-binding': header });
      let status = 0;
      let body = '';
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', (c: Buffer) => (body += c.toString()));
      stream.on('end', () => resolve(status === 200 ? `200 ${(JSON.parse(body) as { id: string }).id}` : `${status} ${(JSON.parse(body) as { code: string }).code}`));
      stream.on('error', reject);
      stream.end();
    });
  const wrong: string[] = [];
  let streams = 0;
  try {
    await within(
      Promise.all(
        sessions.map(async (s, i) => {
          const replay = sessions[(i + 1) % sessions.length]!.header;
          // All 40 streams in flight at once on one session: 36 valid, 4 replayed.
          const results = await Promise.all(Array.from({ length: 40 }, (_, j) => request(s.session, j % 10 === 3 ? replay : s.header)));
          results.forEach((got, j) => {
            streams++;
            const want = j % 10 === 3 ? '400 ERR_TB_SIGNATURE_INVALID' : `200 ${idOf(s.key)}`;
            if (got !== want) wrong.push(`session ${i} stream ${j}: expected ${want}, got ${got}`);
          });
        }),
      ),
      60_000,
      'HTTP/2 streams',
    );
  } finally {
    await Promise.all(sessions.map((s) => new Promise<void>((resolve) => s.session.close(() => resolve()))));
    await listening.close();
  }
  t.is(streams, 2000);
  t.deepEqual(wrong, []);
  printSummary('under load, HTTP/2', { sessions: sessions.length, streams, 'wrong verdicts': wrong.length });
});
