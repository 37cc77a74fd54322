/**
 * The examples in examples/ run against real TLS on 127.0.0.1 with tokbind's client
 * (TokenBindingAgent), a client without Token Binding, and a replay from another connection.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import test from 'ava';
import { MemoryKeyStore } from '../src/client/keystore.js';
import { TokenBindingAgent } from '../src/client/agent.js';
import { tokenBindingScope } from '../src/client/scope.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../src/crypto/sign.js';
import * as expressExample from '../examples/express.js';
import * as fastifyExample from '../examples/fastify.js';
import * as nodeExample from '../examples/node-https.js';
import * as sessionExpressExample from '../examples/session-express.js';
import * as sessionFastifyExample from '../examples/session-fastify.js';
import * as tokenClientExample from '../examples/token-client.js';
import * as tokenServerExample from '../examples/token-server.js';
import { testCertificate } from './_tls.js';
import { openConnection } from './adapters/_client.js';

interface Response {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly json: Record<string, unknown>;
}

function get(url: string, agent: https.Agent | false): Promise<Response> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { agent, ca: testCertificate.ca, servername: 'localhost' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
          } catch (err) {
            reject(err);
          }
        });
      })
      .on('error', reject);
  });
}

const examples = [
  { name: 'node-https', module: nodeExample, open: null, bound: '/' },
  { name: 'express', module: expressExample, open: '/', bound: '/api/me' },
  { name: 'fastify', module: fastifyExample, open: '/', bound: '/api/me' },
] as const;

for (const example of examples) {
  test(`examples/${example.name}: bound client accepted; unbound and replayed requests refused`, async (t) => {
    const handle = await example.module.start({ key: testCertificate.key, cert: testCertificate.cert });
    const keyStore = new MemoryKeyStore();
    const agent = new TokenBindingAgent({ keyStore, ca: testCertificate.ca });
    try {
      t.regex(handle.url, /^https:\/\/127\.0\.0\.1:\d+$/);

      const bound = await get(`${handle.url}${example.bound}`, agent);
      t.is(bound.status, 200);
      const key = await keyStore.getKey(tokenBindingScope(handle.url), 'ecdsap256');
      if (key === undefined) return t.fail('the agent did not create a key for the server');
      const raw = Buffer.from(key.id.raw);
      t.deepEqual(bound.json, { id: raw.toString('base64url'), tbh: createHash('sha256').update(raw).digest('base64url') });

      const unbound = await get(`${handle.url}${example.bound}`, false);
      t.is(unbound.status, 400);
      t.is(unbound.headers['content-type'], 'application/problem+json');
      t.is(unbound.json['code'], 'ERR_TB_HEADER_MISSING');

      if (example.open !== null) {
        t.deepEqual((await get(`${handle.url}${example.open}`, false)).json, { tokenBinding: null });
        t.like((await get(`${handle.url}${example.open}`, agent)).json, { tokenBinding: { id: raw.toString('base64url') } });
      }

      // A header signed for one connection, sent on another: a stolen header is worthless.
      const port = Number(new URL(handle.url).port);
      const [first, second] = await Promise.all([openConnection(port, { tls: 'TLSv1.3' }), openConnection(port, { tls: 'TLSv1.2' })]);
      try {
        const header = createSecTokenBindingHeader({ provided: generateTokenBindingKey(), ekm: first.ekm });
        t.is((await first.request(example.bound, { 'sec-token-binding': header })).status, 200);
        const replay = await second.request(example.bound, { 'sec-token-binding': header });
        t.is(replay.status, 400);
        t.is(JSON.parse(replay.body).code, 'ERR_TB_SIGNATURE_INVALID');
      } finally {
        await Promise.all([first.close(), second.close()]);
      }
    } finally {
      agent.destroy();
      await handle.close();
    }
  });
}

interface SessionReply {
  readonly status: number;
  readonly json: Record<string, unknown>;
  readonly cookie: string | undefined;
}

function call(url: string, agent: https.Agent | false, options: { cookie?: string | undefined; user?: string } = {}): Promise<SessionReply> {
  const body = options.user === undefined ? undefined : JSON.stringify({ user: options.user });
  const headers: Record<string, string> = {};
  if (options.cookie !== undefined) headers['cookie'] = options.cookie;
  if (body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  return new Promise((resolve, reject) => {
    https
      .request(url, { method: body === undefined ? 'GET' : 'POST', agent, ca: testCertificate.ca, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const cookie = (res.headers['set-cookie'] ?? []).map((l) => l.split(';', 1)[0]!)[0];
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>, cookie });
        });
      })
      .on('error', reject)
      .end(body);
  });
}

for (const [name, module] of [
  ['session-express', sessionExpressExample],
  ['session-fastify', sessionFastifyExample],
] as const) {
  test(`examples/${name}: login binds the session; a stolen cookie is refused and ends it; login needs a binding`, async (t) => {
    const handle = await module.start({ key: testCertificate.key, cert: testCertificate.cert });
    const victim = new TokenBindingAgent({ keyStore: new MemoryKeyStore(), ca: testCertificate.ca });
    const thief = new TokenBindingAgent({ keyStore: new MemoryKeyStore(), ca: testCertificate.ca });
    try {
      const login = await call(`${handle.url}/login`, victim, { user: 'alice' });
      t.deepEqual([login.status, login.json], [200, { user: 'alice' }]);
      t.truthy(login.cookie);
      t.deepEqual((await call(`${handle.url}/profile`, victim, { cookie: login.cookie })).json, { user: 'alice' });
      const stolen = await call(`${handle.url}/profile`, thief, { cookie: login.cookie });
      t.deepEqual([stolen.status, stolen.json['code']], [403, 'ERR_TB_SESSION_BINDING_MISMATCH']);
      t.deepEqual((await call(`${handle.url}/profile`, victim, { cookie: login.cookie })).json, { error: 'not_logged_in' });
      const again = await call(`${handle.url}/login`, victim, { user: 'alice' });
      const missing = await call(`${handle.url}/profile`, false, { cookie: again.cookie });
      t.deepEqual([missing.status, missing.json['code']], [401, 'ERR_TB_SESSION_BINDING_MISSING']);
      const unbound = await call(`${handle.url}/login`, false, { user: 'alice' });
      t.deepEqual([unbound.status, unbound.json], [401, { code: 'ERR_TB_SESSION_BINDING_MISSING' }]);
      t.is((await call(`${handle.url}/login`, victim, { user: 'Not Valid' })).status, 400);
    } finally {
      victim.destroy();
      thief.destroy();
      await handle.close();
    }
  });
}
test('examples/token-server + token-client: tbh- and DPoP-bound tokens work for their client only', async (t) => {
  const handle = await tokenServerExample.start({ key: testCertificate.key, cert: testCertificate.cert });
  try {
    for (const kind of ['tbh', 'jkt'] as const) {
      const { token, me } = await tokenClientExample.callApi(handle.url, kind, { ca: testCertificate.ca });
      t.deepEqual(me, { status: 200, body: { sub: 'alice', cnf: kind } }, kind);
      const stolen = await tokenClientExample.callAsThief(handle.url, token, kind, { ca: testCertificate.ca });
      t.is(stolen.status, 401, kind);
      t.regex(stolen.challenge ?? '', kind === 'tbh' ? /^Bearer error="invalid_token"$/ : /^DPoP error="invalid_token", algs="ES256 /, kind);
    }
    // No Token Binding and no proof: nothing to bind a token to.
    const refused = await new Promise<number>((resolve, reject) => {
      const req = https.request(`${handle.url}/token`, { method: 'POST', ca: testCertificate.ca, servername: 'localhost' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    t.is(refused, 400);
  } finally {
    await handle.close();
  }
});
