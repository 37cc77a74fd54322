import test from 'ava';
import { Readable, Writable } from 'node:stream';
import { ExitCode, UsageError, type CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { BATCH_LINE_INVALID, verify } from '../../src/cli/verify.js';
import { keyParametersName } from '../../src/codec/keyparams.js';
import { messageCases } from '../vectors/_messages.js';
import { runCommand } from './_run.js';

const run = (argv: string[], stdin = '') => runCommand(verify, argv, stdin);

interface Line {
  ok: boolean;
  provided?: { id: string; hash: string; keyParameters: string | number };
  referred?: { id: string; hash: string; keyParameters: string | number } | null;
  error?: { code: string; message: string };
}

const serverCases = messageCases.filter((c) => c.ekm !== null && c.expect.accept !== undefined);
const names = (list: readonly number[] | null) => (list ?? [0, 1, 2]).map((k) => String(keyParametersName(k))).join(',');

for (const c of serverCases) {
  test(`vector ${c.id}`, async (t) => {
    const { code, stdout, stderr } = await run(['--ekm', c.ekm!, '--key-parameters', names(c.negotiatedKeyParameters), c.header]);
    // Accepted on stdout, rejected on stderr: never both.
    t.is(c.expect.accept ? stderr : stdout, '');
    const line = JSON.parse(c.expect.accept ? stdout : stderr) as Line;
    t.is(line.ok, c.expect.accept!);
    t.is(code, c.expect.accept ? ExitCode.ok : ExitCode.failure);
    if (!line.ok) {
      t.regex(line.error!.code, /^ERR_TB_/);
      return;
    }
    const provided = c.expect.bindings?.find((b) => b.type === 0);
    if (provided !== undefined) {
      t.deepEqual(line.provided, { id: provided.id, hash: provided.hash, keyParameters: keyParametersName(provided.keyParameters) });
    }
  });
}

test('prints the referred ID, and null for a referred binding of unknown key parameters', async (t) => {
  const both = messageCases.find((c) => c.id === 'ping/HttpsTokenBindingServerProcessingTest__providedAndReferredECDSAP256')!;
  const unknown = messageCases.find((c) => c.id === 'ping/HttpsTokenBindingServerProcessingTest__providedECDSAP256AndUnknownReferred')!;
  const a = JSON.parse((await run(['--ekm', both.ekm!, both.header])).stdout) as Line;
  t.is(a.referred?.id, both.expect.bindings!.find((b) => b.type === 1)!.id);
  const b = JSON.parse((await run(['--ekm', unknown.ekm!, unknown.header])).stdout) as Line;
  t.true(b.ok);
  t.is(b.referred, null);
});

test('the default accepts all three key parameters; --key-parameters narrows it', async (t) => {
  const rsa = messageCases.find((c) => c.id === 'ping/derived-rsa2048-pkcs1.5-provided')!;
  t.is((await run(['--ekm', rsa.ekm!, rsa.header])).code, ExitCode.ok);
  const narrowed = await run(['--ekm', rsa.ekm!, '--key-parameters', 'ecdsap256', rsa.header]);
  t.is(narrowed.code, ExitCode.failure);
  t.is(narrowed.stdout, '');
  t.is((JSON.parse(narrowed.stderr) as Line).error!.code, 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
});

test('--batch: one result line per input line, bad lines coded, exit 1 when any line fails', async (t) => {
  const input = serverCases.map((c) => JSON.stringify({ header: c.header, ekm: c.ekm, keyParameters: c.negotiatedKeyParameters ?? undefined }));
  input.push('', 'not json', JSON.stringify({ header: 'AAA', ekm: 'zz' }), JSON.stringify({ header: 'AAA', ekm: '00'.repeat(32), keyParameters: ['nope'] }));
  const { code, stdout } = await run(['--batch'], input.join('\n') + '\n');
  const lines = stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Line);
  t.is(code, ExitCode.failure);
  t.is(lines.length, serverCases.length + 3);
  t.deepEqual(
    lines.slice(0, serverCases.length).map((l) => l.ok),
    serverCases.map((c) => c.expect.accept),
  );
  t.deepEqual(
    lines.slice(serverCases.length).map((l) => l.error?.code),
    [BATCH_LINE_INVALID, BATCH_LINE_INVALID, BATCH_LINE_INVALID],
  );
});

test('--batch exits 0 when every line is accepted', async (t) => {
  const accepted = serverCases.filter((c) => c.expect.accept === true);
  const input = accepted.map((c) => JSON.stringify({ header: c.header, ekm: c.ekm, keyParameters: names(c.negotiatedKeyParameters) })).join('\n');
  const { code, stdout } = await run(['--batch'], input);
  t.is(code, ExitCode.ok);
  t.is(stdout.trimEnd().split('\n').length, accepted.length);
});

test('usage errors', async (t) => {
  const header = serverCases[0]!.header;
  for (const argv of [
    [header],
    ['--ekm', 'abcd', header],
    ['--ekm', '00'.repeat(32)],
    ['--ekm', '00'.repeat(32), header, header],
    ['--ekm', '00'.repeat(32), '--key-parameters', 'ecdsa', header],
    ['--ekm'],
    ['--frobnicate'],
    ['--batch', header],
  ]) {
    await t.throwsAsync(run(argv), { instanceOf: UsageError }, argv.join(' '));
  }
});

test('through main: a usage error exits 2', async (t) => {
  const err: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      err.push(Buffer.from(chunk));
      cb();
    },
  });
  const io: CliIo = { stdin: Readable.from([]), stdout: sink, stderr: sink, env: {} };
  t.is(await main(['verify', 'AAA'], io), ExitCode.usage);
  t.regex(Buffer.concat(err).toString(), /--ekm/);
});
