/**
 * The class "object keys from the network": strings a client controls — Sec-Token-Binding values
 * (the verification cache's keys), header and trailer names — named like Object.prototype members
 * reach every path (tokbind's servers, Express, Fastify, HTTP/1.1 and HTTP/2) as plain data: a
 * coded 400 or an ignored header, nothing written to or read from a prototype, and the
 * connection still verifies a valid binding afterwards. Real TLS on 127.0.0.1.
 */
import test from 'ava';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { TokenBindingError } from '../../src/errors.js';
import { verifyTokenBindingHeader } from '../../src/http/verify.js';
import { createServer } from '../../src/http/server.js';
import { connectTls, listen, testCertificate } from '../_tls.js';
import { clientEkm, jsonBody, raw } from '../http/_raw.js';
import { openConnection } from './_client.js';
import { targets, type Seen } from './_targets.js';

const NAMES = ['__proto__', 'constructor', 'hasOwnProperty', 'toString', 'valueOf', '__defineGetter__', 'prototype'];
const key = generateTokenBindingKey();

/** The code the library itself gives a value: what every server must answer. */
function expectedCode(value: string): string {
  try {
    verifyTokenBindingHeader(value, { ekm: new Uint8Array(32), negotiatedKeyParameters: [2] });
  } catch (err) {
    if (err instanceof TokenBindingError) return err.code;
  }
  throw new Error(`${value} was not refused`);
}

const prototypeNames = () => Object.getOwnPropertyNames(Object.prototype).sort();

for (const target of targets) {
  test(`${target.name}: Sec-Token-Binding values and header names named like prototype members`, async (t) => {
    const before = prototypeNames();
    const server = await target.start({ maxDistinctMessages: NAMES.length + 1 });
    const conn = await openConnection(server.port, { tls: 'TLSv1.3', http2: target.http2 });
    try {
      for (const name of NAMES) {
        for (let repeat = 0; repeat < 2; repeat++) {
          const res = await conn.request('/', { 'sec-token-binding': name });
          t.is(res.status, 400, `${name}: ${res.body}`);
          t.is((JSON.parse(res.body) as { code: string }).code, expectedCode(name), name);
        }
      }
      // Header names (HTTP/2 forbids none of these) next to spoofed TTRP headers.
      const extra: Record<string, string> = { 'sec-provided-token-binding-id': 'spoofed' };
      for (const name of NAMES.filter((n) => n !== '__proto__')) extra[name.toLowerCase()] = 'x';
      const res = await conn.request('/', { ...extra, 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) });
      t.is(res.status, 200, res.body);
      const seen = JSON.parse(res.body) as Seen;
      t.not(seen.tokenBinding, null);
      t.deepEqual(seen.ttrp, []);
      t.deepEqual(prototypeNames(), before);
      t.is(({} as Record<string, unknown>)['tokenBinding'], undefined);
    } finally {
      await conn.close();
      await server.close();
    }
  });
}

test('HTTP/1.1 header and trailer names __proto__ / constructor beside spoofed TTRP ones', async (t) => {
  const before = prototypeNames();
  const seen: { headers: string[]; trailers: string[]; bound: boolean }[] = [];
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert }, (req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ headers: Object.keys(req.headers), trailers: Object.keys(req.trailers), bound: req.tokenBinding !== null });
      res.end('{}');
    });
  });
  const listening = await listen(server);
  const socket = await connectTls(listening.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: clientEkm(socket) });
    const request =
      `POST / HTTP/1.1\r\nHost: localhost\r\n__proto__: a\r\nconstructor: b\r\nhasOwnProperty: c\r\nSec-Other-Token-Binding-ID: spoofed\r\n` +
      `Sec-Token-Binding: ${header}\r\nTransfer-Encoding: chunked\r\n\r\n` +
      '1\r\nx\r\n0\r\n__proto__: d\r\nconstructor: e\r\nSec-Referred-Token-Binding-ID: spoofed\r\n\r\n';
    const response = await raw(socket, request, /\{\}(\r\n0\r\n\r\n)?$/);
    t.regex(response, /^HTTP\/1\.1 200 /);
    t.deepEqual(jsonBody(response), {});
    t.is(seen.length, 1);
    t.true(seen[0]!.bound);
    t.false(seen[0]!.headers.includes('sec-other-token-binding-id'));
    // Node itself drops a `__proto__` field (its header objects are plain objects); the others are data.
    t.true(seen[0]!.headers.includes('constructor') && seen[0]!.headers.includes('hasownproperty'));
    t.true(seen[0]!.trailers.includes('constructor'));
    t.false(seen[0]!.trailers.includes('sec-referred-token-binding-id'));
    t.deepEqual(prototypeNames(), before);
  } finally {
    socket.destroy();
    await listening.close();
  }
});
