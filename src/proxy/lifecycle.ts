/**
 * How the proxy and the sidecar stop: the one shutdown both share.
 */
import { once } from 'node:events';
import type { Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * Tracks the connections `server` takes (on `connectionEvent`: `'connection'` for plain HTTP,
 * `'secureConnection'` for TLS) and returns an idempotent `close()`: stop accepting, destroy every
 * open connection, wait for the server's 'close', then run `after` (closing the upstream pool).
 * Every caller waits for the same shutdown.
 */
export function trackedClose(server: NetServer, connectionEvent: 'connection' | 'secureConnection', after: () => Promise<void>): () => Promise<void> {
  const sockets = new Set<Duplex>();
  server.on(connectionEvent, (socket: Duplex) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= (async () => {
      const closed = server.listening ? once(server, 'close') : Promise.resolve();
      server.close();
      for (const socket of sockets) socket.destroy();
      await closed;
      await after();
    })();
    return closing;
  };
}
