/**
 * The load generator (a child process, pinned to its own core): N TLS connections, one request in
 * flight on each, no pipelining; completed requests are counted over a fixed window after a
 * warm-up. HTTP/1.1 is written and read by hand — a request is a pre-built buffer and a response
 * is framed by Content-Length — so the generator spends a few µs per request and stays far from
 * being the bottleneck.
 *
 * Why not autocannon: its `setupClient` hook runs before the connection exists and the request is
 * written as soon as the socket connects, so a header that depends on the connection's exported
 * keying material (Token Binding signs the EKM, which differs per connection) cannot be set
 * without patching its internals. The same generator drives every variant, with or without the
 * header.
 *
 * Modes: `keepalive` (each connection computes its header once after the handshake and reuses
 * it) and `newconn` (a fresh TLS connection per request; by default no session resumption: the
 * client never offers a session, the server sets SSL_OP_NO_TICKET; with `resume`, each slot
 * resumes its previous connection's session, as returning clients do). `protocol: 'h2'` runs
 * keep-alive over node:http2 sessions instead of hand-written HTTP/1.1.
 */
import { connect as http2Connect } from 'node:http2';
import { connect as tcpConnect, type Socket } from 'node:net';
import { TLSSocket, connect, createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { createDpopClientKeys, createDpopProofs } from '../dpop.js';
import type { DpopClientKey } from '../dpop.js';
import { emit, serveParent } from './proc.js';
import { createClientBinder } from './tokbind-client.js';
import type { ClientBinder } from './tokbind-client.js';

export type Auth = 'none' | 'tokbind' | 'dpop';

export interface RunConfig {
  readonly port: number;
  readonly ca: string;
  readonly mode: 'keepalive' | 'newconn';
  readonly auth: Auth;
  readonly connections: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** DPoP only: proofs to pre-generate before the window. */
  readonly proofs?: number;
  /** Request path. Default `/`. */
  readonly path?: string;
  /**
   * `tls` (default), or `tcp`: plain HTTP/1.1 (the sidecar's loopback side; `auth` must be
   * `none` — whatever is behind signs).
   */
  readonly transport?: 'tls' | 'tcp';
  /** `h1` (default): HTTP/1.1 written by hand. `h2`: node:http2 sessions, one stream in flight each. */
  readonly protocol?: 'h1' | 'h2';
  /**
   * newconn only: resume the TLS session of the slot's previous connection (the server must issue
   * tickets). Each resumed connection still has its own EKM, so it is signed anew.
   */
  readonly resume?: boolean;
}

export interface RunResult {
  /** Completed requests inside the window. */
  readonly completed: number;
  readonly windowMs: number;
  readonly rps: number;
  readonly errors: number;
  readonly firstErrors: string[];
  /** Generator CPU time over the window / wall time (1 = a whole core). */
  readonly cpu: number;
  /** DPoP: proofs made inside the timed window because the pre-generated pool ran out. */
  readonly lateProofs: number;
  readonly proofGenMs: number;
  /** Request latency inside the window, µs. */
  readonly p50us: number;
  readonly p99us: number;
  /** newconn with `resume`: the share of connections in the window that resumed a session. */
  readonly resumedShare?: number;
}

const HOST = '127.0.0.1';
const SERVERNAME = 'localhost';

class Failure {
  count = 0;
  readonly first: string[] = [];
  add(what: string): void {
    this.count++;
    if (this.first.length < 5) this.first.push(what);
  }
}

/** Reads one HTTP/1.1 response (status line, headers, Content-Length or chunked body). */
class ResponseReader {
  #buf: Buffer | null = null;
  #need = -1;
  #status = 0;
  #chunked = false;

  /** Returns the status code when a whole response has arrived, else 0. */
  push(chunk: Buffer): number {
    let b = this.#buf === null ? chunk : Buffer.concat([this.#buf, chunk]);
    if (this.#need < 0) {
      const end = b.indexOf('\r\n\r\n');
      if (end < 0) {
        this.#buf = b;
        return 0;
      }
      const head = b.toString('latin1', 0, end);
      this.#status = Number(head.slice(9, 12));
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      this.#chunked = cl === null && /\r\ntransfer-encoding:\s*chunked/i.test(head);
      this.#need = cl !== null ? Number(cl[1]) : 0;
      b = b.subarray(end + 4);
    }
    if (this.#chunked ? b.indexOf('0\r\n\r\n') < 0 : b.length < this.#need) {
      this.#buf = b;
      return 0;
    }
    const status = this.#status;
    this.#buf = null;
    this.#need = -1;
    return status;
  }
}

function request(port: number, headerLine: string, close: boolean, path = '/'): Buffer {
  return Buffer.from(
    `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\n${headerLine}${close ? 'Connection: close\r\n' : ''}\r\n`,
    'latin1',
  );
}

interface Window {
  counting: boolean;
  stopping: boolean;
  completed: number;
  latencies: number[];
}

class Generator {
  readonly #binders: ClientBinder[] = [];
  readonly #dpopKeys: DpopClientKey[] = [];
  /** Connections opened by `open` and held until `close` (memory figures). */
  readonly #held: TLSSocket[] = [];
  #context: SecureContext | null = null;

  /**
   * One secure context for all connections (one per connect would re-parse it each time). The
   * generator does not validate the server certificate (`rejectUnauthorized: false`, as
   * autocannon does): on a trusted certificate Node builds the whole peer-certificate object for
   * `checkServerIdentity` on every handshake — measured at 42% of the generator's CPU in
   * new-connection runs, enough to make the generator the bottleneck. The TLS 1.3 handshake
   * signature is still verified by OpenSSL.
   */
  context(_ca: string): SecureContext {
    this.#context ??= createSecureContext({});
    return this.#context;
  }

  async binders(n: number): Promise<ClientBinder[]> {
    while (this.#binders.length < n) this.#binders.push(createClientBinder());
    return this.#binders.slice(0, n);
  }

  dpopKeys(n: number): DpopClientKey[] {
    if (this.#dpopKeys.length < n) this.#dpopKeys.push(...createDpopClientKeys(n - this.#dpopKeys.length));
    return this.#dpopKeys.slice(0, n);
  }

  async run(cfg: RunConfig): Promise<RunResult> {
    const failure = new Failure();
    const binders = cfg.auth === 'tokbind' ? await this.binders(cfg.connections) : [];
    const htu = `https://${HOST}:${cfg.port}/`;
    let proofs: string[] = [];
    let nextProof = 0;
    let lateProofs = 0;
    let proofGenMs = 0;
    if (cfg.auth === 'dpop') {
      const t0 = performance.now();
      proofs = createDpopProofs(this.dpopKeys(cfg.connections), cfg.proofs ?? 1000, htu);
      proofGenMs = performance.now() - t0;
    }
    const dpopKeys = cfg.auth === 'dpop' ? this.dpopKeys(cfg.connections) : [];
    const nextDpop = (): string => {
      if (nextProof < proofs.length) return proofs[nextProof++]!;
      lateProofs++;
      return createDpopProofs(dpopKeys, 1, htu)[0]!;
    };

    const w: Window = { counting: false, stopping: false, completed: 0, latencies: [] };
    const close = cfg.mode === 'newconn';
    const plainRequest = request(cfg.port, '', close, cfg.path);
    const active = new Set<TLSSocket | Socket>();
    let running = 0;
    let allStopped: () => void = () => {};
    const stopped = new Promise<void>((resolve) => (allStopped = resolve));

    const done = (): void => {
      running--;
      if (running === 0) allStopped();
    };

    const sessions: (Buffer | undefined)[] = [];
    let connectionsInWindow = 0;
    let resumedInWindow = 0;
    // One loop per connection slot: connect, (sign), then request after request.
    const slot = (i: number): void => {
      if (cfg.protocol === 'h2') return h2Slot(i);
      const session = cfg.resume === true ? sessions[i] : undefined;
      const socket: TLSSocket | Socket =
        cfg.transport === 'tcp'
          ? tcpConnect({ host: HOST, port: cfg.port })
          : connect({
              host: HOST,
              port: cfg.port,
              servername: SERVERNAME,
              secureContext: this.context(cfg.ca),
              rejectUnauthorized: false,
              ...(session === undefined ? {} : { session }),
            });
      if (cfg.resume === true) socket.on('session', (ticket: Buffer) => (sessions[i] = ticket));
      active.add(socket);
      const reader = new ResponseReader();
      let req = plainRequest;
      let sentAt = 0;
      let finished = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        active.delete(socket);
        socket.destroy();
        if (close && !w.stopping) slot(i);
        else done();
      };
      const send = (): void => {
        if (cfg.auth === 'dpop') req = request(cfg.port, `DPoP: ${nextDpop()}\r\n`, close, cfg.path);
        sentAt = performance.now();
        socket.write(req);
      };
      socket.once(cfg.transport === 'tcp' ? 'connect' : 'secureConnect', () => {
        if (w.counting && socket instanceof TLSSocket) {
          connectionsInWindow++;
          if (socket.isSessionReused()) resumedInWindow++;
        }
        try {
          if (cfg.auth === 'tokbind') req = request(cfg.port, `Sec-Token-Binding: ${binders[i]!.header(socket as TLSSocket)}\r\n`, close, cfg.path);
        } catch (err) {
          failure.add(`sign: ${String(err)}`);
          finish();
          return;
        }
        send();
      });
      socket.on('data', (chunk: Buffer) => {
        const status = reader.push(chunk);
        if (status === 0) return;
        if (w.counting) {
          w.completed++;
          if ((w.completed & 7) === 0) w.latencies.push(performance.now() - sentAt);
        }
        if (status !== 200) failure.add(`HTTP ${status}`);
        if (close || w.stopping || status !== 200) finish();
        else send();
      });
      socket.on('error', (err) => {
        if (!w.stopping) failure.add(`socket: ${err.message}`);
        finish();
      });
      socket.on('close', () => {
        if (!finished && !w.stopping) failure.add('connection closed by server');
        finish();
      });
    };

    // HTTP/2: one session per slot over a TLS socket of our own (so its EKM can be exported), one
    // stream in flight; the header is signed once per connection, as for HTTP/1.1 keep-alive.
    const h2Slot = (i: number): void => {
      const socket = connect({
        host: HOST,
        port: cfg.port,
        servername: SERVERNAME,
        secureContext: this.context(cfg.ca),
        rejectUnauthorized: false,
        ALPNProtocols: ['h2'],
      });
      active.add(socket);
      let finished = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        active.delete(socket);
        socket.destroy();
        done();
      };
      socket.on('error', (err) => {
        if (!w.stopping) failure.add(`socket: ${err.message}`);
        finish();
      });
      socket.once('secureConnect', () => {
        let headers: Record<string, string> = { ':path': '/', ':method': 'GET' };
        try {
          if (cfg.auth === 'tokbind') headers = { ...headers, 'sec-token-binding': binders[i]!.header(socket) };
        } catch (err) {
          failure.add(`sign: ${String(err)}`);
          finish();
          return;
        }
        const session = http2Connect(`https://${HOST}:${cfg.port}`, { createConnection: () => socket });
        session.on('error', (err) => {
          if (!w.stopping) failure.add(`session: ${err.message}`);
          finish();
        });
        const send = (): void => {
          const sentAt = performance.now();
          const stream = session.request(headers);
          let status = 0;
          stream.on('response', (h) => (status = Number(h[':status'])));
          stream.on('data', () => {});
          stream.on('end', () => {
            if (w.counting) {
              w.completed++;
              if ((w.completed & 7) === 0) w.latencies.push(performance.now() - sentAt);
            }
            if (status !== 200) failure.add(`HTTP ${status}`);
            if (w.stopping || status !== 200) {
              session.destroy();
              finish();
            } else send();
          });
          stream.on('error', (err) => {
            if (!w.stopping) failure.add(`stream: ${err.message}`);
            session.destroy();
            finish();
          });
        };
        send();
      });
    };

    running = cfg.connections;
    for (let i = 0; i < cfg.connections; i++) slot(i);

    await sleep(cfg.warmupMs);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    w.counting = true;
    emit('window-start');
    await sleep(cfg.durationMs);
    w.counting = false;
    const windowMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    emit('window-end');
    const completed = w.completed;
    w.stopping = true;
    // In-flight requests finish on their own; anything stuck is cut off.
    const cut = setTimeout(() => {
      for (const s of active) s.destroy();
    }, 5000);
    await stopped;
    clearTimeout(cut);
    w.latencies.sort((a, b) => a - b);
    const pct = (p: number): number => Math.round((w.latencies[Math.floor((w.latencies.length - 1) * p)] ?? Number.NaN) * 1000);
    return {
      completed,
      windowMs,
      rps: (completed * 1000) / windowMs,
      errors: failure.count,
      firstErrors: failure.first,
      cpu: (cpu.user + cpu.system) / 1000 / windowMs,
      lateProofs,
      proofGenMs,
      p50us: pct(0.5),
      p99us: pct(0.99),
      ...(cfg.resume === true ? { resumedShare: connectionsInWindow === 0 ? 0 : resumedInWindow / connectionsInWindow } : {}),
    };
  }

  /** Opens `n` connections, sends one request on each, and keeps them open (idle). */
  async open(cfg: { port: number; ca: string; auth: Auth; connections: number }): Promise<{ opened: number; errors: number; firstErrors: string[] }> {
    const failure = new Failure();
    const binders = cfg.auth === 'tokbind' ? await this.binders(Math.min(cfg.connections, 64)) : [];
    const one = (i: number): Promise<void> =>
      new Promise((resolve) => {
        const socket = connect({ host: HOST, port: cfg.port, servername: SERVERNAME, secureContext: this.context(cfg.ca), rejectUnauthorized: false });
        const reader = new ResponseReader();
        socket.once('secureConnect', () => {
          const line = cfg.auth === 'tokbind' ? `Sec-Token-Binding: ${binders[i % binders.length]!.header(socket)}\r\n` : '';
          socket.write(request(cfg.port, line, false));
        });
        socket.on('data', (chunk: Buffer) => {
          const status = reader.push(chunk);
          if (status === 0) return;
          if (status !== 200) failure.add(`HTTP ${status}`);
          this.#held.push(socket);
          resolve();
        });
        socket.on('error', (err) => {
          failure.add(`socket: ${err.message}`);
          resolve();
        });
      });
    // A few at a time: a burst of hundreds of handshakes would only measure the accept queue.
    for (let i = 0; i < cfg.connections; i += 16) {
      await Promise.all(Array.from({ length: Math.min(16, cfg.connections - i) }, (_, k) => one(i + k)));
    }
    return { opened: this.#held.length, errors: failure.count, firstErrors: failure.first };
  }

  closeHeld(): number {
    const n = this.#held.length;
    for (const s of this.#held.splice(0)) s.destroy();
    return n;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const generator = new Generator();
serveParent(async (msg) => {
  switch (msg.cmd) {
    case 'run':
      return { result: await generator.run(msg.config as RunConfig) };
    case 'open':
      return generator.open(msg.config as { port: number; ca: string; auth: Auth; connections: number });
    case 'close':
      return { closed: generator.closeHeld() };
    default:
      throw new Error(`unknown command ${String(msg.cmd)}`);
  }
});
