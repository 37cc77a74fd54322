/**
 * Verification figures. The baseline is node:crypto verifying the same 34-byte signed data
 * (`type || key_parameters || EKM`, RFC 8471 §3.3) with the same kind of key; the candidate is
 * tokbind's full server processing of a Sec-Token-Binding value through `verifyTokenBindingHeader`
 * (base64url decode, parse, structural checks, signed data, verify, result with `tbh`, metrics)
 * on a fresh per-connection state each call, so nothing comes from the per-connection cache.
 *
 * - known key: the backend's imported-key cache is warm (one client key) — `verify.tokbind_ops`;
 * - new key: N distinct keys cycled in order, N = 8 × the cache size, so every call imports the key —
 *   against node:crypto `createPublicKey` (JWK or SPKI DER, whichever is faster here) + verify;
 * - cached: the same value on the same connection state — a per-connection cache hit;
 * - noble: the same full processing with `nobleBackend` (pure-JS P-256) against the raw baseline;
 * - RSA: rsa2048_pss and rsa2048_pkcs1.5, full processing against raw node:crypto verify.
 *
 * Each group runs in its own child process (see lib/isolate.ts), its baseline beside it.
 */
import { constants, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { tokenBindingSignedData } from '../src/codec/signed-data.js';
import { DEFAULT_KEY_CACHE_SIZE } from '../src/crypto/lru.js';
import { nobleBackend } from '../src/crypto/noble-backend.js';
import { createSecTokenBindingHeader, generateTokenBindingKey, tokenBindingKeyFromKeyObject } from '../src/crypto/sign.js';
import { generateKeyPair } from './lib/keys.js';
import type { TokenBindingVerifyOptions } from '../src/http/options.js';
import { verifyTokenBindingHeader } from '../src/http/verify.js';
import { connectionFacts, freshConnection } from './lib/connection.js';
import type { BenchContext } from './lib/context.js';
import { runIsolated, serveGroups } from './lib/isolate.js';
import type { Group } from './lib/isolate.js';
import { asHeaderString } from './lib/strings.js';
import { compare } from './lib/micro.js';
import type { MicroCase } from './lib/micro.js';
import { pairedRatio, summarize } from './lib/stats.js';

/** A case that runs tokbind's full processing of `headers[i % n]`, on a fresh state each call. */
function tokbindCase(name: string, headers: readonly string[], ekm: Uint8Array, options: TokenBindingVerifyOptions): MicroCase {
  const facts = connectionFacts(ekm);
  let i = 0;
  return {
    name,
    run: (n) => {
      let r = null;
      for (let k = 0; k < n; k++) {
        r = verifyTokenBindingHeader(headers[i]!, freshConnection(facts), options);
        if (++i === headers.length) i = 0;
      }
      if (r?.provided === undefined) throw new Error(`${name}: verification did not succeed`);
      return r;
    },
  };
}

function rawCase(name: string, data: Uint8Array, key: Parameters<typeof verify>[2], sig: Uint8Array): MicroCase {
  return {
    name,
    run: (n) => {
      let ok = true;
      for (let k = 0; k < n; k++) ok = verify('sha256', data, key, sig) && ok;
      if (!ok) throw new Error(`${name}: raw verify failed`);
      return ok;
    },
  };
}

/** A client key, an EKM and the header it signs: a returning client on a new connection. */
function knownKeySetup(): { ekm: Uint8Array; data: Uint8Array; raw: ReturnType<typeof generateKeyPair>; header: string; rawSig: Buffer } {
  const ekm = new Uint8Array(randomBytes(32));
  const data = tokenBindingSignedData(0, 2, ekm);
  const raw = generateKeyPair('ec');
  const header = asHeaderString(createSecTokenBindingHeader({ provided: tokenBindingKeyFromKeyObject(raw.privateKey, 'ecdsap256'), ekm }));
  const rawSig = sign('sha256', data, { key: raw.privateKey, dsaEncoding: 'ieee-p1363' });
  return { ekm, data, raw, header, rawSig };
}

const known: Group = {
  setup() {
    const { ekm, data, raw, header, rawSig } = knownKeySetup();
    return {
      cases: [rawCase('raw', data, { key: raw.publicKey, dsaEncoding: 'ieee-p1363' }, rawSig), tokbindCase('tokbind', [header], ekm, {})],
      report(res) {
        const rawOps = res.get('raw')!.ops;
        const tb = res.get('tokbind')!;
        return {
          figures: [
            {
              key: 'verify.tokbind_ops',
              label: 'verify.tokbind_ops (known key, uncached)',
              unit: 'ops/s',
              summary: tb.ops,
              baseline: { key: 'verify.raw_ops', label: 'node:crypto', summary: rawOps },
              ratio: { key: 'verify.ratio', summary: tb.ratio! },
              target: { on: 'ratio', op: '>=', value: 0.85 },
            },
          ],
          values: { 'verify.overhead_ns': Math.round(1e9 / tb.ops.median - 1e9 / rawOps.median) },
        };
      },
    };
  },
};

const noble: Group = {
  setup() {
    const { ekm, data, raw, header, rawSig } = knownKeySetup();
    return {
      cases: [rawCase('raw', data, { key: raw.publicKey, dsaEncoding: 'ieee-p1363' }, rawSig), tokbindCase('noble', [header], ekm, { backend: nobleBackend })],
      report: (res) => ({
        figures: [
          {
            key: 'verify.noble_ops',
            label: 'verify.noble_ops (known key, uncached)',
            unit: 'ops/s',
            summary: res.get('noble')!.ops,
            baseline: { key: 'verify.noble_raw_ops', label: 'node:crypto', summary: res.get('raw')!.ops },
            ratio: { key: 'verify.noble_ratio', summary: res.get('noble')!.ratio! },
          },
        ],
        values: {},
      }),
    };
  },
};

/**
 * New key: 8 × as many distinct keys as the cache holds, cycled in order, so every call imports:
 * the cache is two-way set-associative (IdCache), and a set revisited after ~16 other keys of its
 * own has kept neither of its two. (With 1.5 × its size, as when it was an LRU, some sets would
 * still hold their keys and the figure would flatter.) The
 * baseline, raw import + verify, uses whichever import is faster here (JWK or SPKI DER; measured
 * in setup). Separate processes: see lib/isolate.ts.
 */
const newKey: Group = {
  mode: 'separate',
  setup(b) {
    const ekm = new Uint8Array(randomBytes(32));
    const data = tokenBindingSignedData(0, 2, ekm);
    const n = DEFAULT_KEY_CACHE_SIZE * 8;
    const headers: string[] = [];
    const jwks: { key: { kty: string; crv: string; x: string; y: string }; format: 'jwk' }[] = [];
    const spkis: Buffer[] = [];
    const sigs: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const k = generateTokenBindingKey('ecdsap256');
      headers.push(asHeaderString(createSecTokenBindingHeader({ provided: k, ekm })));
      const { kty, crv, x, y } = k.publicKey.export({ format: 'jwk' });
      jwks.push({ key: { kty: kty!, crv: crv!, x: x!, y: y! }, format: 'jwk' });
      spkis.push(k.publicKey.export({ format: 'der', type: 'spki' }));
      sigs.push(sign('sha256', data, { key: k.privateKey, dsaEncoding: 'ieee-p1363' }));
    }
    const importCase = (name: string, load: (i: number) => KeyObject): MicroCase => {
      let i = 0;
      return {
        name,
        run: (count) => {
          let ok = true;
          for (let c = 0; c < count; c++) {
            ok = verify('sha256', data, { key: load(i), dsaEncoding: 'ieee-p1363' }, sigs[i]!) && ok;
            if (++i === n) i = 0;
          }
          if (!ok) throw new Error(`${name}: raw import+verify failed`);
          return ok;
        },
      };
    };
    const rawJwk = importCase('raw-jwk', (i) => createPublicKey(jwks[i]!));
    const rawSpki = importCase('raw-spki', (i) => createPublicKey({ key: spkis[i]!, format: 'der', type: 'spki' }));
    // Deterministic across the separate processes: each must pick the same baseline.
    const pick = compare([rawJwk, rawSpki], { rounds: 1, roundMs: b.microMs, warmupMs: b.microWarmupMs });
    const jwk = pick.get('raw-jwk')!.ops.median;
    const spki = pick.get('raw-spki')!.ops.median;
    return {
      cases: [rawJwk, rawSpki, tokbindCase('tokbind', headers, ekm, {})],
      report(res) {
        const useJwk = res.get('raw-jwk')!.ops.median >= res.get('raw-spki')!.ops.median;
        const baseName = useJwk ? 'raw-jwk' : 'raw-spki';
        const base = res.get(baseName)!.ops;
        const tb = res.get('tokbind')!.ops;
        return {
          figures: [
            {
              key: 'verify.new_key_ops',
              label: `verify.new_key_ops (${n} keys, key cache ${DEFAULT_KEY_CACHE_SIZE})`,
              unit: 'ops/s',
              summary: tb,
              baseline: { key: 'verify.new_key_raw_ops', label: useJwk ? 'import JWK' : 'import SPKI', summary: base },
              ratio: { key: 'verify.new_key_ratio', summary: pairedRatio(tb.rounds, base.rounds) },
              target: { on: 'ratio', op: '>=', value: 0.85 },
              note: `raw baseline = the faster of createPublicKey(JWK) ${Math.round(res.get('raw-jwk')!.ops.median)}/s and createPublicKey(SPKI DER) ${Math.round(res.get('raw-spki')!.ops.median)}/s (+ verify), each case in its own process`,
            },
          ],
          values: { 'verify.new_key_raw_jwk_ops': Math.round(jwk), 'verify.new_key_raw_spki_ops': Math.round(spki) },
        };
      },
    };
  },
};

/** Cached: the same header on the same connection — every keep-alive request after the first. */
const cached: Group = {
  setup() {
    const { ekm, header } = knownKeySetup();
    const state = freshConnection(connectionFacts(ekm));
    const options = {};
    verifyTokenBindingHeader(header, state, options);
    return {
      cases: [
        {
          name: 'cached',
          run: (count) => {
            let r = null;
            for (let c = 0; c < count; c++) r = verifyTokenBindingHeader(header, state, options);
            if (r?.provided === undefined) throw new Error('cached verification did not succeed');
            return r;
          },
        },
      ],
      report: (res) => ({
        figures: [
          {
            key: 'verify.cached_ns',
            label: 'verify.cached_ns (connection cache hit)',
            unit: 'ns',
            summary: summarize(res.get('cached')!.ops.rounds.map((ops) => 1e9 / ops)),
            target: { on: 'value', op: '<=', value: 2000 },
          },
        ],
        values: {},
      }),
    };
  },
};

/** RSA: full processing (known key) against raw node:crypto verify with the same padding. */
function rsa(name: 'rsa2048_pss' | 'rsa2048_pkcs1.5', short: 'rsa_pss' | 'rsa_pkcs1'): Group {
  return {
    setup() {
      const ekm = new Uint8Array(randomBytes(32));
      const k = generateTokenBindingKey(name);
      const data = tokenBindingSignedData(0, k.keyParameters, ekm);
      const pss = name === 'rsa2048_pss';
      const padding = pss ? constants.RSA_PKCS1_PSS_PADDING : constants.RSA_PKCS1_PADDING;
      const sig = sign('sha256', data, pss ? { key: k.privateKey, padding, saltLength: 32 } : k.privateKey);
      const header = asHeaderString(createSecTokenBindingHeader({ provided: k, ekm }));
      return {
        cases: [rawCase('raw', data, pss ? { key: k.publicKey, padding, saltLength: 32 } : k.publicKey, sig), tokbindCase('tokbind', [header], ekm, { keyParameters: [name] })],
        report: (res) => ({
          figures: [
            {
              key: `verify.${short}_ops`,
              label: `verify.${short}_ops (known key, uncached)`,
              unit: 'ops/s',
              summary: res.get('tokbind')!.ops,
              baseline: { key: `verify.${short}_raw_ops`, label: 'node:crypto', summary: res.get('raw')!.ops },
              ratio: { key: `verify.${short}_ratio`, summary: res.get('tokbind')!.ratio! },
            },
          ],
          values: {},
        }),
      };
    },
  };
}

const groups: Record<string, Group> = {
  known,
  noble,
  newKey,
  cached,
  rsaPss: rsa('rsa2048_pss', 'rsa_pss'),
  rsaPkcs1: rsa('rsa2048_pkcs1.5', 'rsa_pkcs1'),
};

export async function benchVerify(ctx: BenchContext): Promise<void> {
  for (const [name, group] of Object.entries(groups)) await runIsolated(ctx, new URL(import.meta.url), name, group.mode);
}

serveGroups(import.meta.url, groups);
