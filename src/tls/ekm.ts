import type { TLSSocket } from 'node:tls';
import { TOKEN_BINDING_EKM_LENGTH } from '../codec/signed-data.js';
import { TokenBindingError } from '../errors.js';

/** The RFC 8471 §3.3 exporter label. */
export const TOKEN_BINDING_EXPORTER_LABEL = 'EXPORTER-Token-Binding';

/**
 * The 32-byte Exported Keying Material a Token Binding signature covers (RFC 8471 §3.3,
 * RFC 5705 / RFC 8446 §7.5): label `EXPORTER-Token-Binding`, **no context**.
 *
 * The context argument is left out on purpose: RFC 5705 distinguishes "no context" from an
 * empty context, and on TLS 1.2 an empty Buffer yields a different (wrong) value.
 * Node throws before the handshake completes and after the socket closes, so take it once on
 * 'secureConnection' and keep it with the connection (see `captureConnectionFacts`).
 *
 * @throws TokenBindingError `ERR_TB_EKM_UNAVAILABLE` when the socket is not (or no longer) secure.
 * @example
 * ```ts
 * server.on('secureConnection', (socket) => {
 *   const ekm = exportTokenBindingKeyingMaterial(socket) // Uint8Array(32)
 * })
 * ```
 */
export function exportTokenBindingKeyingMaterial(socket: TLSSocket): Uint8Array {
  if (socket === null || typeof socket !== 'object' || typeof socket.exportKeyingMaterial !== 'function') {
    throw new TypeError('socket must be a TLSSocket');
  }
  // Before the handshake Node throws ERR_TLS_INVALID_STATE; after close a TypeError (the handle
  // is gone). A destroyed socket whose handle lingers is no place to bind a token either.
  if (socket.destroyed) {
    throw new TokenBindingError('ERR_TB_EKM_UNAVAILABLE', undefined, { field: 'socket', actual: 'destroyed' });
  }
  try {
    // @types/node declares `context` required; Node does not, and "no context" is what we need.
    const exportNoContext = socket.exportKeyingMaterial as (length: number, label: string) => Buffer;
    return exportNoContext.call(socket, TOKEN_BINDING_EKM_LENGTH, TOKEN_BINDING_EXPORTER_LABEL);
  } catch (err) {
    throw new TokenBindingError('ERR_TB_EKM_UNAVAILABLE', undefined, err instanceof Error ? err : undefined);
  }
}
