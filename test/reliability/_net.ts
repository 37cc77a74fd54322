/**
 * Low-level clients for the reliability tests: a raw HTTP/1.1 client over one real TLS connection
 * (so a test controls every byte of the request, sends thousands on one connection and sees the
 * connection close), a "good client" that keeps making valid Token Binding requests while hostile
 * clients run, and a hang guard.
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { generateTokenBindingKey, type TokenBindingKey } from '../../src/crypto/sign.js';
import { testCertificate } from '../_tls.js';
import { idOf, validHeader } from './_tb.js';

/** Rejects when `promise` has not settled after `ms`: a hang is a failure, not a slow pass. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no outcome within ${ms} ms`)), ms);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when the socket is closed (at once if it already is). */
export function closed(socket: net.Socket): Promise<void> {
  if (socket.destroyed && socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** The EKM a Token Binding client signs over (label `EXPORTER-Token-Binding`, no context). */
export function ekmOf(socket: TLSSocket): Uint8Array {
  // The two-argument call is the RFC 8471 §3.3 "no context" form; @types/node 20 wants a third.
  const exportKeyingMaterial = socket.exportKeyingMaterial as (length: number, label: string) => Buffer;
  return new Uint8Array(exportKeyingMaterial.call(socket, 32, 'EXPORTER-Token-Binding'));
}

/**
 * One TLS connection speaking HTTP/1.1 by hand: one request at a time, responses framed by
 * Content-Length (or by the close of the connection).
 */
export class RawHttpConnection {
  readonly socket: TLSSocket;
  readonly ekm: Uint8Array;
  #buffer: Buffer = Buffer.alloc(0);
  #pending: { resolve: (r: RawResponse) => void; reject: (e: Error) => void } | undefined;
  #closed = false;

  private constructor(socket: TLSSocket) {
    this.socket = socket;
    this.ekm = ekmOf(socket);
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
      this.#drain(false);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.#closed = true;
      this.#drain(true);
    });
  }

  static async open(port: number, options: tls.ConnectionOptions = {}): Promise<RawHttpConnection> {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: testCertificate.ca, ALPNProtocols: ['http/1.1'], ...options });
    const onError = once(socket, 'error').then(([err]) => Promise.reject(err as Error));
    onError.catch(() => {});
    await Promise.race([once(socket, 'secureConnect'), onError]);
    return new RawHttpConnection(socket);
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Sends `GET path` with the given header lines (name, value) and waits for the response. */
  request(headers: readonly (readonly [string, string])[] = [], path = '/'): Promise<RawResponse> {
    if (this.#pending !== undefined) throw new Error('one request at a time');
    const head = [`GET ${path} HTTP/1.1`, 'Host: localhost', ...headers.map(([n, v]) => `${n}: ${v}`), '', ''].join('\r\n');
    return this.send(head);
  }

  /** Writes raw bytes and waits for one response. */
  send(bytes: string | Buffer): Promise<RawResponse> {
    const response = new Promise<RawResponse>((resolve, reject) => {
      this.#pending = { resolve, reject };
    });
    if (this.#closed) this.#drain(true);
    else this.socket.write(bytes);
    return response;
  }

  #drain(ended: boolean): void {
    const pending = this.#pending;
    if (pending === undefined) return;
    const headEnd = this.#buffer.indexOf('\r\n\r\n');
    if (headEnd !== -1) {
      const lines = this.#buffer.subarray(0, headEnd).toString('latin1').split('\r\n');
      const status = Number(lines[0]!.split(' ')[1]);
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = headers['content-length'];
      const bodyStart = headEnd + 4;
      let bodyEnd: number | undefined;
      if (length !== undefined) {
        if (this.#buffer.length >= bodyStart + Number(length)) bodyEnd = bodyStart + Number(length);
      } else if (ended) bodyEnd = this.#buffer.length;
      if (bodyEnd !== undefined) {
        const body = this.#buffer.subarray(bodyStart, bodyEnd).toString('utf8');
        this.#buffer = this.#buffer.subarray(bodyEnd);
        this.#pending = undefined;
        pending.resolve({ status, headers, body });
        return;
      }
    }
    if (ended) {
      this.#pending = undefined;
      pending.reject(Object.assign(new Error('connection closed before a full response'), { code: 'CLOSED' }));
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.socket.destroy();
    await closed(this.socket);
  }
}

/**
 * A well-behaved Token Binding client: opens a connection, sends a valid binding on every request
 * and checks each answer (200, its own ID). Reconnects when `reconnectEvery` requests were made
 * (0: never). Stops on `stop()`; every deviation is recorded, never thrown mid-test.
 */
export class GoodClient {
  readonly key: TokenBindingKey = generateTokenBindingKey();
  ok = 0;
  readonly failures: string[] = [];
  #stopped = false;
  #loop: Promise<void> | undefined;

  constructor(
    readonly port: number,
    readonly reconnectEvery = 0,
  ) {}

  start(): this {
    this.#loop = this.#run();
    return this;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      let connection: RawHttpConnection;
      try {
        connection = await RawHttpConnection.open(this.port);
      } catch (err) {
        this.failures.push(`connect: ${(err as Error).message}`);
        await sleep(20);
        continue;
      }
      const header = validHeader(this.key, connection.ekm);
      let n = 0;
      while (!this.#stopped && (this.reconnectEvery === 0 || n < this.reconnectEvery)) {
        n++;
        try {
          const res = await connection.request([['Sec-Token-Binding', header]]);
          const body = JSON.parse(res.body) as { id?: string };
          if (res.status !== 200 || body.id !== idOf(this.key)) this.failures.push(`status ${res.status} ${res.body.slice(0, 80)}`);
          else this.ok++;
        } catch (err) {
          this.failures.push(`request: ${(err as Error).message}`);
          break;
        }
        // A short pause: the attackers share this process and these two cores.
        await sleep(1);
      }
      await connection.close();
    }
  }

  /** Resolves once `n` more requests have succeeded (guarded against a hang). */
  async progress(n: number, what: string, ms = 15_000): Promise<void> {
    const target = this.ok + n;
    await within(
      (async () => {
        while (this.ok < target) {
          if (this.failures.length > 0) throw new Error(`good client failed: ${this.failures[0]}`);
          await sleep(5);
        }
      })(),
      ms,
      `good client progress during ${what}`,
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }
}

/** A plain TCP connection (no TLS): for bytes that are not a well-formed handshake. */
export async function openTcp(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  // Drain whatever the server sends: a paused socket would never see the server's close.
  socket.resume();
  await once(socket, 'connect');
  return socket;
}

/** The first TLS record (the ClientHello) a Node TLS client sends, captured from a plain TCP server. */
export async function captureClientHello(options: tls.ConnectionOptions = {}): Promise<Buffer> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const captured = new Promise<Buffer>((resolve) => {
    server.once('connection', (socket: net.Socket) => {
      let buffer = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        if (buffer.length >= 5 && buffer.length >= 5 + buffer.readUInt16BE(3)) {
          resolve(buffer.subarray(0, 5 + buffer.readUInt16BE(3)));
          socket.destroy();
        }
      });
    });
  });
  const client = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...options });
  client.on('error', () => {});
  const hello = await captured;
  client.destroy();
  server.close();
  return hello;
}
