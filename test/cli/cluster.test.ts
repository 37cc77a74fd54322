/**
 * `--workers N` and `--proxy-protocol` on `tokbind serve`, through the real binary: node:cluster
 * workers on one port, one listening line, a worker that dies replaced, a clean stop; the PROXY
 * protocol header read before TLS.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import https from 'node:https';
import { connect as netConnect } from 'node:net';
import tls from 'node:tls';
import test from 'ava';
import { TokenBindingAgent } from '../../src/client/agent.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { exportTokenBindingKeyingMaterial } from '../../src/tls/ekm.js';
import { runBin, spawnBin } from './_bin.js';

const LISTENING = /^listening on https:\/\/127\.0\.0\.1:(\d+)$/m;

interface Started {
  readonly child: ChildProcess;
  readonly port: number;
  readonly stdout: () => string;
  readonly stderr: () => string;
  stop(): Promise<number | null>;
}

async function start(args: readonly string[]): Promise<Started> {
  const child = spawnBin(['serve', '--port', '0', ...args]);
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = once(child, 'exit');
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      const m = LISTENING.exec(stdout);
      if (m !== null) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code} before listening: ${stderr}`)));
  });
  return {
    child,
    port,
    stdout: () => stdout,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

function workerPids(primary: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(primary)], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l !== '')
      .map(Number);
  } catch {
    return [];
  }
}

interface Whoami {
  readonly status: number;
  readonly id: string | undefined;
}

function whoami(port: number, agent: https.Agent): Promise<Whoami> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: '/whoami', agent, rejectUnauthorized: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (s: string) => (body += s));
        res.on('end', () => {
          const parsed = JSON.parse(body) as { tokenBinding?: { provided?: { id?: string } } | null };
          resolve({ status: res.statusCode ?? 0, id: parsed.tokenBinding?.provided?.id });
        });
      })
      .on('error', reject);
  });
}

test('serve --workers 2: two workers on one port behind one listening line; a dead worker is replaced; SIGTERM stops all', async (t) => {
  const server = await start(['--workers', '2']);
  t.teardown(() => server.stop());
  t.is(server.stdout().match(/listening on/g)?.length, 1, 'one listening line for all workers');
  const before = workerPids(server.child.pid!);
  t.is(before.length, 2, 'two worker processes');

  // New connections each time: the cluster spreads them; every one is bound and sees one certificate.
  const agent = new TokenBindingAgent({ keepAlive: false, rejectUnauthorized: false });
  t.teardown(() => agent.destroy());
  const replies: Whoami[] = [];
  for (let i = 0; i < 6; i++) replies.push(await whoami(server.port, agent));
  t.true(replies.every((r) => r.status === 200 && r.id !== undefined));
  t.is(new Set(replies.map((r) => r.id)).size, 1);
  // Every connection meets the same certificate, and resumes the first one's TLS session on
  // whichever worker it lands (the workers share their ticket keys).
  // (A resumed TLS 1.3 connection reports no peer certificate: fingerprints come from full handshakes.)
  const fingerprints = new Set<string>();
  let session: Buffer | undefined;
  let resumed = 0;
  for (let i = 0; i < 10; i++) {
    const resume = i >= 4;
    const socket = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', rejectUnauthorized: false, ...(resume ? { session: session! } : {}) });
    socket.on('session', (s: Buffer) => (session ??= s));
    await once(socket, 'secureConnect');
    if (resume) resumed += socket.isSessionReused() ? 1 : 0;
    else fingerprints.add(socket.getPeerCertificate().fingerprint256);
    socket.write('GET /whoami HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n');
    socket.resume();
    await once(socket, 'close');
  }
  t.is(fingerprints.size, 1, 'workers share one self-signed certificate');
  t.is(resumed, 6, 'every resuming connection resumed, whichever worker it reached');

  // A worker killed from outside is replaced, and the port keeps answering.
  process.kill(before[0]!, 'SIGKILL');
  const deadline = Date.now() + 15_000;
  const replaced = (): boolean => {
    const now = workerPids(server.child.pid!);
    return now.length === 2 && !now.includes(before[0]!) && /worker \d+ exited/.test(server.stderr());
  };
  while (!replaced()) {
    if (Date.now() > deadline) t.fail(`no replacement worker: ${server.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  t.regex(server.stderr(), /worker \d+ exited \(SIGKILL\); starting another/);
  for (let i = 0; i < 4; i++) t.is((await whoami(server.port, agent)).status, 200);

  const after = workerPids(server.child.pid!);
  t.is(await server.stop(), 0);
  for (const pid of after) t.throws(() => process.kill(pid, 0), undefined, `worker ${pid} is gone`);
});

test('serve --workers: usage errors exit 2; a port in use fails every worker and the primary exits 1', async (t) => {
  for (const bad of ['0', '-1', 'two', '1.5', '100000']) {
    const run = await runBin(['serve', '--port', '0', '--workers', bad]);
    t.is(run.code, 2, bad);
    t.regex(run.stderr, /--workers must be an integer 1\.\.\d+ or auto/);
  }
  const taken = await start([]);
  t.teardown(() => taken.stop());
  const run = await runBin(['serve', '--port', String(taken.port), '--workers', '2']);
  t.is(run.code, 1);
  t.regex(run.stderr, /is in use: pick another with --port N or PORT=N/);
  t.notRegex(run.stdout, /listening on/);
});

test('serve --workers auto runs one worker per core', async (t) => {
  const server = await start(['--workers', 'auto']);
  t.teardown(() => server.stop());
  const { availableParallelism } = await import('node:os');
  t.is(workerPids(server.child.pid!).length, availableParallelism());
  t.is(await server.stop(), 0);
});

test('serve --proxy-protocol: the header comes first, then TLS; a connection without it is closed', async (t) => {
  const server = await start(['--proxy-protocol']);
  t.teardown(() => server.stop());
  const raw = netConnect({ host: '127.0.0.1', port: server.port });
  await once(raw, 'connect');
  raw.write('PROXY TCP4 192.0.2.7 127.0.0.1 51000 8443\r\n');
  const secure = tls.connect({ socket: raw, servername: 'localhost', rejectUnauthorized: false });
  await once(secure, 'secureConnect');
  const binding = createSecTokenBindingHeader({ provided: generateTokenBindingKey(), ekm: exportTokenBindingKeyingMaterial(secure) });
  secure.end(`GET /whoami HTTP/1.1\r\nhost: localhost\r\nsec-token-binding: ${binding}\r\nconnection: close\r\n\r\n`);
  let text = '';
  secure.setEncoding('utf8').on('data', (s: string) => (text += s));
  await once(secure, 'close');
  t.regex(text, /^HTTP\/1\.1 200/);
  t.regex(text, /"provided"/);

  const direct = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', rejectUnauthorized: false });
  const [error] = (await once(direct, 'error')) as [Error];
  t.truthy(error);
  t.is(await server.stop(), 0);
});

test('--workers needs the tokbind binary itself', async (t) => {
  const { serve } = await import('../../src/cli/serve.js');
  const { runCommand } = await import('./_run.js');
  await t.throwsAsync(runCommand(serve, ['--port', '0', '--workers', '2']), { message: /--workers needs the tokbind command itself/ });
});
