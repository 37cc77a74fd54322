/**
 * The one command-line parser of `tokbind`: `node:util` parseArgs under a small declarative layer.
 *
 * HOW TO DECLARE A COMMAND (other developers: add yours the same way)
 *
 * 1. In src/cli/<name>.ts:
 *
 *    ```ts
 *    import { defineCommand, serverOptions } from './args.js';
 *    export const proxy = defineCommand(
 *      {
 *        name: 'proxy',
 *        summary: 'one line for `tokbind --help`',
 *        description: 'a paragraph for `tokbind proxy --help` (optional)',
 *        options: {
 *          ...serverOptions,                 // --port N (env PORT, default 8443) and --host (server commands)
 *          upstream: { type: 'string', placeholder: 'URL', description: 'where requests go', required: true },
 *          workers: { type: 'integer', min: 1, default: 1, placeholder: 'N', description: 'worker processes' },
 *          'on-invalid': { type: 'string', choices: ['reject', 'ignore'], default: 'reject', description: '…' },
 *          header: { type: 'string', short: 'H', multiple: true, placeholder: "'NAME: VALUE'", description: '…' },
 *          verbose: { type: 'boolean', short: 'v', description: '…' },
 *        },
 *        positionals: [{ name: 'url', description: '…', required: true }],   // or omit: none allowed
 *        exitCodes: { 1: 'what exit 1 means for this command' },            // 0 and 2 have defaults
 *        examples: ['tokbind proxy --upstream http://127.0.0.1:3000 --port 8443'],
 *      },
 *      async ({ values, positionals }, io, signal) => {
 *        values.workers;     // number (typed from the declaration; default applied)
 *        values.upstream;    // string (required: the parser refuses the command line without it)
 *        return ExitCode.ok;
 *      },
 *    );
 *    ```
 * 2. Add one entry `{ summary, load }` to the `commands` table in src/cli/main.ts.
 *
 * What every command then gets, with no code of its own: `--opt value` and `--opt=value` (`-o value`,
 * `-ovalue`), `--` ends the options, `--help`/`-h` generated from the declaration (each option with
 * its default and environment variable, the exit codes, the examples) and `tokbind help <name>`;
 * usage errors as {@link UsageError} naming the option (main prints them with the usage line and
 * exits 2) — never Node's raw parseArgs text; a repeated option that is not `multiple` is an error;
 * an option's `env` is read when the option is absent (`serverOptions.port` reads `PORT`).
 * Types: `string`, `boolean`, `integer` (`min`/`max`); `choices` restricts a string.
 * Input: a value or positional that names input accepts `-` for stdin — read it with
 * {@link readInput} (`@file` too, where `allowFile`) or {@link readFileArgument} (a file name or `-`).
 * Exit codes: 0 success, 1 input read but rejected ({@link reportError} prints
 * `{"error":{"code","message"}}` on stderr), 2 usage (throw {@link UsageError}).
 */
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { ExitCode, UsageError, writeLine, type CliIo } from './io.js';

interface BaseOption {
  /** One line for `--help`. */
  readonly description: string;
  /** A one-letter alias: `-k` for `--insecure`. */
  readonly short?: string;
  /** Environment variable read when the option is not on the command line (e.g. PORT). */
  readonly env?: string;
}
export interface BooleanOption extends BaseOption {
  readonly type: 'boolean';
}
export interface StringOption extends BaseOption {
  readonly type: 'string';
  /** The value's name in `--help`: `--cert FILE`. Default: VALUE. */
  readonly placeholder?: string;
  readonly default?: string;
  readonly choices?: readonly string[];
  readonly multiple?: boolean;
  /** The command line is refused without it (after `env`). */
  readonly required?: boolean;
}
export interface IntegerOption extends BaseOption {
  readonly type: 'integer';
  readonly placeholder?: string;
  readonly default?: number;
  readonly min?: number;
  readonly max?: number;
  readonly required?: boolean;
}
export type OptionSpec = BooleanOption | StringOption | IntegerOption;
export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

export interface PositionalSpec {
  /** Shown as `<name>`. */
  readonly name: string;
  readonly description: string;
  readonly required?: boolean;
  /** Takes every remaining argument (last positional only). */
  readonly variadic?: boolean;
}

export interface CommandSpec<O extends OptionSpecs> {
  readonly name: string;
  readonly summary: string;
  readonly description?: string;
  readonly options: O;
  readonly positionals?: readonly PositionalSpec[];
  /** What 0 and 1 mean for this command (2 is always a usage error). */
  readonly exitCodes?: { readonly 0?: string; readonly 1?: string };
  readonly examples: readonly string[];
  /** Extra paragraphs at the end of `--help`. */
  readonly notes?: readonly string[];
}

type Has<S, K extends string> = S extends Readonly<Record<K, unknown>> ? true : false;
type Defined<S> = Has<S, 'default'> extends true ? true : S extends { readonly required: true } ? true : false;
type Choice<S> = S extends { readonly choices: readonly (infer C)[] } ? C : string;
/** The parsed value of one declared option. */
export type ValueOf<S extends OptionSpec> = S extends BooleanOption
  ? boolean
  : S extends IntegerOption
    ? Defined<S> extends true
      ? number
      : number | undefined
    : S extends { readonly multiple: true }
      ? string[]
      : Defined<S> extends true
        ? Choice<S>
        : Choice<S> | undefined;
export type Values<O extends OptionSpecs> = { -readonly [K in keyof O]: ValueOf<O[K]> };

export interface ParsedArguments<O extends OptionSpecs> {
  readonly values: Values<O>;
  readonly positionals: string[];
  /** Options given on the command line (not from env or a default). */
  readonly given: ReadonlySet<string>;
}

/** A command: callable as before (`(argv, io, signal) => exit status`), with its declaration. */
export interface Command<O extends OptionSpecs = OptionSpecs> {
  (argv: readonly string[], io: CliIo, signal?: AbortSignal): Promise<number>;
  readonly spec: CommandSpec<O>;
}

/** `--port N` (env PORT, default 8443, 0 picks a free port) and `--host`: every server command. */
export const serverOptions = {
  port: {
    type: 'integer',
    min: 0,
    max: 65535,
    default: 8443,
    env: 'PORT',
    placeholder: 'N',
    description: 'TCP port to listen on (0 picks a free one)',
  },
  host: { type: 'string', default: '127.0.0.1', placeholder: 'ADDRESS', description: 'address to listen on' },
} as const satisfies OptionSpecs;

/** `--cert`, `--key` and `--key-parameters`: the commands that terminate Token Binding's TLS (serve, proxy). */
export const tlsServerOptions = {
  cert: { type: 'string', placeholder: 'FILE', description: 'PEM certificate chain (with --key; - reads stdin)' },
  key: { type: 'string', placeholder: 'FILE', description: 'PEM private key (with --cert; - reads stdin)' },
  'key-parameters': {
    type: 'string',
    placeholder: 'LIST',
    default: 'ecdsap256',
    description: 'comma-separated key parameters accepted (ecdsap256, rsa2048_pss, rsa2048_pkcs1.5), in order of preference',
  },
} as const satisfies OptionSpecs;

const HELP: BooleanOption = { type: 'boolean', short: 'h', description: 'show this help' };

function placeholderOf(spec: OptionSpec): string {
  if (spec.type === 'boolean') return '';
  if (spec.placeholder !== undefined) return spec.placeholder;
  if (spec.type === 'string' && spec.choices !== undefined) return spec.choices.join('|');
  return spec.type === 'integer' ? 'N' : 'VALUE';
}

function optionLabel(name: string, spec: OptionSpec): string {
  const value = spec.type === 'boolean' ? '' : ` ${placeholderOf(spec)}`;
  return `${spec.short === undefined ? '    ' : `-${spec.short}, `}--${name}${value}`;
}

/** The usage line: `tokbind fetch [options] <url>`. */
export function usageLine(spec: CommandSpec<OptionSpecs>): string {
  const required = Object.entries(spec.options)
    .filter(([, o]) => o.type !== 'boolean' && o.required === true && o.env === undefined)
    .map(([n, o]) => `--${n} ${placeholderOf(o)}`);
  const positionals = (spec.positionals ?? []).map((p) => {
    const inner = `<${p.name}>${p.variadic === true ? '...' : ''}`;
    return p.required === true ? inner : `[${inner}]`;
  });
  return ['tokbind', spec.name, ...required, '[options]', ...positionals].join(' ');
}

/** A paragraph folded at `width` columns on spaces (a word longer than that stays whole). */
function wrap(text: string, width = 100): string {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') out.push(line);
  return out.join('\n');
}

/** The text of `tokbind <name> --help`, generated from the declaration. */
export function helpText(spec: CommandSpec<OptionSpecs>): string {
  const lines: string[] = [`usage: ${usageLine(spec)}`, '', spec.summary];
  if (spec.description !== undefined) lines.push('', wrap(spec.description));
  const table = (rows: [string, string][]): string[] => {
    const width = Math.max(...rows.map(([l]) => l.length));
    return rows.map(([l, d]) => `  ${l.padEnd(width)}  ${d}`);
  };
  const positionals = spec.positionals ?? [];
  if (positionals.length > 0) {
    lines.push('', 'arguments:', ...table(positionals.map((p) => [`<${p.name}>`, p.description])));
  }
  const rows: [string, string][] = Object.entries(spec.options).map(([name, o]) => {
    const extra: string[] = [];
    if (o.type !== 'boolean' && o.required === true) extra.push('required');
    if (o.type !== 'boolean' && o.default !== undefined) extra.push(`default: ${String(o.default)}`);
    if (o.type === 'boolean') extra.push('default: off');
    if (o.type === 'string' && o.multiple === true) extra.push('repeatable');
    if (o.env !== undefined) extra.push(`env ${o.env}`);
    return [optionLabel(name, o), `${o.description}${extra.length > 0 ? ` (${extra.join('; ')})` : ''}`];
  });
  rows.push([optionLabel('help', HELP), HELP.description]);
  lines.push('', 'options:', ...table(rows));
  lines.push(
    '',
    'exit codes:',
    ...table([
      ['0', spec.exitCodes?.[0] ?? 'success'],
      ['1', spec.exitCodes?.[1] ?? 'input read but rejected: {"error":{"code","message"}} on stderr'],
      ['2', 'usage error: a message naming the option on stderr'],
    ]),
  );
  lines.push('', 'examples:', ...spec.examples.map((e) => `  ${e}`));
  for (const note of spec.notes ?? []) lines.push('', wrap(note));
  return lines.join('\n');
}

function integerValue(text: string, source: string, spec: IntegerOption): number {
  const min = spec.min ?? Number.MIN_SAFE_INTEGER;
  const max = spec.max ?? Number.MAX_SAFE_INTEGER;
  const range = spec.min !== undefined && spec.max !== undefined ? ` ${min}..${max}` : spec.min !== undefined ? ` >= ${min}` : '';
  if (!/^-?[0-9]{1,16}$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`${source} must be an integer${range}, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

function stringValue(text: string, source: string, spec: StringOption): string {
  if (spec.choices !== undefined && !spec.choices.includes(text)) {
    throw new UsageError(`${source} must be one of ${spec.choices.join(', ')}, got ${JSON.stringify(text)}`);
  }
  return text;
}

/**
 * Parses `argv` against a declaration. Returns null when `--help`/`-h` was asked for (before
 * `--`). Throws {@link UsageError} naming the option for every mistake.
 */
export function parseCommand<O extends OptionSpecs>(spec: CommandSpec<O>, argv: readonly string[], env: NodeJS.ProcessEnv): ParsedArguments<O> | null {
  const byShort = new Map<string, string>();
  const nodeOptions: Record<string, { type: 'string' | 'boolean'; short?: string }> = Object.create(null) as Record<string, never>;
  for (const [name, o] of Object.entries(spec.options)) {
    nodeOptions[name] = { type: o.type === 'boolean' ? 'boolean' : 'string', ...(o.short === undefined ? {} : { short: o.short }) };
    if (o.short !== undefined) byShort.set(o.short, name);
  }
  nodeOptions['help'] = { type: 'boolean', short: 'h' };
  // Not strict: every check below is ours, so every message names the option as the user wrote it.
  const { tokens } = parseArgs({ args: [...argv], options: nodeOptions, strict: false, allowPositionals: true, tokens: true });

  const raw = new Map<string, string[] | true>();
  const positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'positional') positionals.push(token.value);
    else if (token.kind === 'option') {
      if (token.name === 'help') return null;
      const o = Object.hasOwn(spec.options, token.name) ? spec.options[token.name]! : undefined;
      if (o === undefined) {
        const hint = token.rawName.startsWith('--') ? '' : ` (options are ${[...byShort.keys()].map((s) => `-${s}`).join(', ') || 'long only'})`;
        throw new UsageError(`unknown option ${token.rawName}${hint}`);
      }
      const label = `--${token.name}`;
      if (o.type === 'boolean') {
        if (token.value !== undefined) throw new UsageError(`${label} takes no value (got ${JSON.stringify(token.value)})`);
        if (raw.has(token.name)) throw new UsageError(`${label} is given more than once`);
        raw.set(token.name, true);
        continue;
      }
      const value = token.value;
      if (value === undefined) throw new UsageError(`${label} needs a value: ${label} ${placeholderOf(o)}`);
      if (!token.inlineValue && value.startsWith('-') && value !== '-' && !/^-[0-9]/.test(value)) {
        throw new UsageError(`${label} needs a value, got the option ${value} (write ${label}=${value} if that is the value)`);
      }
      const list = raw.get(token.name);
      if (list !== undefined && !(o.type === 'string' && o.multiple === true)) throw new UsageError(`${label} is given more than once`);
      if (Array.isArray(list)) list.push(value);
      else raw.set(token.name, [value]);
    }
  }

  const values: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  const given = new Set<string>();
  for (const [name, o] of Object.entries(spec.options)) {
    const label = `--${name}`;
    const got = raw.get(name);
    if (got !== undefined) given.add(name);
    const envText = o.env !== undefined && got === undefined ? env[o.env] : undefined;
    const fromEnv = envText !== undefined && envText !== '';
    if (o.type === 'boolean') {
      values[name] = got === true || (fromEnv && /^(1|true|yes|on)$/i.test(envText));
      continue;
    }
    const texts = Array.isArray(got) ? got : fromEnv ? [envText] : undefined;
    const source = got === undefined ? o.env! : label;
    if (texts === undefined) {
      if (o.required === true) throw new UsageError(`${label} ${placeholderOf(o)} is required`);
      values[name] = o.type === 'string' && o.multiple === true ? [] : o.default;
      continue;
    }
    if (o.type === 'integer') values[name] = integerValue(texts[0]!, source, o);
    else {
      const checked = texts.map((t) => stringValue(t, source, o));
      values[name] = o.multiple === true ? checked : checked[0];
    }
  }

  const declared = spec.positionals ?? [];
  const variadic = declared.at(-1)?.variadic === true;
  const needed = declared.filter((p) => p.required === true).length;
  if (positionals.length < needed) {
    const missing = declared[positionals.length]!;
    throw new UsageError(`missing <${missing.name}>: ${missing.description}`);
  }
  if (!variadic && positionals.length > declared.length) {
    const extra = positionals[declared.length]!;
    throw new UsageError(
      declared.length === 0
        ? `unexpected argument ${JSON.stringify(extra)} (${spec.name} takes options only)`
        : `unexpected argument ${JSON.stringify(extra)}: ${spec.name} takes ${declared.map((p) => `<${p.name}>`).join(' ')}`,
    );
  }
  return { values: values as Values<O>, positionals, given };
}

/**
 * Declares a command: the returned function parses its argv (throwing {@link UsageError}),
 * prints the generated help for `--help`, and otherwise runs `run` with the typed values.
 */
export function defineCommand<const O extends OptionSpecs>(
  spec: CommandSpec<O>,
  run: (args: ParsedArguments<O>, io: CliIo, signal?: AbortSignal) => Promise<number>,
): Command<O> {
  const command = async (argv: readonly string[], io: CliIo, signal?: AbortSignal): Promise<number> => {
    const parsed = parseCommand(spec, argv, io.env);
    if (parsed === null) {
      writeLine(io.stdout, helpText(spec as CommandSpec<OptionSpecs>));
      return ExitCode.ok;
    }
    return run(parsed, io, signal);
  };
  return Object.assign(command, { spec });
}

/** Reads a stream to the end (stdin for `-`). */
export async function readStream(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

/** Where a file or `-` could not be read: the option, the file and the reason, for exit 1. */
export class InputError extends Error {
  override readonly name = 'InputError';
  readonly code = 'ERR_CLI_INPUT';
}

/**
 * Reads the file an option names, `-` meaning stdin. A missing or unreadable file is an
 * {@link InputError} naming the option and the file.
 */
export async function readFileArgument(option: string, path: string, io: CliIo): Promise<Buffer> {
  if (path === '-') return readStream(io.stdin);
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory'
            : (code ?? (err as Error).message);
    throw new InputError(`${option} ${path}: cannot read the file (${why})`);
  }
}

/** A value that is literal text, `-` (stdin) or, with `allowFile`, `@file` (curl's convention). */
export async function readInput(option: string, value: string, io: CliIo, allowFile = false): Promise<Buffer> {
  if (value === '-') return readStream(io.stdin);
  if (allowFile && value.startsWith('@')) return readFileArgument(option, value.slice(1), io);
  return Buffer.from(value, 'utf8');
}

/** Which of several options read stdin: more than one is a usage error. */
export function oneStdin(options: Readonly<Record<string, string | undefined>>): void {
  const readers = Object.entries(options).filter(([, v]) => v === '-' || v === '@-');
  if (readers.length > 1) throw new UsageError(`only one of ${readers.map(([n]) => n).join(', ')} can read stdin (-)`);
}

/**
 * The one line a server command prints when it cannot listen: a port in use says what to do
 * (`--port N` or `PORT=N`), anything else names the address and the system's code.
 */
export function listenFailure(command: string, host: string, port: number, err: Error): string {
  const code = (err as { code?: string }).code;
  const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (code === 'EADDRINUSE') return `tokbind ${command}: ${address} is in use: pick another with --port N or PORT=N (0 picks a free one)`;
  if (code === 'EACCES') return `tokbind ${command}: ${address}: permission denied (ports below 1024 need privileges; pick another with --port N or PORT=N)`;
  if (code === 'EADDRNOTAVAIL') return `tokbind ${command}: cannot listen on ${address}: no such local address (check --host)`;
  return `tokbind ${command}: cannot listen on ${address}: ${code ?? err.message}`;
}
