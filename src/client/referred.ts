/**
 * What every tokbind client shares: the keys it signs with, what it learns about a connection
 * once (conditions, EKM), and the `Sec-Token-Binding` value it sends on it — the provided
 * binding and, when a redirect asked for one, a referred binding (RFC 8473 §5).
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { KeyParametersName } from '../codec/types.js';
import { createSecTokenBindingHeader, type TokenBindingKey } from '../crypto/sign.js';
import { conditionsRefusal } from './tls-errors.js';
import { checkTokenBindingConditions, type TokenBindingConditions } from '../tls/conditions.js';
import { exportTokenBindingKeyingMaterial } from '../tls/ekm.js';
import { MemoryKeyStore, type TokenBindingKeyStore } from './keystore.js';
import { tokenBindingScope } from './scope.js';

/** The request header of RFC 8473 §2. */
export const SEC_TOKEN_BINDING_HEADER = 'sec-token-binding';

/** The response header of RFC 8473 §5.3 that asks for a referred binding on the next request. */
export const INCLUDE_REFERRED_TOKEN_BINDING_ID_HEADER = 'include-referred-token-binding-id';

/** Options every tokbind client (agent, dispatcher, `tokbindFetch`) takes. */
export interface TokenBindingClientOptions {
  /** Where the keys live; a new {@link MemoryKeyStore} by default (a new identity per process). */
  readonly keyStore?: TokenBindingKeyStore | undefined;
  /** The key parameters to sign with (RFC 8471 §3). Default `ecdsap256`. */
  readonly keyParameters?: KeyParametersName | undefined;
  /**
   * On a connection that does not meet the Token Binding TLS conditions (TLS 1.2 without
   * Extended Master Secret, TLS < 1.2, plain HTTP): `false` (default) fails the request with
   * `ERR_TB_TLS_CONDITIONS`; `true` sends it without `Sec-Token-Binding`.
   */
  readonly optional?: boolean | undefined;
}

/** What a client knows about one TLS connection, learnt once at 'secureConnect'. */
export interface ClientConnectionBinding {
  /** The key scope of the server (see `tokenBindingScope`). */
  readonly scope: string;
  /** The connection's EKM, or `null` when the connection is not eligible (and `optional` is set). */
  readonly ekm: Uint8Array | null;
  /** The `Sec-Token-Binding` value for ordinary requests on this connection, or `null` (plain). */
  readonly header: string | null;
}

/**
 * The signing half of a client: resolves keys by scope (once per scope), checks a connection's
 * TLS conditions and builds the header values for it. Shared by `TokenBindingAgent` and
 * `TokenBindingDispatcher`; exported for callers who drive their own sockets.
 *
 * @example
 * ```ts
 * const binder = new TokenBinder({ keyParameters: 'ecdsap256' })
 * socket.once('secureConnect', async () => {
 *   const connection = await binder.bindConnection(socket, 'api.example.com')
 *   socket.write(`GET / HTTP/1.1\r\nhost: api.example.com\r\nsec-token-binding: ${connection.header}\r\n\r\n`)
 * })
 * ```
 */
export class TokenBinder {
  readonly keyStore: TokenBindingKeyStore;
  readonly keyParameters: KeyParametersName;
  readonly optional: boolean;
  readonly #keys = new Map<string, Promise<TokenBindingKey>>();

  constructor(options: TokenBindingClientOptions = {}) {
    const { keyStore = new MemoryKeyStore(), keyParameters = 'ecdsap256', optional = false } = options;
    if (typeof keyStore !== 'object' || keyStore === null || typeof keyStore.getOrCreateKey !== 'function') {
      throw new TypeError('keyStore must be a TokenBindingKeyStore');
    }
    if (!['ecdsap256', 'rsa2048_pss', 'rsa2048_pkcs1.5'].includes(keyParameters)) {
      throw new TypeError(`keyParameters must be ecdsap256, rsa2048_pss or rsa2048_pkcs1.5, got ${String(keyParameters)}`);
    }
    if (typeof optional !== 'boolean') throw new TypeError('optional must be a boolean');
    this.keyStore = keyStore;
    this.keyParameters = keyParameters;
    this.optional = optional;
  }

  /** The key this client uses for `scope` (created in the key store on first use). */
  key(scope: string): Promise<TokenBindingKey> {
    let key = this.#keys.get(scope);
    if (key === undefined) {
      key = this.keyStore.getOrCreateKey(scope, this.keyParameters);
      this.#keys.set(scope, key);
      // A failing store (corrupt file) is asked again next time, not remembered as broken.
      key.catch(() => this.#keys.delete(scope));
    }
    return key;
  }

  /**
   * Learns what is needed to bind requests on a freshly secured connection to `host`. Call it
   * from 'secureConnect': the EKM is taken synchronously, before anything else can happen on
   * the socket.
   *
   * @throws TokenBindingError `ERR_TB_TLS_CONDITIONS` (rejects) when the connection does not
   *   meet the conditions of RFC 8471 §4.2 / RFC 8472 and `optional` is not set;
   *   `ERR_TB_EKM_UNAVAILABLE` when the socket is not secure; `ERR_TB_KEY_STORE` from the store.
   */
  bindConnection(socket: Socket | TLSSocket, host: string | URL): Promise<ClientConnectionBinding> {
    try {
      const scope = tokenBindingScope(host);
      const conditions: TokenBindingConditions | null = socket instanceof TLSSocket ? checkTokenBindingConditions(socket) : null;
      if (conditions === null || !conditions.ok) {
        if (this.optional) return Promise.resolve(Object.freeze({ scope, ekm: null, header: null }));
        throw conditions === null ? conditionsRefusal('plain TCP', null) : conditionsRefusal(conditions.protocol, conditions.detail);
      }
      const ekm = exportTokenBindingKeyingMaterial(socket as TLSSocket);
      return this.key(scope).then((provided) => Object.freeze({ scope, ekm, header: createSecTokenBindingHeader({ provided, ekm }) }));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The `Sec-Token-Binding` value for one request on `connection`: its ordinary value, or, with
   * `referredScope`, a message that also carries a referred binding signed with the key of that
   * scope over this connection's EKM (RFC 8473 §5). `null` on a plain (optional) connection.
   */
  async headerFor(connection: ClientConnectionBinding, referredScope?: string | null): Promise<string | null> {
    if (connection.header === null || connection.ekm === null) return null;
    if (referredScope === undefined || referredScope === null) return connection.header;
    const [provided, referred] = await Promise.all([this.key(connection.scope), this.key(referredScope)]);
    return createSecTokenBindingHeader({ provided, referred, ekm: connection.ekm });
  }
}

/** Response headers as fetch, node:http or a plain record hold them. */
export type ResponseHeadersLike =
  | { get(name: string): string | null }
  | Readonly<Record<string, string | readonly string[] | number | undefined>>;

/**
 * True when a response asks the client to include a referred Token Binding on the request that
 * follows its redirect (RFC 8473 §5.3): a 3xx status with
 * `Include-Referred-Token-Binding-ID: true` (the value compared case-insensitively).
 *
 * @example
 * ```ts
 * https.get(url, { agent }, (res) => {
 *   if (isReferredTokenBindingRequested(res.statusCode, res.headers)) {
 *     https.get(new URL(res.headers.location, url), { agent, referredTokenBinding: url } as https.RequestOptions)
 *   }
 * })
 * ```
 */
export function isReferredTokenBindingRequested(status: number | undefined, headers: ResponseHeadersLike): boolean {
  if (status === undefined || status < 300 || status > 399) return false;
  let value: unknown;
  if (typeof (headers as { get?: unknown }).get === 'function') {
    value = (headers as { get(name: string): string | null }).get(INCLUDE_REFERRED_TOKEN_BINDING_ID_HEADER);
  } else {
    const record = headers as Readonly<Record<string, unknown>>;
    const name = Object.keys(record).find((n) => n.toLowerCase() === INCLUDE_REFERRED_TOKEN_BINDING_ID_HEADER);
    value = name === undefined ? undefined : record[name];
  }
  if (Array.isArray(value)) value = value.length === 1 ? value[0] : undefined;
  return typeof value === 'string' && value.trim().toLowerCase() === 'true';
}
