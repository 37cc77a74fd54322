/**
 * The one parser (src/cli/args.ts): the conventions every command shares, through the real binary
 * where the process matters (exit status, streams, env, --version) and through parseCommand
 * itself for the rules.
 */
import test from 'ava';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { helpText, parseCommand, serverOptions, type CommandSpec, type OptionSpecs } from '../../src/cli/args.js';
import { UsageError } from '../../src/cli/io.js';
import { freePort } from '../_tools.js';
import { runBin, spawnBin } from './_bin.js';

const COMMANDS = ['decode', 'verify', 'serve', 'fetch', 'keygen', 'id', 'demo'] as const;

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-cli-args-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('tokbind --version prints the version of package.json', async (t) => {
  const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  const r = await runBin(['--version']);
  t.is(r.code, 0);
  t.is(r.stdout, `${pkg.version}\n`);
});

test('tokbind help CMD is CMD --help: every option with its default, the exit codes, an example', async (t) => {
  for (const name of COMMANDS) {
    const spec = (await import(`../../src/cli/${name}.js`))[name].spec as CommandSpec<OptionSpecs>;
    const [viaHelp, viaFlag] = await Promise.all([runBin(['help', name]), runBin([name, '--help'])]);
    t.is(viaHelp.code, 0, name);
    t.is(viaFlag.code, 0, name);
    t.is(viaHelp.stdout, viaFlag.stdout, name);
    const text = viaHelp.stdout;
    t.true(text.startsWith(`usage: tokbind ${name}`), name);
    for (const [option, o] of Object.entries(spec.options)) {
      const line = text.split('\n').find((l) => new RegExp(`^  (-\\w, |    )--${option}\\b`).test(l));
      t.truthy(line, `${name} --${option}`);
      if (o.type !== 'boolean' && o.default !== undefined) t.true(line!.includes(`default: ${o.default}`), `${name} --${option}: ${line}`);
      if (o.env !== undefined) t.true(line!.includes(`env ${o.env}`), `${name} --${option}`);
    }
    t.regex(text, /\nexit codes:\n  0  .+\n  1  .+\n  2  usage error/, name);
    t.regex(text, new RegExp(`\\nexamples:\\n  tokbind ${name}`), name);
  }
  // The overview lists every command; an unknown topic is a usage error.
  const overview = await runBin(['help']);
  for (const name of COMMANDS) t.regex(overview.stdout, new RegExp(`\\n  ${name} +\\S`));
  t.is((await runBin(['help', 'nope'])).code, 2);
});

test('--opt=value and --opt value are the same; a usage error names the option, never parseArgs text', async (t) => {
  const dir = await tempDir(t);
  const store = join(dir, 'keys.json');
  const a = await runBin(['keygen', `--key-store=${store}`, '--scope=example.com']);
  t.is(a.code, 0, a.stderr);
  const b = await runBin(['keygen', '--key-store', store, '--scope', 'example.com']);
  t.is(b.code, 0, b.stderr);
  t.like(JSON.parse(b.stdout), { created: false, id: (JSON.parse(a.stdout) as { id: string }).id });

  const bad = await runBin(['id', '--key-store', store, '--scope', 'x']);
  t.is(bad.code, 2);
  t.is(bad.stdout, '');
  t.regex(bad.stderr, /^tokbind id: unknown option --scope\nusage: tokbind id --key-store FILE --url URL \[options\]\n/);
  t.notRegex(bad.stderr, /ERR_PARSE_ARGS|To specify a positional argument|Unknown option '/);
});

test('usage errors exit 2 with the command name for every command', async (t) => {
  for (const name of COMMANDS) {
    const r = await runBin([name, '--no-such-option']);
    t.is(r.code, 2, name);
    t.regex(r.stderr, new RegExp(`^tokbind ${name}: unknown option --no-such-option\\n`), name);
  }
  t.is((await runBin([])).code, 2);
  t.is((await runBin(['frobnicate'])).code, 2);
});

test('serve honours PORT like demo; --port wins over PORT', async (t) => {
  for (const [args, envPort] of [[[], true], [['--port'], false]] as const) {
    const port = await freePort();
    const child = spawnBin(['serve', ...(envPort ? [] : ['--port', String(port)])], { env: { PORT: envPort ? String(port) : 'not-a-port-ignored' } });
    t.teardown(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout!.setEncoding('utf8');
    while (!out.includes('\n')) out += ((await once(child.stdout!, 'data')) as [string])[0];
    t.is(out, `listening on https://127.0.0.1:${port}\n`, args.join(' '));
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    t.is(code, 0);
  }
  const bad = await runBin(['serve'], { env: { PORT: 'eighty' } });
  t.is(bad.code, 2);
  t.regex(bad.stderr, /^tokbind serve: PORT must be an integer 0\.\.65535, got "eighty"/);
});

const spec = {
  name: 'x',
  summary: 's',
  options: {
    ...serverOptions,
    name: { type: 'string', short: 'n', description: 'd' },
    list: { type: 'string', short: 'l', multiple: true, description: 'd' },
    mode: { type: 'string', choices: ['a', 'b'], default: 'a', description: 'd' },
    flag: { type: 'boolean', short: 'f', description: 'd' },
    count: { type: 'integer', min: 1, description: 'd' },
    must: { type: 'string', required: true, placeholder: 'M', description: 'd' },
  },
  positionals: [{ name: 'p', description: 'd' }],
  examples: ['tokbind x'],
} as const satisfies CommandSpec<OptionSpecs>;

test('parseCommand: values typed and defaulted; env read when the option is absent', (t) => {
  const r = parseCommand(spec, ['--must', 'm', '-n', 'N', '-lone', '--list=two', '-f', '--count=3', 'pos'], { PORT: '9000' })!;
  t.deepEqual({ ...r.values }, { port: 9000, host: '127.0.0.1', name: 'N', list: ['one', 'two'], mode: 'a', flag: true, count: 3, must: 'm' });
  t.deepEqual(r.positionals, ['pos']);
  t.deepEqual([...r.given].sort(), ['count', 'flag', 'list', 'must', 'name']);
  t.is(parseCommand(spec, ['--must=m', '--port', '1'], { PORT: '9000' })!.values.port, 1);
  t.is(parseCommand(spec, ['--must=m'], { PORT: '' })!.values.port, 8443);
  // `-` is a value and a positional (stdin), `--` ends the options.
  t.deepEqual(parseCommand(spec, ['--must', '-', '--', '--flag'], {})!.positionals, ['--flag']);
  t.is(parseCommand(spec, ['--must', '-'], {})!.values.must, '-');
  t.is(parseCommand(spec, ['--help', '--bogus'], {}), null);
  t.is(parseCommand(spec, ['-h'], {}), null);
});

test('parseCommand: every mistake is a UsageError naming the option', (t) => {
  const cases: [string[], RegExp][] = [
    [['--bogus'], /^unknown option --bogus$/],
    [['-z'], /^unknown option -z \(options are -n, -l, -f\)$/],
    [['--must'], /^--must needs a value: --must M$/],
    [['--must', '--flag'], /^--must needs a value, got the option --flag \(write --must=--flag if that is the value\)$/],
    [['--must=m', '--flag=yes'], /^--flag takes no value/],
    [['--must=m', '--name', 'a', '--name', 'b'], /^--name is given more than once$/],
    [['--must=m', '-f', '-f'], /^--flag is given more than once$/],
    [['--must=m', '--mode', 'c'], /^--mode must be one of a, b, got "c"$/],
    [['--must=m', '--count', '0'], /^--count must be an integer >= 1, got "0"$/],
    [['--must=m', '--port', '70000'], /^--port must be an integer 0\.\.65535, got "70000"$/],
    [['--must=m', '--port', '8e3'], /^--port must be an integer/],
    [[], /^--must M is required$/],
    [['--must=m', 'a', 'b'], /^unexpected argument "b": x takes <p>$/],
  ];
  for (const [argv, message] of cases) {
    const err = t.throws(() => parseCommand(spec, argv, {}), { instanceOf: UsageError }, argv.join(' '));
    t.regex(err.message, message, argv.join(' '));
  }
  t.regex(helpText(spec), /--must M +d \(required\)/);
  t.regex(helpText(spec), /-l, --list VALUE +d \(repeatable\)/);
});

test('option and command names from the command line are never looked up on Object.prototype', async (t) => {
  for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
    t.throws(() => parseCommand(spec, ['--must=m', `--${name}`], {}), { instanceOf: UsageError, message: `unknown option --${name}` });
    const r = await runBin([name]);
    t.is(r.code, 2, name);
    t.true(r.stderr.startsWith(`tokbind: unknown command '${name}'`), name);
    t.is((await runBin(['help', name])).code, 2, name);
  }
});
