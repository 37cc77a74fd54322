/**
 * Child processes for the HTTP benchmarks: the server and the load generator each run in their
 * own Node process, pinned to their own core with `taskset` where it exists, and talk to the
 * runner over the IPC channel with request/reply messages, each bounded in time.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

export interface Pinning {
  /** True when children are pinned with taskset. */
  readonly used: boolean;
  readonly serverCore: number | null;
  readonly generatorCore: number | null;
  /** One line for the report. */
  readonly note: string;
}

export function detectPinning(): Pinning {
  const cores = availableParallelism();
  const which = spawnSync('sh', ['-c', 'command -v taskset'], { encoding: 'utf8' });
  const taskset = which.status === 0 && which.stdout.trim() !== '';
  if (!taskset) {
    return { used: false, serverCore: null, generatorCore: null, note: 'taskset not found: server and generator are not pinned (OS scheduling)' };
  }
  if (cores < 2) {
    return { used: false, serverCore: null, generatorCore: null, note: `only ${cores} core: server and generator share it (not pinned)` };
  }
  // The runner itself goes to core 0 with the generator; it idles while the generator works.
  const self = spawnSync('taskset', ['-a', '-cp', '0', String(process.pid)], { encoding: 'utf8' });
  const selfNote = self.status === 0 ? 'runner on core 0' : 'runner not pinned';
  return {
    used: true,
    serverCore: 1,
    generatorCore: 0,
    note: `taskset: server child on core 1, load generator child on core 0 (${selfNote}; ${cores} cores)`,
  };
}

type Message = Record<string, unknown> & { id?: number; event?: string };

/** A child Node process speaking request/reply over IPC. */
export class Child {
  readonly #proc: ChildProcess;
  readonly #pending = new Map<number, { resolve: (m: Message) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  readonly #listeners = new Set<(m: Message) => void>();
  #nextId = 1;
  #exited: Error | null = null;

  /** `core`: a core number, a taskset list such as `0-1` (to undo the runner's own pinning), or null. */
  constructor(script: URL, options: { core: number | string | null; nodeArgs?: readonly string[]; name: string }) {
    const path = fileURLToPath(script);
    const args = [...(options.nodeArgs ?? []), path];
    // Child output goes to stderr: with --json, stdout carries the JSON alone.
    const stdio: ['ignore', 2, 'inherit', 'ipc'] = ['ignore', 2, 'inherit', 'ipc'];
    this.#proc =
      options.core === null
        ? spawn(process.execPath, args, { stdio })
        : spawn('taskset', ['-c', String(options.core), process.execPath, ...args], { stdio });
    this.#proc.on('message', (m: Message) => {
      if (typeof m.id === 'number' && this.#pending.has(m.id)) {
        const p = this.#pending.get(m.id)!;
        this.#pending.delete(m.id);
        clearTimeout(p.timer);
        if (typeof m.error === 'string') p.reject(new Error(`${options.name}: ${m.error}`));
        else p.resolve(m);
      } else {
        for (const l of this.#listeners) l(m);
      }
    });
    this.#proc.on('exit', (code, signal) => {
      this.#exited = new Error(`${options.name} exited (code ${code}, signal ${signal})`);
      for (const p of this.#pending.values()) {
        clearTimeout(p.timer);
        p.reject(this.#exited);
      }
      this.#pending.clear();
    });
  }

  get pid(): number | undefined {
    return this.#proc.pid;
  }

  /** Sends `msg` and waits for the reply with the same id, at most `timeoutMs`. */
  request(msg: Message, timeoutMs: number): Promise<Message> {
    if (this.#exited !== null) return Promise.reject(this.#exited);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`no reply to ${String(msg.cmd)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.#proc.send({ ...msg, id });
    });
  }

  /** Events the child sends on its own (no id), e.g. the generator's window start/end. */
  onEvent(listener: (m: Message) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Ends the child: a polite exit request, then SIGKILL if it lingers. */
  async close(): Promise<void> {
    if (this.#exited !== null) return;
    const exited = new Promise<void>((resolve) => this.#proc.once('exit', () => resolve()));
    try {
      this.#proc.send({ cmd: 'exit' });
    } catch {
      // The channel may already be gone; the kill below covers it.
    }
    const timer = setTimeout(() => this.#proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

/** Hooks a child module's message loop: `handler` answers each request (by its `cmd`). */
export function serveParent(handler: (msg: Message) => Promise<Message> | Message): void {
  if (process.send === undefined) throw new Error('this module runs as a benchmark child process');
  process.on('message', (msg: Message) => {
    if (msg.cmd === 'exit') {
      process.exit(0);
    }
    Promise.resolve()
      .then(() => handler(msg))
      .then(
        (reply) => process.send!({ ...reply, id: msg.id }),
        (err: unknown) => process.send!({ id: msg.id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
      );
  });
  // A runner that dies must not leave children behind.
  process.on('disconnect', () => process.exit(0));
}

/** Sends an event (no reply expected) to the parent. */
export function emit(event: string, data: Record<string, unknown> = {}): void {
  process.send?.({ ...data, event });
}
