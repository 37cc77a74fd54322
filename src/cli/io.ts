import type { Readable, Writable } from 'node:stream';
import { TokenBindingError } from '../errors.js';

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

/**
 * Runs a node:util `parseArgs` call, turning its errors into usage errors.
 *
 * @deprecated Declare the command with `defineCommand` (src/cli/args.ts) instead: one parser, one
 * set of conventions, generated `--help`.
 */
export function parseCommandLine<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * Prints a failure as `{"error":{"code","message"}}` on stderr and returns exit status 1. A
 * fetch failure's own cause (a TokenBindingError, a socket or certificate error) is what is
 * reported: "fetch failed" alone says nothing.
 */
export function reportError(io: CliIo, err: unknown): number {
  let reported = err;
  while (!(reported instanceof TokenBindingError) && reported instanceof Error && reported.cause instanceof Error) reported = reported.cause;
  const e = reported as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : 'ERR_TB_CLIENT';
  writeJson(io.stderr, { error: { code, message: typeof e.message === 'string' ? e.message : String(reported) } });
  return ExitCode.failure;
}

/** Resolves when the process is told to stop (SIGINT, SIGTERM) or `signal` aborts. */
export function untilStopped(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      signal?.removeEventListener('abort', stop);
      resolve();
    };
    if (signal?.aborted === true) return stop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    signal?.addEventListener('abort', stop, { once: true });
  });
}
