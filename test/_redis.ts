/**
 * A real redis-server for tests: started on a free loopback port in a temporary directory, with
 * persistence off, and stopped (always: register `stop` in t.teardown).
 *
 *   import { startRedis } from '../_redis.js'
 *   const redis = await startRedis()
 *   t.teardown(() => redis.stop())
 *   // redis.url === 'redis://127.0.0.1:PORT'
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, requireTool } from './_tools.js';

export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  /** Stops the server and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

const READY = /Ready to accept connections/;

async function startOnce(binary: string, port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`redis-server did not become ready in 10 s:\n${output}`)), 10_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (READY.test(output)) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null): void => fail(new Error(`redis-server exited (${code}) before it was ready:\n${output}`));
    function cleanup(): void {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
    }
    function fail(err: Error): void {
      cleanup();
      child.kill('SIGKILL');
      reject(err);
    }
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', onExit);
    child.once('error', (err) => fail(err));
  });
  // Keep draining: a full pipe would stall the server.
  child.stdout!.resume();
  child.stderr!.resume();
  return child;
}

/** Starts redis-server on a free port of 127.0.0.1 (a few tries: another process may take the port first). */
export async function startRedis(): Promise<RedisServer> {
  const binary = requireTool('redis-server');
  const dir = await mkdtemp(join(tmpdir(), 'tokbind-redis-'));
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    let child: ChildProcess;
    try {
      child = await startOnce(binary, port, dir);
    } catch (err) {
      lastError = err;
      continue;
    }
    let stopped: Promise<void> | undefined;
    return {
      port,
      url: `redis://127.0.0.1:${port}`,
      stop: () =>
        (stopped ??= (async () => {
          if (child.exitCode === null && child.signalCode === null) {
            const exited = once(child, 'exit');
            child.kill('SIGTERM');
            await exited;
          }
          await rm(dir, { recursive: true, force: true });
        })()),
    };
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}
