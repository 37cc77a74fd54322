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
import { keyParametersName, parseKeyParameters } from '../codec/keyparams.js';
import { TokenBindingError } from '../errors.js';
import { keepContextsRefusing, refuseRenegotiationOn, withRenegotiationRefused } from '../tls/conditions.js';
import {
  captureConnectionFacts,
  captureServerConnection,
  getConnectionContext,
  type ConnectionFacts,
  type ConnectionFactsOptions,
} from '../tls/connection.js';
import { inspectClientHellos, isInspectingClientHellos } from '../tls/inspect.js';
import { FORWARDED_HEADER_NAMES, isForwardedHeaderName } from './forwarded.js';
import { watchRenegotiation } from '../tls/renegotiation.js';
import { recordTlsConditionsUnmet } from './metrics.js';
import { resolveTokenBindingOptions, type ResolvedTokenBindingOptions, type TokenBindingServerOptions } from './options.js';
import { rawProblemResponse, sendProblem, sendStreamProblem } from './problem.js';
import type { TokenBindingResult } from './result.js';
import { sameVerdictOptions, verdictOnValue, verifyTokenBindingHeader, type TokenBindingConnectionContext } from './verify.js';

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

/**
 * What tokbind decided about one request: the options it was judged under, the Sec-Token-Binding
 * values it carried, the outcome before `onInvalid`, and the verdict after. Kept by request
 * object (HTTP/1.x) or by stream (HTTP/2; the compat request is reached through `req.stream`), so
 * an adapter behind a tokbind server — or behind another adapter — can tell whether the verdict
 * was reached under its own options and apply its own `required` and `onInvalid` to it.
 */
interface Judgement {
  readonly options: ResolvedTokenBindingOptions;
  readonly values: string[] | undefined;
  readonly outcome: TokenBindingResult | null | TokenBindingError;
  readonly verdict: TokenBindingResult | null;
  /** The verdict came from a trusted TLS-terminating proxy's forwarded IDs, not a header here. */
  readonly forwarded?: true;
}

/**
 * Kept on the request (or stream) object under a symbol, not in a WeakMap: this is written for
 * every request, and a WeakMap entry per short-lived key costs microseconds of ephemeron work
 * under load, a property ~10 ns.
 */
const JUDGEMENT = Symbol('tokbind.judgement');

interface Judged {
  [JUDGEMENT]?: Judgement;
}

function judgementTarget(req: IncomingMessage | Http2ServerRequest): Judged {
  return ('stream' in req ? req.stream : req) as Judged;
}

function judgementOf(target: object): Judgement | undefined {
  return (target as Judged)[JUDGEMENT];
}

/**
 * How middleware on a plain server takes a connection's facts: with no key parameters list and no
 * distinct-message ceiling, so each caller's own `keyParameters` and `maxDistinctMessages` apply
 * (the first caller must not fix them for the others).
 */
const LAZY_CAPTURE: ConnectionFactsOptions = Object.freeze({ maxDistinctMessages: Number.MAX_SAFE_INTEGER });

/** The capture options of each server's configuration, computed once. */
const captureOptions = new WeakMap<ResolvedTokenBindingOptions, ConnectionFactsOptions>();

function captureOptionsOf(options: ResolvedTokenBindingOptions): ConnectionFactsOptions {
  let capture = captureOptions.get(options);
  if (capture === undefined) {
    capture = Object.freeze({ keyParameters: options.keyParameters, maxDistinctMessages: options.maxDistinctMessages });
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
      // Without ClientHello inspection (installed above for this server's option, or separately)
      // there is no offer to find: the shorter capture (captureServerConnection).
      facts = isInspectingClientHellos(server) ? captureConnectionFacts(socket, capture) : captureServerConnection(socket, capture);
    } catch {
      // Closed between the handshake and this listener: nothing will be served on it.
      return;
    }
    if (!facts.eligible) recordTlsConditionsUnmet(facts.ineligibleReason ?? 'unknown', facts.protocol);
    // TLS 1.3 has no renegotiation. Below it, the connection refuses one (this listener does what
    // keepRenegotiationRefused's would, see installTokenBinding) and attempts are counted.
    if (facts.protocol !== 'TLSv1.3') {
      refuseRenegotiationOn(socket);
      watchRenegotiation(socket, () => recordTlsConditionsUnmet('renegotiation', facts.protocol));
    }
  });
}

/**
 * The facts and verification cache of the connection behind a TLSSocket or an HTTP/2 session.
 *
 * @internal
 */
export function connectionContext(connection: TLSSocket | ServerHttp2Session): TokenBindingConnectionContext {
  // A tokbind server captured its connections at 'secureConnection' with its own options; this
  // takes the facts of any other connection (middleware on a plain server, a connection accepted
  // before attachTokenBinding) without fixing one caller's options for the next.
  return getConnectionContext(connection, LAZY_CAPTURE) ?? { facts: UNAVAILABLE, state: null };
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
  if ('stream' in target) return judgementOf(target.stream)?.verdict ?? null;
  return judgementOf(target)?.verdict ?? null;
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

/** Strips spoofed TTRP headers from the trailers an HTTP/1.x request or HTTP/2 compat request holds. */
function stripHeldTrailers(req: IncomingMessage | Http2ServerRequest): void {
  const raw = req.rawTrailers;
  if (raw.length === 0 || !scanHeaders(raw).spoofed) return;
  removeTtrp([req.trailers, 'trailersDistinct' in req ? req.trailersDistinct : undefined], raw);
}

/**
 * Strips spoofed TTRP headers from an HTTP/1.x request's trailers (a chunked body may end with
 * header fields, RFC 9112 §7.1.2). Node fills `trailers` when the message completes, just before
 * 'end'. A body read before tokbind ran (a body parser mounted first) has completed already, and
 * its 'end' has fired: strip now. Otherwise strip at 'end', ahead of every other 'end' listener.
 */
function stripTrailersAtEnd(req: IncomingMessage): void {
  if (req.complete) stripHeldTrailers(req);
  else req.prependOnceListener('end', () => stripHeldTrailers(req));
}

/**
 * The same for an HTTP/2 stream's trailing HEADERS frame: the 'trailers' listeners (the compat
 * request's and the application's) all receive the same header object and raw list, edited here
 * in place, first (the compat request copies them into its own). Added only to streams whose
 * request headers did not end the stream.
 */
function stripStreamTrailers(stream: ServerHttp2Stream): void {
  stream.prependOnceListener('trailers', (headers: IncomingHttpHeaders, _flags: number, raw?: string[]) => {
    removeTtrp([headers as Record<string, unknown>], Array.isArray(raw) ? raw : undefined);
  });
}

/**
 * An HTTP/2 compat request reached by middleware, maybe late (an earlier async hook): trailers
 * that already arrived were copied into the request (strip them there); otherwise strip them as
 * they arrive.
 */
function stripCompatTrailers(req: Http2ServerRequest): void {
  if (req.rawTrailers.length > 0) stripHeldTrailers(req);
  else if (!req.stream.endAfterHeaders) stripStreamTrailers(req.stream);
}

/** Whether an HTTP/1.x request may still have body bytes on the wire. */
function hasBody(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding'];
  const cl = req.headers['content-length'];
  return te !== undefined || (cl !== undefined && cl !== '0');
}

/** Verifies the values on a connection: the result, null (no header), or the error, before `onInvalid`. */
function evaluateValues(
  values: string[] | undefined,
  connection: TLSSocket | ServerHttp2Session | undefined,
  options: ResolvedTokenBindingOptions,
): TokenBindingResult | null | TokenBindingError {
  // A stream whose session is already gone has no connection left to verify against.
  const context = connection === undefined ? { facts: UNAVAILABLE } : connectionContext(connection);
  // One value (nearly every request): its verdict, returned rather than thrown.
  if (values !== undefined && values.length === 1) return verdictOnValue(values[0]!, context, options);
  try {
    return verifyTokenBindingHeader(values, context, options);
  } catch (err) {
    if (!(err instanceof TokenBindingError)) throw err;
    return err;
  }
}

/**
 * Applies `onInvalid` and `required` to an outcome: the verdict, or the error to reject with.
 * `onInvalid: 'ignore'` lets an invalid message through as null only where the binding is
 * optional: under `required: true` an invalid message is rejected like a missing one, whatever
 * `onInvalid` says — otherwise `Sec-Token-Binding: x` would pass a required route unbound.
 */
function decide(outcome: TokenBindingResult | null | TokenBindingError, options: ResolvedTokenBindingOptions): TokenBindingResult | null | TokenBindingError {
  if (!(outcome instanceof TokenBindingError)) return outcome;
  if (options.onInvalid === 'ignore' && !options.required && outcome.code !== 'ERR_TB_HEADER_MISSING') return null;
  return outcome;
}

/** Verifies the values on a connection and keeps the judgement with the request or stream. */
function judge(
  target: Judged,
  values: string[] | undefined,
  connection: TLSSocket | ServerHttp2Session | undefined,
  options: ResolvedTokenBindingOptions,
): TokenBindingResult | null | TokenBindingError {
  const outcome = evaluateValues(values, connection, options);
  const verdict = decide(outcome, options);
  target[JUDGEMENT] = { options, values, outcome, verdict: verdict instanceof TokenBindingError ? null : verdict };
  return verdict;
}

function connectionOf(req: IncomingMessage | Http2ServerRequest): TLSSocket | ServerHttp2Session | undefined {
  return 'stream' in req ? (req.stream.session as ServerHttp2Session | undefined) : (req.socket as TLSSocket);
}

/**
 * Verifies one request — HTTP/1.x, or an HTTP/2 compat request that did not come through
 * `createSecureServer`'s stream check — after stripping client-sent TTRP headers: the
 * verdict (null: no header, or an invalid one under `onInvalid: 'ignore'` without `required`) or
 * the error to reject with. The connection is the TLSSocket for HTTP/1.x and the session for
 * HTTP/2 (the compat `req.socket` is a new object per request).
 *
 * @internal Shared with the framework adapters.
 */
export function verifyRequest(
  req: IncomingMessage | Http2ServerRequest,
  options: ResolvedTokenBindingOptions,
): TokenBindingResult | null | TokenBindingError {
  if (!isHttp2Request(req)) return verifyHttp1Request(req, options);
  const { values, spoofed } = scanHeaders(req.rawHeaders);
  if (spoofed) stripRequest(req);
  stripCompatTrailers(req);
  return judge(req.stream as Judged, values, req.stream.session as ServerHttp2Session | undefined, options);
}

/**
 * {@link verifyRequest} for an HTTP/1.x request: the request is the judgement's target and its
 * socket the connection. Asked once whether a request is HTTP/2, not per step: on a new
 * connection every lookup runs with the CPU caches cold.
 */
function verifyHttp1Request(req: IncomingMessage, options: ResolvedTokenBindingOptions): TokenBindingResult | null | TokenBindingError {
  const { values, spoofed, chunked } = scanHeaders(req.rawHeaders);
  if (spoofed) stripRequest(req);
  if (chunked) stripTrailersAtEnd(req);
  return judge(req as Judged, values, req.socket as TLSSocket, options);
}

/**
 * The verdict for a request under one caller's options, reusing what tokbind already decided for
 * it when that was decided under the same verification options (key parameters, header length,
 * backend): then only the caller's `required` and `onInvalid` are applied again. Decided under
 * other options (a route accepting other key parameters than the server), the values are
 * verified again under the caller's — against the connection's cache, so a repeat costs a lookup.
 * Never seen (middleware on a plain server): verified now, headers stripped.
 *
 * @internal Shared with the framework adapters.
 */
export function verifyRequestAs(
  req: IncomingMessage | Http2ServerRequest,
  options: ResolvedTokenBindingOptions,
): TokenBindingResult | null | TokenBindingError {
  const known = judgementOf(judgementTarget(req));
  if (known === undefined) return verifyRequest(req, options);
  if (known.forwarded === true) return forwardedAs(known.outcome, options);
  if (known.values === undefined) {
    return options.required ? new TokenBindingError('ERR_TB_HEADER_MISSING', undefined, { field: 'Sec-Token-Binding' }) : null;
  }
  if (sameVerdictOptions(known.options, options)) return decide(known.outcome, options);
  return decide(evaluateValues(known.values, connectionOf(req), options), options);
}

/**
 * A forwarded verdict under one caller's options: its own `required` and key parameters. A
 * forwarded refusal stays a refusal (forged or malformed TTRP headers are never "ignored").
 */
function forwardedAs(outcome: TokenBindingResult | null | TokenBindingError, options: ResolvedTokenBindingOptions): TokenBindingResult | null | TokenBindingError {
  if (outcome === null) {
    return options.required ? new TokenBindingError('ERR_TB_HEADER_MISSING', undefined, { field: 'Sec-Provided-Token-Binding-ID' }) : null;
  }
  if (outcome instanceof TokenBindingError) return outcome;
  if (!options.keyParameters.includes(parseKeyParameters(outcome.provided.keyParameters))) {
    return new TokenBindingError('ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED', undefined, {
      field: 'provided.key_parameters',
      expected: options.keyParameters.map(keyParametersName),
      actual: outcome.provided.keyParameters,
    });
  }
  return outcome;
}

/**
 * Takes a verdict reached from a trusted proxy's forwarded IDs under this caller's options (its
 * key parameters apply to the forwarded provided ID too) and keeps it with the request, so tokbind
 * glue running after it (a nested registration, another route's middleware) reuses it under its
 * own options instead of verifying the (absent) header on the proxy's plain connection.
 *
 * @internal Used by the framework adapters.
 */
export function adoptForwardedVerdict(
  req: IncomingMessage | Http2ServerRequest,
  options: ResolvedTokenBindingOptions,
  forwarded: TokenBindingResult | null | TokenBindingError,
): TokenBindingResult | null | TokenBindingError {
  const verdict = forwardedAs(forwarded, options);
  judgementTarget(req)[JUDGEMENT] = {
    options,
    values: undefined,
    outcome: forwarded,
    verdict: verdict instanceof TokenBindingError ? null : verdict,
    forwarded: true,
  };
  return verdict;
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
          req.tokenBinding = judgementOf(req.stream)?.verdict ?? null;
          break;
        }
        if (event === 'request' && verifiedEarly.has(req)) break;
        const verdict = verifyHttp1Request(req, options);
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

/** The servers tokbind is installed on, with the options it was installed with. */
const installed = new WeakMap<object, ResolvedTokenBindingOptions>();

function sameInspection(a: ResolvedTokenBindingOptions['inspectClientHello'], b: ResolvedTokenBindingOptions['inspectClientHello']): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  return a.maxBytes === b.maxBytes && a.maxRecords === b.maxRecords && a.timeoutMs === b.timeoutMs;
}

/** Whether two server configurations are the same in every option. */
function sameServerOptions(a: ResolvedTokenBindingOptions, b: ResolvedTokenBindingOptions): boolean {
  return (
    a === b ||
    (sameVerdictOptions(a, b) &&
      a.required === b.required &&
      a.onInvalid === b.onInvalid &&
      a.maxDistinctMessages === b.maxDistinctMessages &&
      a.maxSignaturesPerConnection === b.maxSignaturesPerConnection &&
      a.onReject === b.onReject &&
      a.onRejectStream === b.onRejectStream &&
      sameInspection(a.inspectClientHello, b.inspectClientHello))
  );
}

/**
 * Installs tokbind's handling on a TLS server once: connection tracking (and ClientHello
 * inspection when asked), verification of every request-bearing event, 100-continue after
 * verification. False when it was already installed with the same options.
 *
 * @throws {TypeError} when it was installed with other options
 * @internal Shared by createServer, createSecureServer and attachTokenBinding.
 */
export function installTokenBinding(server: TlsServer, options: ResolvedTokenBindingOptions): boolean {
  const existing = installed.get(server);
  if (existing !== undefined) {
    if (sameServerOptions(existing, options)) return false;
    throw new TypeError('tokbind is already installed on this server with other options');
  }
  installed.set(server, options);
  // Renegotiation is refused for the server's whole life: contexts made later (setSecureContext)
  // refuse it in OpenSSL, and each connection below TLS 1.3 refuses it in the tracking listener
  // (and is closed if it attempts one, whatever the application's 'clientError' listener does).
  keepContextsRefusing(server);
  installConnectionTracking(server, options);
  interceptRequests(server, options);
  verifyBeforeContinue(server);
  return true;
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
  const verdict = judge(stream as Judged, values, stream.session as ServerHttp2Session | undefined, options);
  if (verdict instanceof TokenBindingError) {
    if (options.onRejectStream !== undefined) options.onRejectStream(stream, headers, verdict);
    else sendStreamProblem(stream, verdict);
    return false;
  }
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
  // Renegotiation stays refused through setSecureContext (certificate rotation) and whatever
  // context a connection gets: installTokenBinding.
  installTokenBinding(server, resolved);
  if (handler !== undefined) server.on('request', handler);
  return server;
}
