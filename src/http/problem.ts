/**
 * RFC 9457 problem details for rejected Token Binding requests.
 *
 * The body is built from the error code alone — the fixed text in {@link TokenBindingErrorCodes}
 * — never from `error.message` or `error.cause`: those may carry facts (lengths, key parameters)
 * that a client has no use for, and the response must never echo the header, key material or a
 * stack trace.
 */
import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import { TokenBindingErrorCodes, type TokenBindingError, type TokenBindingErrorCode } from '../errors.js';

/** The `application/problem+json` body tokbind sends when it rejects a request. */
export interface TokenBindingProblem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: TokenBindingErrorCode;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Titles other than the default 'Invalid Token Binding', by code. */
const TITLES: Partial<Record<TokenBindingErrorCode, string>> = {
  ERR_TB_HEADER_MISSING: 'Token Binding required',
  ERR_TB_SESSION_BINDING_MISSING: 'Session binding required',
  ERR_TB_SESSION_BINDING_MISMATCH: 'Session bound to another client',
  ERR_TB_SESSION_BINDING_EXPIRED: 'Session binding expired',
  ERR_TB_SESSION_UNBOUND: 'Bound session required',
  ERR_TB_DBSC_PROOF_INVALID: 'Invalid DBSC proof',
  ERR_TB_DBSC_CHALLENGE_INVALID: 'Invalid DBSC challenge',
  ERR_TB_DBSC_SESSION_UNKNOWN: 'No session for this DBSC request',
  ERR_TB_DBSC_RATE_LIMITED: 'Too many DBSC refreshes',
};

/**
 * The problem details for a Token Binding rejection (RFC 8473 §2: the server may answer 400;
 * tokbind/session answers 401 or 403 for a session it refuses, with `status` given).
 * `type` is a stable URN per code, so clients can branch on it without parsing `detail`.
 *
 * @example
 * ```ts
 * problemDetails(new TokenBindingError('ERR_TB_SIGNATURE_INVALID'))
 * // { type: 'urn:tokbind:error:ERR_TB_SIGNATURE_INVALID', title: 'Invalid Token Binding', status: 400, ... }
 * ```
 */
export function problemDetails(error: TokenBindingError, status = 400): TokenBindingProblem {
  const code = error.code;
  return {
    type: `urn:tokbind:error:${code}`,
    title: TITLES[code] ?? 'Invalid Token Binding',
    status,
    detail: TokenBindingErrorCodes[code],
    code,
  };
}

function problemBody(error: TokenBindingError, status = 400): string {
  return JSON.stringify(problemDetails(error, status));
}

/** Headers of every rejection: never cached, never sniffed. */
function problemHeaders(body: string): Record<string, string | number> {
  return {
    'content-type': PROBLEM_CONTENT_TYPE,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  };
}

/**
 * Sends the problem response (400 unless `status` says otherwise) on an HTTP/1.1 response or an
 * HTTP/2 compat response.
 *
 * @example
 * ```ts
 * sendProblem(res, err)
 * ```
 */
export function sendProblem(res: ServerResponse | Http2ServerResponse, error: TokenBindingError, status = 400): void {
  const body = problemBody(error, status);
  if (res.headersSent) {
    res.end();
    return;
  }
  // Both response classes accept (status, headers); the union of their overloads does not.
  (res as ServerResponse).writeHead(status, problemHeaders(body));
  (res as ServerResponse).end(body);
}

/** The same 400 on a raw HTTP/2 stream (before any compat request exists). */
export function sendStreamProblem(stream: ServerHttp2Stream, error: TokenBindingError): void {
  if (stream.destroyed || stream.closed) return;
  const body = problemBody(error);
  if (stream.headersSent) {
    stream.end();
    return;
  }
  stream.respond({ ':status': 400, ...problemHeaders(body) });
  stream.end(body);
  // Discard any request body so flow control does not stall the stream; the session stays usable.
  stream.resume();
}

/**
 * The 400 as raw HTTP/1.1 bytes, for the `upgrade` and `connect` events where Node hands over the
 * socket without a response object. The connection is closed after it.
 */
export function rawProblemResponse(error: TokenBindingError): string {
  const body = problemBody(error);
  const head = Object.entries(problemHeaders(body))
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  return `HTTP/1.1 400 Bad Request\r\n${head}connection: close\r\n\r\n${body}`;
}
