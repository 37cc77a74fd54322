/**
 * Every Wycheproof case of the three RFC 8471 algorithms, on every backend, in one mechanical
 * loop per file: each group's public key becomes a TokenBindingID, each test's msg / sig go
 * through `backend.verify`, and the verdict must be Wycheproof's.
 *
 * `acceptable` cases follow OpenSSL, i.e. node:crypto, and are pinned here so a change shows: the
 * only one (rsa_signature_2048_sha256 tcId 8, DigestInfo without the NULL parameter) is rejected
 * — RFC 8017 §9.2 encodes the NULL, and a verifier that re-encodes and compares refuses the rest.
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import { createTokenBindingID, encodeEcP256PublicKey, encodeRsaPublicKey } from '../../src/codec/index.js';
import type { TokenBindingID } from '../../src/codec/types.js';
import { backends, hex } from '../crypto/_backends.js';
import { repoRoot } from './_messages.js';

type Result = 'valid' | 'invalid' | 'acceptable';

interface WycheproofTest {
  readonly tcId: number;
  readonly comment: string;
  readonly msg: string;
  readonly sig: string;
  readonly result: Result;
  readonly flags: readonly string[];
}

interface WycheproofGroup {
  readonly publicKey: Record<string, string>;
  readonly tests: readonly WycheproofTest[];
}

interface WycheproofFile {
  readonly algorithm: string;
  readonly numberOfTests: number;
  readonly testGroups: readonly WycheproofGroup[];
}

/** Pinned verdicts for `acceptable` cases, by file and tcId (see the header comment). */
const ACCEPTABLE: Readonly<Record<string, Readonly<Record<number, boolean>>>> = {
  rsa_signature_2048_sha256_test: { 8: false },
};

/** Big-endian integer bytes without leading zeros (Wycheproof pads to a positive ASN.1 INTEGER). */
function unsigned(h: string): Uint8Array {
  const bytes = hex(h);
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  return bytes.subarray(i);
}

function fixed32(h: string): Uint8Array | null {
  const bytes = unsigned(h);
  if (bytes.length > 32) return null;
  const out = new Uint8Array(32);
  out.set(bytes, 32 - bytes.length);
  return out;
}

/** The group's key as a TokenBindingID, or null when RFC 8471 cannot carry it (then nothing may verify). */
function groupId(keyParameters: number, key: Record<string, string>): TokenBindingID | null {
  if (keyParameters === 2) {
    const x = fixed32(key.wx!);
    const y = fixed32(key.wy!);
    if (x === null || y === null) return null;
    // The ID and Wycheproof's own SEC 1 encoding name the same point.
    if (key.uncompressed !== '04' + Buffer.from(x).toString('hex') + Buffer.from(y).toString('hex')) {
      throw new Error(`group key ${key.uncompressed} does not match wx/wy`);
    }
    return createTokenBindingID(2, encodeEcP256PublicKey(x, y));
  }
  const modulus = unsigned(key.modulus!);
  if (modulus.length !== 256 || modulus[0]! < 0x80) return null;
  return createTokenBindingID(keyParameters, encodeRsaPublicKey(modulus, unsigned(key.publicExponent!)));
}

const FILES: readonly [string, number][] = [
  ['ecdsa_secp256r1_sha256_p1363_test', 2],
  ['rsa_pss_2048_sha256_mgf1_32_test', 1],
  ['rsa_signature_2048_sha256_test', 0],
];

for (const [file, keyParameters] of FILES) {
  const data = JSON.parse(readFileSync(new URL(`vectors/wycheproof/${file}.json`, repoRoot), 'utf8')) as WycheproofFile;

  for (const { label, backend } of backends) {
    test(`${file} on ${label}`, (t) => {
      const mismatches: string[] = [];
      let count = 0;
      for (const group of data.testGroups) {
        const id = groupId(keyParameters, group.publicKey);
        for (const tc of group.tests) {
          count++;
          const expected = tc.result === 'acceptable' ? ACCEPTABLE[file]?.[tc.tcId] : tc.result === 'valid';
          if (expected === undefined) {
            mismatches.push(`tcId ${tc.tcId}: acceptable case without a pinned verdict (${tc.comment})`);
            continue;
          }
          // A key that cannot be a TokenBindingID must have no valid signature to lose.
          const verdict = id === null ? false : backend.verify(id, hex(tc.msg), hex(tc.sig));
          if (verdict !== expected) mismatches.push(`tcId ${tc.tcId} ${tc.result} [${tc.flags.join(',')}] ${tc.comment}: got ${verdict}`);
        }
      }
      t.is(count, data.numberOfTests);
      t.deepEqual(mismatches, []);
    });
  }
}
