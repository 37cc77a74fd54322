/**
 * `tokbind proxy` and `tokbind forward` through the real binary (dist/src/cli/main.js in a child
 * process): the listening line, requests through them, SIGTERM, usage and input errors.
 */
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { FileKeyStore } from '../../src/client/keystore.js';
import { formatTokenBindingID } from '../../src/codec/message.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { createForwardingVerifier } from '../../src/http/assertion.js';
import { createServer } from '../../src/http/server.js';
import { listen, testCertificate } from '../_tls.js';
import { openConnection } from '../adapters/_client.js';
import { rawValues, startUpstream } from '../proxy/_setup.js';
import { runBin, spawnBin } from './_bin.js';

interface Running {
  readonly child: ChildProcess;
  readonly url: string;
  readonly port: number;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Spawns the binary and resolves once it printed `listening on <scheme>://127.0.0.1:PORT`. */
function start(args: string[]): Promise<Running> {
  const child = spawnBin(args);
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const match = /^listening on (https?:\/\/127\.0\.0\.1:(\d+))\n/.exec(out);
      if (match !== null) {
        resolve({
          child,
          url: match[1]!,
          port: Number(match[2]),
          stop: async () => {
            const exited = once(child, 'exit') as Promise<[number | null]>;
            child.kill('SIGTERM');
            return (await exited)[0];
          },
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${code} before listening: ${err}`)));
  });
}

const key = generateTokenBindingKey();

test('tokbind proxy: prints its URL, forwards a verified request with the TTRP headers and a verifiable assertion, refuses unbound under --required, exits 0 on SIGTERM', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-proxy-cli-'));
  const upstream = await startUpstream();
  const forwardKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyFile = join(dir, 'forward.jwk');
  await writeFile(keyFile, JSON.stringify(forwardKey.privateKey.export({ format: 'jwk' })));
  const certFile = join(dir, 'cert.pem');
  const tlsKeyFile = join(dir, 'key.pem');
  await writeFile(certFile, testCertificate.cert);
  await writeFile(tlsKeyFile, testCertificate.key);
  const proxy = await start([
    'proxy',
    '--upstream',
    upstream.url,
    '--port',
    '0',
    '--cert',
    certFile,
    '--key',
    tlsKeyFile,
    '--required',
    `--forward-key=${keyFile}`,
  ]);
  try {
    t.regex(proxy.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const conn = await openConnection(proxy.port, { tls: 'TLSv1.3' });
    try {
      const res = await conn.request('/app?x=1', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) });
      t.is(res.status, 200);
      const unbound = await conn.request('/app');
      t.is(unbound.status, 400);
      t.is(JSON.parse(unbound.body).code, 'ERR_TB_HEADER_MISSING');
    } finally {
      await conn.close();
    }
    t.is(upstream.received.length, 1);
    const got = upstream.received[0]!;
    t.deepEqual(rawValues(got.rawHeaders, 'sec-provided-token-binding-id'), [formatTokenBindingID(key.id)]);
    const [assertion] = rawValues(got.rawHeaders, 'sec-token-binding-assertion');
    await t.notThrowsAsync(
      createForwardingVerifier(forwardKey.publicKey).verify(assertion, {
        htm: 'GET',
        htp: '/app?x=1',
        provided: formatTokenBindingID(key.id),
        referred: null,
        other: null,
      }),
    );
  } finally {
    t.is(await proxy.stop(), 0);
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('tokbind proxy: usage errors exit 2, an unusable forward key or certificate exits 1 with a coded JSON error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-proxy-cli-'));
  try {
    const missing = await runBin(['proxy', '--port', '0']);
    t.is(missing.code, 2);
    t.regex(missing.stderr, /--upstream/);
    for (const upstream of ['ftp://127.0.0.1:1', 'http://127.0.0.1:1/path']) {
      const bad = await runBin(['proxy', '--upstream', upstream, '--port', '0']);
      t.is(bad.code, 2, upstream);
    }
    t.is((await runBin(['proxy', '--upstream', 'http://127.0.0.1:1', '--key-parameters', 'nope'])).code, 2);
    t.is((await runBin(['proxy', '--upstream', 'http://127.0.0.1:1', '--cert', 'x.pem'])).code, 2);
    const secret = join(dir, 'secret.jwk');
    await writeFile(secret, JSON.stringify({ kty: 'oct', k: 'c2VjcmV0' }));
    for (const file of [secret, join(dir, 'absent.pem')]) {
      const res = await runBin(['proxy', '--upstream', 'http://127.0.0.1:1', '--port', '0', '--forward-key', file]);
      t.is(res.code, 1);
      t.is(JSON.parse(res.stderr).error.code, 'ERR_CLI_INPUT');
    }
    const help = await runBin(['proxy', '--help']);
    t.is(help.code, 0);
    for (const option of ['--upstream', '--port', '--host', '--cert', '--key', '--key-parameters', '--required', '--forward-key', '--workers', '--proxy-protocol']) {
      t.true(help.stdout.includes(option), option);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tokbind forward: a plain node:http client → sidecar → tokbind server /whoami shows the binding of the key store, the same key on repeated requests', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-forward-cli-'));
  const server = await listen(
    createServer({ key: testCertificate.key, cert: testCertificate.cert }, (req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ tokenBinding: req.tokenBinding ?? null }));
    }),
  );
  const caFile = join(dir, 'ca.pem');
  const keyStore = join(dir, 'keys.json');
  await writeFile(caFile, testCertificate.ca);
  const sidecar = await start(['forward', '--target', `https://127.0.0.1:${server.port}`, '--port=0', '--ca', caFile, '--key-store', keyStore]);
  try {
    t.regex(sidecar.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const body = await new Promise<string>((resolve, reject) => {
        http
          .get(`${sidecar.url}/whoami`, { agent: false }, (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c));
            res.on('end', () => resolve(text));
          })
          .on('error', reject);
      });
      ids.push((JSON.parse(body) as { tokenBinding: { provided: { id: string } } }).tokenBinding.provided.id);
    }
    const stored = await new FileKeyStore(keyStore).getKey('127.0.0.1', 'ecdsap256');
    t.deepEqual(ids, [formatTokenBindingID(stored!.id), formatTokenBindingID(stored!.id)]);
  } finally {
    t.is(await sidecar.stop(), 0);
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('tokbind forward: non-loopback --host is refused unless --allow-remote; --insecure with --ca, a non-https target and a bad CA file are refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-forward-cli-'));
  try {
    for (const host of ['0.0.0.0', '192.0.2.1', '::']) {
      const res = await runBin(['forward', '--target', 'https://127.0.0.1:1', '--port', '0', '--host', host]);
      t.is(res.code, 2, host);
      t.regex(res.stderr, /--allow-remote/);
    }
    t.is((await runBin(['forward', '--target', 'https://127.0.0.1:1', '--insecure', '--ca', 'x.pem'])).code, 2);
    t.is((await runBin(['forward', '--target', 'http://127.0.0.1:1'])).code, 2);
    t.is((await runBin(['forward'])).code, 2);
    const notPem = join(dir, 'ca.pem');
    await writeFile(notPem, 'not a certificate');
    const bad = await runBin(['forward', '--target', 'https://127.0.0.1:1', '--port', '0', '--ca', notPem]);
    t.is(bad.code, 1);
    t.is(JSON.parse(bad.stderr).error.code, 'ERR_CLI_INPUT');
    const help = await runBin(['forward', '--help']);
    for (const option of ['--target', '--port', '--host', '--key-store', '--insecure', '--ca', '--allow-remote']) t.true(help.stdout.includes(option), option);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tokbind proxy and tokbind forward: a port in use exits 1 with one line naming it; a target that is not a URL exits 2', async (t) => {
  const taken = await startUpstream();
  try {
    const proxyRun = await runBin(['proxy', '--upstream', 'http://127.0.0.1:1', '--port', String(taken.port)]);
    t.is(proxyRun.code, 1);
    t.regex(proxyRun.stderr, new RegExp(`tokbind proxy: 127\\.0\\.0\\.1:${taken.port} is in use`));
    const forwardRun = await runBin(['forward', '--target', 'https://127.0.0.1:1', '--port', String(taken.port)]);
    t.is(forwardRun.code, 1);
    t.regex(forwardRun.stderr, new RegExp(`tokbind forward: 127\\.0\\.0\\.1:${taken.port} is in use`));
    t.is((await runBin(['forward', '--target', 'nope'])).code, 2);
  } finally {
    await taken.close();
  }
});

test('tokbind proxy --workers 2: one listening line, requests served by the workers, SIGTERM stops them all', async (t) => {
  const upstream = await startUpstream();
  const proxy = await start(['proxy', '--upstream', upstream.url, '--port', '0', '--workers', '2']);
  try {
    for (let i = 0; i < 2; i++) {
      const status = await new Promise<number>((resolve, reject) => {
        https
          .get(`${proxy.url}/w${i}`, { rejectUnauthorized: false, agent: false }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          })
          .on('error', reject);
      });
      t.is(status, 200);
    }
    t.deepEqual(
      upstream.received.map((r) => r.url),
      ['/w0', '/w1'],
    );
  } finally {
    t.is(await proxy.stop(), 0);
    await upstream.close();
  }
});
