/**
 * Work proportional to input (issue 11, class "work proportional to input"): every parser and loop
 * driven by client bytes is run on inputs of 1×, 10× and 100× a base size, and its work is
 * counted — V8 block counts over tokbind's own code (test/_work.ts), the same on every run
 * whatever the machine's load — never timed. Linear work grows ≤ 10× per 10× of input (less, with
 * fixed costs); the tests allow 2× that (20× per step, 200× overall), so an O(n log n) loop
 * passes and an O(n²) one (100× per step) fails.
 *
 * Covered: the Sec-Token-Binding decoder, the TokenBindingMessage parser (bindings, extensions),
 * the whole server-side verification, the RFC 8472 extension parser and negotiation, the
 * TokenBindingPublicKey decoder, the ClientHello reader (records, segments) and parser
 * (extensions, cipher suites), the client key store loader, and `tokbind verify --batch` input.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { verify } from '../../src/cli/verify.js';
import { FileKeyStore } from '../../src/client/keystore.js';
import { parseTokenBindingExtension, selectTokenBindingParameters } from '../../src/codec/extension.js';
import { decodeSecTokenBindingHeader } from '../../src/codec/header.js';
import { decodeTokenBindingPublicKey } from '../../src/codec/keys.js';
import { parseTokenBindingMessage } from '../../src/codec/message.js';
import { generateTokenBindingKey } from '../../src/crypto/sign.js';
import { verifyTokenBindingHeader } from '../../src/http/verify.js';
import { ClientHelloReader, parseClientHello } from '../../src/tls/client-hello.js';
import { countBlocks } from '../_work.js';
import { runCommand } from '../cli/_run.js';
import { buildClientHello, toRecords } from '../tls/_hello.js';
import { encodeWire, headerOf, signedBinding, type WireBinding } from './_tb.js';

const FACTORS = [1, 10, 100] as const;
/** Allowed growth per 10× of input: linear is ≤ 10, quadratic 100. */
const PER_STEP = 20;

const summary: string[] = [];
test.after(() => console.log(`growth (block counts at 1×, 10×, 100×)\n${summary.join('\n')}`));

/**
 * Measures `run(n)` at n = base × 1, 10, 100 and fails on superlinear growth. `run` must do
 * the same kind of work at every size (and fail the test itself if its result is wrong).
 */
async function linear(t: ExecutionContext, name: string, base: number, run: (n: number) => unknown): Promise<void> {
  // Once unmeasured: module-level caches and lazy initialisation are not growth.
  await run(base);
  const counts: number[] = [];
  for (const f of FACTORS) counts.push(await countBlocks(() => run(base * f)));
  summary.push(`  ${name}: ${counts.join(' → ')}`);
  const [c1, c10, c100] = counts as [number, number, number];
  t.true(c1 > 0, `${name}: nothing counted`);
  t.true(c10 <= PER_STEP * c1, `${name}: ${c1} → ${c10} blocks for 10× the input`);
  t.true(c100 <= PER_STEP * c10, `${name}: ${c10} → ${c100} blocks for 10× the input`);
  t.true(c100 <= 10 * PER_STEP * c1, `${name}: ${c1} → ${c100} blocks for 100× the input`);
}

const key = generateTokenBindingKey();
const ekm = new Uint8Array(32).fill(7);
const unsigned = (type: number, keyParameters = 200): WireBinding => ({ type, keyParameters, key: new Uint8Array(65).fill(4), signature: new Uint8Array(64).fill(1), extensions: [] });

test.serial('Sec-Token-Binding decoder: header length', async (t) => {
  await linear(t, 'header decoder (chars)', 40, (n) => {
    const value = 'A'.repeat(n);
    t.is(decodeSecTokenBindingHeader(value, { maxLength: 1 << 20 }).length, (n * 3) / 4);
  });
});

test.serial('TokenBindingMessage parser: number of bindings, number of extensions', async (t) => {
  await linear(t, 'message parser (bindings)', 2, (n) => {
    const bytes = encodeWire(Array.from({ length: n }, (_, i) => unsigned(2 + (i % 200)))).bytes;
    t.is(parseTokenBindingMessage(bytes).bindings.length, n);
  });
  await linear(t, 'message parser (extensions)', 2, (n) => {
    const extensions = Array.from({ length: n }, (_, i) => ({ type: i % 256, data: Uint8Array.of(i & 0xff) }));
    const bytes = encodeWire([{ ...unsigned(0, 2), extensions }]).bytes;
    t.is(parseTokenBindingMessage(bytes).bindings[0]!.extensions.length, n);
  });
});

test.serial('server-side verification: bindings of unknown key parameters and extension bytes', async (t) => {
  // Others with key parameters tokbind cannot verify are parsed and skipped; none costs a signature.
  await linear(t, 'verifyTokenBindingHeader (ignored others)', 2, (n) => {
    const provided = signedBinding(key, 0, ekm);
    const value = headerOf(encodeWire([provided, ...Array.from({ length: n }, (_, i) => unsigned(2 + (i % 200)))]).bytes);
    const result = verifyTokenBindingHeader(value, { ekm, negotiatedKeyParameters: [2] }, { maxHeaderLength: 1 << 20 });
    t.is(result?.others.length, 0);
  });
  await linear(t, 'verifyTokenBindingHeader (extension bytes)', 20, (n) => {
    const provided = signedBinding(key, 0, ekm, [{ type: 1, data: new Uint8Array(n) }]);
    const value = headerOf(encodeWire([provided]).bytes);
    t.truthy(verifyTokenBindingHeader(value, { ekm, negotiatedKeyParameters: [2] }, { maxHeaderLength: 1 << 20 }));
  });
});

test.serial('RFC 8472 extension: parser and negotiation, length of the offered list', async (t) => {
  await linear(t, 'token_binding extension (offered key parameters)', 2, (n) => {
    const list = Array.from({ length: n }, (_, i) => (i % 250) + 3);
    list[n - 1] = 2;
    const offer = parseTokenBindingExtension(Uint8Array.of(1, 0, n, ...list));
    const selected = selectTokenBindingParameters(offer, { keyParameters: [2], tls: { version: 'TLSv1.3', extendedMasterSecret: true, renegotiationIndication: true } });
    t.deepEqual(selected?.keyParameters, [2]);
  });
});

test.serial('TokenBindingPublicKey decoder: RSA modulus length', async (t) => {
  await linear(t, 'public key decoder (modulus bytes)', 64, (n) => {
    const modulus = new Uint8Array(n).fill(0xc5);
    const bytes = Uint8Array.from([n >> 8, n & 0xff, ...modulus, 3, 1, 0, 1]);
    const decoded = decodeTokenBindingPublicKey({ keyParameters: 1, key: bytes, raw: bytes } as never);
    t.is(decoded.kind === 'rsa' ? decoded.modulus.length : 0, n);
  });
});

test.serial('ClientHello reader: records and segments; parser: extensions and cipher suites', async (t) => {
  const hello = (padding: number): Buffer => buildClientHello({ extensions: [[21, new Uint8Array(padding)]] });
  await linear(t, 'ClientHello reader (one-byte records, a byte per push)', 27, (n) => {
    const message = hello(n);
    const wire = toRecords(message, 1);
    const reader = new ClientHelloReader(1 << 20, 1 << 20);
    let out: Uint8Array | null = null;
    for (let i = 0; i < wire.length && out === null; i++) out = reader.push(wire.subarray(i, i + 1));
    t.is(out?.length, message.length);
  });
  await linear(t, 'ClientHello reader (one record, a byte per push)', 27, (n) => {
    const wire = toRecords(hello(n));
    const reader = new ClientHelloReader(1 << 20);
    let out: Uint8Array | null = null;
    for (let i = 0; i < wire.length && out === null; i++) out = reader.push(wire.subarray(i, i + 1));
    t.truthy(out);
  });
  await linear(t, 'ClientHello parser (extensions)', 3, (n) => {
    const extensions = Array.from({ length: n }, (_, i) => [1000 + i, new Uint8Array(2)] as const);
    t.is(parseClientHello(buildClientHello({ extensions })).tokenBinding, null);
  });
  await linear(t, 'ClientHello parser (cipher suites)', 3, (n) => {
    const cipherSuites = Array.from({ length: n }, (_, i) => 0x1000 + i);
    t.is(parseClientHello(buildClientHello({ cipherSuites, extensions: [] })).cipherSuites.length, n);
  });
});

test.serial('client key store loader: number of keys in the file', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tokbind-growth-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const jwks = Array.from({ length: 100 }, () => generateTokenBindingKey().privateKey.export({ format: 'jwk' }));
  const files = new Map<number, string>();
  for (const n of FACTORS) {
    const keys: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) keys[`host${i}.example`] = { ecdsap256: { created: '2026-01-01T00:00:00.000Z', jwk: jwks[i] } };
    const file = path.join(dir, `keys-${n}.json`);
    await writeFile(file, JSON.stringify({ tokbind: 'key-store', version: 1, keys }), { mode: 0o600 });
    files.set(n, file);
  }
  await linear(t, 'key store loader (keys)', 1, async (n) => {
    const listed = await new FileKeyStore(files.get(n)!).list();
    t.is(listed.length, n);
  });
});

test.serial('tokbind verify --batch: number of input lines', async (t) => {
  const value = headerOf(encodeWire([signedBinding(key, 0, ekm)]).bytes);
  const line = JSON.stringify({ header: value, ekm: Buffer.from(ekm).toString('hex') });
  await linear(t, 'verify --batch (lines)', 1, async (n) => {
    const run = await runCommand(verify, ['--batch'], `${line}\n`.repeat(n));
    t.is(run.code, 0, run.stderr);
    t.is(run.stdout.trim().split('\n').length, n);
  });
});
