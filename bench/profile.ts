/**
 * CPU profiles of the hot paths, summarised per function (what is not the signature?):
 *
 *   node dist/bench/profile.js verify            uncached header verification, known key
 *   node dist/bench/profile.js verify-new-key    the same with a key never seen before
 *   node dist/bench/profile.js verify-rsa        the same with a known rsa2048_pss key
 *   node dist/bench/profile.js breakdown         ns per step of the uncached path (no profiler)
 *   node dist/bench/profile.js newconn-cold      µs of tokbind's own per-connection work (facts + first
 *                                                verification, signature stubbed) with the CPU caches
 *                                                flushed between connections, as between two handshakes
 *   node dist/bench/profile.js request           tokbind server under keep-alive load
 *   node dist/bench/profile.js request-newconn   tokbind server, one TLS connection per request
 *   node dist/bench/profile.js request-metrics   the same with a prom-client registry attached (tokbind/metrics)
 *   node dist/bench/profile.js request-plain     plain https server (for comparison)
 *   node dist/bench/profile.js relay-proxy       tokbind proxy in front of its backend (one process), keep-alive
 *   node dist/bench/profile.js relay-proxy-plain the undici relay it is measured against
 *   node dist/bench/profile.js request-floor-newconn  the new-connection floor server (EKM + 1 raw verify)
 *
 * Options: --seconds=N (default 5), --keep (keep the .cpuprofile files, printed paths).
 * Micro targets run in a child under `node --cpu-prof`; request targets profile the server child.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, randomBytes, verify as cryptoVerify } from 'node:crypto';
import { decodeSecTokenBindingHeader } from '../src/codec/header.js';
import { formatTokenBindingID, parseTokenBindingMessage } from '../src/codec/message.js';
import { tokenBindingSignedData } from '../src/codec/signed-data.js';
import { tokenBindingHash } from '../src/crypto/hash.js';
import { idCacheKey } from '../src/crypto/lru.js';
import { nodeBackend } from '../src/crypto/node-backend.js';
import { recordVerification } from '../src/http/metrics.js';
import { createVerifiedID } from '../src/http/result.js';
import { compare } from './lib/micro.js';
import { connectionFacts, freshConnection } from './lib/connection.js';
import { asHeaderString } from './lib/strings.js';
import { DEFAULT_KEY_CACHE_SIZE } from '../src/crypto/lru.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../src/crypto/sign.js';
import { verifyTokenBindingHeader } from '../src/http/verify.js';
import { resolveTokenBindingOptions } from '../src/http/options.js';
import { captureConnectionFacts, getConnectionContext } from '../src/tls/connection.js';
import { EventEmitter } from 'node:events';
import type { TLSSocket } from 'node:tls';
import { RELAY, startRig, runOnce } from './http.js';
import { createBenchCertificate } from './lib/cert.js';
import { QUICK } from './lib/context.js';
import type { BenchContext } from './lib/context.js';
import { formatProfile } from './lib/cpuprofile.js';
import { Child, detectPinning } from './lib/proc.js';
import { Report } from './lib/report.js';

const args = process.argv.slice(2);
const seconds = Number(args.find((a) => a.startsWith('--seconds='))?.slice(10) ?? 5);
const keep = args.includes('--keep');
const target = args.find((a) => !a.startsWith('--')) ?? 'verify';

function microLoop(name: string): void {
  const ekm = new Uint8Array(randomBytes(32));
  let headers: string[];
  if (name === 'verify') {
    headers = [asHeaderString(createSecTokenBindingHeader({ provided: generateTokenBindingKey('ecdsap256'), ekm }))];
  } else if (name === 'verify-rsa') {
    headers = [asHeaderString(createSecTokenBindingHeader({ provided: generateTokenBindingKey('rsa2048_pss'), ekm }))];
  } else {
    headers = Array.from({ length: DEFAULT_KEY_CACHE_SIZE * 8 }, () =>
      asHeaderString(createSecTokenBindingHeader({ provided: generateTokenBindingKey('ecdsap256'), ekm })),
    );
  }
  const facts = connectionFacts(ekm);
  const options = name === 'verify-rsa' ? { keyParameters: ['rsa2048_pss' as const] } : {};
  const end = performance.now() + seconds * 1000;
  let i = 0;
  let n = 0;
  while (performance.now() < end) {
    for (let k = 0; k < 100; k++) {
      if (verifyTokenBindingHeader(headers[i]!, freshConnection(facts), options) === null) throw new Error('no result');
      if (++i === headers.length) i = 0;
    }
    n += 100;
  }
  console.log(`${name}: ${Math.round(n / seconds)} ops/s under the profiler`);
}

type ProfiledKind = 'plain' | 'tokbind' | 'tokbind_metrics' | 'floor' | 'proxy_tokbind' | 'proxy_plain';

async function requestProfile(kind: ProfiledKind, mode: 'keepalive' | 'newconn', dir: string): Promise<void> {
  const children: Child[] = [];
  const pinning = detectPinning();
  const ctx: BenchContext = {
    budget: QUICK,
    quick: true,
    report: new Report(),
    cert: await createBenchCertificate(),
    pinning,
    log: console.log,
    spawn: (script, o) => {
      const c = new Child(script, { core: o.role === 'server' ? pinning.serverCore : pinning.generatorCore, name: o.name, ...(o.nodeArgs ? { nodeArgs: o.nodeArgs } : {}) });
      children.push(c);
      return c;
    },
    spawnProgram: () => {
      throw new Error('profiles run no whole programs');
    },
  };
  try {
    const relay = kind === 'proxy_tokbind' || kind === 'proxy_plain';
    const rig = relay
      ? await startRig(ctx, [kind], ['--cpu-prof', `--cpu-prof-dir=${dir}`], ctx.cert, RELAY)
      : await startRig(ctx, [kind], ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
    const r = await runOnce(ctx, rig, kind, {
      mode,
      auth: kind === 'plain' ? 'none' : 'tokbind',
      connections: mode === 'keepalive' ? 32 : 16,
      warmupMs: 500,
      durationMs: seconds * 1000,
    });
    console.log(`${kind} ${mode}: ${Math.round(r.rps)} req/s, server CPU ${(r.serverCpu * 100).toFixed(0)}%`);
  } finally {
    for (const c of children) await c.close();
  }
}

/** Times each step of the uncached path on its own, in ns per call (EC known key, then RSA-PSS). */
function breakdown(): void {
  const ekm = new Uint8Array(randomBytes(32));
  for (const kp of ['ecdsap256', 'rsa2048_pss'] as const) {
    const key = generateTokenBindingKey(kp);
    const header = createSecTokenBindingHeader({ provided: key, ekm });
    const flat = asHeaderString(header);
    const bytes = decodeSecTokenBindingHeader(flat);
    const message = parseTokenBindingMessage(bytes);
    const binding = message.bindings[0]!;
    const data = tokenBindingSignedData(0, key.keyParameters, ekm);
    const rawKey = kp === 'ecdsap256' ? { key: key.publicKey, dsaEncoding: 'ieee-p1363' as const } : { key: key.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
    const options = kp === 'ecdsap256' ? {} : { keyParameters: [kp] };
    const facts = connectionFacts(ekm);
    const steps: [string, () => unknown][] = [
      ['full verifyTokenBindingHeader (fresh state)', () => verifyTokenBindingHeader(flat, freshConnection(facts), options)],
      ['raw crypto.verify (pre-imported key)', () => cryptoVerify('sha256', data, rawKey, binding.signature)],
      ['nodeBackend.verify (cache hit + verify)', () => nodeBackend.verify(binding.id, data, binding.signature)],
      ['fresh connection state (bench-side cost)', () => freshConnection(facts)],
      [`decodeSecTokenBindingHeader (${flat.length} chars)`, () => decodeSecTokenBindingHeader(flat)],
      ['Buffer.from(value, "base64url") (for scale)', () => Buffer.from(flat, 'base64url')],
      ['parseTokenBindingMessage', () => parseTokenBindingMessage(bytes)],
      ['tokenBindingSignedData', () => tokenBindingSignedData(0, key.keyParameters, ekm)],
      ['idCacheKey (noble backend cache key)', () => idCacheKey(binding.id.raw)],
      ['createVerifiedID (id, tbh, freeze)', () => createVerifiedID(binding.id)],
      ['  tokenBindingHash (SHA-256 + base64url)', () => tokenBindingHash(binding.id.raw)],
      ['  formatTokenBindingID (base64url)', () => formatTokenBindingID(binding.id.raw)],
      ['recordVerification (metrics)', () => recordVerification('accepted', 1000, false, undefined, 'ecdsap256')],
    ];
    console.log(`\n${kp}: ns per call (median of 3 rounds)`);
    const res = compare(
      steps.map(([name, f]) => ({ name, run: (n: number) => { let r; for (let i = 0; i < n; i++) r = f(); return r; } })),
      { rounds: 3, roundMs: 300, warmupMs: 150 },
    );
    for (const [name] of steps) console.log(`  ${(1e9 / res.get(name)!.ops.median).toFixed(0).padStart(7)}  ${name}`);
  }
}

/**
 * A micro-benchmark in a loop runs with every cache warm; a server taking new connections runs
 * tokbind's per-connection code once between two TLS handshakes, with its code and data evicted.
 * Measured there, each step costs several times its loop figure (a SHA-256 call ~13 µs against
 * ~0.7 µs). This times the per-connection path with 8 MiB of other memory and some other code
 * touched before each connection, the signature replaced by a stub (its cost is the floor's too).
 */
function newconnCold(): void {
  const key = generateTokenBindingKey('ecdsap256');
  const ekm = new Uint8Array(32).fill(7);
  const headers = Array.from({ length: 512 }, () => asHeaderString(createSecTokenBindingHeader({ provided: key, ekm })));
  const options = resolveTokenBindingOptions({ backend: { name: 'stub', verify: () => true } });
  const capture = Object.freeze({ keyParameters: options.keyParameters, maxDistinctMessages: options.maxDistinctMessages });
  class FakeSocket extends EventEmitter {
    readonly _parent = {};
    readonly destroyed = false;
    getProtocol(): string {
      return 'TLSv1.3';
    }
    exportKeyingMaterial(): Buffer {
      return Buffer.from(ekm);
    }
    getSession(): undefined {
      return undefined;
    }
  }
  const junk = new Uint32Array((8 * 1024 * 1024) / 4);
  const blob = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ i, s: 'x'.repeat(i % 50) })));
  let sink = 0;
  const blocks: number[] = [];
  for (let block = -1; block < 10; block++) {
    let spent = 0;
    for (let i = 0; i < 1000; i++) {
      for (let j = 0; j < junk.length; j += 16) sink += junk[j]++;
      sink += (JSON.parse(blob) as unknown[]).length;
      const socket = new FakeSocket() as unknown as TLSSocket;
      const t0 = performance.now();
      captureConnectionFacts(socket, capture);
      if (verifyTokenBindingHeader(headers[i & 511]!, getConnectionContext(socket)!, options) === null) throw new Error('no result');
      spent += performance.now() - t0;
    }
    if (block >= 0) blocks.push(spent);
  }
  blocks.sort((a, b) => a - b);
  console.log(`newconn-cold: ${blocks[5]!.toFixed(1)} µs per connection (median of 10 × 1000; min ${blocks[0]!.toFixed(1)})${sink < 0 ? '' : ''}`);
}

const REQUEST_KINDS: Record<string, ProfiledKind> = {
  request: 'tokbind',
  'request-newconn': 'tokbind',
  'request-metrics': 'tokbind_metrics',
  'request-plain': 'plain',
  'request-floor-newconn': 'floor',
  'relay-proxy': 'proxy_tokbind',
  'relay-proxy-plain': 'proxy_plain',
};

async function main(): Promise<void> {
  if (target === 'breakdown') {
    breakdown();
    return;
  }
  if (target === 'newconn-cold') {
    newconnCold();
    return;
  }
  if (args.includes('--child')) {
    microLoop(target);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tokbind-prof-'));
  try {
    if (target === 'verify' || target === 'verify-new-key' || target === 'verify-rsa') {
      const r = spawnSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${dir}`, fileURLToPath(import.meta.url), target, '--child', `--seconds=${seconds}`], {
        stdio: 'inherit',
        timeout: (seconds + 120) * 1000,
      });
      if (r.status !== 0) throw new Error(`profiled child failed (${r.status})`);
    } else if (target in REQUEST_KINDS) {
      const kind = REQUEST_KINDS[target]!;
      await requestProfile(kind, target.endsWith('newconn') ? 'newconn' : 'keepalive', dir);
    } else {
      throw new Error(`unknown target ${target}`);
    }
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'))) {
      console.log(formatProfile(join(dir, f)));
    }
    if (keep) console.log(`profiles kept in ${dir}`);
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
