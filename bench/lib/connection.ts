/**
 * A verification context for the micro-benchmarks: what tokbind's server holds for one TLS 1.3
 * connection (its facts and its per-connection cache), built without a socket so the loop
 * measures verification, not handshakes. `fresh` makes a new, empty cache each call — a request
 * on a connection that has not been seen yet.
 */
import type { TokenBindingConnectionContext } from '../../src/http/verify.js';
import type { ConnectionFacts, ConnectionState } from '../../src/tls/connection.js';

export function connectionFacts(ekm: Uint8Array): ConnectionFacts {
  return {
    protocol: 'TLSv1.3',
    extendedMasterSecret: true,
    ekm,
    eligible: true,
    clientHello: null,
    negotiatedKeyParameters: null,
  };
}

export function freshConnection(facts: ConnectionFacts): TokenBindingConnectionContext {
  const state: ConnectionState = { verified: new Map(), distinct: 0, maxDistinctMessages: 8 };
  return { facts, state };
}
