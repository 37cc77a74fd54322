/**
 * Connection failures the client turns into errors that say what to do.
 */
import { TokenBindingError } from '../errors.js';
import type { TlsConditionsDetail } from '../tls/conditions.js';

/** OpenSSL's code for the TLS alert no_application_protocol (120) received from the server. */
export const ALPN_ALERT_CODE = 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL';

/**
 * The error to report for a failed connection to `host`: the ALPN alert becomes an
 * `ERR_TB_CLIENT` that names the cause (an HTTP/2-only server) and the fix (`allowHTTP1`); any
 * other error is returned as it is.
 */
export function explainConnectError(err: Error, host: string): Error {
  if ((err as { code?: unknown }).code !== ALPN_ALERT_CODE) return err;
  return new TokenBindingError(
    'ERR_TB_CLIENT',
    `${host} refused the TLS handshake (ALPN alert no_application_protocol): it speaks no protocol this client offers (HTTP/1.1). ` +
      'An HTTP/2-only server refuses HTTP/1.1 clients: node:http2 createSecureServer (and tokbind createSecureServer) ' +
      'accept them only with allowHTTP1: true',
    err,
  );
}

const CONDITIONS_WORDS: Record<TlsConditionsDetail, string> = {
  'tls-version': 'a TLS version older than 1.2',
  'no-ems': 'TLS 1.2 without Extended Master Secret',
  'ems-unknown': 'TLS 1.2 where Extended Master Secret cannot be confirmed',
};

/** The refusal to sign over a connection that does not meet the TLS conditions, in words. */
export function conditionsRefusal(protocol: string, detail: TlsConditionsDetail | null): TokenBindingError {
  const message =
    detail === null
      ? 'refusing to send Token Binding over plain TCP: Token Binding needs TLS (an https:// URL)'
      : `refusing to send Token Binding over ${protocol} (${CONDITIONS_WORDS[detail]}): it needs TLS 1.3, or TLS 1.2 with Extended Master Secret`;
  return new TokenBindingError('ERR_TB_TLS_CONDITIONS', message, { field: 'connection', protocol, detail: detail ?? 'plain-tcp' });
}
