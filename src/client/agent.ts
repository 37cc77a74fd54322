import type { ClientRequest, ClientRequestArgs } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { TokenBindingError } from '../errors.js';
import { explainConnectError } from './tls-errors.js';
import { SEC_TOKEN_BINDING_HEADER, TokenBinder, type ClientConnectionBinding, type TokenBindingClientOptions } from './referred.js';
import { tokenBindingScope } from './scope.js';

/** Options of {@link TokenBindingAgent}: an `https.Agent`'s, and the Token Binding ones. */
export interface TokenBindingAgentOptions extends https.AgentOptions, TokenBindingClientOptions {}

/**
 * Per-request option read by {@link TokenBindingAgent}: the URL (or host) of the server that
 * redirected here with `Include-Referred-Token-Binding-ID: true`. The request then also carries a
 * referred binding signed with the key of that server's scope (RFC 8473 §5). Set it on the one
 * request that follows the redirect, never on later ones.
 */
export interface TokenBindingRequestOptions extends https.RequestOptions {
  readonly referredTokenBinding?: string | URL | undefined;
}

type HeldCall = readonly ['write' | 'end' | 'flushHeaders', readonly unknown[]];

/**
 * An `https.Agent` that sends a correct `Sec-Token-Binding` header on every request (RFC 8473
 * §2), the first request on a fresh connection included: each new TLS connection is checked
 * against the Token Binding conditions and its EKM taken once at 'secureConnect'; each request
 * is held back (its `write`/`end` calls queued, nothing rendered) until its socket is secure,
 * then gets that connection's header and goes out. Keep-alive and socket reuse work as with any
 * agent (`keepAlive` defaults to `true` here: a binding costs a signature per connection).
 *
 * Keys: one per scope (eTLD+1, RFC 8473 §2.1) from `keyStore`. On a connection that does not
 * meet the TLS conditions the request fails with `ERR_TB_TLS_CONDITIONS`, or goes out without
 * the header when `optional: true`. Headers must be given as an object (headers given as an
 * array, or an `Expect` header, make Node render the head before a connection exists; such a
 * request fails with `ERR_TB_CLIENT`). A `Sec-Token-Binding` header set by the caller is
 * replaced.
 *
 * @example
 * ```ts
 * const agent = new TokenBindingAgent({ keyStore: new FileKeyStore('keys.json') })
 * https.get('https://api.example.com/me', { agent }, (res) => res.pipe(process.stdout))
 * ```
 */
export class TokenBindingAgent extends https.Agent {
  readonly #binder: TokenBinder;
  readonly #connections = new WeakMap<Duplex, Promise<ClientConnectionBinding>>();

  constructor(options: TokenBindingAgentOptions = {}) {
    const { keyStore, keyParameters, optional, ...agentOptions } = options;
    super({ keepAlive: true, ...agentOptions });
    this.#binder = new TokenBinder({ keyStore, keyParameters, optional });
  }

  /** The signing half: keys by scope, per-connection facts. */
  get binder(): TokenBinder {
    return this.#binder;
  }

  override createConnection(
    options: https.RequestOptions,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const socket = super.createConnection(options, callback);
    if (socket instanceof TLSSocket) {
      const host = options.host ?? options.hostname ?? 'localhost';
      explainErrors(socket, `${host}:${String(options.port ?? 443)}`);
      const binding = new Promise<ClientConnectionBinding>((resolve, reject) => {
        // Listening from creation on means 'secureConnect' cannot be missed.
        const onError = (err: Error): void => reject(err);
        socket.once('error', onError);
        socket.once('secureConnect', () => {
          socket.off('error', onError);
          this.#binder.bindConnection(socket, host).then(resolve, reject);
        });
      });
      // The request that waits on it reports the failure; nobody else must see it unhandled.
      binding.catch(() => {});
      this.#connections.set(socket, binding);
    }
    return socket;
  }

  /** @internal Node calls this from the ClientRequest constructor, before any header is rendered. */
  addRequest(req: ClientRequest, options: TokenBindingRequestOptions & ClientRequestArgs): void {
    const held = hold(req);
    let referredScope: string | null = null;
    let failure: Error | null = null;
    if ((req as unknown as { _header: string | null })._header) {
      failure = new TokenBindingError(
        'ERR_TB_CLIENT',
        'the request head was rendered before its connection existed (headers given as an array, or Expect); pass headers as an object',
        { field: 'headers' },
      );
    } else if (options.referredTokenBinding !== undefined && options.referredTokenBinding !== null) {
      try {
        referredScope = tokenBindingScope(options.referredTokenBinding);
      } catch (err) {
        failure = err as Error;
      }
    }
    req.once('socket', (socket: Duplex) => {
      if (failure !== null) return void req.destroy(failure);
      const binding = this.#connections.get(socket);
      if (binding === undefined) {
        return void req.destroy(new TokenBindingError('ERR_TB_CLIENT', 'socket was not created by this TokenBindingAgent', { field: 'socket' }));
      }
      binding
        .then((connection) => this.#binder.headerFor(connection, referredScope))
        .then(
          (header) => {
            if (req.destroyed) return;
            req.removeHeader(SEC_TOKEN_BINDING_HEADER);
            if (header !== null) req.setHeader(SEC_TOKEN_BINDING_HEADER, header);
            held.release();
          },
          (err: unknown) => {
            // Destroying the request destroys the socket too: it never goes back to the pool.
            req.destroy(err as Error);
          },
        );
    });
    // https.Agent's own type declarations omit addRequest; it is there at run time.
    (https.Agent.prototype as unknown as { addRequest(req: ClientRequest, options: unknown): void }).addRequest.call(this, req, options);
  }
}

/**
 * Makes the socket's 'error' events carry {@link explainConnectError}'s error (the ALPN alert of an
 * HTTP/2-only server names `allowHTTP1`). Node's ClientRequest receives socket errors straight
 * from the socket's 'error' event, so the error is replaced where it is emitted.
 */
function explainErrors(socket: TLSSocket, host: string): void {
  const emit = socket.emit as (this: TLSSocket, event: string | symbol, ...args: unknown[]) => boolean;
  socket.emit = function (this: TLSSocket, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error' && args[0] instanceof Error) args[0] = explainConnectError(args[0], host);
    return emit.call(this, event, ...args);
  } as typeof socket.emit;
}

/** Bytes a `write(chunk, encoding?)` call adds (what Node's own buffering counts). */
function chunkLength(chunk: unknown, encoding: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  if (ArrayBuffer.isView(chunk)) return chunk.byteLength;
  // Node's write throws on anything else when the call is replayed: counted as nothing here.
  return 0;
}

/**
 * Queues `write`, `end` and `flushHeaders` on the request itself, so Node renders the request
 * head only after the header has been set. Returns the function that replays them in order.
 *
 * Backpressure works as with any request still waiting for its socket: once the queued body
 * reaches the request's `writableHighWaterMark`, `write` returns false, and 'drain' follows once
 * the queue has been handed to the connection (by Node itself when the replayed writes filled
 * the socket, else here). A request queued behind others in the agent's pool (`maxSockets`)
 * therefore holds at most about one high-water mark of body, not the whole upload.
 */
function hold(req: ClientRequest): { release(): void } {
  const calls: HeldCall[] = [];
  const target = req as unknown as Record<string, unknown>;
  let queued = 0;
  let needDrain = false;
  target['write'] = (...args: unknown[]): boolean => {
    calls.push(['write', args]);
    queued += chunkLength(args[0], args[1]);
    if (queued < req.writableHighWaterMark) return true;
    needDrain = true;
    return false;
  };
  target['end'] = (...args: unknown[]): ClientRequest => {
    calls.push(['end', args]);
    return req;
  };
  target['flushHeaders'] = (): void => {
    calls.push(['flushHeaders', []]);
  };
  return {
    release(): void {
      // Own properties shadow the prototype's methods; deleting them restores Node's own.
      delete target['write'];
      delete target['end'];
      delete target['flushHeaders'];
      let flowing = true;
      let ended = false;
      for (const [method, args] of calls) {
        if (req.destroyed) return;
        const result = (req[method] as (...a: unknown[]) => unknown).apply(req, args as unknown[]);
        if (method === 'write') flowing = result as boolean;
        else if (method === 'end') ended = true;
      }
      // A writer told to wait is owed a 'drain'. When the last replayed write was refused, Node
      // emits it once the socket drains; otherwise nothing would, so emit it here.
      if (needDrain && flowing && !ended) process.nextTick(() => req.destroyed || req.emit('drain'));
    },
  };
}
