import test from 'ava';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetch } from '../../src/cli/fetch.js';
import { id } from '../../src/cli/id.js';
import { ExitCode, UsageError, type CliCommand } from '../../src/cli/io.js';
import { testCertificate } from '../_tls.js';
import { SSL_OP_NO_EXTENDED_MASTER_SECRET, startCheckingServer, type SeenRequest } from '../client/_server.js';
import { runCommand } from './_run.js';
import { runBin } from './_bin.js';

const run = (command: CliCommand, argv: string[]) => runCommand(command, argv);

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-cli-fetch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const echoRoutes = {
  '/echo': (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-served-by': 'test' });
    res.end(`x-test=${String(req.headers['x-test'])}`);
  },
  '/missing': (_req: unknown, res: import('node:http').ServerResponse) => {
    res.writeHead(404);
    res.end('nope');
  },
};

test('fetch --ca: one bound request, the body on stdout, exit 0', async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const caFile = join(await tempDir(t), 'ca.pem');
  await writeFile(caFile, testCertificate.ca);
  const result = await run(fetch, [server.url('/hello'), '--ca', caFile]);
  t.is(result.code, ExitCode.ok, result.stderr);
  const seen = JSON.parse(result.stdout) as SeenRequest;
  t.like(seen, { path: '/hello', valid: true, indexOnConnection: 0, headerCount: 1 });
});

test('fetch --insecure -H --include: headers sent, status line and headers printed', async (t) => {
  const server = await startCheckingServer({ routes: echoRoutes });
  t.teardown(() => server.close());
  const result = await run(fetch, [server.url('/echo'), '--insecure', '-H', 'X-Test: 42', '--include']);
  t.is(result.code, ExitCode.ok, result.stderr);
  const [head, body] = result.stdout.split('\n\n');
  t.regex(head!, /^HTTP\/1\.1 200 OK\n/);
  t.regex(head!, /^x-served-by: test$/m);
  t.is(body, 'x-test=42');
  t.true(server.seen[0]!.valid);
});

test('fetch: a 4xx response exits 1 and still prints the body', async (t) => {
  const server = await startCheckingServer({ routes: echoRoutes });
  t.teardown(() => server.close());
  const result = await run(fetch, [server.url('/missing'), '--insecure']);
  t.is(result.code, ExitCode.failure);
  t.is(result.stdout, 'nope');
});

test('fetch --key-store: the same Token Binding ID across runs, the one `tokbind id` prints', async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const store = join(await tempDir(t), 'keys.json');
  const first = JSON.parse((await run(fetch, [server.url('/1'), '--insecure', '--key-store', store])).stdout) as SeenRequest;
  const second = JSON.parse((await run(fetch, [server.url('/2'), '--insecure', '--key-store', store])).stdout) as SeenRequest;
  t.true(first.valid && second.valid);
  t.not(first.connection, second.connection);
  t.is(first.provided, second.provided);
  const shown = JSON.parse((await run(id, ['--key-store', store, '--url', server.url('/')])).stdout) as { id: string };
  t.is(shown.id, first.provided ?? 'missing');
  // Without a key store every run is a new identity.
  const ephemeral = JSON.parse((await run(fetch, [server.url('/3'), '--insecure'])).stdout) as SeenRequest;
  t.not(ephemeral.provided, first.provided);
});

test('fetch: coded errors exit 1 with {"error":{"code","message"}} on stderr', async (t) => {
  const noEms = await startCheckingServer({ tls: { maxVersion: 'TLSv1.2', secureOptions: SSL_OP_NO_EXTENDED_MASTER_SECRET } });
  t.teardown(() => noEms.close());
  const refused = await run(fetch, [noEms.url('/'), '--insecure']);
  t.is(refused.code, ExitCode.failure);
  t.is((JSON.parse(refused.stderr) as { error: { code: string } }).error.code, 'ERR_TB_TLS_CONDITIONS');
  t.is(noEms.seen.length, 0);

  const store = join(await tempDir(t), 'keys.json');
  await writeFile(store, 'garbage', { mode: 0o600 });
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const badStore = await run(fetch, [server.url('/'), '--insecure', '--key-store', store]);
  t.is(badStore.code, ExitCode.failure);
  t.is((JSON.parse(badStore.stderr) as { error: { code: string } }).error.code, 'ERR_TB_KEY_STORE');
  // The self-signed certificate is not trusted without --ca or --insecure.
  const untrusted = await run(fetch, [server.url('/')]);
  t.is(untrusted.code, ExitCode.failure);
  const { error } = JSON.parse(untrusted.stderr) as { error: { code: string; message: string } };
  t.is(typeof error.code, 'string');
  t.true(error.message.length > 0);
  t.true(server.seen.every((s) => s.valid));
});

test('fetch usage errors', async (t) => {
  for (const argv of [[], ['a', 'b'], ['not-a-url'], ['ftp://example.com/'], ['https://x/', '-H', 'no colon'], ['https://x/', '--key-parameters', 'p384'], ['https://x/', '--bogus']]) {
    await t.throwsAsync(() => run(fetch, argv), { instanceOf: UsageError }, argv.join(' '));
  }
});

test('fetch: a status >= 400 exits 1 with ERR_HTTP_STATUS on stderr (body still printed); --no-fail exits 0', async (t) => {
  const server = await startCheckingServer({ routes: echoRoutes });
  t.teardown(() => server.close());
  const failed = await run(fetch, [server.url('/missing'), '--insecure']);
  t.is(failed.code, ExitCode.failure);
  t.is(failed.stdout, 'nope');
  t.deepEqual(JSON.parse(failed.stderr), { error: { code: 'ERR_HTTP_STATUS', message: `HTTP 404 Not Found from ${new URL(server.url('/')).origin}`, status: 404 } });
  const tolerated = await run(fetch, [server.url('/missing'), '--insecure', '--no-fail']);
  t.is(tolerated.code, ExitCode.ok);
  t.is(tolerated.stdout, 'nope');
  t.is(tolerated.stderr, '');
});

test('fetch -X/--method and -d/--data (text, @file, - for stdin): the method and body the server receives', async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const dir = await tempDir(t);
  const file = join(dir, 'body.json');
  await writeFile(file, '{"user":"alice"}');
  const form = join(dir, 'form.txt');
  await writeFile(form, 'user=alice\r\n');
  const cases: [string[], string, string, string][] = [
    [[], '', 'GET', ''],
    [['-d', 'user=alice'], '', 'POST', 'user=alice'],
    [['--data=user=bob', '-X', 'PUT'], '', 'PUT', 'user=bob'],
    [['-d', `@${file}`, '-H', 'Content-Type: application/json'], '', 'POST', '{"user":"alice"}'],
    [['--data', '-'], 'from stdin', 'POST', 'from stdin'],
    // As curl --data: CR/LF from a file or stdin are dropped (the demo's POST /login by hand).
    [['-d', `@${form}`], '', 'POST', 'user=alice'],
    [['-d', '-'], 'user=bob\n', 'POST', 'user=bob'],
    [['-X', 'delete'], '', 'DELETE', ''],
  ];
  for (const [argv, stdin, method, body] of cases) {
    const r = await runCommand(fetch, [server.url('/m'), '--insecure', ...argv], stdin);
    t.is(r.code, ExitCode.ok, `${argv.join(' ')}: ${r.stderr}`);
    const seen = JSON.parse(r.stdout) as SeenRequest;
    t.like(seen, { method, body, valid: true }, argv.join(' '));
  }
  const missing = await run(fetch, [server.url('/m'), '--insecure', '-d', `@${join(dir, 'nope')}`]);
  t.is(missing.code, ExitCode.failure);
  t.regex((JSON.parse(missing.stderr) as { error: { message: string } }).error.message, /^--data .*nope: cannot read the file \(no such file\)$/);
  for (const argv of [['-X', 'GET', '-d', 'x'], ['-X', 'BAD METHOD'], ['-d', '-', '--ca', '-']]) {
    await t.throwsAsync(() => run(fetch, [server.url('/m'), ...argv]), { instanceOf: UsageError }, argv.join(' '));
  }
});

test("fetch -d does the demo's POST /login by hand: a form body, the bound session cookie back", async (t) => {
  const { createDemoApp } = await import('../../src/demo/app.js');
  const { createServer } = await import('../../src/http/server.js');
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert }, createDemoApp().handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = `https://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}/login`;
  const r = await runBin(['fetch', url, '-d', 'user=alice', '--insecure', '-i']);
  t.is(r.code, ExitCode.ok, r.stderr);
  t.regex(r.stdout, /^HTTP\/1\.1 200 OK\n/);
  t.regex(r.stdout, /^set-cookie: sid=/m);
  t.like(JSON.parse(r.stdout.split('\n\n')[1]!), { user: 'alice' });
});
