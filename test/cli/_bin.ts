import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built binary, as `npm install -g` would run it. */
export const BIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface BinRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface BinOptions {
  readonly stdin?: string | Buffer;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/** Spawns `node dist/src/cli/main.js ...args` and resolves with its exit status and output. */
export function runBin(args: readonly string[], options: BinOptions = {}): Promise<BinRun> {
  return new Promise((resolve, reject) => {
    const child = spawnBin(args, options);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin!.end(options.stdin ?? '');
  });
}

/** Spawns the binary with piped stdio (for servers: read stdout, then kill). */
export function spawnBin(args: readonly string[], options: BinOptions = {}): ChildProcess {
  const env = { ...process.env, NO_COLOR: '1', ...options.env };
  return spawn(process.execPath, [BIN, ...args], { env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
}
