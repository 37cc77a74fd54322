/**
 * The signature budgets (issue 11 item 5) are per-caller options of the adapters too: a route
 * with `maxSignaturesPerMessage: 1` refuses a message that needs two checks (provided +
 * referred) before checking any, while a route with the default accepts it, on one connection.
 */
import https from 'node:https';
import test from 'ava';
import express from 'express';
import { tokenBinding, tokenBindingErrorHandler } from '../../src/adapters/express.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { listen, testCertificate } from '../_tls.js';
import { openConnection } from './_client.js';

test('Express: maxSignaturesPerMessage and maxSignaturesPerConnection reach the route that sets them', async (t) => {
  const app = express();
  app.get('/strict', tokenBinding({ maxSignaturesPerMessage: 1 }), (req, res) => res.json({ ok: req.tokenBinding !== null }));
  app.get('/default', tokenBinding(), (req, res) => res.json({ ok: req.tokenBinding !== null }));
  app.get('/budget', tokenBinding({ maxSignaturesPerConnection: 1 }), (req, res) => res.json({ ok: req.tokenBinding !== null }));
  app.use(tokenBindingErrorHandler());
  const server = https.createServer({ key: testCertificate.key, cert: testCertificate.cert }, app);
  const listening = await listen(server);
  t.teardown(() => listening.close());

  const conn = await openConnection(listening.port, { tls: 'TLSv1.3' });
  t.teardown(() => conn.close());
  const provided = generateTokenBindingKey();
  const referred = generateTokenBindingKey();
  const both = createSecTokenBindingHeader({ provided, referred, ekm: conn.ekm });
  const strict = await conn.request('/strict', { 'sec-token-binding': both });
  t.is(strict.status, 400);
  t.is((JSON.parse(strict.body) as { code?: string }).code, 'ERR_TB_TOO_MANY_BINDINGS');
  t.is((await conn.request('/default', { 'sec-token-binding': both })).status, 200);

  const conn2 = await openConnection(listening.port, { tls: 'TLSv1.3' });
  t.teardown(() => conn2.close());
  const first = createSecTokenBindingHeader({ provided, ekm: conn2.ekm });
  const second = createSecTokenBindingHeader({ provided: generateTokenBindingKey(), ekm: conn2.ekm });
  t.is((await conn2.request('/budget', { 'sec-token-binding': first })).status, 200);
  const spent = await conn2.request('/budget', { 'sec-token-binding': second });
  t.is(spent.status, 400);
  t.is((JSON.parse(spent.body) as { code?: string }).code, 'ERR_TB_SIGNATURE_BUDGET');
});
