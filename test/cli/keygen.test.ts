import test from 'ava';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { id } from '../../src/cli/id.js';
import { ExitCode, UsageError, type CliCommand } from '../../src/cli/io.js';
import { keygen } from '../../src/cli/keygen.js';
import { base64urlDecode } from '../../src/codec/base64url.js';
import { tokenBindingHash } from '../../src/crypto/hash.js';
import { runCommand } from './_run.js';

const run = (command: CliCommand, argv: string[]) => runCommand(command, argv);

async function storePath(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-cli-keygen-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'keys.json');
}

interface KeyOutput {
  scope: string;
  keyParameters: string;
  id: string;
  hash: string;
  created?: boolean;
}

test('keygen without a scope creates an empty key store with mode 0600, once', async (t) => {
  const path = await storePath(t);
  const first = await run(keygen, ['--key-store', path]);
  t.is(first.code, ExitCode.ok);
  t.deepEqual(JSON.parse(first.stdout), { keyStore: path, created: true });
  t.is((await stat(path)).mode & 0o777, 0o600);
  const second = await run(keygen, ['--key-store', path]);
  t.deepEqual(JSON.parse(second.stdout), { keyStore: path, created: false });
});

test('keygen adds one key per eTLD+1 scope and keeps it; id prints what a server will see', async (t) => {
  const path = await storePath(t);
  const made = await run(keygen, ['--key-store', path, '--url', 'https://a.example.co.uk/login']);
  t.is(made.code, ExitCode.ok, made.stderr);
  const key = JSON.parse(made.stdout) as KeyOutput;
  t.like(key, { scope: 'example.co.uk', keyParameters: 'ecdsap256', created: true });
  t.is(base64urlDecode(key.id)[0], 2); // key_parameters ecdsap256 leads the TokenBindingID
  t.is(key.hash, tokenBindingHash(base64urlDecode(key.id)));

  const again = JSON.parse((await run(keygen, ['--key-store', path, '--scope', 'b.example.co.uk'])).stdout) as KeyOutput;
  t.like(again, { scope: 'example.co.uk', id: key.id, created: false });

  const shown = await run(id, ['--key-store', path, '--url', 'https://b.example.co.uk:8443/']);
  t.is(shown.code, ExitCode.ok);
  t.deepEqual(JSON.parse(shown.stdout), { scope: 'example.co.uk', keyParameters: 'ecdsap256', id: key.id, hash: key.hash });

  const other = JSON.parse((await run(keygen, ['--key-store', path, '--url', 'https://example.org/'])).stdout) as KeyOutput;
  t.not(other.id, key.id);
  const file = JSON.parse(await readFile(path, 'utf8')) as { keys: Record<string, unknown> };
  t.deepEqual(Object.keys(file.keys).sort(), ['example.co.uk', 'example.org']);
});

test('keygen --key-parameters rsa2048_pkcs1.5 makes an RSA key that id finds with the same option', async (t) => {
  const path = await storePath(t);
  const made = JSON.parse((await run(keygen, ['--key-store', path, '--scope', '127.0.0.1', '--key-parameters', 'rsa2048_pkcs1.5'])).stdout) as KeyOutput;
  t.like(made, { scope: '127.0.0.1', keyParameters: 'rsa2048_pkcs1.5' });
  t.is(base64urlDecode(made.id)[0], 0);
  const shown = await run(id, ['--key-store', path, '--url', 'https://127.0.0.1:8443/', '--key-parameters', 'rsa2048_pkcs1.5']);
  t.is((JSON.parse(shown.stdout) as KeyOutput).id, made.id);
  // No ecdsap256 key for that scope: id never creates one.
  const missing = await run(id, ['--key-store', path, '--url', 'https://127.0.0.1:8443/']);
  t.is(missing.code, ExitCode.failure);
  t.is((JSON.parse(missing.stderr) as { error: { code: string } }).error.code, 'ERR_TB_CLIENT');
});

test('id and keygen on a corrupt store: ERR_TB_KEY_STORE, exit 1, file untouched', async (t) => {
  const path = await storePath(t);
  await writeFile(path, '{ not json', { mode: 0o600 });
  for (const [command, argv] of [
    [keygen, ['--key-store', path, '--url', 'https://example.com/']],
    [id, ['--key-store', path, '--url', 'https://example.com/']],
  ] as const) {
    const result = await run(command, [...argv]);
    t.is(result.code, ExitCode.failure);
    t.is((JSON.parse(result.stderr) as { error: { code: string } }).error.code, 'ERR_TB_KEY_STORE');
  }
  t.is(await readFile(path, 'utf8'), '{ not json');
});

test('usage errors: missing --key-store or --url, both --url and --scope, bad values', async (t) => {
  const path = await storePath(t);
  const bad: [CliCommand, string[]][] = [
    [keygen, []],
    [keygen, ['--key-store', path, '--url', 'https://a.example/', '--scope', 'a.example']],
    [keygen, ['--key-store', path, '--url', 'not a url']],
    [keygen, ['--key-store', path, '--scope', 'a.example', '--key-parameters', 'ecdsap384']],
    [keygen, ['--key-store', path, 'extra']],
    [keygen, ['--key-store', path, '--unknown']],
    [id, ['--key-store', path]],
    [id, ['--url', 'https://a.example/']],
  ];
  for (const [command, argv] of bad) {
    await t.throwsAsync(() => run(command, argv), { instanceOf: UsageError }, argv.join(' '));
  }
});
