#!/usr/bin/env node
/**
 * `tokbind`: a thin command line over the library. Each command lives in its own module and is
 * loaded only when asked for, so `tokbind decode` does not pay for the server or the client.
 */
import { ExitCode, UsageError, writeLine, type CliCommand, type CliIo } from './io.js';

interface CommandEntry {
  readonly summary: string;
  readonly usage: string;
  readonly load: () => Promise<CliCommand>;
}

const commands: Record<string, CommandEntry> = {
  decode: {
    summary: 'decode a Sec-Token-Binding header value to JSON',
    usage: 'tokbind decode <header | ->',
    load: async () => (await import('./decode.js')).decode,
  },
  verify: {
    summary: 'verify a Sec-Token-Binding header against an EKM (RFC 8471 §4.2, RFC 8473 §2)',
    usage:
      'tokbind verify --ekm <hex> [--key-parameters ecdsap256,rsa2048_pss,rsa2048_pkcs1.5] <header>\n' +
      '       tokbind verify --batch [--key-parameters ...]   (NDJSON {"header","ekm","keyParameters"?} on stdin)',
    load: async () => (await import('./verify.js')).verify,
  },
  serve: {
    summary: 'run a binding-aware HTTPS server (GET /whoami, GET /metrics)',
    usage: 'tokbind serve [--port N] [--host 127.0.0.1] [--cert file --key file] [--key-parameters ...] [--required]',
    load: async () => (await import('./serve.js')).serve,
  },
  fetch: {
    summary: 'make one Token-Bound HTTPS request and print the response body',
    usage:
      "tokbind fetch <url> [--key-store file] [--key-parameters ecdsap256] [--insecure] [--ca file] [-H 'Name: value'] [--include]",
    load: async () => (await import('./fetch.js')).fetch,
  },
  keygen: {
    summary: 'create a key store, or add a key for a scope to one',
    usage: 'tokbind keygen --key-store file [--url <url> | --scope <scope>] [--key-parameters ecdsap256]',
    load: async () => (await import('./keygen.js')).keygen,
  },
  id: {
    summary: 'print the Token Binding ID and hash a server will see for a URL',
    usage: 'tokbind id --key-store file --url <url>',
    load: async () => (await import('./id.js')).id,
  },
  demo: {
    summary: 'show a stolen cookie failing against a binding-aware server (what `npm start` runs)',
    usage: 'tokbind demo [--once | --serve] [--port N] [--host 127.0.0.1] [--session-store memory|redis://HOST:PORT]   (PORT overrides 8443)',
    load: async () => (await import('./demo.js')).demo,
  },
};

function overview(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return ['usage: tokbind <command> [options]', '', 'commands:', ...lines, '', "'tokbind <command> --help' for a command's options"].join('\n');
}

/** Runs the CLI with `argv` (without node and script) and returns the exit status. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    writeLine(name === undefined ? io.stderr : io.stdout, overview());
    return name === undefined ? ExitCode.usage : ExitCode.ok;
  }
  const entry = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (entry === undefined) {
    writeLine(io.stderr, `tokbind: unknown command '${name}'\n\n${overview()}`);
    return ExitCode.usage;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    writeLine(io.stdout, `usage: ${entry.usage}`);
    return ExitCode.ok;
  }
  const command = await entry.load();
  try {
    return await command(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      writeLine(io.stderr, `tokbind ${name}: ${err.message}\nusage: ${entry.usage}`);
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
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      writeLine(process.stderr, `tokbind: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = ExitCode.failure;
    },
  );
}
