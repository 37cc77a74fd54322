/**
 * RFC 8471 §4.2 / RFC 8473 §2 server processing of a request's Sec-Token-Binding header.
 */
import { decodeSecTokenBindingHeaderTransient } from '../codec/header.js';
import { keyParametersName } from '../codec/keyparams.js';
import { parseSingleBindingMessage, parseTokenBindingMessage } from '../codec/message.js';
import type { KeyParametersName, TokenBinding } from '../codec/types.js';
import { canVerify } from '../crypto/backend.js';
import { checkTokenBindingEkm } from '../codec/signed-data.js';
import { verifyParsedTokenBinding } from '../crypto/verify.js';
import { TokenBindingError, type TokenBindingErrorCode } from '../errors.js';
import {
  acceptedKeyParameters,
  lookupVerification,
  rememberVerification,
  type ConnectionFacts,
  type ConnectionState,
} from '../tls/connection.js';
import { hasVerifySubscribers, nowNs, recordVerification } from './metrics.js';
import { isReplayed, markIfReplayed, rememberVerified } from './replay.js';
import { resolveTokenBindingOptions, type ResolvedTokenBindingOptions, type TokenBindingVerifyOptions } from './options.js';
import { createVerifiedID, tokenBindingResult, type OtherVerifiedBinding, type TokenBindingResult, type VerifiedID } from './result.js';

/**
 * A connection described by its caller: the EKM of the TLS connection that carried the header and
 * the key parameters negotiated on it (an empty list: Token Binding was not negotiated). Nothing
 * is cached for it.
 */
export interface TokenBindingConnection {
  /** The 32-byte exported keying material (label `EXPORTER-Token-Binding`, no context). */
  readonly ekm: Uint8Array;
  /** Key parameters the provided binding may use on this connection. */
  readonly negotiatedKeyParameters: readonly number[];
}

/**
 * A connection as the tls layer keeps it: its facts (EKM, TLS conditions, negotiated key
 * parameters) and, optionally, its verification cache. Verdicts are cached by header value in
 * `state`; the EKM is the connection's, so a cached value can never vouch for the same bytes on
 * another connection.
 */
export interface TokenBindingConnectionContext {
  readonly facts: ConnectionFacts;
  readonly state?: ConnectionState | null;
}

/** The verdict cached per header value on one connection. */
type CachedVerdict = TokenBindingResult | TokenBindingError;

/**
 * The verdicts for one header value on one connection, one per configuration that judged it (most
 * recent first): a server and the route middleware behind it with other key parameters each keep
 * theirs, instead of evicting each other's and re-verifying on every request.
 */
interface CacheEntry {
  readonly options: ResolvedTokenBindingOptions;
  readonly verdict: CachedVerdict;
  readonly next?: CacheEntry;
}

/** Configurations remembered per header value (memory per connection: values × this). */
const MAX_CONFIGURATIONS_PER_VALUE = 4;

function cachedVerdict(entry: CacheEntry | undefined, options: ResolvedTokenBindingOptions): CachedVerdict | undefined {
  for (let e = entry; e !== undefined; e = e.next) {
    if (sameVerdictOptions(e.options, options)) return e.verdict;
  }
  return undefined;
}

/** A new head for `entry`, keeping at most MAX_CONFIGURATIONS_PER_VALUE configurations. */
function withVerdict(entry: CacheEntry | undefined, options: ResolvedTokenBindingOptions, verdict: CachedVerdict): CacheEntry {
  const kept: CacheEntry[] = [];
  for (let e = entry; e !== undefined && kept.length < MAX_CONFIGURATIONS_PER_VALUE - 1; e = e.next) kept.push(e);
  let next: CacheEntry | undefined;
  for (let i = kept.length - 1; i >= 0; i--) next = { options: kept[i]!.options, verdict: kept[i]!.verdict, ...(next === undefined ? {} : { next }) };
  return next === undefined ? { options, verdict } : { options, verdict, next };
}

function fail(code: TokenBindingErrorCode, cause?: Record<string, unknown>): TokenBindingError {
  return new TokenBindingError(code, undefined, cause);
}

/** The one header value, or undefined; more than one is a duplicate (a comma-joined list: see verdictOnValue). */
function singleValue(values: string | readonly string[] | undefined): string | undefined {
  let value: string | undefined;
  if (typeof values === 'string') value = values;
  else if (values === undefined) return undefined;
  else if (Array.isArray(values)) {
    if (values.length === 0) return undefined;
    if (values.length > 1) throw fail('ERR_TB_HEADER_DUPLICATE', { field: 'Sec-Token-Binding', expected: 1, actual: values.length });
    value = values[0];
    if (typeof value !== 'string') throw new TypeError('header values must be strings');
  } else throw new TypeError('values must be a string, an array of strings or undefined');
  // A comma-joined list (one string) is recognised on its refusal: verdictOnValue.
  return value;
}

/** `list.includes(k)` as a plain loop: the lists hold one to three entries, and the builtin is cold on a new connection. */
function includes(list: readonly number[], k: number): boolean {
  for (let i = 0; i < list.length; i++) if (list[i] === k) return true;
  return false;
}

/** A message that passed every structural check: what its signatures must vouch for. */
interface CheckedMessage {
  readonly provided: TokenBinding;
  /** The referred binding, when its key parameters can be evaluated. */
  readonly referred: TokenBinding | undefined;
  readonly others: readonly TokenBinding[] | undefined;
  /** Signature checks the message needs: provided, referred, others. */
  readonly signatures: number;
}

/**
 * Decode, parse and the structural checks: no EKM, no signature, so the verdict is the same on
 * every connection. Structural checks come first: they are cheap and give a stable code whatever
 * the signatures would say. The signature count is known here, so a message that would cost more
 * than `maxSignaturesPerMessage` checks is refused before any is made.
 */
function checkStructure(value: string, accepted: readonly number[], options: ResolvedTokenBindingOptions): CheckedMessage {
  // Decoded into a shared slab: every ID that leaves this module is copied (createVerifiedID).
  const bytes = decodeSecTokenBindingHeaderTransient(value, { maxLength: options.maxHeaderLength });
  const single = parseSingleBindingMessage(bytes);
  if (single !== undefined && single.type === 0 && includes(accepted, single.id.keyParameters)) {
    // A provided binding alone, with accepted key parameters: every check below passes (one signature, and
    // maxSignaturesPerMessage is at least 1).
    return { provided: single, referred: undefined, others: undefined, signatures: 1 };
  }
  const message = parseTokenBindingMessage(bytes);
  let provided: TokenBinding | undefined;
  let referred: TokenBinding | undefined;
  let others: TokenBinding[] | undefined;
  for (const binding of message.bindings) {
    if (binding.type === 0) {
      if (provided !== undefined) throw fail('ERR_TB_MULTIPLE_PROVIDED', { field: 'provided_token_binding' });
      provided = binding;
    } else if (binding.type === 1) {
      if (referred !== undefined) throw fail('ERR_TB_MULTIPLE_REFERRED', { field: 'referred_token_binding' });
      referred = binding;
    } else if (canVerify(binding.id.keyParameters)) {
      // Unknown types are ignored only when they cannot be evaluated: a present-and-invalid
      // signature still rejects (RFC 8471 §4.2).
      (others ??= []).push(binding);
    }
  }
  if (provided === undefined) throw fail('ERR_TB_NO_PROVIDED', { field: 'provided_token_binding' });
  const keyParameters = provided.id.keyParameters;
  if (!accepted.includes(keyParameters)) {
    throw fail('ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED', {
      field: 'provided.key_parameters',
      expected: accepted.map(keyParametersName),
      actual: keyParametersName(keyParameters),
    });
  }
  // A referred binding with key parameters we cannot evaluate is not invalid: accept the request,
  // expose no referred ID (RFC 8471 §4.2). Its key parameters need not be this connection's: they
  // were negotiated with the server that redirected the client (RFC 8473 §5).
  const evaluated = referred !== undefined && canVerify(referred.id.keyParameters) ? referred : undefined;
  const signatures = 1 + (evaluated === undefined ? 0 : 1) + (others?.length ?? 0);
  if (signatures > options.maxSignaturesPerMessage) {
    throw fail('ERR_TB_TOO_MANY_BINDINGS', { field: 'bindings', expected: `<= ${options.maxSignaturesPerMessage} to verify`, actual: signatures });
  }
  return { provided, referred: evaluated, others, signatures };
}

/** The signatures over this connection's EKM, then (on success only) the base64url IDs and hashes. */
function checkSignatures(message: CheckedMessage, ekm: Uint8Array, options: ResolvedTokenBindingOptions): TokenBindingResult {
  const { provided, referred, others } = message;
  const backend = options.backend;
  // The EKM is the caller's (or its facts'): checked once here; the bindings are the parser's.
  checkTokenBindingEkm(ekm);
  if (!verifyParsedTokenBinding(provided, ekm, backend)) {
    throw fail('ERR_TB_SIGNATURE_INVALID', { field: 'provided', keyParameters: keyParametersName(provided.id.keyParameters) });
  }
  if (referred !== undefined && !verifyParsedTokenBinding(referred, ekm, backend)) throw fail('ERR_TB_SIGNATURE_INVALID', { field: 'referred' });
  if (others !== undefined) {
    for (const other of others) {
      if (!verifyParsedTokenBinding(other, ekm, backend)) throw fail('ERR_TB_SIGNATURE_INVALID', { field: 'other', type: other.type });
    }
  }

  return tokenBindingResult(
    createVerifiedID(provided.id),
    referred === undefined ? null : createVerifiedID(referred.id),
    others?.map((b): OtherVerifiedBinding => Object.freeze({ type: b.type, id: createVerifiedID(b.id) })),
  );
}

/**
 * A value not in the connection's cache: the structural checks, the connection's signature
 * budget, the signatures. Only verdicts that depend on the connection's EKM (signatures checked)
 * are remembered: a structural refusal (over the length cap, not base64url, malformed, …) is the
 * same on any connection and cheap to repeat, so it takes no slot and keeps no copy of the value —
 * a client cannot park its oversized headers in the cache. Nor is a budget refusal remembered.
 */
function evaluate(
  value: string,
  ekm: Uint8Array,
  accepted: readonly number[],
  options: ResolvedTokenBindingOptions,
  state: ConnectionState | null | undefined,
  entry: CacheEntry | undefined,
): CachedVerdict {
  let message: CheckedMessage;
  try {
    message = checkStructure(value, accepted, options);
  } catch (err) {
    if (!(err instanceof TokenBindingError)) throw err;
    return err;
  }
  if (state != null) {
    const spent = state.signatures ?? 0;
    if (spent + message.signatures > options.maxSignaturesPerConnection) {
      return fail('ERR_TB_SIGNATURE_BUDGET', {
        field: 'signatures',
        expected: `<= ${options.maxSignaturesPerConnection} per connection`,
        actual: spent + message.signatures,
      });
    }
    state.signatures = spent + message.signatures;
  }
  let verdict: CachedVerdict;
  try {
    verdict = checkSignatures(message, ekm, options);
    rememberVerified(message.provided.signature);
  } catch (err) {
    if (!(err instanceof TokenBindingError)) throw err;
    // A provided signature that verified on another connection: a captured message, replayed (replay.ts).
    verdict = markIfReplayed(message.provided.signature, err);
  }
  // Beside the verdicts other configurations reached for this value; under this caller's cap.
  if (state != null) {
    // The first configuration to judge this value (nearly always): nothing to keep beside it.
    const head: CacheEntry = entry === undefined ? { options, verdict } : withVerdict(entry, options, verdict);
    rememberVerification(state, value, head, options.maxDistinctMessages);
  }
  return verdict;
}

function isContext(connection: TokenBindingConnection | TokenBindingConnectionContext): connection is TokenBindingConnectionContext {
  return 'facts' in connection;
}

/** The provided binding's key parameters when the rejection names them (for the metrics' labels). */
function rejectedKeyParameters(err: TokenBindingError): KeyParametersName | number | undefined {
  const cause = err.cause;
  if (cause === undefined || cause instanceof Error) return undefined;
  const named = err.code === 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED' ? cause.actual : cause.keyParameters;
  return typeof named === 'string' || typeof named === 'number' ? (named as KeyParametersName | number) : undefined;
}

/** Settles one verdict: counts it, publishes it, returns it. */
function settle(verdict: CachedVerdict, started: number, cached: boolean): CachedVerdict {
  const durationNs = started === 0 ? 0 : nowNs() - started;
  if (verdict instanceof TokenBindingError) {
    recordVerification('rejected', durationNs, cached, verdict.code, rejectedKeyParameters(verdict), isReplayed(verdict));
    return verdict;
  }
  recordVerification('accepted', durationNs, cached, undefined, verdict.provided.keyParameters);
  return verdict;
}

/**
 * Server processing of a request's Sec-Token-Binding header (RFC 8471 §4.2, RFC 8473 §2).
 *
 * - no header: `null`, or `ERR_TB_HEADER_MISSING` when `required`;
 * - more than one header (an array, or a comma-joined value): `ERR_TB_HEADER_DUPLICATE`;
 * - a connection that does not meet the TLS conditions (TLS 1.2 without Extended Master Secret,
 *   TLS ≤ 1.1): `ERR_TB_TLS_CONDITIONS`, or `ERR_TB_EKM_UNAVAILABLE` when its EKM could not be
 *   taken; a connection that meets them but on which no key parameters were negotiated (an empty
 *   list, or a ClientHello offer sharing none with the server): `ERR_TB_NOT_NEGOTIATED`;
 * - too long `ERR_TB_HEADER_TOO_LARGE`, not base64url `ERR_TB_HEADER_ENCODING`, not a message
 *   `ERR_TB_MALFORMED`;
 * - zero or several provided bindings `ERR_TB_NO_PROVIDED` / `ERR_TB_MULTIPLE_PROVIDED`, several
 *   referred `ERR_TB_MULTIPLE_REFERRED`;
 * - provided key parameters not accepted here `ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED`;
 * - more signature checks in one message (provided + referred + others with known key
 *   parameters) than `maxSignaturesPerMessage` (default 4): `ERR_TB_TOO_MANY_BINDINGS`, before
 *   any check; with a per-connection `state`, a message that would take the connection past
 *   `maxSignaturesPerConnection` checks (default 16) in all: `ERR_TB_SIGNATURE_BUDGET`;
 * - any signature that does not verify, including one on a binding of unknown type with known key
 *   parameters: `ERR_TB_SIGNATURE_INVALID` (with `cause.replayed: true` when the same provided signature
 *   verified earlier on another connection: a captured message replayed, see replay.ts). A referred binding with unknown key parameters is
 *   accepted but exposed as `referred: null`; unknown types with unknown key parameters are
 *   ignored.
 *
 * `connection` is either `{ ekm, negotiatedKeyParameters }` (nothing cached) or
 * `{ facts, state }` from the tls layer (`getConnectionFacts`, `getConnectionState`): the
 * provided binding must use key parameters both in `options.keyParameters` and in the facts'
 * `negotiatedKeyParameters` when those are set (`acceptedKeyParameters`). With a `state`, the
 * verdict of every value whose signatures were checked — success **or failure** — is cached by
 * header value on that connection, one verdict per configuration that judged it (at most 4): clients repeat the same message on every request, and the
 * verdict is a pure function of (value, connection EKM, options), so a cached failure is as exact
 * as a cached success and makes a flood of one bad signature cost one verification. Structural
 * refusals (too large, not base64url, malformed, no provided binding, key parameters or binding
 * count not accepted) are the same on every connection and cost no signature: they are
 * re-checked per request, take no slot and keep no copy of the value, so the cache holds at most
 * `maxDistinctMessages` values of at most `maxHeaderLength` characters (32 KiB with the
 * defaults) whatever the client sends. Connection-level refusals (TLS conditions, nothing
 * negotiated, budget spent) are re-checked per request too. After the connection's
 * `maxDistinctMessages` (this caller's, never above the ceiling the connection's capturer set)
 * distinct values, a new one is `ERR_TB_TOO_MANY_MESSAGES` (before any
 * signature work). The cache is never keyed by message bytes across connections: that would
 * accept a replay on another connection.
 *
 * Each call is counted in the metrics and published on `tokbind:verify` (see metrics.ts).
 *
 * @throws {TokenBindingError} with the codes above
 * @throws {TypeError} on API misuse (bad options, an EKM that is not 32 bytes)
 * @example
 * ```ts
 * const result = verifyTokenBindingHeader(req.headers['sec-token-binding'], { ekm, negotiatedKeyParameters: [2] })
 * if (result) console.log(result.provided.hash) // the `tbh` a bound token must carry
 * ```
 */
export function verifyTokenBindingHeader(
  values: string | readonly string[] | undefined,
  connection: TokenBindingConnection | TokenBindingConnectionContext,
  options: TokenBindingVerifyOptions | ResolvedTokenBindingOptions = {},
): TokenBindingResult | null {
  const resolved = resolveTokenBindingOptions(options);
  if (connection === null || typeof connection !== 'object') throw new TypeError('connection must be an object');
  let value: string | undefined;
  try {
    value = singleValue(values);
  } catch (err) {
    if (err instanceof TokenBindingError) recordVerification('rejected', 0, false, err.code);
    throw err;
  }
  if (value === undefined) {
    if (resolved.required) {
      const err = fail('ERR_TB_HEADER_MISSING', { field: 'Sec-Token-Binding' });
      recordVerification('rejected', 0, false, err.code);
      throw err;
    }
    recordVerification('absent', 0, false);
    return null;
  }

  const verdict = verdictOnValue(value, connection, resolved);
  if (verdict instanceof TokenBindingError) throw verdict;
  return verdict;
}

/**
 * The verdict on one present header value (what {@link verifyTokenBindingHeader} returns or
 * throws), counted and published: returned, not thrown, so a server's request path needs no
 * `try`. `options` are resolved already.
 *
 * @throws {TypeError} on API misuse only
 * @internal Shared with the servers' request path, which has the value from the raw headers.
 */
export function verdictOnValue(
  value: string,
  connection: TokenBindingConnection | TokenBindingConnectionContext,
  options: ResolvedTokenBindingOptions,
): TokenBindingResult | TokenBindingError {
  // Cache hits are timed only for a subscriber: a hit is a Map lookup, the clock would double it.
  const listening = hasVerifySubscribers();
  let started = listening ? nowNs() : 0;
  let cached = false;
  let verdict: CachedVerdict;
  try {
    // Connection-level refusals first: they are cheap and never take a cache slot.
    let ekm: Uint8Array;
    let accepted: readonly number[];
    let state: ConnectionState | null | undefined;
    if (isContext(connection)) {
      const facts = connection.facts;
      accepted = usableFacts(facts, options);
      ekm = facts.ekm!;
      state = connection.state;
    } else {
      accepted = usableNegotiated(connection);
      ekm = connection.ekm;
      state = null;
    }
    const entry = state == null ? undefined : lookupVerification<CacheEntry>(state, value, options.maxDistinctMessages);
    // Same value, same connection, same configuration: the same verdict. Another configuration
    // (a second adapter on the connection) verifies afresh and keeps its verdict beside the others.
    const hit = cachedVerdict(entry, options);
    if (hit !== undefined) {
      cached = true;
      verdict = hit;
    } else {
      if (!listening) started = nowNs();
      verdict = evaluate(value, ekm, accepted, options, state, entry);
    }
  } catch (err) {
    if (!(err instanceof TokenBindingError)) throw err;
    verdict = err;
  }
  if (verdict instanceof TokenBindingError && value.includes(',')) {
    // Node joins repeated unknown headers with ', '; base64url never holds a comma, so a value
    // with one never decodes, takes no slot and spends nothing: its refusal is the duplicate's.
    // Looked for only here, on a refusal: a valid value is never scanned for it.
    const duplicate = fail('ERR_TB_HEADER_DUPLICATE', { field: 'Sec-Token-Binding', expected: 1, actual: 'comma-joined list' });
    recordVerification('rejected', 0, false, duplicate.code);
    return duplicate;
  }
  return settle(verdict, started, cached);
}

/**
 * Whether two configurations judge a header value alike (`required` does not matter for a present
 * one; `maxDistinctMessages` only decides whether a new value is looked at).
 *
 * @internal Also used by the adapters to decide whether a server's verdict is theirs.
 */
export function sameVerdictOptions(a: ResolvedTokenBindingOptions, b: ResolvedTokenBindingOptions): boolean {
  if (a === b) return true;
  if (a.maxHeaderLength !== b.maxHeaderLength || a.backend !== b.backend || a.maxSignaturesPerMessage !== b.maxSignaturesPerMessage) return false;
  const ka = a.keyParameters;
  const kb = b.keyParameters;
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
}

/** The key parameters a caller-described connection accepts, or the refusal. */
function usableNegotiated(connection: TokenBindingConnection): readonly number[] {
  const accepted = connection.negotiatedKeyParameters;
  if (!Array.isArray(accepted)) throw new TypeError('negotiatedKeyParameters must be an array');
  if (accepted.length === 0) throw fail('ERR_TB_NOT_NEGOTIATED', { field: 'negotiatedKeyParameters' });
  return accepted;
}

/**
 * The key parameters this caller may accept on a connection the tls layer described (its EKM is
 * then `facts.ekm`), or the refusal.
 */
function usableFacts(facts: ConnectionFacts, options: ResolvedTokenBindingOptions): readonly number[] {
  if (facts === null || typeof facts !== 'object') throw new TypeError('connection.facts must be ConnectionFacts');
  if (!facts.eligible || facts.ekm === null) {
    const reason = facts.ineligibleReason ?? 'ekm-unavailable';
    throw fail(reason === 'ekm-unavailable' ? 'ERR_TB_EKM_UNAVAILABLE' : 'ERR_TB_TLS_CONDITIONS', {
      field: 'connection',
      actual: reason,
      protocol: facts.protocol,
    });
  }
  // This caller's list, narrowed by what the connection negotiated: never another caller's.
  const accepted = acceptedKeyParameters(facts, options.keyParameters);
  if (accepted.length === 0) {
    throw fail('ERR_TB_NOT_NEGOTIATED', { field: 'key_parameters', expected: options.keyParameters });
  }
  return accepted;
}

export type { TokenBindingResult, VerifiedID };
