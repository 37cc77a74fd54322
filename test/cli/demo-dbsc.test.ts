/**
 * `tokbind demo --serve --dbsc` through the real binary: login offers DBSC to a client without
 * Token Binding, a (software, jose) DBSC client registers, `/whoami` then says `"binding": "dbsc"`,
 * and the bound cookie lives `--dbsc-cookie-ttl` seconds. Usage errors exit 2.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import https from 'node:https';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const LISTENING = /^listening on (https:\/\/127\.0\.0\.1:(\d+))$/m;

async function run(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, 'demo', ...args], { env: { ...process.env, PORT: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

async function serve(t: ExecutionContext, args: readonly string[]): Promise<string> {
  const child = spawn(process.execPath, [MAIN, 'demo', '--serve', '--port', '0', ...args], { env: { ...process.env, PORT: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  return new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const m = LISTENING.exec(out);
      if (m !== null) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error(`exited before listening: ${out} ${err}`)));
  });
}

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly json: Record<string, unknown>;
}

function request(url: string, method: string, headers: Record<string, string>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // The demo's certificate is self-signed and made at start-up: not checked here (as curl -k).
    const req = https.request(url, { method, agent: false, rejectUnauthorized: false, headers: { 'content-length': '0', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end();
  });
}

const cookiePair = (set: string | string[] | undefined, name: string): string => {
  const line = (Array.isArray(set) ? set : [String(set)]).find((l) => l.startsWith(`${name}=`));
  if (line === undefined) throw new Error(`no ${name} cookie in ${JSON.stringify(set)}`);
  return line.split(';', 1)[0]!;
};

test('demo --serve --dbsc: login offers DBSC, registration binds the session, /whoami says dbsc, the cookie lives --dbsc-cookie-ttl', async (t) => {
  const url = await serve(t, ['--dbsc', '--dbsc-cookie-ttl=42']);
  const login = await request(`${url}/login?user=alice`, 'GET', {});
  t.is(login.status, 200);
  t.deepEqual(login.json, { user: 'alice', tbh: null, dbsc: 'offered' });
  const sid = cookiePair(login.headers['set-cookie'], 'sid');
  const m = /^\(ES256 RS256\);path="([^"]+)";challenge="([^"]+)"$/.exec(String(login.headers['secure-session-registration']));
  t.truthy(m, String(login.headers['secure-session-registration']));
  // Unbound until the browser registers: the demo's policy is `required`.
  const pending = await request(`${url}/whoami`, 'GET', { cookie: sid });
  t.is(pending.status, 401);
  t.is(pending.json['code'], 'ERR_TB_SESSION_UNBOUND');

  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwt = await new SignJWT({ jti: m![2]! }).setProtectedHeader({ alg: 'ES256', typ: 'dbsc+jwt', jwk: await exportJWK(publicKey) }).sign(privateKey);
  const registered = await request(`${url}${m![1]!}`, 'POST', { cookie: sid, 'secure-session-response': jwt });
  t.is(registered.status, 200);
  t.like(registered.json, { refresh_url: '/tokbind/dbsc/refresh', continue: true });
  const setCookie = (registered.headers['set-cookie'] as string[]).find((l) => l.startsWith('__Host-tokbind-dbsc='))!;
  t.regex(setCookie, /; Max-Age=42; /);
  const bound = cookiePair(registered.headers['set-cookie'], '__Host-tokbind-dbsc');
  const whoami = await request(`${url}/whoami`, 'GET', { cookie: `${sid}; ${bound}` });
  t.is(whoami.status, 200);
  t.deepEqual(whoami.json, { tokenBinding: null, binding: 'dbsc' });
  t.deepEqual((await request(`${url}/profile`, 'GET', { cookie: `${sid}; ${bound}` })).json, { user: 'alice' });
});

test('demo --dbsc: usage errors exit 2; --help lists the options with their defaults', async (t) => {
  const alone = await run(['--dbsc']);
  t.is(alone.code, 2);
  t.regex(alone.stderr, /--dbsc needs --serve/);
  t.is((await run(['--serve', '--dbsc', '--dbsc-cookie-ttl', '0'])).code, 2);
  const help = await run(['--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /--dbsc\b/);
  t.regex(help.stdout, /--dbsc-cookie-ttl SECONDS[^\n]*600/);
});
