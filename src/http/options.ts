/**
 * Server-side Token Binding configuration: validated once, then read on every request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { DEFAULT_MAX_HEADER_LENGTH } from '../codec/header.js';
import { parseKeyParameters } from '../codec/keyparams.js';
import type { KeyParametersName } from '../codec/types.js';
import { canVerify, type VerificationBackend } from '../crypto/backend.js';
import type { TokenBindingError } from '../errors.js';

/** What `verifyTokenBindingHeader` needs to know; a subset of the server options. */
export interface TokenBindingVerifyOptions {
  /**
   * Key parameters accepted for the provided binding — the stand-in for the RFC 8472 negotiated
   * value, which Node's TLS cannot negotiate in-band. Default `['ecdsap256']`; RSA is opt-in
   * (`'rsa2048_pss'`, `'rsa2048_pkcs1.5'`). Per caller: middleware on a route accepts only its
   * own list, narrowed by what the server behind it negotiated.
   */
  readonly keyParameters?: readonly (KeyParametersName | number)[];
  /**
   * Reject a request without Sec-Token-Binding (`ERR_TB_HEADER_MISSING`). Default false. A
   * required binding must also be valid: under `required: true` an invalid message is rejected
   * whatever `onInvalid` says.
   */
  readonly required?: boolean;
  /** Longest accepted header value, in characters, checked before decoding. Default 4096. */
  readonly maxHeaderLength?: number;
  /**
   * Distinct header values one connection may present before `ERR_TB_TOO_MANY_MESSAGES`. Default 8.
   * The cap is per caller: a route's middleware enforces its own against the values the connection
   * has presented so far (to any route), never more than the cap of the tokbind server that took
   * the connection, so a connection holds at most as many values as the largest cap applied to it.
   */
  readonly maxDistinctMessages?: number;
  /** Signature verification backend. Default: crypto's `nodeBackend`. */
  readonly backend?: VerificationBackend;
  /**
   * Most signature checks one message may need — the provided binding, the referred one and every
   * binding of another type with key parameters tokbind can verify — before
   * `ERR_TB_TOO_MANY_BINDINGS` (refused before any signature is checked). Default 4.
   */
  readonly maxSignaturesPerMessage?: number;
  /**
   * Signature checks one connection may spend over its life (with a per-connection cache: tokbind's
   * servers and adapters) before `ERR_TB_SIGNATURE_BUDGET`. Default 16: twice the default
   * `maxDistinctMessages`, a provided and a referred binding for each.
   */
  readonly maxSignaturesPerConnection?: number;
}

/** Default of `maxSignaturesPerMessage`. */
export const DEFAULT_MAX_SIGNATURES_PER_MESSAGE = 4;
/** Default of `maxSignaturesPerConnection`. */
export const DEFAULT_MAX_SIGNATURES_PER_CONNECTION = 16;

/** ClientHello inspection limits (see the tls layer's `inspectClientHellos`). */
export interface ClientHelloInspectionOptions {
  readonly maxBytes?: number;
  /** Most TLS records one ClientHello may span. Default 64 (`MAX_CLIENT_HELLO_RECORDS`). */
  readonly maxRecords?: number;
  readonly timeoutMs?: number;
}

/** The `tokenBinding` option of `createServer` and `createSecureServer`. */
export interface TokenBindingServerOptions extends TokenBindingVerifyOptions {
  /**
   * What to do with an invalid Sec-Token-Binding (bad signature, malformed, duplicated, …):
   * `reject` (default) answers 400; `ignore` lets the request through with
   * `req.tokenBinding === null`, so no token bound to the connection can validate. It applies
   * only where the binding is optional: under `required: true` a missing **or invalid** header is
   * always rejected (the combination is allowed, and means "reject"), so a required route never
   * issues an unbound credential to `Sec-Token-Binding: x`.
   */
  readonly onInvalid?: 'reject' | 'ignore';
  /**
   * Read each ClientHello before TLS starts (RFC 8472 offer, EMS, renegotiation indication).
   * Costs ~130 µs of CPU per handshake. Default false.
   */
  readonly inspectClientHello?: boolean | ClientHelloInspectionOptions;
  /**
   * Replaces the 400 problem response for HTTP/1.x requests (and HTTP/1.1 on an HTTP/2 server
   * with `allowHTTP1`). The hook must end the response.
   */
  readonly onReject?: (
    req: IncomingMessage | Http2ServerRequest,
    res: ServerResponse | Http2ServerResponse,
    error: TokenBindingError,
  ) => void;
  /**
   * Replaces the 400 on an HTTP/2 stream. Rejected streams never reach 'stream' or 'request'
   * listeners, so this is the only place to answer them differently. The hook must end the stream.
   */
  readonly onRejectStream?: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, error: TokenBindingError) => void;
}

const RESOLVED = Symbol('tokbind.resolvedOptions');

/** Options after validation, with every default filled in. */
export interface ResolvedTokenBindingOptions {
  readonly [RESOLVED]: true;
  /** Registry numbers accepted for the provided binding. */
  readonly keyParameters: readonly number[];
  readonly required: boolean;
  readonly maxHeaderLength: number;
  readonly maxDistinctMessages: number;
  readonly backend: VerificationBackend | undefined;
  readonly maxSignaturesPerMessage: number;
  readonly maxSignaturesPerConnection: number;
  readonly onInvalid: 'reject' | 'ignore';
  readonly inspectClientHello: ClientHelloInspectionOptions | null;
  readonly onReject: TokenBindingServerOptions['onReject'] | undefined;
  readonly onRejectStream: TokenBindingServerOptions['onRejectStream'] | undefined;
}

/**
 * Resolved options per input object, with a shallow copy of what was read from it: an object the
 * caller changed since (a second route configured from the same object) is resolved again, never
 * answered with what its earlier contents resolved to.
 */
type Seen = { readonly [K in keyof TokenBindingServerOptions]-?: TokenBindingServerOptions[K] | undefined };
const memo = new WeakMap<object, { readonly resolved: ResolvedTokenBindingOptions; readonly seen: Seen; readonly names: readonly unknown[] | undefined }>();

/** Written out, not a loop over key names: this runs on every call with raw options. */
function unchanged(options: TokenBindingServerOptions, seen: Seen, names: readonly unknown[] | undefined): boolean {
  if (
    options.keyParameters !== seen.keyParameters ||
    options.required !== seen.required ||
    options.maxHeaderLength !== seen.maxHeaderLength ||
    options.maxDistinctMessages !== seen.maxDistinctMessages ||
    options.backend !== seen.backend ||
    options.onInvalid !== seen.onInvalid ||
    options.inspectClientHello !== seen.inspectClientHello ||
    options.onReject !== seen.onReject ||
    options.onRejectStream !== seen.onRejectStream ||
    options.maxSignaturesPerMessage !== seen.maxSignaturesPerMessage ||
    options.maxSignaturesPerConnection !== seen.maxSignaturesPerConnection
  ) {
    return false;
  }
  const now = options.keyParameters;
  if (now === undefined || names === undefined) return now === undefined && names === undefined;
  if (now.length !== names.length) return false;
  for (let i = 0; i < names.length; i++) if (now[i] !== names[i]) return false;
  return true;
}

function positiveInteger(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(`tokenBinding.${name} must be a positive integer`);
  }
  return value;
}

function optionalFunction<T>(value: T | undefined, name: string): T | undefined {
  if (value !== undefined && typeof value !== 'function') throw new TypeError(`tokenBinding.${name} must be a function`);
  return value;
}

/**
 * Validates Token Binding server options and fills in the defaults. Called once per server;
 * `verifyTokenBindingHeader` also memoizes it per options object, so adapters may pass the
 * raw options on every request (an object changed since is resolved again).
 *
 * @throws {TypeError} for an unknown key parameters name or an option of the wrong type
 * @example
 * ```ts
 * const resolved = resolveTokenBindingOptions({ keyParameters: ['ecdsap256', 'rsa2048_pss'], required: true })
 * ```
 */
export function resolveTokenBindingOptions(
  options: TokenBindingServerOptions | ResolvedTokenBindingOptions = {},
): ResolvedTokenBindingOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('tokenBinding options must be an object');
  if (RESOLVED in options) return options;
  const cached = memo.get(options);
  if (cached !== undefined && unchanged(options, cached.seen, cached.names)) return cached.resolved;

  const names = options.keyParameters ?? ['ecdsap256'];
  if (!Array.isArray(names) || names.length === 0) {
    throw new TypeError('tokenBinding.keyParameters must be a non-empty array');
  }
  const keyParameters = Object.freeze([...new Set(names.map((n) => parseKeyParameters(n)))]);
  const unverifiable = keyParameters.find((k) => !canVerify(k));
  if (unverifiable !== undefined) throw new TypeError(`tokenBinding.keyParameters: cannot verify key parameters ${unverifiable}`);
  if (options.required !== undefined && typeof options.required !== 'boolean') {
    throw new TypeError('tokenBinding.required must be a boolean');
  }
  const onInvalid = options.onInvalid ?? 'reject';
  if (onInvalid !== 'reject' && onInvalid !== 'ignore') throw new TypeError("tokenBinding.onInvalid must be 'reject' or 'ignore'");
  const backend = options.backend;
  if (backend !== undefined && (backend === null || typeof backend.verify !== 'function')) {
    throw new TypeError('tokenBinding.backend must be a VerificationBackend');
  }
  const inspect = options.inspectClientHello ?? false;
  if (typeof inspect !== 'boolean' && (inspect === null || typeof inspect !== 'object')) {
    throw new TypeError('tokenBinding.inspectClientHello must be a boolean or an object');
  }

  const resolved: ResolvedTokenBindingOptions = Object.freeze({
    [RESOLVED]: true as const,
    keyParameters,
    required: options.required ?? false,
    maxHeaderLength: positiveInteger(options.maxHeaderLength, 'maxHeaderLength', DEFAULT_MAX_HEADER_LENGTH),
    maxDistinctMessages: positiveInteger(options.maxDistinctMessages, 'maxDistinctMessages', 8),
    backend,
    maxSignaturesPerMessage: positiveInteger(options.maxSignaturesPerMessage, 'maxSignaturesPerMessage', DEFAULT_MAX_SIGNATURES_PER_MESSAGE),
    maxSignaturesPerConnection: positiveInteger(
      options.maxSignaturesPerConnection,
      'maxSignaturesPerConnection',
      DEFAULT_MAX_SIGNATURES_PER_CONNECTION,
    ),
    onInvalid,
    inspectClientHello: inspect === false ? null : inspect === true ? {} : inspect,
    onReject: optionalFunction(options.onReject, 'onReject'),
    onRejectStream: optionalFunction(options.onRejectStream, 'onRejectStream'),
  });
  const { keyParameters: kp, required, maxHeaderLength, maxDistinctMessages, onInvalid: oi, inspectClientHello, onReject, onRejectStream } = options;
  const { maxSignaturesPerMessage, maxSignaturesPerConnection } = options;
  const seen = {
    keyParameters: kp,
    required,
    maxHeaderLength,
    maxDistinctMessages,
    backend,
    onInvalid: oi,
    inspectClientHello,
    onReject,
    onRejectStream,
    maxSignaturesPerMessage,
    maxSignaturesPerConnection,
  };
  memo.set(options, { resolved, seen, names: kp === undefined ? undefined : [...kp] });
  return resolved;
}
