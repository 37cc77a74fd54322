/**
 * tokbind: TLS Token Binding (RFC 8471, RFC 8472, RFC 8473) for Node.js.
 *
 * The layers, lowest first, each re-exported here: the pure codec (wire format), crypto
 * (signature verification and signing), tls (per-connection facts), http (server processing and
 * binding-aware servers) and client (agent, dispatcher, key stores). Express and Fastify glue
 * live at `tokbind/express` and `tokbind/fastify`, so neither framework is loaded unless asked for.
 *
 * @packageDocumentation
 */
export * from './errors.js';
export * from './codec/index.js';
export * from './crypto/index.js';
export * from './tls/index.js';
export * from './http/index.js';
export * from './client/index.js';
