import { Readable, Writable } from 'node:stream';
import type { CliCommand, CliIo } from '../../src/cli/io.js';

export interface CommandRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a CLI command against in-memory streams, as `tokbind <command> ...argv` would run it. */
export async function runCommand(command: CliCommand, argv: readonly string[], stdin = ''): Promise<CommandRun> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const sink = (into: Buffer[]) =>
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        into.push(Buffer.from(chunk));
        callback();
      },
    });
  const io: CliIo = { stdin: Readable.from([Buffer.from(stdin)]), stdout: sink(out), stderr: sink(err), env: {} };
  const code = await command(argv, io);
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}
