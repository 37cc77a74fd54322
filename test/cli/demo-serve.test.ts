/**
 * `tokbind demo --serve` through the real binary: the demo app stays up without the walkthrough,
 * prints `listening on https://HOST:PORT`, and keeps sessions in memory or in a real redis-server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import https from 'node:https';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { createClient } from 'redis';
import { TokenBindingAgent } from '../../src/client/agent.js';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { startRedis } from '../_redis.js';
import { freePort } from '../_tools.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const LISTENING = /^listening on (https:\/\/127\.0\.0\.1:(\d+))$/m;

interface Running {
  readonly child: ChildProcess;
  readonly url: string;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

interface Exited {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function spawnDemo(args: readonly string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; stdout: () => string; stderr: () => string } {
  const child = spawn(process.execPath, [MAIN, 'demo', ...args], { env: { ...process.env, PORT: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  return { child, stdout: () => out, stderr: () => err };
}

async function serve(t: ExecutionContext, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const { child, stdout, stderr } = spawnDemo(['--serve', ...args], env);
  const exited = once(child, 'exit');
  let stopped: Promise<number | null> | undefined;
  const stop = (): Promise<number | null> =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      return code;
    })());
  t.teardown(() => stop().then(() => undefined));
  const url = await new Promise<string>((resolve, reject) => {
    const check = (): void => {
      const match = LISTENING.exec(stdout());
      if (match !== null) {
        child.stdout!.off('data', check);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', check);
    void exited.then(() => reject(new Error(`demo --serve exited before listening: ${stdout()} ${stderr()}`)));
  });
  return { child, url, stdout, stderr, stop };
}

async function run(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Exited> {
  const { child, stdout, stderr } = spawnDemo(args, env);
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout: stdout(), stderr: stderr() };
}

interface Reply {
  readonly status: number;
  readonly json: Record<string, unknown>;
  readonly cookie: string | undefined;
}

function request(url: string, agent: https.Agent | false, options: { method?: string; cookie?: string | undefined; body?: string } = {}): Promise<Reply> {
  const { method = 'GET', cookie, body } = options;
  const headers: Record<string, string> = {};
  if (cookie !== undefined) headers['cookie'] = cookie;
  if (body !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, agent, rejectUnauthorized: false, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => {
        const pair = (res.headers['set-cookie'] ?? []).map((l) => l.split(';', 1)[0]!).find((p) => p.startsWith('sid='));
        resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown>, cookie: pair });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function agent(t: ExecutionContext): TokenBindingAgent {
  const a = new TokenBindingAgent({ keyStore: new MemoryKeyStore(), rejectUnauthorized: false });
  t.teardown(() => a.destroy());
  return a;
}

/** Logs in as alice with the victim, reads the profile; the thief's use of the cookie is refused and ends the session. */
async function walk(t: ExecutionContext, url: string): Promise<string> {
  const victim = agent(t);
  const thief = agent(t);
  const login = await request(`${url}/login`, victim, { method: 'POST', body: 'user=alice' });
  t.is(login.status, 200);
  t.regex(login.cookie ?? '', /^sid=s%3A/);
  t.deepEqual((await request(`${url}/profile`, victim, { cookie: login.cookie })).json, { user: 'alice' });
  const whoami = await request(`${url}/whoami`, victim, { cookie: login.cookie });
  t.is(whoami.json['binding'], 'token-binding');
  t.is((whoami.json['tokenBinding'] as { provided: { hash: string } }).provided.hash, login.json['tbh'] as string);
  const stolen = await request(`${url}/profile`, thief, { cookie: login.cookie });
  t.is(stolen.status, 403);
  t.is(stolen.json['code'], 'ERR_TB_SESSION_BINDING_MISMATCH');
  t.is((await request(`${url}/profile`, victim, { cookie: login.cookie })).json['error'], 'not_logged_in');
  const plain = await request(`${url}/login`, false, { method: 'POST', body: 'user=alice' });
  t.deepEqual([plain.status, plain.json['code']], [401, 'ERR_TB_SESSION_BINDING_MISSING']);
  return login.cookie!;
}

test('demo --serve --port 0: listening line, login, profile, whoami, stolen cookie refused; SIGTERM exits 0', async (t) => {
  const demo = await serve(t, ['--port', '0']);
  t.notRegex(demo.stdout(), /victim|attacker/, 'no walkthrough');
  await walk(t, demo.url);
  t.is(await demo.stop(), 0);
  t.is(demo.stderr(), '');
});

test('demo --serve takes PORT from the environment, --port=N and --host', async (t) => {
  const fromEnv = await freePort();
  const a = await serve(t, [], { PORT: String(fromEnv) });
  t.is(new URL(a.url).port, String(fromEnv));
  const fromFlag = await freePort();
  const b = await serve(t, [`--port=${fromFlag}`, '--host', '127.0.0.1', '--session-store', 'memory'], { PORT: String(fromEnv) });
  t.is(b.url, `https://127.0.0.1:${fromFlag}`);
  t.is((await request(`${b.url}/profile`, false)).status, 401);
});

test('demo --serve --session-store redis://127.0.0.1:PORT keeps sessions in redis; a stolen one is deleted there', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const client = createClient({ url: redis.url });
  await client.connect();
  t.teardown(() => client.close());
  const demo = await serve(t, ['--port', '0', '--session-store', `redis://127.0.0.1:${redis.port}`]);
  const victim = agent(t);
  const login = await request(`${demo.url}/login`, victim, { method: 'POST', body: 'user=alice' });
  t.is(login.status, 200);
  const keys = await client.keys('tokbind-demo:*');
  t.is(keys.length, 1);
  const stored = JSON.parse((await client.get(keys[0]!))!) as Record<string, unknown>;
  t.is(stored['user'], 'alice');
  t.like(stored['tokbind'], { method: 'token-binding', tbh: login.json['tbh'] });
  t.deepEqual((await request(`${demo.url}/profile`, victim, { cookie: login.cookie })).json, { user: 'alice' });
  t.is((await request(`${demo.url}/profile`, agent(t), { cookie: login.cookie })).status, 403);
  t.deepEqual(await client.keys('tokbind-demo:*'), []);

  // The whole walk behaves the same with sessions in redis.
  await walk(t, demo.url);
  t.is(await demo.stop(), 0);
});

test('demo --serve --workers 2 with redis: one listening line; a cookie set by one worker is honoured by every one', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const demo = await serve(t, ['--port', '0', '--workers', '2', '--session-store', redis.url]);
  const keyStore = new MemoryKeyStore();
  // A new agent per request (one key store): a new connection each time, spread over the workers.
  const fresh = (): TokenBindingAgent => {
    const a = new TokenBindingAgent({ keyStore, rejectUnauthorized: false });
    t.teardown(() => a.destroy());
    return a;
  };
  const login = await request(`${demo.url}/login`, fresh(), { method: 'POST', body: 'user=alice' });
  t.is(login.status, 200);
  for (let i = 0; i < 6; i++) t.deepEqual((await request(`${demo.url}/profile`, fresh(), { cookie: login.cookie })).json, { user: 'alice' }, `request ${i}`);
  t.is((await request(`${demo.url}/profile`, agent(t), { cookie: login.cookie })).status, 403);
  for (let i = 0; i < 2; i++) t.is((await request(`${demo.url}/profile`, fresh(), { cookie: login.cookie })).json['error'], 'not_logged_in');
  t.is(await demo.stop(), 0);
  t.is(demo.stdout().match(/^listening on /gm)?.length, 1);
});

test('demo --serve: a session store that is not there is exit 1 with a one-line reason; bad options are usage errors', async (t) => {
  const port = await freePort();
  const down = await run(['--serve', '--port', '0', '--session-store', `redis://127.0.0.1:${port}`]);
  t.is(down.code, 1);
  t.regex(down.stderr, new RegExp(`^tokbind demo: cannot reach the session store redis://127\\.0\\.0\\.1:${port}`));
  t.notRegex(down.stdout, /listening/);
  for (const args of [
    ['--serve', '--once'],
    ['--serve', '--session-store', 'mongodb://127.0.0.1:1'],
    ['--serve', '--session-store', 'redis://'],
    ['--serve', '--host', ''],
    ['--serve', '--port', 'x'],
    ['--serve', '--workers', '2'],
    ['--workers', '2', '--session-store', 'redis://127.0.0.1:1'],
    ['--once', '--proxy-protocol'],
  ]) {
    const bad = await run(args);
    t.is(bad.code, 2, args.join(' '));
    t.regex(bad.stderr, /^tokbind demo: /, args.join(' '));
  }
});
