/**
 * RFC 8473 §5 federation over a real server: the redirect asks for a referred binding, and the
 * next request's referred ID is exposed as req.tokenBinding.referred.
 */
import test from 'ava';
import { formatTokenBindingID } from '../../src/codec/message.js';
import { tokenBindingHash } from '../../src/crypto/hash.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { INCLUDE_REFERRED_TOKEN_BINDING_ID, redirectWithReferredTokenBinding, requestReferredTokenBinding } from '../../src/http/federation.js';
import { createServer } from '../../src/http/server.js';
import { listen, testCertificate } from '../_tls.js';
import { openConnection } from '../adapters/_client.js';

test('a 3xx asks for the referred binding; the next request exposes it', async (t) => {
  const misuse: string[] = [];
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert }, (req, res) => {
    if (req.url === '/login') return redirectWithReferredTokenBinding(res, '/authorize', 303);
    if (req.url === '/manual') {
      res.statusCode = 307;
      res.setHeader('location', '/authorize');
      requestReferredTokenBinding(res);
      return res.end();
    }
    if (req.url === '/ok') {
      try {
        requestReferredTokenBinding(res);
      } catch (err) {
        misuse.push((err as Error).name);
      }
      return res.end('ok');
    }
    res.end(JSON.stringify(req.tokenBinding));
  });
  const listening = await listen(server);
  const connection = await openConnection(listening.port, { tls: 'TLSv1.3' });
  try {
    const rp = generateTokenBindingKey(); // the key the client uses with the relying party
    const idp = generateTokenBindingKey(); // ... and with the token provider
    for (const path of ['/login', '/manual']) {
      const redirect = await connection.request(path, { 'sec-token-binding': createSecTokenBindingHeader({ provided: rp, ekm: connection.ekm }) });
      t.true(redirect.status === 303 || redirect.status === 307);
      t.is(redirect.headers[INCLUDE_REFERRED_TOKEN_BINDING_ID.toLowerCase()], 'true');
      t.is(redirect.headers.location, '/authorize');
    }
    const next = await connection.request('/authorize', {
      'sec-token-binding': createSecTokenBindingHeader({ provided: idp, referred: rp, ekm: connection.ekm }),
    });
    t.is(next.status, 200);
    t.like(JSON.parse(next.body), {
      provided: { id: formatTokenBindingID(idp.id) },
      referred: { id: formatTokenBindingID(rp.id), hash: tokenBindingHash(rp.id), keyParameters: 'ecdsap256' },
    });

    const ok = await connection.request('/ok');
    t.is(ok.status, 200);
    t.is(ok.headers[INCLUDE_REFERRED_TOKEN_BINDING_ID.toLowerCase()], undefined);
    t.deepEqual(misuse, ['TypeError']);
  } finally {
    await connection.close();
    await listening.close();
  }
});

test('misuse is a TypeError', (t) => {
  t.throws(() => requestReferredTokenBinding({} as never), { instanceOf: TypeError });
  const res = { statusCode: 302, headersSent: false, setHeader() {}, end() {} };
  t.throws(() => redirectWithReferredTokenBinding(res as never, '/x', 200), { instanceOf: TypeError });
  t.throws(() => redirectWithReferredTokenBinding(res as never, ''), { instanceOf: TypeError });
  t.throws(() => requestReferredTokenBinding({ ...res, headersSent: true } as never), { instanceOf: TypeError });
});
