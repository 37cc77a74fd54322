import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { Agent, Client, Dispatcher, Headers, Pool, errors, fetch as undiciFetch, type buildConnector, type RequestInit, type Response } from 'undici';
import { TokenBindingError } from '../errors.js';
import { DpopSigner } from './dpop.js';
import { explainConnectError } from './tls-errors.js';
import {
  SEC_TOKEN_BINDING_HEADER,
  TokenBinder,
  isReferredTokenBindingRequested,
  type ClientConnectionBinding,
  type TokenBindingClientOptions,
} from './referred.js';
import { tokenBindingScope } from './scope.js';

/** Carries the referred scope of one request from `referring()` down to the connection. */
const kReferredScope = Symbol('tokbind.referredScope');

type BoundDispatchOptions = Dispatcher.DispatchOptions & { [kReferredScope]?: string };
type Handler = Dispatcher.DispatchHandler;

/** Options of {@link TokenBindingDispatcher}: an undici `Agent`'s (HTTP/1.1 only), and the Token Binding ones. */
export interface TokenBindingDispatcherOptions extends Omit<Agent.Options, 'factory' | 'allowH2'>, TokenBindingClientOptions {}

/**
 * An undici `Dispatcher` (for `fetch`, `request`, …) that sends a correct `Sec-Token-Binding`
 * header on every request (RFC 8473 §2), the first one on a new connection included.
 *
 * How: undici renders a request's headers when it is dispatched to a connection, so each
 * connection is opened (TLS handshake done, conditions checked, EKM taken, header signed)
 * before any request is handed to it, and carries one request at a time. Per origin an undici
 * `Pool` spreads requests over such connections (`connections` caps them; undici's keep-alive
 * and reuse apply). A connection that closes is never reconnected under a request that was
 * signed for it: the request goes out on a fresh connection with a fresh signature.
 *
 * On a connection that does not meet the Token Binding TLS conditions the request fails with
 * `ERR_TB_TLS_CONDITIONS` (or goes out plain with `optional: true`). Use undici's `fetch` (or
 * {@link tokbindFetch}) with it: Node 20's global `fetch` bundles another undici version.
 *
 * @example
 * ```ts
 * import { fetch } from 'undici'
 * const dispatcher = new TokenBindingDispatcher({ keyStore: new FileKeyStore('keys.json') })
 * const res = await fetch('https://api.example.com/me', { dispatcher })
 * ```
 */
export class TokenBindingDispatcher extends Dispatcher {
  readonly #agent: Agent;
  readonly #binder: TokenBinder;

  constructor(options: TokenBindingDispatcherOptions = {}) {
    super();
    const { keyStore, keyParameters, optional, ...agentOptions } = options;
    const binder = new TokenBinder({ keyStore, keyParameters, optional });
    this.#binder = binder;
    this.#agent = new Agent({
      ...agentOptions,
      allowH2: false,
      factory: (origin, opts) =>
        new Pool(origin, { ...(opts as Pool.Options), factory: (url, poolOptions) => new BoundClient(url, poolOptions, binder) }),
    });
    for (const event of ['connect', 'disconnect', 'connectionError', 'drain'] as const) {
      (this.#agent as EventEmitter).on(event, (origin: URL, targets: readonly Dispatcher[], err?: Error) =>
        emitEvent(this, event, origin, [this, ...targets], err),
      );
    }
  }

  /** The signing half: keys by scope, per-connection facts. */
  get binder(): TokenBinder {
    return this.#binder;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Handler): boolean {
    return this.#agent.dispatch(options, handler);
  }

  /**
   * A dispatcher for the one request that follows a redirect from `referrer` whose response
   * carried `Include-Referred-Token-Binding-ID: true` (RFC 8473 §5): requests through it also
   * carry a referred binding signed with the key of `referrer`'s scope over the EKM of the
   * connection they travel on. It shares this dispatcher's connections and owns none.
   *
   * @example
   * ```ts
   * const res = await fetch(url, { dispatcher, redirect: 'manual' })
   * if (isReferredTokenBindingRequested(res.status, res.headers)) {
   *   await fetch(new URL(res.headers.get('location')!, url), { dispatcher: dispatcher.referring(url) })
   * }
   * ```
   */
  referring(referrer: string | URL): Dispatcher {
    return new ReferringDispatcher(this, tokenBindingScope(referrer));
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    if (callback !== undefined) return void this.#agent.close().then(callback, callback);
    return this.#agent.close();
  }

  override destroy(err: Error | null, callback: () => void): void;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null): Promise<void>;
  override destroy(): Promise<void>;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const err = typeof errOrCallback === 'function' ? null : (errOrCallback ?? null);
    const cb = typeof errOrCallback === 'function' ? errOrCallback : callback;
    const done = this.#agent.destroy(err);
    if (cb !== undefined) return void done.then(cb, cb);
    return done;
  }
}

class ReferringDispatcher extends Dispatcher {
  readonly #parent: TokenBindingDispatcher;
  readonly #scope: string;

  constructor(parent: TokenBindingDispatcher, scope: string) {
    super();
    this.#parent = parent;
    this.#scope = scope;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Handler): boolean {
    return this.#parent.dispatch({ ...options, [kReferredScope]: this.#scope } as BoundDispatchOptions, handler);
  }

  // It owns no connection: closing it leaves the parent's alone.
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    if (callback !== undefined) return void queueMicrotask(callback);
    return Promise.resolve();
  }

  override destroy(err: Error | null, callback: () => void): void;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null): Promise<void>;
  override destroy(): Promise<void>;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const cb = typeof errOrCallback === 'function' ? errOrCallback : callback;
    if (cb !== undefined) return void queueMicrotask(cb);
    return Promise.resolve();
  }
}

interface Queued {
  readonly options: BoundDispatchOptions;
  readonly handler: Handler;
}

interface Connection {
  readonly socket: Socket;
  readonly binding: ClientConnectionBinding;
  readonly client: Client;
  /** The error the inner client gets if it ever tries to reconnect: the request is then re-sent. */
  readonly refusal: Error;
  alive: boolean;
}

/**
 * One connection at a time, one request at a time, each request signed for the connection it
 * will be written on. What undici's Pool sees as a Client.
 */
class BoundClient extends Dispatcher {
  readonly #origin: URL;
  readonly #clientOptions: Client.Options;
  readonly #connector: buildConnector.connector;
  readonly #binder: TokenBinder;
  readonly #queue: Queued[] = [];
  #connection: Connection | undefined;
  #dialing = false;
  #running = false;
  #needDrain = false;
  #closed = false;
  #destroyed = false;
  readonly #closeWaiters: (() => void)[] = [];

  constructor(origin: URL, options: object, binder: TokenBinder) {
    super();
    const { connect, ...clientOptions } = options as Client.Options & { connect?: unknown };
    if (typeof connect !== 'function') throw new TypeError('BoundClient needs the pool connector');
    this.#origin = origin;
    this.#clientOptions = clientOptions;
    this.#connector = connect as buildConnector.connector;
    this.#binder = binder;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Handler): boolean {
    if (this.#destroyed || this.#closed) {
      fail(handler, this.#destroyed ? new errors.ClientDestroyedError() : new errors.ClientClosedError());
      return false;
    }
    this.#queue.push({ options, handler });
    this.#pump();
    // Busy from now until the request completes: the pool sends the next one elsewhere, or
    // waits for our 'drain'.
    this.#needDrain = true;
    return false;
  }

  #pump(): void {
    if (this.#running || this.#destroyed) return;
    if (this.#queue.length === 0) return this.#idle();
    const connection = this.#connection;
    if (connection === undefined || !usable(connection)) {
      this.#connection = undefined;
      return this.#dial();
    }
    this.#running = true;
    void this.#forward(connection, this.#queue.shift()!);
  }

  #idle(): void {
    if (this.#needDrain) {
      this.#needDrain = false;
      emitEvent(this, 'drain', this.#origin, [this]);
    }
    if (this.#closed && !this.#running && !this.#dialing && this.#queue.length === 0) this.#finishClose();
  }

  #dial(): void {
    if (this.#dialing) return;
    this.#dialing = true;
    const origin = this.#origin;
    const hostname = origin.hostname.startsWith('[') ? origin.hostname.slice(1, -1) : origin.hostname;
    this.#connector({ hostname, host: origin.host, protocol: origin.protocol, port: origin.port }, (err, socket) => {
      if (err !== null || socket === null) return this.#dialFailed(err === null ? new errors.SocketError('no socket') : explainConnectError(err, origin.host), null);
      // Until the inner client owns it, nobody else listens for errors on this socket.
      socket.on('error', () => {});
      if (this.#destroyed) return void socket.destroy();
      this.#binder.bindConnection(socket, origin).then(
        (binding) => {
          this.#dialing = false;
          if (this.#destroyed || socket.destroyed) {
            socket.destroy();
            if (!this.#destroyed) this.#failQueue(new TokenBindingError('ERR_TB_CLIENT', 'connection closed right after its handshake'));
            return;
          }
          this.#connection = this.#adopt(socket, binding);
          this.#pump();
        },
        (bindErr: unknown) => this.#dialFailed(bindErr as Error, socket),
      );
    });
  }

  #dialFailed(err: Error, socket: Socket | null): void {
    this.#dialing = false;
    socket?.destroy();
    this.#failQueue(err);
    emitEvent(this, 'connectionError', this.#origin, [this], err);
    this.#idle();
  }

  #failQueue(err: Error): void {
    for (const { handler } of this.#queue.splice(0)) fail(handler, err);
  }

  #adopt(socket: Socket, binding: ClientConnectionBinding): Connection {
    let handed = false;
    const refusal = new TokenBindingError('ERR_TB_CLIENT', 'connection closed before the request was written; it is re-sent on a new connection');
    const client = new Client(this.#origin, {
      ...this.#clientOptions,
      pipelining: 1,
      connect: (_options, callback) => {
        // Asynchronously, as a real connector answers: undici ignores a resume that happens
        // while it is still inside its own connect call.
        queueMicrotask(() => {
          if (handed || socket.destroyed) return callback(refusal, null);
          handed = true;
          callback(null, socket);
        });
      },
    });
    const connection: Connection = { socket, binding, client, refusal, alive: true };
    const dead = (): void => {
      connection.alive = false;
      if (this.#connection === connection) this.#connection = undefined;
    };
    socket.once('close', dead);
    socket.once('end', dead);
    client.on('connect', (origin, targets) => emitEvent(this, 'connect', origin, [this, ...targets]));
    client.on('disconnect', (origin, targets, err) => {
      dead();
      emitEvent(this, 'disconnect', origin, [this, ...targets], err);
      client.close().catch(() => {});
    });
    // The refusal above surfaces as a connection error of the inner client; the request that met
    // it is re-sent, so the event is not the pool's concern.
    (client as EventEmitter).on('connectionError', () => {});
    return connection;
  }

  async #forward(connection: Connection, item: Queued): Promise<void> {
    let header: string | null;
    try {
      header = await this.#binder.headerFor(connection.binding, item.options[kReferredScope] ?? null);
    } catch (err) {
      this.#running = false;
      fail(item.handler, err as Error);
      return this.#pump();
    }
    if (!usable(connection)) {
      this.#running = false;
      this.#queue.unshift(item);
      return this.#pump();
    }
    let finished = false;
    const done = (resend: boolean): void => {
      if (finished) return;
      finished = true;
      if (resend) {
        connection.alive = false;
        this.#queue.unshift(item);
      }
      // undici decides to drop a connection (Connection: close, errors) right after it reports
      // completion; look at the socket only once that has happened.
      queueMicrotask(() => {
        this.#running = false;
        this.#pump();
      });
    };
    const options: Dispatcher.DispatchOptions = { ...item.options, headers: withTokenBindingHeader(item.options.headers, header) };
    connection.client.dispatch(options, track(item.handler, connection, done));
  }

  #finishClose(): void {
    const connection = this.#connection;
    this.#connection = undefined;
    const closing = connection === undefined ? Promise.resolve() : connection.client.close();
    void closing.catch(() => {}).then(() => {
      for (const resolve of this.#closeWaiters.splice(0)) resolve();
    });
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const closed = new Promise<void>((resolve) => {
      this.#closed = true;
      this.#closeWaiters.push(resolve);
      if (this.#destroyed) return resolve();
      if (!this.#running && !this.#dialing && this.#queue.length === 0) this.#finishClose();
    });
    if (callback !== undefined) return void closed.then(callback);
    return closed;
  }

  override destroy(err: Error | null, callback: () => void): void;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null): Promise<void>;
  override destroy(): Promise<void>;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const err = typeof errOrCallback === 'function' ? null : (errOrCallback ?? null);
    const cb = typeof errOrCallback === 'function' ? errOrCallback : callback;
    this.#destroyed = true;
    this.#failQueue(err ?? new errors.ClientDestroyedError());
    const connection = this.#connection;
    this.#connection = undefined;
    const destroyed = (connection === undefined ? Promise.resolve() : connection.client.destroy(err)).then(() => {
      for (const resolve of this.#closeWaiters.splice(0)) resolve();
    });
    if (cb !== undefined) return void destroyed.then(cb, cb);
    return destroyed;
  }
}

function emitEvent(target: Dispatcher, event: string, ...args: unknown[]): void {
  // undici's typings tie each event to one argument list; re-emitting needs the plain form.
  (target as EventEmitter).emit(event, ...args);
}

function usable(connection: Connection): boolean {
  return connection.alive && !connection.socket.destroyed && connection.socket.writable;
}

/** Ends a request that never reached a connection, in whichever handler style it speaks. */
function fail(handler: Handler, err: Error): void {
  if (typeof handler.onError === 'function') return handler.onError(err);
  const controller = { abort() {}, pause() {}, resume() {}, aborted: true, paused: false, reason: err };
  handler.onResponseError?.(controller as unknown as Dispatcher.DispatchController, err);
}

const TERMINAL = new Set<PropertyKey>(['onComplete', 'onResponseEnd', 'onError', 'onResponseError', 'onUpgrade', 'onRequestUpgrade']);

/**
 * Wraps a handler to learn when its request is over (any handler style), and to re-send instead
 * of failing a request that the inner client could not write because its connection closed.
 */
function track(handler: Handler, connection: Connection, done: (resend: boolean) => void): Handler {
  return new Proxy(handler, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key, target);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (!TERMINAL.has(key)) return method.bind(target);
      return (...args: unknown[]): unknown => {
        const err = key === 'onError' ? args[0] : key === 'onResponseError' ? args[1] : undefined;
        if (err !== undefined && err === connection.refusal) return done(true);
        // An upgraded socket leaves the pool for good.
        if (key === 'onUpgrade' || key === 'onRequestUpgrade') connection.alive = false;
        try {
          return method.apply(target, args);
        } finally {
          done(false);
        }
      };
    },
  });
}

/**
 * Request headers (any form undici accepts) without a caller's `Sec-Token-Binding`, plus ours.
 * The client owns that header: two of them would be a 400 (RFC 8473 §2).
 */
function withTokenBindingHeader(headers: Dispatcher.DispatchOptions['headers'], value: string | null): string[] {
  const out: string[] = [];
  const add = (name: unknown, v: unknown): void => {
    if (v === undefined) return;
    const key = String(name);
    if (key.toLowerCase() === SEC_TOKEN_BINDING_HEADER) return;
    if (Array.isArray(v)) for (const item of v) out.push(key, String(item));
    else out.push(key, String(v));
  };
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) add(headers[i], headers[i + 1]);
  } else if (headers !== null && headers !== undefined) {
    const entries =
      typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function'
        ? (headers as Iterable<[string, unknown]>)
        : Object.entries(headers as Record<string, unknown>);
    for (const [name, v] of entries) add(name, v);
  }
  if (value !== null) out.push(SEC_TOKEN_BINDING_HEADER, value);
  return out;
}

/** `init` of {@link tokbindFetch}: undici's, with the dispatcher a {@link TokenBindingDispatcher}. */
export interface TokbindFetchInit extends Omit<RequestInit, 'dispatcher'> {
  /** Default: one process-wide `TokenBindingDispatcher` with a `MemoryKeyStore`. */
  readonly dispatcher?: TokenBindingDispatcher;
  /** Redirects followed at most (default 20, as fetch). */
  readonly maxRedirections?: number;
  /**
   * An access token to present (`Authorization: Bearer`, or `DPoP` with `dpop`), only to the
   * origin of `input`: a redirect elsewhere does not carry it.
   */
  readonly accessToken?: string;
  /**
   * Sign a DPoP proof for every request to `input`'s origin (RFC 9449 §7.1), and retry once with
   * the server's nonce when it answers `use_dpop_nonce` (§8).
   */
  readonly dpop?: DpopSigner;
}

let defaultDispatcher: TokenBindingDispatcher | undefined;

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/**
 * `fetch` with Token Binding and federation: every request is bound (see
 * {@link TokenBindingDispatcher}), and redirects are followed here (not by fetch), so that when
 * a 3xx response carries `Include-Referred-Token-Binding-ID: true` the one request to its
 * `Location` also carries a referred binding — signed with the key of the redirecting server's
 * scope over the new connection's EKM (RFC 8473 §5). Later requests do not.
 *
 * Redirects follow fetch's rules: 303 (and 301/302 after POST) turn into a body-less GET;
 * 307/308 re-send the body, which therefore cannot be a stream; `Authorization`, `Cookie` and
 * `Proxy-Authorization` are dropped on a cross-origin hop. `redirect: 'manual'` returns the 3xx
 * response untouched; `redirect: 'error'` rejects on one.
 *
 * @throws TokenBindingError `ERR_TB_CLIENT` on too many redirects or a body that cannot be re-sent;
 *   TypeError (fetch failed) with the TokenBindingError as `cause` for connection-level refusals.
 * @example
 * ```ts
 * const dispatcher = new TokenBindingDispatcher({ keyStore: new FileKeyStore('keys.json') })
 * const res = await tokbindFetch('https://rp.example/login', { dispatcher })
 * ```
 */
export async function tokbindFetch(input: string | URL, init: TokbindFetchInit = {}): Promise<Response> {
  const { dispatcher = (defaultDispatcher ??= new TokenBindingDispatcher()), maxRedirections = 20, redirect = 'follow', accessToken, dpop, ...rest } = init;
  if (!(dispatcher instanceof TokenBindingDispatcher)) throw new TypeError('dispatcher must be a TokenBindingDispatcher');
  if (!Number.isInteger(maxRedirections) || maxRedirections < 0) throw new TypeError('maxRedirections must be a non-negative integer');
  if (accessToken !== undefined && (typeof accessToken !== 'string' || accessToken === '')) throw new TypeError('accessToken must be a non-empty string');
  if (dpop !== undefined && !(dpop instanceof DpopSigner)) throw new TypeError('dpop must be a DpopSigner');
  let url = new URL(input);
  const tokenOrigin = url.origin;
  let method = (rest.method ?? 'GET').toUpperCase();
  let body = rest.body ?? null;
  const headers = new Headers(rest.headers);
  if (accessToken !== undefined && headers.has('authorization')) throw new TypeError('give accessToken or an Authorization header, not both');
  let referrer: URL | null = null;
  let nonceRetried = false;
  for (let hops = 0; ; hops++) {
    if (url.origin === tokenOrigin && (accessToken !== undefined || dpop !== undefined)) {
      if (accessToken !== undefined) headers.set('authorization', `${dpop === undefined ? 'Bearer' : 'DPoP'} ${accessToken}`);
      if (dpop !== undefined) headers.set('dpop', await dpop.proof({ method, url, accessToken }));
    } else {
      headers.delete('dpop');
    }
    const response = await undiciFetch(url, {
      ...rest,
      method,
      body,
      headers,
      redirect: 'manual',
      dispatcher: referrer === null ? dispatcher : dispatcher.referring(referrer),
    });
    if (dpop !== undefined && url.origin === tokenOrigin) {
      const nonce = response.headers.get('dpop-nonce');
      if (nonce !== null) dpop.rememberNonce(url, nonce);
      // RFC 9449 §8/§9: the server wants its nonce in the proof; one retry with a fresh proof.
      if (
        nonce !== null &&
        !nonceRetried &&
        (response.status === 401 || response.status === 400) &&
        /error="use_dpop_nonce"/.test(response.headers.get('www-authenticate') ?? '') &&
        (body === null || isReplayable(body))
      ) {
        nonceRetried = true;
        await response.body?.cancel();
        hops--;
        continue;
      }
    }
    const location = response.headers.get('location');
    if (redirect === 'manual' || !REDIRECT_STATUSES.has(response.status) || location === null) return response;
    await response.body?.cancel();
    if (redirect === 'error') throw new TypeError(`unexpected redirect from ${url.href}`);
    if (hops >= maxRedirections) {
      throw new TokenBindingError('ERR_TB_CLIENT', `more than ${maxRedirections} redirects`, { field: 'redirects', actual: hops + 1 });
    }
    const next = new URL(location, url);
    if (next.protocol !== 'https:' && next.protocol !== 'http:') {
      throw new TokenBindingError('ERR_TB_CLIENT', `redirect to unsupported scheme ${next.protocol}`, { field: 'location', actual: next.protocol });
    }
    referrer = isReferredTokenBindingRequested(response.status, response.headers) ? url : null;
    if ((response.status === 303 && method !== 'HEAD') || ((response.status === 301 || response.status === 302) && method === 'POST')) {
      method = 'GET';
      body = null;
      for (const name of ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location']) headers.delete(name);
    } else if (body !== null && !isReplayable(body)) {
      throw new TokenBindingError('ERR_TB_CLIENT', `cannot re-send a streamed body after a ${response.status} redirect`, { field: 'body' });
    }
    if (next.origin !== url.origin) {
      for (const name of ['authorization', 'cookie', 'proxy-authorization']) headers.delete(name);
    }
    url = next;
  }
}

function isReplayable(body: unknown): boolean {
  return (
    typeof body === 'string' ||
    body instanceof Uint8Array ||
    body instanceof ArrayBuffer ||
    body instanceof URLSearchParams ||
    body instanceof Blob ||
    (typeof FormData !== 'undefined' && body instanceof FormData) ||
    (typeof (body as { constructor?: { name?: string } })?.constructor?.name === 'string' &&
      (body as { constructor: { name: string } }).constructor.name === 'FormData')
  );
}
