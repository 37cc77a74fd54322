import test from 'ava';
import { createPublicKey } from 'node:crypto';
import { decode } from '../../src/cli/decode.js';
import { ExitCode, UsageError } from '../../src/cli/io.js';
import { createTokenBindingID, encodeTokenBindingMessage } from '../../src/codec/message.js';
import { encodeSecTokenBindingHeader } from '../../src/codec/header.js';
import { messageCases } from '../vectors/_messages.js';
import { runCommand } from './_run.js';

const run = (argv: string[], stdin = '') => runCommand(decode, argv, stdin);

const byId = (id: string) => {
  const c = messageCases.find((x) => x.id === id);
  if (c === undefined) throw new Error(`no vector ${id}`);
  return c;
};

interface Decoded {
  bindings: {
    type: string | number;
    keyParameters: string | number;
    id: string;
    hash: string;
    key: Record<string, string> | null;
    keyError?: string;
    signature: string;
    extensions: { type: number; data: string }[];
  }[];
}

test('decodes provided + referred ecdsap256: types, IDs, hashes, JWK keys, hex signatures', async (t) => {
  const c = byId('ping/HttpsTokenBindingServerProcessingTest__providedAndReferredECDSAP256');
  const { code, stdout, stderr } = await run([c.header]);
  t.is(code, ExitCode.ok);
  t.is(stderr, '');
  const out = JSON.parse(stdout) as Decoded;
  t.deepEqual(
    out.bindings.map((b) => [b.type, b.keyParameters, b.id, b.hash]),
    c.expect.bindings!.map((b) => [b.type === 0 ? 'provided' : 'referred', 'ecdsap256', b.id, b.hash]),
  );
  for (const b of out.bindings) {
    t.like(b.key, { kty: 'EC', crv: 'P-256' });
    // The printed JWK is a real P-256 key (node:crypto checks the point is on the curve).
    t.is(createPublicKey({ key: b.key!, format: 'jwk' }).asymmetricKeyType, 'ec');
    t.regex(b.signature, /^[0-9a-f]{128}$/);
    t.deepEqual(b.extensions, []);
    t.false('keyError' in b);
  }
});

test('decodes an rsa2048_pkcs1.5 binding into an RSA JWK', async (t) => {
  const c = byId('ping/derived-rsa2048-pkcs1.5-provided');
  const out = JSON.parse((await run([c.header])).stdout) as Decoded;
  const b = out.bindings[0]!;
  t.is(b.keyParameters, 'rsa2048_pkcs1.5');
  t.like(b.key, { kty: 'RSA', e: 'AQAB' });
  t.is(createPublicKey({ key: b.key!, format: 'jwk' }).asymmetricKeyDetails?.modulusLength, 2048);
});

test('unknown types and key parameters are numbers; an undecodable key gets keyError', async (t) => {
  const c = byId('ping/HttpsTokenBindingServerProcessingTest__providedECDSAP256AndUnknownUnknown');
  const out = JSON.parse((await run([c.header])).stdout) as Decoded;
  const b = out.bindings[1]!;
  t.is(b.type, 77);
  t.is(b.keyParameters, 99);
  t.is(b.key, null);
  t.is(b.keyError, 'ERR_TB_KEY_PARAMETERS_UNSUPPORTED');

  const bad = createTokenBindingID(2, new Uint8Array(70).fill(1));
  const header = encodeSecTokenBindingHeader(
    encodeTokenBindingMessage({ bindings: [{ type: 0, id: bad, signature: new Uint8Array(64), extensions: [] }] }),
  );
  const out2 = JSON.parse((await run([header])).stdout) as Decoded;
  t.is(out2.bindings[0]!.keyError, 'ERR_TB_KEY_INVALID');
  t.is(out2.bindings[0]!.key, null);
});

test('extensions are printed with hex data', async (t) => {
  const id = createTokenBindingID(2, Uint8Array.of(64, ...new Uint8Array(64).fill(2)));
  const header = encodeSecTokenBindingHeader(
    encodeTokenBindingMessage({ bindings: [{ type: 0, id, signature: new Uint8Array(64), extensions: [{ type: 9, data: Uint8Array.of(0xca, 0xfe) }] }] }),
  );
  const out = JSON.parse((await run([header])).stdout) as Decoded;
  t.deepEqual(out.bindings[0]!.extensions, [{ type: 9, data: 'cafe' }]);
});

test('- reads the value from stdin (a trailing newline is allowed)', async (t) => {
  const c = byId('rfc8473/section-2-example');
  const { code, stdout } = await run(['-'], c.header + '\r\n');
  t.is(code, ExitCode.ok);
  t.is((JSON.parse(stdout) as Decoded).bindings[0]!.hash, c.expect.bindings![0]!.hash);
  t.is((await run(['--', '-'], c.header)).code, ExitCode.ok);
});

test('malformed input: JSON error on stderr, exit 1', async (t) => {
  for (const [value, code] of [
    ['AAA', 'ERR_TB_MALFORMED'],
    ['AIk=', 'ERR_TB_HEADER_ENCODING'],
    ['A'.repeat(5000), 'ERR_TB_HEADER_TOO_LARGE'],
  ] as const) {
    const r = await run([value]);
    t.is(r.code, ExitCode.failure);
    t.is(r.stdout, '');
    const err = JSON.parse(r.stderr) as { error: { code: string; message: string } };
    t.is(err.error.code, code);
    t.is(typeof err.error.message, 'string');
  }
  // Whitespace inside stdin input is the value's own, not stripped.
  t.is((await run(['-'], ' AAAA\n')).code, ExitCode.failure);
});

test('usage errors throw UsageError', async (t) => {
  await t.throwsAsync(run([]), { instanceOf: UsageError });
  await t.throwsAsync(run(['AAA', 'BBB']), { instanceOf: UsageError });
  await t.throwsAsync(run(['--verbose', 'AAA']), { instanceOf: UsageError });
  await t.throwsAsync(run(['-x']), { instanceOf: UsageError });
  await t.throwsAsync(run(['--']), { instanceOf: UsageError });
});

test('a value that starts with "-" can follow --', async (t) => {
  const r = await run(['--', '-AAA']);
  t.is(r.code, ExitCode.failure);
  t.is((JSON.parse(r.stderr) as { error: { code: string } }).error.code, 'ERR_TB_MALFORMED');
});
