/**
 * What every long-running server command (`serve`, `proxy`, `demo --serve`) shares: listening
 * (optionally behind the PROXY protocol), the one `listening on URL` line, a clean stop on
 * SIGINT/SIGTERM, and `--workers N` — node:cluster workers on one port. Token Binding is
 * verified per connection, so workers share nothing but the port (and, through the primary, the
 * metrics).
 *
 * A command declares `...clusterOptions`, and its handler starts with
 * `if (isClusterPrimary(values)) return runWorkers(…)`: the primary forks the workers (each
 * re-runs the same command line as a cluster worker), prints the listening line once all of them
 * listen, restarts a worker that dies, and stops them all on SIGINT/SIGTERM.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { realpathSync } from 'node:fs';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { acceptProxyProtocol } from '../tls/proxy-protocol.js';
import type { Server as TlsServer } from 'node:tls';
import { listenFailure, type OptionSpecs } from './args.js';
import { ExitCode, UsageError, untilStopped, writeLine, type CliIo } from './io.js';

/** `--workers N|auto` and `--proxy-protocol`: every server command. */
export const clusterOptions = {
  workers: {
    type: 'string',
    default: '1',
    placeholder: 'N|auto',
    description: 'worker processes sharing the port (node:cluster); auto = one per core',
  },
  'proxy-protocol': {
    type: 'boolean',
    description:
      'read a PROXY protocol v1/v2 header before TLS on every connection (behind an L4 balancer, e.g. HAProxy send-proxy-v2); connections without a valid one within 5 s are closed',
  },
} as const satisfies OptionSpecs;

/** The highest `--workers` accepted: more processes than this on one machine is a typo. */
export const MAX_WORKERS = 256;

/** `--workers` as a number: a positive integer, or `auto` (the machine's available parallelism). */
export function parseWorkerCount(text: string): number {
  if (text === 'auto') return availableParallelism();
  if (!/^[0-9]{1,4}$/.test(text) || Number(text) < 1 || Number(text) > MAX_WORKERS) {
    throw new UsageError(`--workers must be an integer 1..${MAX_WORKERS} or auto, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** Whether this process must fork workers instead of serving (a primary asked for more than one). */
export function isClusterPrimary(values: { readonly workers: string }): boolean {
  return cluster.isPrimary && parseWorkerCount(values.workers) > 1;
}

/** Set by the primary for its workers: material every worker must share (a self-signed certificate). */
const SHARED_ENV = 'TOKBIND_CLUSTER_SHARED';

/** In a worker, what the primary shared (see `runWorkers`' `shared`); otherwise undefined. */
export function sharedFromPrimary<T>(): T | undefined {
  const text = cluster.isWorker ? process.env[SHARED_ENV] : undefined;
  return text === undefined ? undefined : (JSON.parse(text) as T);
}

interface ListeningMessage {
  readonly tokbind: 'listening';
  readonly url: string;
}

function isListening(message: unknown): message is ListeningMessage {
  return typeof message === 'object' && message !== null && (message as { tokbind?: unknown }).tokbind === 'listening';
}

/**
 * Says that the server is ready: `listening on URL` on stdout — or, in a `--workers` worker, to
 * the primary, which prints the line once all its workers are ready. In a worker, also applies
 * the TLS ticket keys the primary shared to `server`.
 */
export function announceListening(io: CliIo, url: string, server?: { setTicketKeys?: (keys: Buffer) => void }): void {
  if (cluster.isWorker) {
    const ticketKeys = sharedFromPrimary<{ ticketKeys?: string }>()?.ticketKeys;
    if (ticketKeys !== undefined) server?.setTicketKeys?.(Buffer.from(ticketKeys, 'base64'));
    process.send?.({ tokbind: 'listening', url } satisfies ListeningMessage);
  } else {
    writeLine(io.stdout, `listening on ${url}`);
  }
}

export interface ListenAndServeOptions {
  /** The command's name, for messages. */
  readonly command: string;
  readonly server: TlsServer | NetServer;
  readonly scheme: 'https' | 'http';
  readonly host: string;
  readonly port: number;
  /** Put PROXY protocol reading in front (TLS servers only). */
  readonly proxyProtocol?: boolean;
  readonly io: CliIo;
  readonly signal?: AbortSignal | undefined;
  /** Runs once stopped, before the server closes (e.g. closing upstream pools). */
  readonly onStop?: () => Promise<void> | void;
}

/**
 * Listens, says so (`listening on SCHEME://HOST:PORT` on stdout — or, in a cluster worker, to the
 * primary, which prints it once for all), runs until SIGINT/SIGTERM or `signal`, then closes the
 * server and every connection. Returns the exit status (1 when the port cannot be bound).
 */
export async function listenAndServe(options: ListenAndServeOptions): Promise<number> {
  const { command, server, io, host } = options;
  const listener: NetServer = options.proxyProtocol === true ? acceptProxyProtocol(server as TlsServer) : server;
  const failure = await new Promise<Error | null>((resolve) => {
    const onError = (err: Error): void => {
      listener.off('listening', onListening);
      resolve(err);
    };
    const onListening = (): void => {
      listener.off('error', onError);
      resolve(null);
    };
    listener.once('error', onError);
    listener.once('listening', onListening);
    listener.listen(options.port, host);
  });
  if (failure !== null) {
    writeLine(io.stderr, listenFailure(command, host, options.port, failure));
    return ExitCode.failure;
  }
  const { port } = listener.address() as AddressInfo;
  const url = `${options.scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  // Listen for SIGINT/SIGTERM before saying so: whoever reads the line may signal at once.
  const stopped = untilStopped(options.signal);
  announceListening(io, url, server as { setTicketKeys?: (keys: Buffer) => void });
  await stopped;
  await options.onStop?.();
  const closing: Promise<unknown>[] = [once(listener, 'close')];
  listener.close();
  if (listener !== server) {
    // Behind the PROXY protocol front the TLS server never listened, but it owns every
    // connection the front handed it.
    closing.push(once(server, 'close'));
    server.close();
  }
  (server as { closeAllConnections?: () => void }).closeAllConnections?.();
  await Promise.all(closing);
  return ExitCode.ok;
}

export interface RunWorkersOptions {
  readonly command: string;
  readonly workers: number;
  readonly io: CliIo;
  readonly signal?: AbortSignal | undefined;
  /** JSON-serialisable material every worker must share (read with `sharedFromPrimary`). */
  readonly shared?: unknown;
  /** Called with each worker as it is forked (e.g. to answer its metrics requests). */
  readonly onWorker?: (worker: Worker) => void;
}

/** Restarts allowed in any one minute before the primary gives up (a worker that keeps dying). */
export const MAX_RESTARTS_PER_MINUTE = 5;

/**
 * The primary of `--workers N`: forks N workers running the same command line, prints
 * `listening on URL` once all of them listen (the URL a worker reported: they share the port),
 * restarts a worker that exits unexpectedly (at most {@link MAX_RESTARTS_PER_MINUTE} a minute),
 * and on SIGINT/SIGTERM (or `signal`) stops every worker and exits 0. A worker that fails before
 * listening (port in use, bad certificate) has printed its own error; the primary then stops the
 * others and exits 1.
 */
export async function runWorkers(options: RunWorkersOptions): Promise<number> {
  const { io, command } = options;
  // Workers re-run this process's own command line: only the tokbind binary can be forked.
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const script = process.argv[1] === undefined ? undefined : realpathSync(process.argv[1]);
  if (script !== realpathSync(main)) throw new UsageError('--workers needs the tokbind command itself (it forks workers that re-run the command line)');
  cluster.setupPrimary({ exec: main, args: process.argv.slice(2), silent: false });
  // One set of TLS session ticket keys for all workers: a client resumes on whichever worker its
  // next connection lands (each would otherwise make its own keys).
  const shared = { ...(options.shared as object | undefined), ticketKeys: randomBytes(48).toString('base64') };
  const env: Record<string, string> = { [SHARED_ENV]: JSON.stringify(shared) };
  const workers = new Set<Worker>();
  let stopping = false;
  let restarts: number[] = [];
  let url: string | undefined;
  let ready = 0;
  let settle!: (status: number | null) => void;
  const startup = new Promise<number | null>((resolve) => (settle = resolve));
  let failedAfterStart: ((status: number) => void) | undefined;
  const gaveUp = new Promise<number>((resolve) => (failedAfterStart = resolve));

  // Each worker has a slot, 0..N-1, kept by its replacement: a stable `worker` label in metrics.
  const fork = (slot: number): void => {
    const worker = cluster.fork({ ...env, TOKBIND_WORKER_INDEX: String(slot) });
    workers.add(worker);
    options.onWorker?.(worker);
    let listening = false;
    worker.on('message', (message: unknown) => {
      if (!isListening(message) || listening) return;
      listening = true;
      url ??= message.url;
      if (++ready === options.workers) settle(null);
    });
    worker.on('exit', (code, signal) => {
      workers.delete(worker);
      if (stopping) return;
      if (!listening || url === undefined) {
        // Failed on the way up: it said why on stderr.
        settle(ExitCode.failure);
        return;
      }
      const now = Date.now();
      restarts = restarts.filter((t) => now - t < 60_000);
      if (restarts.length >= MAX_RESTARTS_PER_MINUTE) {
        writeLine(io.stderr, `tokbind ${command}: workers keep exiting (${MAX_RESTARTS_PER_MINUTE} restarts in a minute): stopping`);
        failedAfterStart?.(ExitCode.failure);
        return;
      }
      restarts.push(now);
      writeLine(io.stderr, `tokbind ${command}: worker ${worker.process.pid ?? '?'} exited (${signal ?? `code ${code}`}); starting another`);
      ready--;
      fork(slot);
    });
  };

  const stopAll = async (): Promise<void> => {
    stopping = true;
    const exits = [...workers].map((w) => (w.isDead() ? Promise.resolve() : once(w, 'exit').then(() => undefined)));
    for (const w of workers) w.process.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const w of workers) w.process.kill('SIGKILL');
    }, 10_000);
    timer.unref();
    await Promise.all(exits);
    clearTimeout(timer);
  };

  const stopped = untilStopped(options.signal);
  for (let i = 0; i < options.workers; i++) fork(i);
  const early = await Promise.race([startup, stopped.then(() => ExitCode.ok)]);
  if (early !== null) {
    await stopAll();
    return early;
  }
  writeLine(io.stdout, `listening on ${url!}`);
  const status = await Promise.race([stopped.then(() => ExitCode.ok), gaveUp]);
  await stopAll();
  return status;
}
