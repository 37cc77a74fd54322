/**
 * What tokbind knows about one TLS connection, taken once when it becomes secure and kept with
 * it: protocol, EMS, the EKM every Token Binding on it must sign, the ClientHello offer, the key
 * parameters in force, and the per-connection verification cache.
 */
import type { TLSSocket } from 'node:tls';
import { types } from 'node:util';
import { selectTokenBindingParameters } from '../codec/extension.js';
import { TokenBindingError } from '../errors.js';
import type { ClientHelloInfo } from './client-hello.js';
import { getClientHelloInfo } from './inspect.js';
import { tokenBindingConditions } from './conditions.js';
import { exportTokenBindingKeyingMaterial } from './ekm.js';
import { extendedMasterSecretFor } from './session.js';
import { parentOf, socketSlot } from './socket-slot.js';

/** Why a connection cannot carry Token Binding. */
export type IneligibleReason = 'tls-version' | 'no-ems' | 'ems-unknown' | 'ekm-unavailable';

/** The Token Binding facts of one TLS connection (immutable). */
export interface ConnectionFacts {
  /** `tlsSocket.getProtocol()`: `'TLSv1.3'`, `'TLSv1.2'`, … */
  readonly protocol: string;
  /** RFC 7627 EMS: from the session on TLS 1.2, `true` on TLS 1.3, `null` when unknown. */
  readonly extendedMasterSecret: boolean | null;
  /** The 32-byte EKM (RFC 8471 §3.3) taken when the connection became secure, or `null`. */
  readonly ekm: Uint8Array | null;
  /** Token Binding may be used: TLS 1.3, or TLS 1.2 with EMS, and an EKM. */
  readonly eligible: boolean;
  readonly ineligibleReason?: IneligibleReason;
  /** The ClientHello, when the server inspects them (`inspectClientHellos`). */
  readonly clientHello: ClientHelloInfo | null;
  /**
   * The key parameters a provided binding may use on this connection, server preference first:
   * with an in-band offer, RFC 8472's selection (one value, or none); otherwise the server's
   * configured list (Node cannot answer extension 24, so the configuration is the negotiation).
   * Empty when the connection is not eligible; `null` when no list was configured (facts taken
   * lazily for middleware: then each caller's own list applies, see
   * {@link acceptedKeyParameters}).
   */
  readonly negotiatedKeyParameters: readonly number[] | null;
}

/** Per-connection verification cache. */
export interface ConnectionState {
  /** Sec-Token-Binding value → verification result, for this connection only. */
  readonly verified: Map<string, unknown>;
  /** Distinct header values remembered so far. */
  distinct: number;
  /**
   * Distinct values allowed before ERR_TB_TOO_MANY_MESSAGES: a ceiling set by whoever captured
   * the connection (tokbind's server: its own `maxDistinctMessages`). Each caller of
   * {@link lookupVerification} may pass a lower cap of its own; facts taken lazily for middleware
   * have no ceiling (`Number.MAX_SAFE_INTEGER`), so the connection holds at most as many values as
   * the largest cap among its callers.
   */
  readonly maxDistinctMessages: number;
  /**
   * Signature checks spent on this connection so far, against the verifier's
   * `maxSignaturesPerConnection` (absent: none yet). A field rather than a side table: an entry
   * per connection in a WeakMap costs ~1 µs of the collector's ephemeron work.
   */
  signatures?: number;
  /**
   * The value looked up last and its result: clients repeat one message on every request of a
   * connection, and comparing against it skips hashing a ~200-character string per request.
   */
  lastHeader?: string | undefined;
  lastResult?: unknown;
}

/** Options for {@link captureConnectionFacts} and {@link getConnectionFacts}. */
export interface ConnectionFactsOptions {
  /** The ClientHello, when known; by default the one `inspectClientHellos` read for this socket. */
  readonly clientHello?: ClientHelloInfo | null;
  /** Key parameters the server accepts, most preferred first (e.g. `[2, 1, 0]`). */
  readonly keyParameters?: readonly number[];
  /** Cap of distinct Token Binding messages per connection. Default 8. */
  readonly maxDistinctMessages?: number;
}

/** The default cap of distinct Sec-Token-Binding values per connection. */
export const DEFAULT_MAX_DISTINCT_MESSAGES = 8;

interface ConnectionRecord {
  readonly facts: ConnectionFacts;
  readonly state: ConnectionState;
}

/**
 * Each connection's record, kept on the TLSSocket and on its `_parent` (the wrapped TCP socket) in
 * a socket slot (socket-slot.ts: a symbol property, not a WeakMap entry). The HTTP/2
 * `session.socket` Proxy forwards property reads and writes to the TLSSocket, so it reaches the
 * same record; an Http2Session gets the record too once its socket's has been found.
 */
const records = socketSlot<ConnectionRecord>('tokbind.connection');

/**
 * HTTP/2 socket proxies with their record. Once its session closes, a proxy throws on any
 * property access, and the record must still be found through it: one entry per HTTP/2 session
 * (never per stream, never for HTTP/1.1).
 */
const proxies = new WeakMap<object, ConnectionRecord>();

function keep(target: object, record: ConnectionRecord): void {
  if (records.get(target) === undefined) records.set(target, record);
  if (types.isProxy(target)) proxies.set(target, record);
}

function checkOptions(options: ConnectionFactsOptions): void {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
  const { keyParameters, maxDistinctMessages } = options;
  if (
    keyParameters !== undefined &&
    (!Array.isArray(keyParameters) || !keyParameters.every((k) => Number.isInteger(k) && k >= 0 && k <= 255))
  ) {
    throw new TypeError('keyParameters must be an array of integers in 0..255');
  }
  if (maxDistinctMessages !== undefined && (!Number.isInteger(maxDistinctMessages) || maxDistinctMessages < 1)) {
    throw new TypeError('maxDistinctMessages must be a positive integer');
  }
}

/** Frozen options already checked (a server's, passed on every connection): checked once. */
const checked = new WeakSet<ConnectionFactsOptions>();
/** The options checked last: a server passes the same ones on every connection, and this skips the WeakSet. */
let lastChecked: ConnectionFactsOptions | undefined;

function checkOnce(options: ConnectionFactsOptions): void {
  if (options === lastChecked || checked.has(options)) return;
  checkOptions(options);
  if (Object.isFrozen(options) && (options.keyParameters === undefined || Object.isFrozen(options.keyParameters))) {
    checked.add(options);
    lastChecked = options;
  }
}

function isTlsSocket(socket: unknown): socket is TLSSocket {
  return (
    typeof socket === 'object' &&
    socket !== null &&
    typeof (socket as TLSSocket).getProtocol === 'function' &&
    typeof (socket as TLSSocket).exportKeyingMaterial === 'function'
  );
}

function computeFacts(socket: TLSSocket, options: ConnectionFactsOptions, secure: string | null = socket.getProtocol()): ConnectionFacts {
  const protocol = secure ?? 'unknown';
  const extendedMasterSecret = extendedMasterSecretFor(socket, secure);
  const clientHello = options.clientHello !== undefined ? options.clientHello : getClientHelloInfo(socket);
  let ekm: Uint8Array | null = null;
  try {
    ekm = exportTokenBindingKeyingMaterial(socket);
  } catch {
    ekm = null;
  }
  const conditions = tokenBindingConditions(protocol, extendedMasterSecret);
  const ineligibleReason: IneligibleReason | undefined = !conditions.ok
    ? conditions.detail
    : ekm === null
      ? 'ekm-unavailable'
      : undefined;
  const eligible = ineligibleReason === undefined;

  const configured = options.keyParameters;
  let negotiatedKeyParameters: readonly number[] | null;
  if (configured === undefined) {
    negotiatedKeyParameters = null;
  } else if (!eligible) {
    negotiatedKeyParameters = [];
  } else if (clientHello?.tokenBinding) {
    const selected = selectTokenBindingParameters(clientHello.tokenBinding, {
      keyParameters: configured,
      tls: {
        version: protocol,
        extendedMasterSecret: extendedMasterSecret === true,
        renegotiationIndication: clientHello.renegotiationIndication,
      },
    });
    negotiatedKeyParameters = selected === null ? [] : selected.keyParameters;
  } else {
    negotiatedKeyParameters = configured;
  }

  // A frozen configured list is kept as is: the server that configured it then finds its own
  // array here, and acceptedKeyParameters answers it without comparing (the per-request path).
  const negotiated =
    negotiatedKeyParameters === null || (negotiatedKeyParameters === configured && Object.isFrozen(configured))
      ? negotiatedKeyParameters
      : Object.freeze([...negotiatedKeyParameters]);
  // Two literals rather than a spread of an optional field: this runs once per connection.
  return Object.freeze(
    ineligibleReason === undefined
      ? { protocol, extendedMasterSecret, ekm, eligible, clientHello, negotiatedKeyParameters: negotiated }
      : { protocol, extendedMasterSecret, ekm, eligible, ineligibleReason, clientHello, negotiatedKeyParameters: negotiated },
  );
}

/** Per-facts memo of the RFC 8472 selection for each caller's list (lazy facts with an offer). */
const selections = new WeakMap<ConnectionFacts, Map<readonly number[], readonly number[]>>();

const NONE: readonly number[] = Object.freeze([]);
const MAX_SELECTIONS = 8;

function isSubset(a: readonly number[], b: readonly number[]): boolean {
  outer: for (let i = 0; i < a.length; i++) {
    const k = a[i];
    for (let j = 0; j < b.length; j++) if (b[j] === k) continue outer;
    return false;
  }
  return true;
}

/**
 * The key parameters a provided binding may use on this connection **for one caller** with its own
 * accepted list (RFC 8472 §5, RFC 8471 §4.2): never more than the caller accepts, never more than
 * was negotiated for the connection.
 *
 * - not eligible: none;
 * - facts with a negotiated list (taken by a server with its configuration): that list narrowed
 *   to the caller's (the same array when the caller accepts all of it);
 * - facts without one (taken lazily for middleware) and an in-band offer: RFC 8472's selection
 *   with the caller's list;
 * - otherwise: the caller's list.
 *
 * Nothing computed for one caller is reused for another: a second route with other key
 * parameters on the same connection gets its own answer.
 *
 * @example
 * ```ts
 * acceptedKeyParameters(getConnectionFacts(req.socket)!, [2]) // [2], or [] when not negotiated
 * ```
 */
export function acceptedKeyParameters(facts: ConnectionFacts, keyParameters: readonly number[]): readonly number[] {
  if (!facts.eligible) return NONE;
  const negotiated = facts.negotiatedKeyParameters;
  if (negotiated !== null) {
    if (negotiated === keyParameters) return negotiated;
    // The common case (the server's own list, or one it narrowed): no allocation. Plain loops:
    // this runs on every request, and these lists hold one to three entries.
    return isSubset(negotiated, keyParameters) ? negotiated : Object.freeze(negotiated.filter((k) => keyParameters.includes(k)));
  }
  const offer = facts.clientHello?.tokenBinding;
  if (offer == null) return keyParameters;
  let memo = selections.get(facts);
  if (memo === undefined) selections.set(facts, (memo = new Map()));
  let selected = memo.get(keyParameters);
  if (selected === undefined) {
    const chosen = selectTokenBindingParameters(offer, {
      keyParameters,
      tls: {
        version: facts.protocol,
        extendedMasterSecret: facts.extendedMasterSecret === true,
        renegotiationIndication: facts.clientHello!.renegotiationIndication,
      },
    });
    selected = chosen === null ? NONE : Object.freeze([...chosen.keyParameters]);
    // One entry per configured list (frozen once per resolved options); a caller passing a new
    // list on every request is answered without being remembered.
    if (memo.size < MAX_SELECTIONS) memo.set(keyParameters, selected);
  }
  return selected;
}

function newRecord(facts: ConnectionFacts, options: ConnectionFactsOptions): ConnectionRecord {
  return {
    facts,
    state: {
      verified: new Map(),
      distinct: 0,
      maxDistinctMessages: options.maxDistinctMessages ?? DEFAULT_MAX_DISTINCT_MESSAGES,
      signatures: 0,
      // Present from the start: added on the first request, they would change the object's shape then.
      lastHeader: undefined,
      lastResult: undefined,
    },
  };
}

function store(socket: object, facts: ConnectionFacts, options: ConnectionFactsOptions): ConnectionRecord {
  const record = newRecord(facts, options);
  keep(socket, record);
  const parent = parentOf(socket);
  if (parent !== null) keep(parent, record);
  return record;
}

/**
 * Takes the connection's Token Binding facts — once — and keeps them with the socket
 * (RFC 8471 §4.2, RFC 8472 §5). Call it on 'secureConnection', while the EKM can still be exported;
 * a second call returns the first result unchanged.
 *
 * @throws {TypeError} when `socket` is not a TLSSocket or the connection is not secure yet
 * @example
 * ```ts
 * server.on('secureConnection', (socket) => captureConnectionFacts(socket, { keyParameters: [2] }))
 * ```
 */
export function captureConnectionFacts(socket: TLSSocket, options: ConnectionFactsOptions = {}): ConnectionFacts {
  if (!isTlsSocket(socket)) throw new TypeError('socket must be a TLSSocket');
  checkOnce(options);
  const existing = records.find(socket);
  if (existing !== undefined) return existing.facts;
  const protocol = socket.getProtocol();
  if (protocol === null) throw new TypeError('the TLS connection is not secure yet');
  return store(socket, computeFacts(socket, options, protocol), options).facts;
}

/**
 * {@link captureConnectionFacts} for a server's own first 'secureConnection' listener on a server
 * that reads no ClientHellos (so no connection has one to find): the same facts, without the
 * steps that situation makes redundant. A TLS 1.3 connection that no one captured yet gets its
 * facts built here: EMS holds, there is no offer, so the negotiated list is the configured one
 * (frozen once with the server's options). Its socket is a TLSSocket the server made, never a
 * Proxy, and its `_parent` has a record only if the socket has. Anything else (TLS 1.2, no EKM,
 * captured already, not secure) goes through {@link captureConnectionFacts}.
 *
 * This runs once per connection with the CPU caches cold after the handshake: each lookup it
 * leaves out costs there.
 *
 * @internal `options` must be frozen, checked and have a frozen `keyParameters` (a server's).
 */
export function captureServerConnection(socket: TLSSocket, options: ConnectionFactsOptions): ConnectionFacts {
  const protocol = socket.getProtocol();
  if (protocol !== 'TLSv1.3' || records.get(socket) !== undefined || !Object.isFrozen(options.keyParameters)) {
    return captureConnectionFacts(socket, options);
  }
  let ekm: Uint8Array;
  try {
    ekm = exportTokenBindingKeyingMaterial(socket);
  } catch {
    // Destroyed, or the export failed: the long way records why.
    return captureConnectionFacts(socket, options);
  }
  // The same literal (and so the same hidden class) as computeFacts's for an eligible connection.
  const facts: ConnectionFacts = Object.freeze({
    protocol,
    extendedMasterSecret: true,
    ekm,
    eligible: true,
    clientHello: null,
    negotiatedKeyParameters: options.keyParameters ?? null,
  });
  const record = newRecord(facts, options);
  records.set(socket, record);
  const parent = parentOf(socket);
  if (parent !== null) records.set(parent, record);
  return facts;
}

/**
 * The facts {@link captureConnectionFacts} stored for this connection; when none were stored and
 * the connection is secure, they are computed now (for middleware mounted on a plain
 * `https.Server`) with `options`. Accepts a TLSSocket, an HTTP/2 `session.socket`, or an
 * Http2Session. `null` for a socket that is not TLS or not secure (yet).
 *
 * @example
 * ```ts
 * const facts = getConnectionFacts(req.socket, { keyParameters: [2] })
 * if (facts === null || !facts.eligible) reject()
 * ```
 */
export function getConnectionFacts(
  socket: TLSSocket | { readonly socket: unknown },
  options: ConnectionFactsOptions = {},
): ConnectionFacts | null {
  return getRecord(socket, options)?.facts ?? null;
}

/**
 * The facts and the verification cache of a connection in one lookup (what the request path
 * needs): {@link getConnectionFacts} and {@link getConnectionState} together. `null` when the
 * socket is not TLS or not secure (yet).
 *
 * @example
 * ```ts
 * const connection = getConnectionContext(req.socket, { keyParameters: [2] })
 * if (connection !== null) verifyTokenBindingHeader(req.headers['sec-token-binding'], connection)
 * ```
 */
export function getConnectionContext(
  socket: TLSSocket | { readonly socket: unknown },
  options: ConnectionFactsOptions = {},
): { readonly facts: ConnectionFacts; readonly state: ConnectionState } | null {
  return getRecord(socket, options);
}

/**
 * The per-connection verification cache (created with the facts). `null` when
 * {@link getConnectionFacts} would return `null`.
 *
 * @example
 * ```ts
 * const state = getConnectionState(req.socket)
 * ```
 */
export function getConnectionState(
  socket: TLSSocket | { readonly socket: unknown },
  options: ConnectionFactsOptions = {},
): ConnectionState | null {
  return getRecord(socket, options)?.state ?? null;
}

function getRecord(socket: unknown, options: ConnectionFactsOptions): ConnectionRecord | null {
  if (socket === null || typeof socket !== 'object') throw new TypeError('socket must be a TLSSocket or an Http2Session');
  try {
    // The per-request path: a connection seen before. Options only matter when facts are computed.
    const stored = records.get(socket);
    if (stored !== undefined) return stored;
    checkOptions(options);
    // An Http2Session: its (stable, proxied) socket is the connection.
    const target: unknown = isTlsSocket(socket) ? socket : (socket as { socket?: unknown }).socket;
    if (!isTlsSocket(target)) return null;
    let record = records.find(target);
    if (record === undefined) {
      if (target.destroyed || target.getProtocol() === null) return null;
      record = store(target, computeFacts(target, options), options);
    }
    // Remember the session and its proxy too: once the session closes, the proxy answers nothing.
    keep(socket, record);
    keep(target, record);
    return record;
  } catch (err) {
    // A closed HTTP/2 session's socket proxy throws ERR_HTTP2_SOCKET_UNBOUND on any access.
    if ((err as { code?: unknown } | null)?.code === 'ERR_HTTP2_SOCKET_UNBOUND') return proxies.get(socket) ?? null;
    throw err;
  }
}

/**
 * A cached verification result for this exact Sec-Token-Binding value on this connection. The
 * cache is per connection on purpose: the same message on another connection must be verified
 * against that connection's EKM (a message-keyed global cache would accept a replay).
 *
 * @returns the result, or `undefined` on a miss
 * @param maxDistinctMessages the caller's cap (default and ceiling: the state's own)
 * @throws {TokenBindingError} `ERR_TB_TOO_MANY_MESSAGES` on a miss once the connection has sent
 *   `maxDistinctMessages` distinct values — checked before any signature work is spent
 * @example
 * ```ts
 * const hit = lookupVerification(state, header)
 * ```
 */
export function lookupVerification<R = unknown>(state: ConnectionState, header: string, maxDistinctMessages?: number): R | undefined {
  if (header === state.lastHeader) return state.lastResult as R;
  const hit = state.verified.get(header);
  if (hit !== undefined) {
    state.lastHeader = header;
    state.lastResult = hit;
    return hit as R;
  }
  const cap = capOf(state, maxDistinctMessages);
  if (state.distinct >= cap) throw tooMany(state, cap);
  return undefined;
}

/**
 * Remembers a verification result for a Sec-Token-Binding value on this connection.
 *
 * @param maxDistinctMessages the caller's cap (default and ceiling: the state's own)
 * @throws {TokenBindingError} `ERR_TB_TOO_MANY_MESSAGES` when the value is new and the cap is reached
 * @example
 * ```ts
 * rememberVerification(state, header, result)
 * ```
 */
export function rememberVerification(state: ConnectionState, header: string, result: unknown, maxDistinctMessages?: number): void {
  if (result === undefined) throw new TypeError('result must not be undefined');
  // An empty cache (a connection's first value) holds no entry to find.
  if (state.verified.size === 0 || !state.verified.has(header)) {
    const cap = capOf(state, maxDistinctMessages);
    if (state.distinct >= cap) throw tooMany(state, cap);
    state.distinct++;
  }
  state.verified.set(header, result);
  state.lastHeader = header;
  state.lastResult = result;
}

/** The caller's cap, never above the connection's ceiling. */
function capOf(state: ConnectionState, maxDistinctMessages: number | undefined): number {
  return maxDistinctMessages === undefined || maxDistinctMessages > state.maxDistinctMessages ? state.maxDistinctMessages : maxDistinctMessages;
}

function tooMany(state: ConnectionState, cap: number): TokenBindingError {
  return new TokenBindingError('ERR_TB_TOO_MANY_MESSAGES', undefined, {
    field: 'distinct',
    expected: `<= ${cap}`,
    actual: state.distinct + 1,
  });
}
