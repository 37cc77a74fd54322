/**
 * issue 11 item 7 and the class "events that may already have fired": client-sent TTRP trailers
 * are stripped even when the body — and with it the trailers and the 'end' event — was read
 * before the adapter ran (Express with a body parser mounted first), and on HTTP/2 when an earlier
 * async hook delays the adapter until the trailers have arrived (Fastify). Real TLS on 127.0.0.1.
 */
import { once } from 'node:events';
import https from 'node:https';
import http2 from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import express from 'express';
import Fastify from 'fastify';
import { tokenBinding as expressTokenBinding, tokenBindingErrorHandler } from '../../src/adapters/express.js';
import { tokenBinding as fastifyTokenBinding } from '../../src/adapters/fastify.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { connectTls, listen, testCertificate } from '../_tls.js';
import { clientEkm, jsonBody, raw } from '../http/_raw.js';

const { key: tlsKey, cert } = testCertificate;
const key = generateTokenBindingKey();

interface Seen {
  body: string;
  trailers: Record<string, unknown>;
  raw: string[];
  bound: boolean;
}

const chunked = (tb: string): string =>
  `POST / HTTP/1.1\r\nHost: localhost\r\n${tb}Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: Sec-Provided-Token-Binding-ID, X-Kept\r\n\r\n` +
  '5\r\nhello\r\n0\r\nSec-Provided-Token-Binding-ID: spoofed\r\nsec-other-token-binding-id: spoofed\r\nX-Kept: yes\r\n\r\n';

test('express: a body parser mounted before tokenBinding() read the body; spoofed trailers are still stripped', async (t) => {
  const app = express();
  app.use(express.text());
  app.use((req, _res, next) => {
    // The precondition of the defect: by now the message is complete and 'end' has fired.
    t.true(req.complete);
    t.true(req.readableEnded);
    next();
  });
  app.use(expressTokenBinding());
  app.post('/', (req, res) => {
    const seen: Seen = { body: req.body as string, trailers: { ...req.trailers }, raw: [...req.rawTrailers], bound: req.tokenBinding !== null };
    res.json(seen);
  });
  app.use(tokenBindingErrorHandler());
  const server = await listen(https.createServer({ key: tlsKey, cert }, app));
  const socket = await connectTls(server.port, { ALPNProtocols: ['http/1.1'] });
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: clientEkm(socket) });
    for (const tb of [`Sec-Token-Binding: ${header}\r\n`, '']) {
      const response = await raw(socket, chunked(tb), /\}(\r\n0\r\n\r\n)?$/);
      t.regex(response, /^HTTP\/1\.1 200 /);
      t.deepEqual(jsonBody(response), { body: 'hello', trailers: { 'x-kept': 'yes' }, raw: ['X-Kept', 'yes'], bound: tb !== '' });
    }
  } finally {
    socket.destroy();
    await server.close();
  }
});

for (const delay of [true, false]) {
test(`fastify over HTTP/2${delay ? ': an earlier async onRequest hook lets the trailers arrive first; they are' : ', no earlier hook: trailers'} still stripped`, async (t) => {
  const app = Fastify({ http2: true, https: { key: tlsKey, cert } });
  let delayed = 0;
  app.addHook('onRequest', async (request) => {
    if (!delay) return;
    const stream = request.raw.stream;
    if (request.raw.rawTrailers.length === 0) {
      await Promise.race([once(stream, 'trailers'), sleep(5000).then(() => Promise.reject(new Error('no trailers arrived')))]);
    }
    delayed++;
  });
  await app.register(fastifyTokenBinding);
  app.post('/', async (request) => {
    const seen: Seen = {
      body: request.body as string,
      trailers: { ...request.raw.trailers },
      raw: [...request.raw.rawTrailers],
      bound: request.tokenBinding !== null,
    };
    return seen;
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  const socket = await connectTls(address.port, { ALPNProtocols: ['h2'] });
  const session = http2.connect(`https://localhost:${address.port}`, { createConnection: () => socket });
  session.on('error', () => {});
  try {
    const header = createSecTokenBindingHeader({ provided: key, ekm: clientEkm(socket) });
    for (const tb of [{ 'sec-token-binding': header }, {}]) {
      const stream = session.request({ ':method': 'POST', ':path': '/', 'content-type': 'text/plain', ...tb }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'sec-provided-token-binding-id': 'spoofed', 'sec-referred-token-binding-id': 'spoofed', 'x-kept': 'yes' }));
      stream.end('hello');
      let status = 0;
      stream.on('response', (h) => (status = Number(h[':status'])));
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      await once(stream, 'end');
      t.is(status, 200, Buffer.concat(chunks).toString());
      const seen = JSON.parse(Buffer.concat(chunks).toString()) as Seen;
      t.is(seen.body, 'hello');
      t.deepEqual(seen.trailers, { 'x-kept': 'yes' });
      t.deepEqual(seen.raw, ['x-kept', 'yes']);
      t.is(seen.bound, 'sec-token-binding' in tb);
    }
    t.is(delayed, delay ? 2 : 0);
  } finally {
    session.destroy();
    socket.destroy();
    await app.close();
  }
});
}
