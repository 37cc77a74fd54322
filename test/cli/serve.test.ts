/**
 * `tokbind serve` in-process on 127.0.0.1:0, stopped through its AbortSignal; real TLS clients.
 */
import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { ExitCode, UsageError, type CliIo } from '../../src/cli/io.js';
import { serve } from '../../src/cli/serve.js';
import { formatTokenBindingID } from '../../src/codec/message.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { exportTokenBindingKeyingMaterial } from '../../src/tls/ekm.js';
import { connectTls, testCertificate } from '../_tls.js';
import { openConnection } from '../adapters/_client.js';

interface Running {
  readonly port: number;
  readonly firstLine: string;
  readonly stderr: () => string;
  stop(): Promise<number>;
}

/** Starts `serve` and resolves once it printed its first line. */
function start(argv: string[]): Promise<Running> {
  const controller = new AbortController();
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    let exit: Promise<number>;
    const stdout = new Writable({
      write(chunk: Buffer, _e, cb) {
        out += chunk.toString();
        const match = /^listening on https:\/\/127\.0\.0\.1:(\d+)\n/.exec(out);
        if (match !== null) {
          resolve({
            port: Number(match[1]),
            firstLine: out.trimEnd(),
            stderr: () => err,
            stop: () => {
              controller.abort();
              return exit;
            },
          });
        }
        cb();
      },
    });
    const stderr = new Writable({
      write(chunk: Buffer, _e, cb) {
        err += chunk.toString();
        cb();
      },
    });
    const io: CliIo = { stdin: Readable.from([]), stdout, stderr, env: {} };
    exit = serve(['--port', '0', ...argv], io, controller.signal);
    exit.then((code) => reject(new Error(`serve exited ${code} before listening: ${err}`)), reject);
  });
}

const key = generateTokenBindingKey();

test('serves /whoami, /metrics and 404; stops when aborted', async (t) => {
  const server = await start([]);
  t.regex(server.firstLine, /^listening on https:\/\/127\.0\.0\.1:\d+$/);
  // The self-signed certificate: trust it for this test only.
  const probe = await connectTls(server.port, { rejectUnauthorized: false });
  const served = new X509Certificate(probe.getPeerCertificate().raw);
  probe.destroy();
  t.true(served.checkIP('127.0.0.1') !== undefined);

  const get = (path: string, headers: Record<string, string> = {}, agent?: https.Agent) =>
    new Promise<{ status: number; type: string | undefined; body: string }>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: server.port, path, headers, ca: served.toString(), servername: 'localhost', agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }));
      });
      req.on('error', reject);
      req.end();
    });

  try {
    const unbound = await get('/whoami');
    t.is(unbound.status, 200);
    t.deepEqual(JSON.parse(unbound.body), { tokenBinding: null });
    t.is((await get('/whoami', { 'sec-token-binding': 'AAA' })).status, 400);
    t.is((await get('/nowhere')).status, 404);

    // A bound request: sign over our own socket's EKM.
    const socket = await connectTls(server.port, { ca: served.toString(), servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    agent.createConnection = () => socket;
    const bound = await get('/whoami', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: exportTokenBindingKeyingMaterial(socket) }) }, agent);
    agent.destroy();
    t.is(bound.status, 200);
    t.like(JSON.parse(bound.body), { tokenBinding: { provided: { id: formatTokenBindingID(key.id), keyParameters: 'ecdsap256' } } });

    const metrics = await get('/metrics');
    t.is(metrics.status, 200);
    t.is(metrics.type, 'text/plain; version=0.0.4; charset=utf-8');
    t.regex(metrics.body, /^tokbind_verifications_total\{outcome="accepted",key_parameters="ecdsap256"\} 1$/m);
    t.regex(metrics.body, /^tokbind_verifications_total\{outcome="absent",key_parameters="none"\} [1-9]\d*$/m);
    t.regex(metrics.body, /^tokbind_rejections_total\{code="ERR_TB_MALFORMED"\} 1$/m);
  } finally {
    t.is(await server.stop(), ExitCode.ok);
  }
});

test('--cert/--key, --key-parameters and --required', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-serve-'));
  await writeFile(join(dir, 'cert.pem'), testCertificate.cert);
  await writeFile(join(dir, 'key.pem'), testCertificate.key);
  const server = await start(['--host', '127.0.0.1', '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem'), '--key-parameters', 'rsa2048_pss', '--required']);
  // openConnection trusts testCertificate: the handshake itself shows our certificate is served.
  const connection = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    const missing = await connection.request('/whoami');
    t.is(missing.status, 400);
    t.is((JSON.parse(missing.body) as { code: string }).code, 'ERR_TB_HEADER_MISSING');
    const ec = await connection.request('/whoami', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: connection.ekm }) });
    t.is((JSON.parse(ec.body) as { code: string }).code, 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
    const rsa = generateTokenBindingKey('rsa2048_pss');
    const ok = await connection.request('/whoami', { 'sec-token-binding': createSecTokenBindingHeader({ provided: rsa, ekm: connection.ekm }) });
    t.is(ok.status, 200);
    t.like(JSON.parse(ok.body), { tokenBinding: { provided: { keyParameters: 'rsa2048_pss' } } });
  } finally {
    await connection.close();
    t.is(await server.stop(), ExitCode.ok);
    await rm(dir, { recursive: true, force: true });
  }
});

test('unreadable certificate files and a busy port exit 1', async (t) => {
  const err: string[] = [];
  const io = (): CliIo => ({
    stdin: Readable.from([]),
    stdout: new Writable({ write: (_c, _e, cb) => cb() }),
    stderr: new Writable({
      write(chunk: Buffer, _e, cb) {
        err.push(chunk.toString());
        cb();
      },
    }),
    env: {},
  });
  t.is(await serve(['--port', '0', '--cert', '/nonexistent/cert.pem', '--key', '/nonexistent/key.pem'], io()), ExitCode.failure);
  const running = await start([]);
  try {
    t.is(await serve(['--port', String(running.port)], io()), ExitCode.failure);
    t.regex(err.join(''), new RegExp(`tokbind serve: 127\\.0\\.0\\.1:${running.port} is in use: pick another with --port N or PORT=N \\(0 picks a free one\\)`));
  } finally {
    await running.stop();
  }
});

test('usage errors', async (t) => {
  const io: CliIo = { stdin: Readable.from([]), stdout: new Writable({ write: (_c, _e, cb) => cb() }), stderr: new Writable({ write: (_c, _e, cb) => cb() }), env: {} };
  for (const argv of [['--port', 'http'], ['--port', '70000'], ['--cert', 'a.pem'], ['--key-parameters', 'ecdsa'], ['--bogus'], ['--host']]) {
    await t.throwsAsync(serve(argv, io), { instanceOf: UsageError }, argv.join(' '));
  }
});

async function certFiles(t: { teardown(fn: () => Promise<void>): void }): Promise<{ dir: string; cert: string; key: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-serve-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'cert.pem'), testCertificate.cert);
  await writeFile(join(dir, 'key.pem'), testCertificate.key);
  return { dir, cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
}

test('--required does not apply to GET /metrics (Prometheus sends no binding); everything else needs one', async (t) => {
  const files = await certFiles(t);
  const server = await start(['--cert', files.cert, '--key', files.key, '--required']);
  const connection = await openConnection(server.port, { tls: 'TLSv1.3' });
  try {
    const metrics = await connection.request('/metrics');
    t.is(metrics.status, 200);
    t.regex(metrics.body, /^tokbind_verifications_total/m);
    for (const path of ['/whoami', '/nowhere']) {
      const refused = await connection.request(path);
      t.is(refused.status, 400, path);
      t.is((JSON.parse(refused.body) as { code: string }).code, 'ERR_TB_HEADER_MISSING');
    }
    const bound = await connection.request('/whoami', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: connection.ekm }) });
    t.is(bound.status, 200);
    // An invalid header is refused on every path, /metrics included (the server judges it first).
    t.is((await connection.request('/metrics', { 'sec-token-binding': 'AAA' })).status, 400);
  } finally {
    await connection.close();
    t.is(await server.stop(), ExitCode.ok);
  }
});

test('--on-invalid ignore lets an invalid header through unbound (reject is the default); with --required it is still refused', async (t) => {
  const files = await certFiles(t);
  for (const [argv, status] of [
    [[], 400],
    [['--on-invalid', 'reject'], 400],
    [['--on-invalid=ignore'], 200],
    [['--on-invalid', 'ignore', '--required'], 400],
  ] as const) {
    const server = await start(['--cert', files.cert, '--key', files.key, ...argv]);
    const connection = await openConnection(server.port, { tls: 'TLSv1.3' });
    try {
      const r = await connection.request('/whoami', { 'sec-token-binding': 'AAA' });
      t.is(r.status, status, argv.join(' '));
      if (status === 200) t.deepEqual(JSON.parse(r.body), { tokenBinding: null });
    } finally {
      await connection.close();
      t.is(await server.stop(), ExitCode.ok);
    }
  }
  const io: CliIo = { stdin: Readable.from([]), stdout: new Writable({ write: (_c, _e, cb) => cb() }), stderr: new Writable({ write: (_c, _e, cb) => cb() }), env: {} };
  const err = await t.throwsAsync(serve(['--on-invalid', 'drop'], io), { instanceOf: UsageError });
  t.is(err!.message, '--on-invalid must be one of reject, ignore, got "drop"');
});

test('--inspect-client-hello reads ClientHellos before TLS: a record announcing more than 16 KiB is dropped at once', async (t) => {
  const files = await certFiles(t);
  // The header of a handshake record longer than any ClientHello the inspector accepts.
  const oversize = Uint8Array.of(22, 3, 1, 0x40, 0x01, 1);
  const probe = async (port: number) => {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(oversize);
    let closed = false;
    socket.on('error', () => {});
    socket.once('close', () => (closed = true));
    return { socket, closed: () => closed, close: once(socket, 'close') };
  };
  const inspected = await start(['--cert', files.cert, '--key', files.key, '--inspect-client-hello']);
  try {
    const p = await probe(inspected.port);
    await p.close; // the server hung up without waiting for the rest
    t.true(p.closed());
  } finally {
    t.is(await inspected.stop(), ExitCode.ok);
  }
  // Without it Node's TLS waits for the rest of the record: a whole request on another
  // connection completes first.
  const plain = await start(['--cert', files.cert, '--key', files.key]);
  try {
    const p = await probe(plain.port);
    const connection = await openConnection(plain.port, { tls: 'TLSv1.3' });
    t.is((await connection.request('/whoami')).status, 200);
    await connection.close();
    t.false(p.closed());
    p.socket.destroy();
  } finally {
    t.is(await plain.stop(), ExitCode.ok);
  }
});

test('bad --cert/--key name the file and what is wrong; exit 1 with a JSON error', async (t) => {
  const files = await certFiles(t);
  const junk = join(files.dir, 'junk.pem');
  await writeFile(junk, 'not a pem file\n');
  const other = join(files.dir, 'other-key.pem');
  const { generateKeyPairSync } = await import('node:crypto');
  await writeFile(other, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const cases: [string[], RegExp][] = [
    [['--cert', junk, '--key', files.key], /^--cert .*junk\.pem: no PEM certificate \(-----BEGIN CERTIFICATE-----\) found: it is not PEM$/],
    [['--cert', files.key, '--key', files.key], /^--cert .*key\.pem: no PEM certificate .* found: it holds a PEM "PRIVATE KEY" block$/],
    [['--cert', files.cert, '--key', files.cert], /^--key .*cert\.pem: no PEM private key .* found: it holds a PEM "CERTIFICATE" block$/],
    [['--cert', files.cert, '--key', other], /^--key .*other-key\.pem is not the private key of the certificate in --cert .*cert\.pem/],
    [['--cert', join(files.dir, 'missing.pem'), '--key', files.key], /^--cert .*missing\.pem: cannot read the file \(no such file\)$/],
  ];
  for (const [argv, message] of cases) {
    const err: string[] = [];
    const io: CliIo = {
      stdin: Readable.from([]),
      stdout: new Writable({ write: (_c, _e, cb) => cb() }),
      stderr: new Writable({
        write(chunk: Buffer, _e, cb) {
          err.push(chunk.toString());
          cb();
        },
      }),
      env: {},
    };
    t.is(await serve(['--port', '0', ...argv], io), ExitCode.failure, argv.join(' '));
    const { error } = JSON.parse(err.join('')) as { error: { code: string; message: string } };
    t.is(error.code, 'ERR_CLI_INPUT');
    t.regex(error.message, message);
    t.notRegex(error.message, /PEM routines|no start line/);
  }
  // - reads one of them from stdin.
  const fromStdin: CliIo = {
    stdin: Readable.from([Buffer.from(testCertificate.key)]),
    stdout: new Writable({ write: (_c, _e, cb) => cb() }),
    stderr: new Writable({ write: (_c, _e, cb) => cb() }),
    env: {},
  };
  const controller = new AbortController();
  const running = serve(['--port', '0', '--cert', files.cert, '--key', '-'], fromStdin, controller.signal);
  setTimeout(() => controller.abort(), 200);
  t.is(await running, ExitCode.ok);
  await t.throwsAsync(serve(['--cert', '-', '--key', '-'], fromStdin), { instanceOf: UsageError, message: /only one of --cert, --key can read stdin/ });
});
