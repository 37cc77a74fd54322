import test from 'ava';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { RequestListener } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { TokenBindingDispatcher, tokbindFetch } from '../../src/client/dispatcher.js';
import { demo, runDemo } from '../../src/cli/demo.js';
import { ExitCode, type CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { runDemoScenario } from '../../src/demo/scenario.js';
import { createServer } from '../../src/http/server.js';
import { testCertificate } from '../_tls.js';

interface Captured {
  readonly io: CliIo;
  readonly stdout: () => string;
  readonly stderr: () => string;
}

function capture(env: NodeJS.ProcessEnv, tty = false): Captured {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const sink = (into: Buffer[]) =>
    Object.assign(
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          into.push(Buffer.from(chunk));
          callback();
        },
      }),
      { isTTY: tty },
    );
  return {
    io: { stdin: Readable.from([]), stdout: sink(out), stderr: sink(err), env },
    stdout: () => Buffer.concat(out).toString(),
    stderr: () => Buffer.concat(err).toString(),
  };
}

/** One line per step, in order: what each must say when it behaved. */
const STEPS = [
  /^✔ victim: POST \/login user=alice, with its Token Binding → 200, cookie sid=/m,
  /^✔ victim: GET \/profile with cookie \+ its own binding → 200 \{"user":"alice"\}/m,
  /^✔ attacker: stolen cookie \+ victim's captured Sec-Token-Binding, new connection → 400 ERR_TB_SIGNATURE_INVALID/m,
  /^✔ attacker: stolen cookie, own key → 403 ERR_TB_SESSION_BINDING_MISMATCH \(the cookie is bound to another Token Binding ID: the server destroys the session\)/m,
  /^✔ victim: GET \/profile again, cookie \+ its own binding → 401 not_logged_in/m,
  /^✔ victim: POST \/login user=alice again → 200, cookie sid=/m,
  /^✔ attacker: new cookie stolen, no Token Binding → 401 ERR_TB_SESSION_BINDING_MISSING/m,
];

/**
 * The demo app with its binding check taken out: a session cookie works from anywhere, as an
 * ordinary cookie does. Sits behind tokbind's server all the same.
 */
function appWithoutBindingCheck(): RequestListener {
  const sessions = new Map<string, string>();
  return (req, res) => {
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.url?.startsWith('/login') === true) {
      req.resume();
      req.on('end', () => {
        const sid = randomBytes(16).toString('base64url');
        sessions.set(sid, 'alice');
        json(200, { user: 'alice', tbh: req.tokenBinding?.provided.hash }, { 'set-cookie': `sid=${sid}; Path=/; Secure; HttpOnly` });
      });
      return;
    }
    const sid = /(?:^|;\s*)sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    const user = sid === undefined ? undefined : sessions.get(sid);
    if (user === undefined) json(401, { error: 'not_logged_in' });
    else json(200, { user });
  };
}

test('demo --once with PORT=0: every step behaves, each is named, exit 0, no colours off a TTY', async (t) => {
  const run = capture({ PORT: '0' });
  const code = await demo(['--once'], run.io);
  const stdout = run.stdout();
  t.is(code, ExitCode.ok, stdout + run.stderr());
  for (const step of STEPS) t.regex(stdout, step);
  t.regex(stdout, /^server https:\/\/127\.0\.0\.1:\d+ /m);
  t.regex(stdout, /^✔ all 7 steps behaved as expected/m);
  for (let i = 1; i < STEPS.length; i++) t.true(STEPS[i - 1]!.exec(stdout)!.index < STEPS[i]!.exec(stdout)!.index, 'steps in order');
  t.notRegex(stdout, /✘/);
  t.notRegex(stdout, /\x1b\[/);
  t.notRegex(stdout, /Ctrl-C/);
});

test('the scenario fails, step by step, against an app whose binding check is disabled', async (t) => {
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert, tokenBinding: { required: false } }, appWithoutBindingCheck());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.close();
    server.closeAllConnections();
  });
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { ok, steps } = await runDemoScenario(origin, { ca: testCertificate.ca });
  t.false(ok);
  t.deepEqual(
    steps.map((s) => [s.actor, s.ok]),
    [
      ['victim', true],
      ['victim', true],
      ['attacker', true], // tokbind itself rejects the replayed header, whatever the app does
      ['attacker', false], // own key: the cookie still works
      ['victim', false], // and the session lives on
      ['victim', true],
      ['attacker', false], // no binding: the cookie still works
    ],
  );
  t.is(steps[2]!.outcome, '400 ERR_TB_SIGNATURE_INVALID');
  t.is(steps[3]!.outcome, '200 {"user":"alice"}');
  t.is(steps[6]!.outcome, '200 {"user":"alice"}');
});

test('runDemo with the broken app: ✘ lines and exit 1; NO_COLOR wins over a TTY', async (t) => {
  const run = capture({ NO_COLOR: '1' }, true);
  const code = await runDemo({ io: run.io, port: 0, once: true, app: appWithoutBindingCheck() });
  const stdout = run.stdout();
  t.is(code, ExitCode.failure, stdout);
  t.regex(stdout, /^✘ attacker: stolen cookie, own key → 200 \{"user":"alice"\} \(expected 403 ERR_TB_SESSION_BINDING_MISMATCH\)/m);
  t.regex(stdout, /^✘ victim: GET \/profile again, cookie \+ its own binding → 200 \{"user":"alice"\} \(expected 401 not_logged_in\)/m);
  t.regex(stdout, /^✘ attacker: new cookie stolen, no Token Binding → 200 \{"user":"alice"\} \(expected 401 ERR_TB_SESSION_BINDING_MISSING\)/m);
  t.regex(stdout, /^✘ 3 of 7 steps did not behave as expected/m);
  t.notRegex(stdout, /\x1b\[/);
});

test('without --once the server keeps serving /whoami and /login until the signal, in colour on a TTY', async (t) => {
  const run = capture({ PORT: '0' }, true);
  const controller = new AbortController();
  const done = demo([], run.io, controller.signal);
  while (!run.stdout().includes('Ctrl-C to stop.')) {
    if (await Promise.race([done.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 50))])) break;
  }
  const stdout = run.stdout();
  t.regex(stdout, /\x1b\[32m✔\x1b\[39m/);
  const origin = /tokbind fetch (https:\/\/127\.0\.0\.1:\d+)\/whoami --insecure/.exec(stdout)?.[1];
  t.truthy(origin, stdout);
  t.regex(stdout, new RegExp(`openssl s_client -connect 127\\.0\\.0\\.1:${new URL(origin!).port}`));

  const dispatcher = new TokenBindingDispatcher({ connect: { rejectUnauthorized: false } });
  t.teardown(() => dispatcher.close());
  const whoami = await tokbindFetch(`${origin}/whoami`, { dispatcher });
  t.is(whoami.status, 200);
  const body = (await whoami.json()) as { tokenBinding: { provided: { hash: string } } | null };
  t.regex(body.tokenBinding?.provided.hash ?? '', /^[A-Za-z0-9_-]{43}$/);

  // Login needs a Token Binding: a plain client is refused by the app.
  const plain = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    https
      .get(`${origin}/login?user=alice`, { rejectUnauthorized: false, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      })
      .on('error', reject);
  });
  t.is(plain.status, 401);
  t.is((JSON.parse(plain.body) as { code: string }).code, 'ERR_TB_SESSION_BINDING_MISSING');

  controller.abort();
  t.is(await done, ExitCode.ok);
});

test('a bad port is a usage error (exit 2)', async (t) => {
  for (const [argv, env] of [
    [['demo', '--once', '--port', '70000'], {}],
    [['demo', '--once'], { PORT: 'eighty' }],
    [['demo', '--once', '--bogus'], {}],
  ] as const) {
    const run = capture(env);
    t.is(await main(argv, run.io), ExitCode.usage, argv.join(' '));
    t.regex(run.stderr(), /^tokbind demo: /);
  }
});

test('a port in use: a one-line hint on stderr and exit 1', async (t) => {
  const blocker = https.createServer({ key: testCertificate.key, cert: testCertificate.cert });
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  t.teardown(() => blocker.close());
  const port = (blocker.address() as AddressInfo).port;
  const run = capture({ PORT: String(port) });
  t.is(await demo(['--once'], run.io), ExitCode.failure);
  t.is(run.stderr(), `tokbind demo: 127.0.0.1:${port} is in use: pick another with --port N or PORT=N (0 picks a free one)\n`);
  t.is(run.stdout(), '');
});
