/**
 * The load generator's Token Binding side: one client key per connection slot, and the
 * Sec-Token-Binding value for a connection — signed over that connection's EKM, so it is made
 * once per connection, after the handshake, with tokbind's own signing and EKM functions.
 */
import type { TLSSocket } from 'node:tls';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { exportTokenBindingKeyingMaterial } from '../../src/tls/ekm.js';

export interface ClientBinder {
  /** The Sec-Token-Binding value (a provided binding) for this connection. */
  header(socket: TLSSocket): string;
}

export function createClientBinder(): ClientBinder {
  const key = generateTokenBindingKey('ecdsap256');
  return {
    header: (socket) => createSecTokenBindingHeader({ provided: key, ekm: exportTokenBindingKeyingMaterial(socket) }),
  };
}
