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
}

/**
 * A new slot, named for debugging (`description` of its symbol).
 *
 * @internal
 */
export function socketSlot<T>(description: string): SocketSlot<T> {
  const key = Symbol(description);
  return {
    get: (socket) => (socket as { [key]?: T })[key],
    set: (socket, value) => {
      (socket as { [key]?: T })[key] = value;
    },
  };
}
