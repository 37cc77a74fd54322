/**
 * Notices a client-initiated TLS renegotiation on a server socket. Token Binding servers refuse
 * renegotiation (it would change the EKM, see conditions.ts), and OpenSSL answers the attempt
 * with an alert without telling Node's public API: the only trace is the TLS handle's
 * `onhandshakestart` callback, which Node calls for every handshake (its renegotiation-flood
 * limit, `tls.CLIENT_RENEG_LIMIT`, counts the same calls). When a Node version no longer has it,
 * nothing is watched (the refusal itself does not depend on this).
 */
import type { TLSSocket } from 'node:tls';

interface TlsHandle {
  onhandshakestart?: (...args: unknown[]) => unknown;
}

/**
 * Calls `onAttempt` each time the client of this already secure server socket starts another
 * handshake (a renegotiation attempt). Returns false when the socket cannot be watched.
 *
 * @internal Used by the servers to count the attempts as unmet TLS conditions.
 */
export function watchRenegotiation(socket: TLSSocket, onAttempt: () => void): boolean {
  const handle = (socket as unknown as { _handle?: TlsHandle | null })._handle;
  if (handle == null || typeof handle.onhandshakestart !== 'function') return false;
  const original = handle.onhandshakestart;
  handle.onhandshakestart = function (this: unknown, ...args: unknown[]): unknown {
    // The first handshake is over by the time we are installed ('secureConnection'): every call
    // from here on is the client asking for another one.
    try {
      onAttempt();
    } catch {
      // An observer must never break the TLS machinery.
    }
    return original.apply(this, args);
  };
  return true;
}
