/**
 * Issue 12 Major 3: a Sec-Token-Binding over plain HTTP (TLS terminated before tokbind) is refused
 * with ERR_TB_EKM_UNAVAILABLE, and the answer says what to do.
 */
import test from 'ava';
import express from 'express';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tokenBinding, tokenBindingErrorHandler } from '../../src/adapters/express.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';

test('plain HTTP: the 400 problem names ERR_TB_EKM_UNAVAILABLE and says to terminate TLS in tokbind or use a trusted proxy', async (t) => {
  const app = express();
  app.use(tokenBinding());
  app.get('/', (_req, res) => res.send('reached'));
  app.use(tokenBindingErrorHandler());
  const server = http.createServer(app).listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const header = createSecTokenBindingHeader({ provided: generateTokenBindingKey(), ekm: new Uint8Array(32) });
  const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { headers: { 'sec-token-binding': header } });
  t.is(response.status, 400);
  const problem = (await response.json()) as { code: string; detail: string };
  t.is(problem.code, 'ERR_TB_EKM_UNAVAILABLE');
  t.regex(problem.detail, /TLS must end in tokbind \(terminate TLS here, or forward through a trusted proxy such as tokbind proxy\)/);
});
