import { constants } from 'node:crypto';
import type { SecureContextOptions, Server as TlsServer, TlsOptions, TLSSocket } from 'node:tls';
import { hasExtendedMasterSecret } from './session.js';

/**
 * The `secureOptions` bits a Token Binding server needs: refuse TLS renegotiation. A TLS 1.2
 * renegotiation changes the exported keying material mid-connection (measured on Node 20 /
 * OpenSSL 3.0), so a binding checked against the first EKM would no longer hold.
 */
export const TOKBIND_SECURE_OPTIONS: number = constants.SSL_OP_NO_RENEGOTIATION;

/**
 * Returns a copy of `options` whose `secureOptions` also refuse renegotiation (RFC 8471 §4.2:
 * the EKM must stay the one the binding was signed over).
 *
 * @example
 * ```ts
 * https.createServer(withRenegotiationRefused({ key, cert }), handler)
 * ```
 */
export function withRenegotiationRefused<T extends TlsOptions>(options: T): T {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  const current = options.secureOptions ?? 0;
  if (!Number.isSafeInteger(current) || current < 0) throw new TypeError('secureOptions must be a non-negative integer');
  // Not `|`: OpenSSL options use bit 31 (SSL_OP_ALL has it), and JS bitwise operators would
  // turn the result into a negative int32.
  const has = Math.floor(current / TOKBIND_SECURE_OPTIONS) % 2 === 1;
  return { ...options, secureOptions: has ? current : current + TOKBIND_SECURE_OPTIONS };
}

const refusing = new WeakSet<TlsServer>();

/**
 * Keeps a TLS server (tls, https, http2 secure) refusing renegotiation for its whole life, not
 * only with the options it was created with:
 *
 * - `server.setSecureContext(options)` (a certificate rotation) builds the new context from
 *   `options` alone, so a plain call would drop `SSL_OP_NO_RENEGOTIATION` for every later
 *   connection; here the options pass through {@link withRenegotiationRefused} first;
 * - every TLS 1.2 (or older) connection also gets `tlsSocket.disableRenegotiation()` at
 *   'secureConnection': whatever context it ended up with (an SNI context from `addContext` or
 *   `SNICallback`, say), a renegotiation handshake that starts is a TLS error, and the connection
 *   is closed even when the application handles 'clientError' itself. TLS 1.3 has none.
 *
 * Idempotent. tokbind's servers (`createServer`, `createSecureServer`, `attachTokenBinding`) do the
 * same, with the per-connection part in their own connection tracking.
 *
 * @example
 * ```ts
 * const server = https.createServer(withRenegotiationRefused({ key, cert }), handler)
 * keepRenegotiationRefused(server)
 * server.setSecureContext({ key: newKey, cert: newCert }) // still refuses renegotiation
 * ```
 */
export function keepRenegotiationRefused(server: TlsServer): void {
  if (keepContextsRefusing(server)) server.prependListener('secureConnection', refuseRenegotiation);
}

/**
 * {@link keepRenegotiationRefused} for a server whose own 'secureConnection' listener calls
 * {@link refuseRenegotiationOn} for each TLS 1.2 (or older) connection itself — tokbind's
 * connection tracking, which knows the protocol already: one listener per connection, not two.
 * Marks the server as refusing, so a later `keepRenegotiationRefused` adds nothing.
 *
 * @internal Used by the http layer's servers.
 */
export function keepContextsRefusing(server: TlsServer): boolean {
  if (server === null || typeof server !== 'object' || typeof server.setSecureContext !== 'function') {
    throw new TypeError('server must be a TLS server');
  }
  if (refusing.has(server)) return false;
  refusing.add(server);
  const setSecureContext = server.setSecureContext;
  server.setSecureContext = function (this: TlsServer, options: SecureContextOptions): void {
    Reflect.apply(setSecureContext, this, [withRenegotiationRefused(options as TlsOptions)]);
  };
  return true;
}

/** Closes a connection that attempted a renegotiation (one function for every socket). */
function closeOnRenegotiation(this: TLSSocket, err: Error & { code?: string }): void {
  if (err.code === 'ERR_TLS_RENEGOTIATION_DISABLED') this.destroy();
}

/**
 * Refuses renegotiation on one connection: `disableRenegotiation()`, and — since Node only
 * reports the attempt as an error and an application 'clientError' listener may keep the socket —
 * closes a connection that tried, whoever else listens. TLS 1.3 has no renegotiation (RFC 8446
 * §4.1.2: a ClientHello after the handshake is a protocol error): nothing to do there.
 */
function refuseRenegotiation(socket: TLSSocket): void {
  if (socket.getProtocol() === 'TLSv1.3') return;
  refuseRenegotiationOn(socket);
}

/**
 * The per-connection half of {@link keepRenegotiationRefused}, for a connection below TLS 1.3.
 *
 * @internal Used by the http layer's connection tracking (see {@link keepContextsRefusing}).
 */
export function refuseRenegotiationOn(socket: TLSSocket): void {
  socket.disableRenegotiation();
  socket.on('error', closeOnRenegotiation);
}

/** Why a connection cannot carry Token Binding. */
export type TlsConditionsDetail = 'tls-version' | 'no-ems' | 'ems-unknown';

export type TokenBindingConditions =
  | { readonly ok: true; readonly protocol: string; readonly extendedMasterSecret: boolean }
  | {
      readonly ok: false;
      readonly protocol: string;
      readonly reason: 'ERR_TB_TLS_CONDITIONS';
      readonly detail: TlsConditionsDetail;
    };

/** The answers for TLS 1.3 and TLS 1.2, shared (frozen): every connection asks. */
const TLS13_OK: TokenBindingConditions = Object.freeze({ ok: true, protocol: 'TLSv1.3', extendedMasterSecret: true });
const TLS12_EMS_OK: TokenBindingConditions = Object.freeze({ ok: true, protocol: 'TLSv1.2', extendedMasterSecret: true });
const TLS12_NO_EMS: TokenBindingConditions = Object.freeze({ ok: false, protocol: 'TLSv1.2', reason: 'ERR_TB_TLS_CONDITIONS', detail: 'no-ems' });
const TLS12_EMS_UNKNOWN: TokenBindingConditions = Object.freeze({ ok: false, protocol: 'TLSv1.2', reason: 'ERR_TB_TLS_CONDITIONS', detail: 'ems-unknown' });

/**
 * Decides from a protocol string and the EMS fact whether Token Binding may be used
 * (RFC 8471 §4.2, RFC 8472 §5, draft-ietf-tokbind-tls13): TLS 1.3, or TLS 1.2 with Extended
 * Master Secret; never TLS 1.1 or older. The answer is frozen.
 *
 * @example
 * ```ts
 * tokenBindingConditions('TLSv1.2', false) // { ok: false, detail: 'no-ems', ... }
 * ```
 */
export function tokenBindingConditions(protocol: string | null, extendedMasterSecret: boolean | null): TokenBindingConditions {
  const p = protocol ?? 'unknown';
  if (p === 'TLSv1.3') return TLS13_OK;
  if (p !== 'TLSv1.2') return Object.freeze({ ok: false, protocol: p, reason: 'ERR_TB_TLS_CONDITIONS', detail: 'tls-version' });
  if (extendedMasterSecret === true) return TLS12_EMS_OK;
  return extendedMasterSecret === false ? TLS12_NO_EMS : TLS12_EMS_UNKNOWN;
}

/**
 * Whether Token Binding may be used on this TLS connection (RFC 8471 §4.2, RFC 8472 §5):
 * TLS 1.3, or TLS 1.2 with Extended Master Secret read from the session. Call it once the
 * connection is secure.
 *
 * @example
 * ```ts
 * const c = checkTokenBindingConditions(socket)
 * if (!c.ok) console.log(c.protocol, c.detail) // e.g. 'TLSv1.2' 'no-ems'
 * ```
 */
export function checkTokenBindingConditions(socket: TLSSocket): TokenBindingConditions {
  if (socket === null || typeof socket !== 'object' || typeof socket.getProtocol !== 'function') {
    throw new TypeError('socket must be a TLSSocket');
  }
  const protocol = socket.getProtocol();
  return tokenBindingConditions(protocol, protocol === 'TLSv1.2' ? hasExtendedMasterSecret(socket) : null);
}
