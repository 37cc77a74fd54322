#!/usr/bin/env node
/**
 * `tokbind`: a thin command line over the library. Each command lives in its own module and is
 * loaded only when asked for, so `tokbind decode` does not pay for the server or the client.
 */
import { readFileSync } from 'node:fs';
import { helpText, usageLine, type Command } from './args.js';
import { ExitCode, UsageError, writeLine, type CliIo } from './io.js';

interface CommandEntry {
  /** One line for `tokbind --help`. */
  readonly summary: string;
  /** The command, declared with `defineCommand` (src/cli/args.ts): options, help, usage. */
  readonly load: () => Promise<Command>;
}

/** Every command. To add one: declare it with `defineCommand` in its own file, add a line here. */
const commands: Record<string, CommandEntry> = Object.assign(Object.create(null) as Record<string, CommandEntry>, {
  decode: {
    summary: 'decode a Sec-Token-Binding header value to JSON',
    load: async () => (await import('./decode.js')).decode,
  },
  verify: {
    summary: 'verify a Sec-Token-Binding header against an EKM (RFC 8471 §4.2, RFC 8473 §2)',
    load: async () => (await import('./verify.js')).verify,
  },
  serve: {
    summary: 'run a binding-aware HTTPS server (GET /whoami, GET /metrics)',
    load: async () => (await import('./serve.js')).serve,
  },
  fetch: {
    summary: 'make one Token-Bound HTTPS request and print the response body',
    load: async () => (await import('./fetch.js')).fetch,
  },
  keygen: {
    summary: 'create a key store, or add a key for a scope to one',
    load: async () => (await import('./keygen.js')).keygen,
  },
  id: {
    summary: 'print the Token Binding ID and hash a server will see for a URL',
    load: async () => (await import('./id.js')).id,
  },
  demo: {
    summary: 'show a stolen cookie failing against a binding-aware server (what `npm start` runs)',
    load: async () => (await import('./demo.js')).demo,
  },
  proxy: {
    summary: 'run a binding-aware TLS-terminating reverse proxy in front of any HTTP backend',
    load: async () => (await import('./proxy.js')).proxy,
  },
  forward: {
    summary: 'run a client sidecar: plain HTTP on loopback in, Token-Bound TLS out',
    load: async () => (await import('./forward.js')).forward,
  },
});

function overview(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'usage: tokbind <command> [options]',
    '       tokbind help <command> | tokbind <command> --help | tokbind --version',
    '',
    'commands:',
    ...lines,
    '',
    'exit codes: 0 success, 1 input read but rejected ({"error":{"code","message"}} on stderr), 2 usage error',
    "'tokbind help <command>' lists a command's options, their defaults and examples",
  ].join('\n');
}

/** The package version, from package.json (dist/src/cli/main.js → ../../../package.json). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function unknownCommand(io: CliIo, name: string): number {
  writeLine(io.stderr, `tokbind: unknown command '${name}'\n\n${overview()}`);
  return ExitCode.usage;
}

/** Runs the CLI with `argv` (without node and script) and returns the exit status. */
export async function main(argv: readonly string[], io: CliIo, signal?: AbortSignal): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    writeLine(io.stderr, overview());
    return ExitCode.usage;
  }
  if (name === '--version' || name === '-V') {
    writeLine(io.stdout, packageVersion());
    return ExitCode.ok;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    if (topic === undefined) {
      writeLine(io.stdout, overview());
      return ExitCode.ok;
    }
    const entry = Object.hasOwn(commands, topic) ? commands[topic] : undefined;
    if (entry === undefined) return unknownCommand(io, topic);
    writeLine(io.stdout, helpText((await entry.load()).spec));
    return ExitCode.ok;
  }
  const entry = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (entry === undefined) return unknownCommand(io, name);
  const command = await entry.load();
  try {
    return await command(rest, io, signal);
  } catch (err) {
    if (err instanceof UsageError) {
      writeLine(io.stderr, `tokbind ${name}: ${err.message}\nusage: ${usageLine(command.spec)}\n'tokbind help ${name}' lists every option`);
      return ExitCode.usage;
    }
    throw err;
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === (await import('node:url')).pathToFileURL(
  (await import('node:fs')).realpathSync(process.argv[1]),
).href;

if (invokedDirectly) {
  const io: CliIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
  // A `--workers` worker's IPC channel to its primary would keep it alive after its command ends.
  const done = (): void => {
    if (process.connected) process.disconnect();
  };
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
      done();
    },
    (err: unknown) => {
      writeLine(process.stderr, `tokbind: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = ExitCode.failure;
      done();
    },
  );
}
