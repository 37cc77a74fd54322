/**
 * One key store, many real `tokbind keygen` and `tokbind fetch` processes at once (issue 12
 * Major 2): every key a process created or used is the key the store holds afterwards, for every
 * scope; same-scope racers all end with one key, and exactly one of them says it created it.
 */
import test from 'ava';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileKeyStore } from '../../src/client/keystore.js';
import { createServer } from '../../src/http/server.js';
import { testCertificate } from '../_tls.js';
import { runBin, type BinRun } from './_bin.js';

interface KeyLine {
  scope: string;
  hash: string;
  created: boolean;
}

/** A binding-aware server on `host` answering with the provided binding's `tbh`. */
async function hashServer(t: { teardown(fn: () => Promise<void>): void }, host: string): Promise<string> {
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert, tokenBinding: { required: true } }, (req, res) => {
    res.end(req.tokenBinding?.provided.hash ?? 'none');
  });
  server.listen(0, host);
  await once(server, 'listening');
  t.teardown(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });
  return `https://${host}:${(server.address() as AddressInfo).port}/`;
}

for (const round of [1, 2]) {
  test.serial(`round ${round}: 16 keygen and fetch processes on one store lose no key`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'tokbind-ks-procs-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const store = join(dir, 'keys.json');
    // Each loopback address is its own scope (an IP address is its own scope).
    const urls = await Promise.all(['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'].map((h) => hashServer(t, h)));

    type Job = { kind: 'keygen' | 'fetch'; scope: string; run: Promise<BinRun> };
    const jobs: Job[] = [];
    const keygen = (scope: string) => jobs.push({ kind: 'keygen', scope, run: runBin(['keygen', '--key-store', store, '--scope', scope]) });
    const fetch = (url: string) => jobs.push({ kind: 'fetch', scope: new URL(url).hostname, run: runBin(['fetch', url, '--insecure', '--key-store', store]) });
    for (let i = 0; i < 6; i++) keygen(`s${i}-r${round}.example`); // different scopes
    for (let i = 0; i < 4; i++) keygen(`same-r${round}.example`); // the same scope
    fetch(urls[0]!); // 127.0.0.1 by fetch twice and keygen twice: both kinds racing for one scope
    fetch(urls[0]!);
    keygen('127.0.0.1');
    keygen('127.0.0.1');
    fetch(urls[1]!);
    fetch(urls[2]!);
    fetch(urls[3]!);
    t.is(jobs.length, 17);

    const reported = new Map<string, { hash: string; created: boolean }[]>();
    for (const job of jobs) {
      const r = await job.run;
      t.is(r.code, 0, `${job.kind} ${job.scope}: ${r.stderr}`);
      const seen = job.kind === 'keygen' ? (JSON.parse(r.stdout) as KeyLine) : { scope: job.scope, hash: r.stdout, created: false };
      t.is(seen.scope, job.scope);
      reported.set(job.scope, [...(reported.get(job.scope) ?? []), { hash: seen.hash, created: seen.created }]);
    }

    // What the store holds afterwards, read by a fresh reader and by the binary.
    const after = new FileKeyStore(store);
    for (const [scope, seen] of reported) {
      const key = await after.getKey(scope, 'ecdsap256');
      t.truthy(key, `lost the key of ${scope}`);
      const { tokenBindingHash } = await import('../../src/crypto/hash.js');
      const hash = tokenBindingHash(key!.id);
      t.deepEqual(
        seen.map((s) => s.hash),
        seen.map(() => hash),
        `every process saw the stored key of ${scope}`,
      );
      t.true(seen.filter((s) => s.created).length <= 1, `${scope}: at most one creator`);
      if (scope.startsWith('s') || scope.startsWith('same')) t.is(seen.filter((s) => s.created).length, 1, `${scope}: one creator`);
      const shown = await runBin(['id', '--key-store', store, '--url', `https://${scope}/`]);
      t.is((JSON.parse(shown.stdout) as KeyLine).hash, hash, scope);
    }
    const file = JSON.parse(await readFile(store, 'utf8')) as { keys: Record<string, unknown> };
    t.deepEqual(Object.keys(file.keys).sort(), [...reported.keys()].sort());
  });
}
