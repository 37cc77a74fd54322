/**
 * Per-connection values kept on the socket itself under a module-private symbol, instead of in a
 * WeakMap keyed by the socket: a WeakMap entry per short-lived socket costs ~1 µs of the
 * collector's ephemeron work (measured on Node 20), and a server taking new connections pays it
 * for every one. Through the HTTP/2 `session.socket` Proxy, reads and writes reach the TLSSocket.
 * The value is an enumerable symbol property (a plain assignment, ~3 ns): a spread copy of the
 * socket would carry it.
 */

/** One kind of per-socket value. */
export interface SocketSlot<T> {
  get(socket: object): T | undefined;
  set(socket: object, value: T): void;
  /**
   * The socket's own value, or else its `_parent`'s: a TLSSocket made by a tls.Server keeps the
   * TCP socket it wraps there, where values taken before TLS (a PROXY protocol header, a
   * ClientHello) were kept.
   */
  find(socket: object): T | undefined;
}

/** A socket's `_parent` (the TCP socket a TLSSocket wraps), or null. */
export function parentOf(socket: object): object | null {
  const parent = (socket as { _parent?: unknown })._parent;
  return typeof parent === 'object' && parent !== null ? parent : null;
}

/**
 * A new slot, named for debugging (`description` of its symbol).
 *
 * @internal
 */
export function socketSlot<T>(description: string): SocketSlot<T> {
  const key = Symbol(description);
  const get = (socket: object): T | undefined => (socket as { [key]?: T })[key];
  return {
    get,
    set: (socket, value) => {
      (socket as { [key]?: T })[key] = value;
    },
    find: (socket) => {
      const direct = get(socket);
      if (direct !== undefined) return direct;
      const parent = parentOf(socket);
      return parent === null ? undefined : get(parent);
    },
  };
}
