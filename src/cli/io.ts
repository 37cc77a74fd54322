import type { Readable, Writable } from 'node:stream';

/** Where a CLI command reads and writes: process streams in real use, buffers in tests. */
export interface CliIo {
  readonly stdin: Readable;
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly env: NodeJS.ProcessEnv;
}

/** Exit status conventions of every `tokbind` command. */
export const ExitCode = {
  ok: 0,
  /** The input was read but rejected (malformed, invalid signature, request failed). */
  failure: 1,
  /** The command line itself is wrong. */
  usage: 2,
} as const;

/** A command: takes the arguments after its name, returns the exit status. */
export type CliCommand = (argv: readonly string[], io: CliIo) => Promise<number>;

/** Thrown by commands for a usage error; main prints it with the command's usage and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function writeLine(stream: Writable, text: string): void {
  stream.write(text + '\n');
}

export function writeJson(stream: Writable, value: unknown): void {
  stream.write(JSON.stringify(value) + '\n');
}
