/**
 * The framework-free core of trusted forwarding (`verifyForwardedRequest`) on a plain node:http
 * backend, and the address matching behind `trustProxy`.
 */
import http from 'node:http';
import test from 'ava';
import { formatTokenBindingID } from '../../src/codec/message.js';
import { isTokenBindingError } from '../../src/errors.js';
import { sendProblem } from '../../src/http/problem.js';
import { isTrustedProxyAddress, resolveTrustProxy, verifyForwardedRequest, type ForwardedRequestOptions } from '../../src/http/trust-proxy.js';
import { collectVerifyEvents } from '../_events.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { createServer } from '../../src/http/server.js';
import { listen, testCertificate } from '../_tls.js';
import { openConnection } from '../adapters/_client.js';

const id = formatTokenBindingID(generateTokenBindingKey().id);

async function backend(options: ForwardedRequestOptions) {
  const server = http.createServer((req, res) => {
    verifyForwardedRequest(req, options).then(
      (tb) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ id: tb?.provided.id ?? null, same: req.tokenBinding === tb, provided: req.headers['sec-provided-token-binding-id'] ?? null }));
      },
      (err: unknown) => {
        if (isTokenBindingError(err)) sendProblem(res, err);
        else res.destroy(err as Error);
      },
    );
  });
  return listen(server);
}

function get(port: number, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, headers, agent: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
      })
      .on('error', reject);
  });
}

test.serial('from a trusted address: forwarded IDs become req.tokenBinding and are counted on tokbind:verify', async (t) => {
  const server = await backend({ trustProxy: { addresses: ['127.0.0.1/32'] } });
  try {
    const { events } = await collectVerifyEvents(async () => {
      const res = await get(server.port, { 'sec-provided-token-binding-id': id });
      t.deepEqual(res.body, { id, same: true, provided: id });
      const none = await get(server.port);
      t.deepEqual(none.body, { id: null, same: true, provided: null });
    });
    t.deepEqual(
      events.map((e) => [e.outcome, e.keyParameters]),
      [
        ['accepted', 'ecdsap256'],
        ['absent', undefined],
      ],
    );
  } finally {
    await server.close();
  }
});

test('from any other address: forwarded headers are stripped and the request is a direct one', async (t) => {
  const server = await backend({ trustProxy: { addresses: ['192.0.2.0/24'] } });
  try {
    const res = await get(server.port, { 'sec-provided-token-binding-id': id });
    t.deepEqual(res.body, { id: null, same: true, provided: null });
  } finally {
    await server.close();
  }
});

test('required: a trusted request without a forwarded ID is refused; malformed forwarded IDs always are', async (t) => {
  const server = await backend({ trustProxy: { addresses: ['127.0.0.1'] }, required: true });
  try {
    const missing = await get(server.port, { 'sec-token-binding-assertion': 'x' });
    t.is(missing.status, 400);
    t.is(missing.body['code'], 'ERR_TB_HEADER_MISSING');
    const direct = await get(server.port);
    t.is(direct.status, 400);
    t.is(direct.body['code'], 'ERR_TB_HEADER_MISSING');
    const bad = await get(server.port, { 'sec-referred-token-binding-id': id });
    t.is(bad.status, 400);
    t.is(bad.body['code'], 'ERR_TB_FORWARDED_MALFORMED');
    t.is((await get(server.port, { 'sec-provided-token-binding-id': id })).status, 200);
  } finally {
    await server.close();
  }
});

test('address matching: CIDRs, single addresses, IPv6, IPv4-mapped peers; nothing else', async (t) => {
  const trust = resolveTrustProxy({ addresses: ['10.0.0.0/8', '192.0.2.7', 'fd00::/8', '::1'] });
  t.is(resolveTrustProxy(trust), trust);
  t.true(isTrustedProxyAddress(trust, '10.200.3.4'));
  t.true(isTrustedProxyAddress(trust, '::ffff:10.1.2.3'));
  t.true(isTrustedProxyAddress(trust, '192.0.2.7'));
  t.false(isTrustedProxyAddress(trust, '192.0.2.8'));
  t.true(isTrustedProxyAddress(trust, 'fd12::1'));
  t.true(isTrustedProxyAddress(trust, '::1'));
  t.false(isTrustedProxyAddress(trust, '127.0.0.1'));
  t.false(isTrustedProxyAddress(trust, undefined));
  t.false(isTrustedProxyAddress(trust, 'localhost'));
  t.throws(() => resolveTrustProxy(null as never), { instanceOf: TypeError });
  await t.throwsAsync(verifyForwardedRequest({} as never, null as never), { instanceOf: TypeError });
});

test('on tokbind\'s own TLS server the server\'s verdict is reused (forwarded headers were already stripped as spoofs)', async (t) => {
  const key = generateTokenBindingKey();
  const server = await listen(
    createServer({ key: testCertificate.key, cert: testCertificate.cert }, (req, res) => {
      verifyForwardedRequest(req, { trustProxy: { addresses: ['127.0.0.1'] }, required: req.url === '/required' }).then(
        (tb) => res.end(JSON.stringify({ id: tb?.provided.id ?? null })),
        (err: unknown) => (isTokenBindingError(err) ? sendProblem(res, err) : res.destroy()),
      );
    }),
  );
  const conn = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    const res = await conn.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }), 'sec-provided-token-binding-id': id });
    t.is(JSON.parse(res.body).id, formatTokenBindingID(key.id));
    const unbound = await conn.request('/required', { 'sec-provided-token-binding-id': id });
    t.is(unbound.status, 400);
    t.is(JSON.parse(unbound.body).code, 'ERR_TB_HEADER_MISSING');
  } finally {
    await conn.close();
    await server.close();
  }
});
