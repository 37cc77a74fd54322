/**
 * The demo app's own routes, on tokbind's server with real express-session: login bodies (form,
 * JSON, query), refusals of its own, /whoami's binding, and a failing session store.
 */
import https from 'node:https';
import test, { type ExecutionContext } from 'ava';
import session from 'express-session';
import { TokenBindingAgent } from '../../src/client/agent.js';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { createDemoApp, type DemoAppOptions } from '../../src/demo/app.js';
import { parseDemoSessionStore } from '../../src/demo/server.js';
import { createServer } from '../../src/http/server.js';
import { listen, testCertificate } from '../_tls.js';

interface Reply {
  readonly status: number;
  readonly json: Record<string, unknown>;
  readonly cookie: string | undefined;
}

async function start(t: ExecutionContext, options: DemoAppOptions = {}): Promise<string> {
  const app = createDemoApp(options);
  const listening = await listen(createServer({ key: testCertificate.key, cert: testCertificate.cert, tokenBinding: { required: false } }, app.handler));
  t.teardown(() => listening.close());
  return `https://127.0.0.1:${listening.port}`;
}

function call(url: string, agent: https.Agent | false, options: { method?: string; body?: string; type?: string; cookie?: string | undefined } = {}): Promise<Reply> {
  const { method = 'GET', body, type = 'application/x-www-form-urlencoded', cookie } = options;
  const headers: Record<string, string> = {};
  if (body !== undefined) Object.assign(headers, { 'content-type': type, 'content-length': String(Buffer.byteLength(body)) });
  if (cookie !== undefined) headers['cookie'] = cookie;
  return new Promise((resolve, reject) => {
    https
      .request(url, { method, agent, ca: testCertificate.ca, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => {
          const pair = (res.headers['set-cookie'] ?? []).map((l) => l.split(';', 1)[0]!).find((p) => p.startsWith('sid='));
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown>, cookie: pair });
        });
      })
      .on('error', reject)
      .end(body);
  });
}

test('login takes a form, JSON or query user; bad users and bodies are 400; wrong methods 405; unknown paths 404', async (t) => {
  const url = await start(t);
  const agent = new TokenBindingAgent({ keyStore: new MemoryKeyStore(), ca: testCertificate.ca });
  t.teardown(() => agent.destroy());
  t.like((await call(`${url}/login`, agent, { method: 'POST', body: 'user=alice' })).json, { user: 'alice' });
  const json = await call(`${url}/login`, agent, { method: 'POST', body: '{"user":"bob"}', type: 'application/json' });
  t.like(json.json, { user: 'bob' });
  t.like((await call(`${url}/login?user=carol`, agent)).json, { user: 'carol' });
  t.like((await call(`${url}/login?user=dave`, agent, { method: 'POST', body: '' })).json, { user: 'dave' });
  for (const [body, type] of [
    ['{"user":', 'application/json'],
    ['{"user":42}', 'application/json'],
    ['null', 'application/json'],
    ['user=' + 'x'.repeat(2000), 'application/x-www-form-urlencoded'],
    ['user=not valid!', 'application/x-www-form-urlencoded'],
  ] as const) {
    const reply = await call(`${url}/login`, agent, { method: 'POST', body, type });
    t.deepEqual([reply.status, reply.json['error']], [400, 'invalid_user'], body.slice(0, 20));
  }
  for (const [method, path] of [
    ['PUT', '/login'],
    ['POST', '/profile'],
    ['DELETE', '/whoami'],
  ] as const) {
    t.is((await call(`${url}${path}`, agent, { method, body: '' })).status, 405, `${method} ${path}`);
  }
  t.deepEqual((await call(`${url}/nope`, agent)).json['error'], 'not_found');
  // /whoami says how the session is bound.
  t.is((await call(`${url}/whoami`, false)).json['binding'], null);
  t.is((await call(`${url}/whoami`, agent, { cookie: json.cookie })).json['binding'], 'token-binding');
});

test('a session store that fails: the app answers 500 internal, for a check and for a login', async (t) => {
  let broken = false;
  class BreakableStore extends session.MemoryStore {
    override get(sid: string, callback: (err: unknown, data?: session.SessionData | null) => void): void {
      if (broken) callback(new Error('store down'));
      else super.get(sid, callback);
    }
    override destroy(sid: string, callback?: (err?: unknown) => void): void {
      if (broken) callback?.(new Error('store down'));
      else super.destroy(sid, callback);
    }
  }
  const url = await start(t, { store: new BreakableStore() });
  const agent = new TokenBindingAgent({ keyStore: new MemoryKeyStore(), ca: testCertificate.ca });
  t.teardown(() => agent.destroy());
  const login = await call(`${url}/login`, agent, { method: 'POST', body: 'user=alice' });
  t.is(login.status, 200);
  broken = true;
  // A cookie: express-session reads the store, which fails.
  t.deepEqual((await call(`${url}/profile`, agent, { cookie: login.cookie })), { status: 500, json: { error: 'internal', detail: 'the demo app failed' }, cookie: undefined });
  // No cookie: bindSession's regenerate destroys the old id in the store, which fails.
  t.is((await call(`${url}/login`, agent, { method: 'POST', body: 'user=alice' })).status, 500);
});

test('parseDemoSessionStore: memory or redis://HOST:PORT[/DB], anything else a TypeError', (t) => {
  t.deepEqual(parseDemoSessionStore('memory'), { kind: 'memory' });
  t.deepEqual(parseDemoSessionStore('redis://127.0.0.1:6379'), { kind: 'redis', url: 'redis://127.0.0.1:6379' });
  t.deepEqual(parseDemoSessionStore('redis://localhost:6380/2'), { kind: 'redis', url: 'redis://localhost:6380/2' });
  for (const bad of ['', 'redis', 'http://127.0.0.1:6379', 'redis://127.0.0.1:6379/x', 'redis://127.0.0.1:6379?a=b', 'redis://127.0.0.1:6379#x', 'rediss://h:1']) {
    t.throws(() => parseDemoSessionStore(bad), { instanceOf: TypeError }, bad);
  }
});
