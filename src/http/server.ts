/**
 * Binding-aware HTTPS (HTTP/1.1) and HTTP/2 servers: drop-ins for `https.createServer` and
 * `http2.createSecureServer` that verify each request's Sec-Token-Binding (RFC 8473 §2) before
 * any listener sees it.
 */
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Http2ServerRequest, IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { TokenBindingError } from '../errors.js';
import { keepRenegotiationRefused, withRenegotiationRefused } from '../tls/conditions.js';
import {
  captureConnectionFacts,
  getConnectionContext,
  type ConnectionFacts,
  type ConnectionFactsOptions,
} from '../tls/connection.js';
import { inspectClientHellos } from '../tls/inspect.js';
import { FORWARDED_HEADER_NAMES, isForwardedHeaderName } from './forwarded.js';
import { watchRenegotiation } from '../tls/renegotiation.js';
import { recordTlsConditionsUnmet } from './metrics.js';
import { resolveTokenBindingOptions, type ResolvedTokenBindingOptions, type TokenBindingServerOptions } from './options.js';
import { rawProblemResponse, sendProblem, sendStreamProblem } from './problem.js';
import type { TokenBindingResult } from './result.js';
import { verifyTokenBindingHeader, type TokenBindingConnectionContext } from './verify.js';

declare module 'node:http' {
  interface IncomingMessage {
    /**
     * The verified Token Binding of this request (set by tokbind's servers and adapters before
     * the handler runs): null when the request carried no Sec-Token-Binding.
     */
    tokenBinding?: TokenBindingResult | null;
  }
}
declare module 'node:http2' {
  interface Http2ServerRequest {
    /** The verified Token Binding of this request; null when it carried no Sec-Token-Binding. */
    tokenBinding?: TokenBindingResult | null;
  }
}

/** `https.createServer` options plus `tokenBinding`. */
export type TokenBindingHttpsServerOptions = https.ServerOptions & { readonly tokenBinding?: TokenBindingServerOptions };

const SEC_TOKEN_BINDING = 'sec-token-binding';
/**
 * draft-ietf-tokbind-ttrp headers a TLS-terminating proxy sets after verifying (and tokbind's
 * assertion over them). This server terminates TLS itself, so any such header arrived from the
 * client: a spoof.
 */
const TTRP_HEADERS = FORWARDED_HEADER_NAMES;

/**
 * HTTP/1.x requests verified at 'checkContinue' or 'checkExpectation': when a listener (ours,
 * {@link continueAfterVerification}, or the application's) hands one on as 'request', it is not
 * verified (or counted) twice.
 */
const verifiedEarly = new WeakSet<IncomingMessage>();

/** HTTP/2 streams → their verdict, for {@link getTokenBinding} and the compat request. */
const streamResults = new WeakMap<ServerHttp2Stream, TokenBindingResult | null>();

/** The capture options of each server's configuration, computed once. */
const captureOptions = new WeakMap<ResolvedTokenBindingOptions, ConnectionFactsOptions>();

function captureOptionsOf(options: ResolvedTokenBindingOptions): ConnectionFactsOptions {
  let capture = captureOptions.get(options);
  if (capture === undefined) {
    capture = { keyParameters: options.keyParameters, maxDistinctMessages: options.maxDistinctMessages };
    captureOptions.set(options, capture);
  }
  return capture;
}

/** Facts for a connection whose facts could not be taken: every header on it is refused. */
const UNAVAILABLE: ConnectionFacts = Object.freeze({
  protocol: 'unknown',
  extendedMasterSecret: null,
  ekm: null,
  eligible: false,
  ineligibleReason: 'ekm-unavailable',
  clientHello: null,
  negotiatedKeyParameters: Object.freeze([]),
});

/**
 * Reads ClientHellos when asked to, and takes each connection's facts once, at 'secureConnection'
 * (the EKM can only be exported while the connection is open), before Node's HTTP machinery
 * sees the socket. Connections that do not meet the TLS conditions are counted by reason, and so
 * are renegotiation attempts (refused by the server's secureOptions).
 *
 * @internal Shared by the HTTP/1.1 and HTTP/2 servers.
 */
export function installConnectionTracking(server: TlsServer, options: ResolvedTokenBindingOptions): void {
  if (options.inspectClientHello !== null) inspectClientHellos(server, options.inspectClientHello);
  const capture = captureOptionsOf(options);
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    let facts: ConnectionFacts;
    try {
      facts = captureConnectionFacts(socket, capture);
    } catch {
      // Closed between the handshake and this listener: nothing will be served on it.
      return;
    }
    if (!facts.eligible) recordTlsConditionsUnmet(facts.ineligibleReason ?? 'unknown', facts.protocol);
    // TLS 1.3 has no renegotiation.
    if (facts.protocol !== 'TLSv1.3') watchRenegotiation(socket, () => recordTlsConditionsUnmet('renegotiation', facts.protocol));
  });
}

/**
 * The facts and verification cache of the connection behind a TLSSocket or an HTTP/2 session.
 *
 * @internal
 */
export function connectionContext(
  connection: TLSSocket | ServerHttp2Session,
  options: ResolvedTokenBindingOptions,
): TokenBindingConnectionContext {
  return getConnectionContext(connection, captureOptionsOf(options)) ?? { facts: UNAVAILABLE, state: null };
}

/**
 * The verified Token Binding of a request handled by a tokbind server or adapter, or of an
 * HTTP/2 stream (in a `'stream'` listener of `createSecureServer`). Null when the request
 * carried no Sec-Token-Binding, or did not go through tokbind.
 *
 * @example
 * ```ts
 * const tb = getTokenBinding(req)
 * if (tb && token.cnf?.tbh === tb.provided.hash) { ... } // RFC 8471 §4.2, draft-ietf-oauth-token-binding
 * ```
 */
export function getTokenBinding(target: IncomingMessage | Http2ServerRequest | ServerHttp2Stream): TokenBindingResult | null {
  if (target === null || typeof target !== 'object') throw new TypeError('expected a request or an HTTP/2 stream');
  if ('tokenBinding' in target) return target.tokenBinding ?? null;
  if ('stream' in target) return streamResults.get(target.stream) ?? null;
  return streamResults.get(target as ServerHttp2Stream) ?? null;
}

/**
 * Scans raw headers once: collects Sec-Token-Binding values (to count them — Node joins
 * duplicates of unknown headers with ', '), reports whether a TTRP header must be stripped, and
 * whether the request is chunked (only a chunked HTTP/1.1 body can end with trailers).
 */
function scanHeaders(raw: readonly string[]): { values: string[] | undefined; spoofed: boolean; chunked: boolean } {
  let values: string[] | undefined;
  let spoofed = false;
  let chunked = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Length first: most headers are skipped without lowercasing. 'transfer-encoding' is 17
    // characters long too.
    if (name.length === 17) {
      const lower = name.toLowerCase();
      if (lower === SEC_TOKEN_BINDING) (values ??= []).push(raw[i + 1]!);
      else if (lower === 'transfer-encoding') chunked = true;
    } else if (isForwardedHeaderName(name)) {
      spoofed = true;
    }
  }
  return { values, spoofed, chunked };
}

/**
 * Deletes TTRP headers from every view of one header block (request headers or trailers): the
 * objects Node built from it, then the raw list. Node builds the HTTP/1.x objects lazily from the
 * raw list and the count it parsed, so the caller reads them (building them) before the raw list
 * is edited; the argument order does that.
 */
function removeTtrp(views: readonly (Record<string, unknown> | undefined)[], raw: string[] | undefined): void {
  for (const view of views) {
    if (view !== undefined) for (const name of TTRP_HEADERS) delete view[name];
  }
  if (raw === undefined) return;
  // Compacted in one pass: a splice per spoofed header would cost O(headers²) for a client that
  // sends hundreds of them.
  let kept = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (TTRP_HEADERS.has(raw[i]!.toLowerCase())) continue;
    raw[kept++] = raw[i]!;
    raw[kept++] = raw[i + 1]!;
  }
  raw.length = kept;
}

/** Strips spoofed TTRP headers from every view of a request: headers, headersDistinct, rawHeaders. */
function stripRequest(req: IncomingMessage | Http2ServerRequest): void {
  removeTtrp([req.headers, 'headersDistinct' in req ? req.headersDistinct : undefined], req.rawHeaders);
}

/**
 * Strips spoofed TTRP headers from an HTTP/1.x request's trailers (a chunked body may end with
 * header fields, RFC 9112 §7.1.2) once they have arrived: Node fills `trailers` by the 'end'
 * event, and this listener, added before the application sees the request, runs first.
 */
function stripTrailersAtEnd(req: IncomingMessage): void {
  req.once('end', () => {
    const raw = req.rawTrailers;
    if (raw.length === 0 || !scanHeaders(raw).spoofed) return;
    removeTtrp([req.trailers, req.trailersDistinct], raw);
  });
}

/**
 * The same for an HTTP/2 stream's trailing HEADERS frame: the 'trailers' listeners (the compat
 * request's and the application's) all receive the same header object and raw list, edited here
 * in place. Added only to streams whose request headers did not end the stream.
 */
function stripStreamTrailers(stream: ServerHttp2Stream): void {
  stream.once('trailers', (headers: IncomingHttpHeaders, _flags: number, raw?: string[]) => {
    removeTtrp([headers as Record<string, unknown>], Array.isArray(raw) ? raw : undefined);
  });
}

/** Whether an HTTP/1.x request may still have body bytes on the wire. */
function hasBody(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding'];
  const cl = req.headers['content-length'];
  return te !== undefined || (cl !== undefined && cl !== '0');
}

/** Verifies the values on a connection under `onInvalid`: the verdict, or the error to reject with. */
function judge(
  values: string[] | undefined,
  connection: TLSSocket | ServerHttp2Session | undefined,
  options: ResolvedTokenBindingOptions,
): TokenBindingResult | null | TokenBindingError {
  try {
    // A stream whose session is already gone has no connection left to verify against.
    const context = connection === undefined ? { facts: UNAVAILABLE } : connectionContext(connection, options);
    return verifyTokenBindingHeader(values, context, options);
  } catch (err) {
    if (!(err instanceof TokenBindingError)) throw err;
    if (options.onInvalid === 'ignore' && err.code !== 'ERR_TB_HEADER_MISSING') return null;
    return err;
  }
}

/**
 * Verifies one request — HTTP/1.x, or an HTTP/2 compat request that did not come through
 * `createSecureServer`'s stream check — after stripping client-sent TTRP headers: the
 * verdict (null: no header, or an invalid one under `onInvalid: 'ignore'`) or the error to reject
 * with. The connection is the TLSSocket for HTTP/1.x and the session for HTTP/2 (the compat
 * `req.socket` is a new object per request).
 *
 * @internal Shared with the framework adapters.
 */
export function verifyRequest(
  req: IncomingMessage | Http2ServerRequest,
  options: ResolvedTokenBindingOptions,
): TokenBindingResult | null | TokenBindingError {
  const { values, spoofed, chunked } = scanHeaders(req.rawHeaders);
  if (spoofed) stripRequest(req);
  if ('stream' in req) {
    if (!req.stream.endAfterHeaders) stripStreamTrailers(req.stream);
    return judge(values, req.stream.session as ServerHttp2Session | undefined, options);
  }
  if (chunked) stripTrailersAtEnd(req);
  return judge(values, req.socket as TLSSocket, options);
}

function rejectRequest(req: IncomingMessage, res: ServerResponse, error: TokenBindingError, options: ResolvedTokenBindingOptions): void {
  // The request body is not wanted. Without one the connection stays usable (keep-alive); with
  // one, close after the response rather than read and discard an arbitrary amount.
  if (hasBody(req)) res.setHeader('connection', 'close');
  if (options.onReject !== undefined) options.onReject(req, res, error);
  else sendProblem(res, error);
}

type Emit = (this: EventEmitter, event: string | symbol, ...args: unknown[]) => boolean;

function isHttp2Request(req: unknown): req is Http2ServerRequest {
  return typeof req === 'object' && req !== null && 'stream' in req;
}

/**
 * Routes every event that hands a request to user code through verification first: 'request',
 * 'checkContinue', 'checkExpectation' (HTTP/1.x with response), 'upgrade', 'connect' (socket
 * handed over), and on HTTP/2 'stream'. Wrapping `emit` rather than the handler covers listeners
 * added later with `server.on('request', …)` too.
 *
 * @internal Shared by the HTTP/1.1 and HTTP/2 servers.
 */
export function interceptRequests(server: EventEmitter, options: ResolvedTokenBindingOptions): void {
  const emit = server.emit as Emit;
  // Named parameters and `arguments` rather than rest/spread: this runs for every event the
  // server emits, and rest parameters allocate an array per call.
  const intercepted = function (this: EventEmitter, event: string | symbol, a?: unknown, b?: unknown, _c?: unknown, d?: unknown): boolean {
    switch (event) {
      case 'request':
      case 'checkContinue':
      case 'checkExpectation': {
        const req = a as IncomingMessage | Http2ServerRequest;
        if (isHttp2Request(req)) {
          // Verified (and stripped) when its stream arrived; rejected streams never get here.
          req.tokenBinding = streamResults.get(req.stream) ?? null;
          break;
        }
        if (event === 'request' && verifiedEarly.has(req)) break;
        const verdict = verifyRequest(req, options);
        if (verdict instanceof TokenBindingError) {
          rejectRequest(req, b as ServerResponse, verdict, options);
          return true;
        }
        req.tokenBinding = verdict;
        if (event !== 'request') verifiedEarly.add(req);
        break;
      }
      case 'upgrade':
      case 'connect': {
        const req = a as IncomingMessage;
        const verdict = verifyRequest(req, options);
        if (verdict instanceof TokenBindingError) {
          (b as Duplex).end(rawProblemResponse(verdict));
          return true;
        }
        req.tokenBinding = verdict;
        break;
      }
      case 'stream':
        if (!verifyStream(a as ServerHttp2Stream, b as IncomingHttpHeaders, d as string[], options)) return true;
        break;
    }
    return Reflect.apply(emit, this, arguments) as boolean;
  };
  server.emit = intercepted as Emit;
}

/**
 * The server's own 'checkContinue' listener. Without one, Node answers `100 Continue` to an
 * `Expect: 100-continue` request before any listener runs, so a client whose binding is about to
 * be refused would be invited to upload its body first. With this listener Node emits
 * 'checkContinue' instead, which is verified like 'request' (a refusal is a final 400, no 100);
 * on success this does what Node would have done: `100 Continue`, then 'request'. When the
 * application adds its own 'checkContinue' listener, this one steps aside and the application
 * decides (its listener sees the verified `req.tokenBinding`).
 */
function continueAfterVerification(this: EventEmitter, req: unknown, res: { writeContinue(): void }): void {
  if (this.listenerCount('checkContinue') > 1) return;
  res.writeContinue();
  this.emit('request', req, res);
}

/**
 * Makes `Expect: 100-continue` requests wait for verification before `100 Continue` (see
 * {@link continueAfterVerification}).
 *
 * @internal Shared by the HTTP/1.1 and HTTP/2 (`allowHTTP1`) servers.
 */
export function verifyBeforeContinue(server: EventEmitter): void {
  server.on('checkContinue', continueAfterVerification);
}

/** Verifies an HTTP/2 stream; false when it was rejected (and answered). */
function verifyStream(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  rawHeaders: string[],
  options: ResolvedTokenBindingOptions,
): boolean {
  // The headers object joins repeated names; the raw list (a 'stream' argument since Node 16)
  // shows each one, and the compat request reads the same array.
  const { values, spoofed } = scanHeaders(rawHeaders);
  if (spoofed) removeTtrp([headers], rawHeaders);
  if (!stream.endAfterHeaders) stripStreamTrailers(stream);
  const verdict = judge(values, stream.session as ServerHttp2Session | undefined, options);
  if (verdict instanceof TokenBindingError) {
    if (options.onRejectStream !== undefined) options.onRejectStream(stream, headers, verdict);
    else sendStreamProblem(stream, verdict);
    return false;
  }
  streamResults.set(stream, verdict);
  return true;
}

/**
 * A drop-in for `https.createServer` (same options, same events, the real `https.Server`) that
 * verifies every request's Sec-Token-Binding (RFC 8471 §4.2, RFC 8473 §2) before any 'request',
 * 'checkContinue', 'upgrade' or 'connect' listener runs, and exposes the verdict as
 * `req.tokenBinding` (null without a header). It refuses TLS renegotiation (which would change the
 * EKM mid-connection) for its whole life — `server.setSecureContext()` keeps the refusal, and a
 * connection that attempts one is closed (`keepRenegotiationRefused`) — captures each connection's facts once at 'secureConnection', strips
 * client-sent `Sec-*-Token-Binding-ID` headers (and trailers), and answers invalid messages with a 400
 * `application/problem+json` (or `tokenBinding.onReject`). An `Expect: 100-continue` request is
 * verified before `100 Continue` is sent: a refused client is never invited to upload its body.
 *
 * @example
 * ```ts
 * const server = createServer({ key, cert, tokenBinding: { required: true } }, (req, res) => {
 *   res.end(JSON.stringify({ tbh: req.tokenBinding?.provided.hash }))
 * })
 * server.listen(8443)
 * ```
 */
export function createServer(options: TokenBindingHttpsServerOptions, handler?: RequestListener): https.Server {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  if (handler !== undefined && typeof handler !== 'function') throw new TypeError('handler must be a function');
  const { tokenBinding, ...httpsOptions } = options;
  const resolved = resolveTokenBindingOptions(tokenBinding ?? {});
  const server = https.createServer(withRenegotiationRefused(httpsOptions));
  // Also through setSecureContext (certificate rotation) and whatever context a connection gets.
  keepRenegotiationRefused(server);
  installConnectionTracking(server, resolved);
  interceptRequests(server, resolved);
  verifyBeforeContinue(server);
  if (handler !== undefined) server.on('request', handler);
  return server;
}
