/** `tokbind serve` as a child process (the built binary), and a scrape of its /metrics. */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { testCertificate } from '../_tls.js';
import { RawHttpConnection, within } from '../reliability/_net.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Spawns `tokbind serve ...args` and resolves with its port once it printed its first line. */
export async function spawnServe(t: ExecutionContext, args: readonly string[] = []): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-metrics-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'cert.pem'), testCertificate.cert);
  await writeFile(join(dir, 'key.pem'), testCertificate.key);
  const child = spawn(process.execPath, [MAIN, 'serve', '--port', '0', '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  t.teardown(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  });
  return within(
    new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const match = /listening on https:\/\/127\.0\.0\.1:(\d+)\n/.exec(out);
        if (match) resolve(Number(match[1]));
      });
      child.once('exit', (code) => reject(new Error(`tokbind serve exited ${code}: ${stderr}`)));
    }),
    20_000,
    'tokbind serve listening',
  );
}

export async function scrapeMetrics(port: number): Promise<{ text: string; type: string | undefined }> {
  const c = await RawHttpConnection.open(port);
  try {
    const res = await c.request([], '/metrics');
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${res.body}`);
    return { text: res.body, type: res.headers['content-type'] };
  } finally {
    await c.close();
  }
}

