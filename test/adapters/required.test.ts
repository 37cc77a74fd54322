/**
 * issue 11 item 2: under `required: true` an invalid Sec-Token-Binding is rejected whatever
 * `onInvalid` says — on tokbind's HTTPS and HTTP/2 servers and through the Express and Fastify
 * adapters (on plain servers and on tokbind's). `onInvalid: 'ignore'` still lets an invalid
 * message through as null where the binding is optional. Real TLS on 127.0.0.1.
 */
import test from 'ava';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { TokenBindingError, type TokenBindingErrorCode } from '../../src/errors.js';
import { problemDetails } from '../../src/http/problem.js';
import { openConnection, type TestResponse } from './_client.js';
import { targets, type Seen } from './_targets.js';

const key = generateTokenBindingKey();

function problemCode(res: TestResponse): TokenBindingErrorCode {
  const body = JSON.parse(res.body) as { code: TokenBindingErrorCode };
  return body.code;
}

for (const target of targets) {
  test(`${target.name}: required + onInvalid ignore rejects a garbage, a wrongly signed and a missing header`, async (t) => {
    const strict = await target.start({ required: true, onInvalid: 'ignore' });
    const lenient = await target.start({ onInvalid: 'ignore' });
    const conn = await openConnection(strict.port, { tls: 'TLSv1.3', http2: target.http2 });
    const lenientConn = await openConnection(lenient.port, { tls: 'TLSv1.3', http2: target.http2 });
    try {
      const garbage = await conn.request('/', { 'sec-token-binding': 'x' });
      t.is(garbage.status, 400, garbage.body);
      t.is(problemCode(garbage), 'ERR_TB_HEADER_ENCODING');
      t.deepEqual(JSON.parse(garbage.body), problemDetails(new TokenBindingError('ERR_TB_HEADER_ENCODING')));

      const wrongEkm = createSecTokenBindingHeader({ provided: key, ekm: new Uint8Array(32) });
      const forged = await conn.request('/', { 'sec-token-binding': wrongEkm });
      t.is(forged.status, 400);
      t.is(problemCode(forged), 'ERR_TB_SIGNATURE_INVALID');
      // Cached on the connection: still rejected on a repeat.
      t.is(problemCode(await conn.request('/', { 'sec-token-binding': wrongEkm })), 'ERR_TB_SIGNATURE_INVALID');

      const missing = await conn.request('/');
      t.is(missing.status, 400);
      t.is(problemCode(missing), 'ERR_TB_HEADER_MISSING');

      const valid = await conn.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) });
      t.is(valid.status, 200, valid.body);
      t.not((JSON.parse(valid.body) as Seen).tokenBinding, null);

      // Where the binding is optional, ignore still means ignore.
      const ignored = await lenientConn.request('/', { 'sec-token-binding': 'x' });
      t.is(ignored.status, 200, ignored.body);
      t.is((JSON.parse(ignored.body) as Seen).tokenBinding, null);
    } finally {
      await Promise.all([conn.close(), lenientConn.close()]);
      await Promise.all([strict.close(), lenient.close()]);
    }
  });
}
