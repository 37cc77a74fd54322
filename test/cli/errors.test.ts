/**
 * Issue 12, "Error messages that say what to do": each message names the mistake and the way out.
 * Through the in-memory runner (the process adds nothing here) unless noted.
 */
import test from 'ava';
import { once } from 'node:events';
import http2 from 'node:http2';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from '../../src/cli/decode.js';
import { fetch } from '../../src/cli/fetch.js';
import { id } from '../../src/cli/id.js';
import { ExitCode, UsageError } from '../../src/cli/io.js';
import { keygen } from '../../src/cli/keygen.js';
import { verify } from '../../src/cli/verify.js';
import { TokenBindingDispatcher, tokbindFetch } from '../../src/client/dispatcher.js';
import { isTokenBindingError } from '../../src/errors.js';
import { messageCases } from '../vectors/_messages.js';
import { createTestCertificate, testCertificate } from '../_tls.js';
import { startCheckingServer } from '../client/_server.js';
import { runCommand } from './_run.js';
import { runBin } from './_bin.js';

type ErrorLine = { error: { code: string; message: string } };
const errorOf = (stderr: string) => (JSON.parse(stderr) as ErrorLine).error;

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-cli-errors-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const sample = messageCases.find((c) => c.id === 'rfc8473/section-2-example')!;

test('decode and verify name a pasted header name, padding, standard base64, quotes and line breaks', async (t) => {
  const cases: [string, RegExp][] = [
    [`Sec-Token-Binding: ${sample.header}`, /^the value starts with the header name "Sec-Token-Binding:": give only what follows the colon/],
    [`${sample.header}==`, /^the value ends in "=" padding: Sec-Token-Binding is base64url without padding \(RFC 8473 §2\)/],
    [`${sample.header.replace(/-/g, '+').replace(/_/g, '/')}+/`, /^the value contains "\+" or "\/": that is standard base64/],
    [`"${sample.header}"`, /^the value is in quotes: remove them/],
    [`${sample.header.slice(0, 20)}\n${sample.header.slice(20)}`, /^the value contains whitespace/],
    [`Sec-Provided-Token-Binding-ID: ${sample.header}`, /TTRP header line/],
  ];
  for (const [value, message] of cases) {
    const r = await runCommand(decode, [value]);
    t.is(r.code, ExitCode.failure, value);
    t.is(errorOf(r.stderr).code, 'ERR_TB_HEADER_ENCODING');
    t.regex(errorOf(r.stderr).message, message, value);
    // verify: the same message, on stderr.
    const v = await runCommand(verify, ['--ekm', '00'.repeat(32), value]);
    t.is(v.code, ExitCode.failure);
    t.is(v.stdout, '');
    t.regex((JSON.parse(v.stderr) as ErrorLine).error.message, message);
  }
  // A value that is fine base64url but malformed keeps the codec's message alone.
  t.is(errorOf((await runCommand(decode, ['AAA'])).stderr).message.includes('the value'), false);
});

test('verify reads the value from stdin with -', async (t) => {
  const accepted = messageCases.find((c) => c.ekm !== null && c.expect.accept === true)!;
  const r = await runCommand(verify, ['--ekm', accepted.ekm!, '-'], accepted.header + '\n');
  t.is(r.code, ExitCode.ok, r.stderr);
  t.true((JSON.parse(r.stdout) as { ok: boolean }).ok);
});

test('id --key-store missing.json says the file does not exist and creates nothing', async (t) => {
  const dir = await tempDir(t);
  const r = await runCommand(id, ['--key-store', join(dir, 'missing.json'), '--url', 'https://example.com/']);
  t.is(r.code, ExitCode.failure);
  t.like(errorOf(r.stderr), { code: 'ERR_TB_KEY_STORE' });
  t.regex(errorOf(r.stderr).message, /missing\.json does not exist \(create it, and a key, with tokbind keygen/);
  t.deepEqual(await readdir(dir), []);
});

test('a scope that has only an RSA key: id and fetch say so and name --key-parameters', async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const store = join(await tempDir(t), 'keys.json');
  t.is((await runCommand(keygen, ['--key-store', store, '--scope', '127.0.0.1', '--key-parameters', 'rsa2048_pss'])).code, ExitCode.ok);
  const shown = await runCommand(id, ['--key-store', store, '--url', server.url('/')]);
  t.is(shown.code, ExitCode.failure);
  t.is(
    errorOf(shown.stderr).message,
    `no ecdsap256 key for scope 127.0.0.1 in ${store}, which holds rsa2048_pss for it: select it with --key-parameters rsa2048_pss`,
  );
  const fetched = await runCommand(fetch, [server.url('/'), '--insecure', '--key-store', store]);
  t.is(fetched.code, ExitCode.failure);
  t.regex(errorOf(fetched.stderr).message, /select it with --key-parameters rsa2048_pss \(or give --key-parameters ecdsap256 to create a new ecdsap256 key beside it\)$/);
  t.is(server.seen.length, 0);
  // Selected explicitly, either works.
  t.is((await runCommand(fetch, [server.url('/'), '--insecure', '--key-store', store, '--key-parameters', 'rsa2048_pss'])).code, ExitCode.ok);
  t.is((await runCommand(fetch, [server.url('/'), '--insecure', '--key-store', store, '--key-parameters', 'ecdsap256'])).code, ExitCode.ok);
  // A scope with no key at all: fetch creates one (the store's purpose), id says how to.
  const none = await runCommand(id, ['--key-store', store, '--url', 'https://example.org/']);
  t.regex(errorOf(none.stderr).message, /^no key for scope example\.org in .*keys\.json \(create one with tokbind keygen --key-store .* --scope example\.org\)$/);
});

test('fetch: a self-signed certificate suggests --ca or --insecure; --ca junk.pem is an error', async (t) => {
  const server = await startCheckingServer();
  t.teardown(() => server.close());
  const untrusted = await runCommand(fetch, [server.url('/')]);
  t.is(untrusted.code, ExitCode.failure);
  t.regex(errorOf(untrusted.stderr).message, /certificate is not trusted: pass the server's CA \(or its self-signed certificate\) with --ca FILE, or skip the check with --insecure/);
  const dir = await tempDir(t);
  const junk = join(dir, 'junk.pem');
  await writeFile(junk, 'junk\n');
  const bad = await runCommand(fetch, [server.url('/'), '--ca', junk]);
  t.is(bad.code, ExitCode.failure);
  t.deepEqual(errorOf(bad.stderr), { code: 'ERR_CLI_INPUT', message: `--ca ${junk}: no PEM certificate (-----BEGIN CERTIFICATE-----) found: it is not PEM` });
  const missing = await runCommand(fetch, [server.url('/'), '--ca', join(dir, 'nope.pem')]);
  t.regex(errorOf(missing.stderr).message, /^--ca .*nope\.pem: cannot read the file \(no such file\)$/);
  // A CA that is not the issuer: said so.
  const otherCa = join(dir, 'other.pem');
  await writeFile(otherCa, (await createTestCertificate({ commonName: 'another CA' })).ca);
  const wrong = await runCommand(fetch, [server.url('/'), '--ca', otherCa]);
  t.regex(errorOf(wrong.stderr).message, /the --ca file does not hold the CA that issued it/);
  t.is(server.seen.length, 0);
});

test('fetch http://… is a usage error saying Token Binding needs TLS; the library says it in words too', async (t) => {
  const err = await t.throwsAsync(runCommand(fetch, ['http://127.0.0.1:8080/']), { instanceOf: UsageError });
  t.is(err!.message, '<url> http://127.0.0.1:8080/ is plain HTTP: Token Binding needs TLS, use https://');
  const r = await runBin(['fetch', 'http://127.0.0.1:8080/']);
  t.is(r.code, ExitCode.usage);
  // A redirect (or a direct library call) to plain HTTP: no internal reason names.
  const plain = await startCheckingServer({ plain: true });
  t.teardown(() => plain.close());
  const dispatcher = new TokenBindingDispatcher();
  t.teardown(() => dispatcher.close());
  const failure = await t.throwsAsync(tokbindFetch(plain.url('/'), { dispatcher }));
  let cause: unknown = failure;
  while (!isTokenBindingError(cause) && cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
  t.true(isTokenBindingError(cause, 'ERR_TB_TLS_CONDITIONS'));
  t.is((cause as Error).message, 'refusing to send Token Binding over plain TCP: Token Binding needs TLS (an https:// URL)');
});

test("fetch to a port on the Fetch standard's blocked list says why it is refused", async (t) => {
  const r = await runCommand(fetch, ['https://127.0.0.1:6000/', '--insecure']);
  t.is(r.code, ExitCode.failure);
  const error = errorOf(r.stderr);
  t.is(error.code, 'ERR_FETCH_BAD_PORT');
  t.regex(error.message, /^bad port: https:\/\/127\.0\.0\.1:6000\/ \(or a redirect from it\) names a port on the Fetch standard's blocked-port list .* run the server on another port$/);
});

test('keygen refuses a public suffix with the reason; hosts the list does not know are fine', async (t) => {
  const store = join(await tempDir(t), 'keys.json');
  for (const [args, shown] of [
    [['--scope', 'co.uk'], '--scope co.uk: co.uk'],
    [['--scope', 'github.io'], '--scope github.io: github.io'],
    [['--url', 'https://com/'], '--url https://com/: com'],
  ] as const) {
    const err = await t.throwsAsync(runCommand(keygen, ['--key-store', store, ...args]), { instanceOf: UsageError });
    t.true(err!.message.startsWith(`${shown} is a public suffix (like com, co.uk or github.io), shared by unrelated sites;`), err!.message);
    t.regex(err!.message, /eTLD\+1, RFC 8473 §2\.1/);
  }
  const r = await runBin(['keygen', '--key-store', store, '--scope', 'co.uk']);
  t.is(r.code, ExitCode.usage);
  for (const scope of ['localhost', 'example.co.uk', 'alice.github.io']) {
    t.is((await runCommand(keygen, ['--key-store', store, '--scope', scope])).code, ExitCode.ok, scope);
  }
});

test('an HTTP/2-only server (no allowHTTP1): the client error names ALPN and allowHTTP1', async (t) => {
  const server = http2.createSecureServer({ key: testCertificate.key, cert: testCertificate.cert }, (_req, res) => res.end('h2'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const r = await runCommand(fetch, [url, '--insecure']);
  t.is(r.code, ExitCode.failure);
  const error = errorOf(r.stderr);
  t.is(error.code, 'ERR_TB_CLIENT');
  t.regex(error.message, /refused the TLS handshake \(ALPN alert no_application_protocol\).*allowHTTP1: true$/);
  t.notRegex(error.message, /SSL routines|rec_layer/);
});

test('the node:https agent says the same about an HTTP/2-only server', async (t) => {
  const { TokenBindingAgent } = await import('../../src/client/agent.js');
  const https = await import('node:https');
  const server = http2.createSecureServer({ key: testCertificate.key, cert: testCertificate.cert }, (_req, res) => res.end('h2'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const agent = new TokenBindingAgent();
  t.teardown(() => agent.destroy());
  const port = (server.address() as AddressInfo).port;
  // node:https offers no ALPN unless asked (the server then answers a 403 of its own); offering http/1.1 meets the alert.
  const options = { host: '127.0.0.1', port, path: '/', agent, ca: testCertificate.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] };
  const err = await new Promise<Error>((resolve, reject) => {
    https
      .get(options as import('node:https').RequestOptions, () => reject(new Error('answered')))
      .on('error', resolve);
  });
  t.true(isTokenBindingError(err, 'ERR_TB_CLIENT'));
  t.regex(err.message, new RegExp(`^127\\.0\\.0\\.1:${port} refused the TLS handshake \\(ALPN alert no_application_protocol\\).*allowHTTP1: true$`));
  t.is((err.cause as { code?: string }).code, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL');
});
