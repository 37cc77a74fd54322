/**
 * The one owner of the TTRP header format (draft-ietf-tokbind-ttrp-09 §2), both directions: a
 * TLS-terminating reverse proxy that verified a request's Sec-Token-Binding writes what it
 * verified into `Sec-Provided-Token-Binding-ID`, `Sec-Referred-Token-Binding-ID` and
 * `Sec-Other-Token-Binding-ID`; a backend behind it reads them back into the same
 * {@link TokenBindingResult} a direct TLS connection would have produced.
 *
 * Pure formatting and parsing: whether a peer may send these headers at all is decided elsewhere
 * (tokbind's servers strip them from every client; `trustProxy` accepts them from a proxy).
 */
import { base64urlDecodeTransient } from '../codec/base64url.js';
import { parseTokenBindingID } from '../codec/message.js';
import { TokenBindingError, type TokenBindingErrorCause } from '../errors.js';
import { createVerifiedID, tokenBindingResult, type OtherVerifiedBinding, type TokenBindingResult, type VerifiedID } from './result.js';

/** draft-ietf-tokbind-ttrp §2.2: the EncodedTokenBindingID of the provided binding. */
export const SEC_PROVIDED_TOKEN_BINDING_ID = 'sec-provided-token-binding-id';
/** draft-ietf-tokbind-ttrp §2.3: the EncodedTokenBindingID of the referred binding. */
export const SEC_REFERRED_TOKEN_BINDING_ID = 'sec-referred-token-binding-id';
/**
 * draft-ietf-tokbind-ttrp §2.4: the other verified bindings, a comma-separated list of
 * `EncodedTokenBindingType "." EncodedTokenBindingID` (the type as 1-2 hex digits).
 */
export const SEC_OTHER_TOKEN_BINDING_ID = 'sec-other-token-binding-id';
/**
 * tokbind's own header: a short-lived JWS in which the proxy vouches for the three headers above,
 * the method, the path and the time (see `tokbind/proxy`'s `forwardKey` and `trustProxy.key`).
 */
export const SEC_TOKEN_BINDING_ASSERTION = 'sec-token-binding-assertion';

/** The three TTRP headers (lowercase), in the draft's order. */
export const TTRP_HEADER_NAMES: readonly string[] = Object.freeze([
  SEC_PROVIDED_TOKEN_BINDING_ID,
  SEC_REFERRED_TOKEN_BINDING_ID,
  SEC_OTHER_TOKEN_BINDING_ID,
]);

/**
 * Every header only a trusted proxy may set (lowercase): the three TTRP headers and the
 * assertion. tokbind's servers strip all of them from what a client sends.
 */
export const FORWARDED_HEADER_NAMES: ReadonlySet<string> = new Set([...TTRP_HEADER_NAMES, SEC_TOKEN_BINDING_ASSERTION]);

/**
 * Whether `name` (any case) is one of {@link FORWARDED_HEADER_NAMES}. The length test comes
 * first: almost every header is rejected without being lowercased.
 */
export function isForwardedHeaderName(name: string): boolean {
  const n = name.length;
  return (n === 29 || n === 26 || n === 27) && FORWARDED_HEADER_NAMES.has(name.toLowerCase());
}

/** Longest accepted EncodedTokenBindingID: an RSA-2048 ID is 264 bytes, 352 characters. */
const MAX_ENCODED_ID_LENGTH = 1024;
/** Most other bindings accepted in one Sec-Other-Token-Binding-ID. */
const MAX_OTHER_BINDINGS = 16;
/** Longest accepted Sec-Other-Token-Binding-ID value. */
const MAX_OTHER_LENGTH = MAX_OTHER_BINDINGS * (MAX_ENCODED_ID_LENGTH + 4);

const OTHER_ITEM = /^([0-9A-Fa-f]{1,2})\.([A-Za-z0-9_-]+)$/;

function malformed(cause: TokenBindingErrorCause): TokenBindingError {
  return new TokenBindingError('ERR_TB_FORWARDED_MALFORMED', undefined, cause);
}

/** The headers a proxy sends for one verdict; absent ones are not in the object. */
export interface ForwardedTokenBindingHeaders {
  readonly [SEC_PROVIDED_TOKEN_BINDING_ID]?: string;
  readonly [SEC_REFERRED_TOKEN_BINDING_ID]?: string;
  readonly [SEC_OTHER_TOKEN_BINDING_ID]?: string;
}

/**
 * The `Sec-Other-Token-Binding-ID` value for verified bindings of other types: each
 * `hex(type) "." EncodedTokenBindingID` (lowercase hex without leading zero, as the draft's
 * example `4d.AgBB…,b.AgBB…`), joined by `,`.
 *
 * @example
 * ```ts
 * formatOtherTokenBindingIDs([{ type: 77, id }]) // '4d.AgBBQ…'
 * ```
 */
export function formatOtherTokenBindingIDs(others: readonly OtherVerifiedBinding[]): string {
  return others.map((other) => `${other.type.toString(16)}.${other.id.id}`).join(',');
}

/**
 * What a TLS-terminating proxy forwards for a verified request (draft-ietf-tokbind-ttrp-09 §2):
 * `Sec-Provided-Token-Binding-ID` (exactly `result.provided.id`), `Sec-Referred-Token-Binding-ID`
 * when a referred binding was verified, `Sec-Other-Token-Binding-ID` when other types were. No
 * verdict (no Sec-Token-Binding): no header.
 *
 * @example
 * ```ts
 * for (const [name, value] of Object.entries(formatForwardedTokenBindingHeaders(req.tokenBinding))) {
 *   upstreamHeaders[name] = value
 * }
 * ```
 */
export function formatForwardedTokenBindingHeaders(result: TokenBindingResult | null | undefined): ForwardedTokenBindingHeaders {
  if (result === null || result === undefined) return {};
  const headers: { -readonly [K in keyof ForwardedTokenBindingHeaders]: string } = {
    [SEC_PROVIDED_TOKEN_BINDING_ID]: result.provided.id,
  };
  if (result.referred !== null) headers[SEC_REFERRED_TOKEN_BINDING_ID] = result.referred.id;
  if (result.others.length > 0) headers[SEC_OTHER_TOKEN_BINDING_ID] = formatOtherTokenBindingIDs(result.others);
  return headers;
}

/** Decodes one EncodedTokenBindingID into the VerifiedID a direct connection would have shown. */
function parseEncodedID(value: string, field: string): VerifiedID {
  if (value.length === 0 || value.length > MAX_ENCODED_ID_LENGTH) {
    throw malformed({ field, expected: `1..${MAX_ENCODED_ID_LENGTH} characters`, actual: value.length });
  }
  let bytes: Uint8Array;
  try {
    // Into a shared slab (codec/slab.ts): createVerifiedID copies what it keeps.
    bytes = base64urlDecodeTransient(value);
  } catch (err) {
    throw malformed({ field, expected: 'unpadded base64url', actual: (err as TokenBindingError).code });
  }
  // base64urlDecode accepts only the canonical encoding, so `id.id` reads back as `value`.
  try {
    return createVerifiedID(parseTokenBindingID(bytes));
  } catch (err) {
    throw malformed({ field, expected: 'a TokenBindingID (RFC 8471 §3)', actual: (err as TokenBindingError).code });
  }
}

/**
 * Parses a `Sec-Other-Token-Binding-ID` value: a comma-separated list (optional whitespace around
 * the commas) of `1*2HEXDIG "." EncodedTokenBindingID`. Types 0 and 1 (provided, referred) have
 * headers of their own and are refused here, as are empty items.
 *
 * @throws {TokenBindingError} `ERR_TB_FORWARDED_MALFORMED`
 * @example
 * ```ts
 * parseOtherTokenBindingIDs('4d.AgBBQ…, b.AgBBQ…') // [{ type: 77, id }, { type: 11, id }]
 * ```
 */
export function parseOtherTokenBindingIDs(value: string): OtherVerifiedBinding[] {
  if (typeof value !== 'string') throw new TypeError('value must be a string');
  if (value.length > MAX_OTHER_LENGTH) {
    throw malformed({ field: SEC_OTHER_TOKEN_BINDING_ID, expected: `at most ${MAX_OTHER_LENGTH} characters`, actual: value.length });
  }
  const items = value.split(',');
  if (items.length > MAX_OTHER_BINDINGS) {
    throw malformed({ field: SEC_OTHER_TOKEN_BINDING_ID, expected: `at most ${MAX_OTHER_BINDINGS} bindings`, actual: items.length });
  }
  return items.map((raw, index) => {
    const match = OTHER_ITEM.exec(raw.replace(/^[ \t]+|[ \t]+$/g, ''));
    if (match === null) throw malformed({ field: SEC_OTHER_TOKEN_BINDING_ID, expected: 'hex type "." EncodedTokenBindingID', index });
    const type = Number.parseInt(match[1]!, 16);
    if (type === 0 || type === 1) throw malformed({ field: SEC_OTHER_TOKEN_BINDING_ID, expected: 'a type other than 0 and 1', actual: type, index });
    return Object.freeze({ type, id: parseEncodedID(match[2]!, SEC_OTHER_TOKEN_BINDING_ID) });
  });
}

/** The forwarded header values of one request, each seen at most once. */
export interface ForwardedHeaderValues {
  readonly provided?: string | undefined;
  readonly referred?: string | undefined;
  readonly other?: string | undefined;
}

/**
 * Reads the TTRP headers back into the {@link TokenBindingResult} the proxy verified: the same
 * shape (`provided.id`, `provided.hash`, `provided.keyParameters`, `referred`, `others`) a direct
 * TLS connection gives, so code that reads `req.tokenBinding` works unchanged behind a proxy.
 * No provided ID: null (the request carried no Token Binding) — then referred and other IDs must
 * be absent too.
 *
 * Whether the sender may be believed is not decided here: call it only for a trusted proxy.
 *
 * @throws {TokenBindingError} `ERR_TB_FORWARDED_MALFORMED`
 * @example
 * ```ts
 * const result = parseForwardedTokenBindingHeaders({ provided: req.headers['sec-provided-token-binding-id'] })
 * result?.provided.hash // the `tbh` of the client's binding
 * ```
 */
export function parseForwardedTokenBindingHeaders(values: ForwardedHeaderValues): TokenBindingResult | null {
  if (values === null || typeof values !== 'object') throw new TypeError('values must be an object');
  const { provided, referred, other } = values;
  for (const [field, value] of [
    [SEC_PROVIDED_TOKEN_BINDING_ID, provided],
    [SEC_REFERRED_TOKEN_BINDING_ID, referred],
    [SEC_OTHER_TOKEN_BINDING_ID, other],
  ] as const) {
    if (value !== undefined && typeof value !== 'string') throw new TypeError(`${field} must be a string`);
  }
  if (provided === undefined) {
    if (referred !== undefined || other !== undefined) {
      throw malformed({ field: SEC_PROVIDED_TOKEN_BINDING_ID, expected: 'present with referred or other IDs', actual: 'absent' });
    }
    return null;
  }
  return tokenBindingResult(
    parseEncodedID(provided, SEC_PROVIDED_TOKEN_BINDING_ID),
    referred === undefined ? null : parseEncodedID(referred, SEC_REFERRED_TOKEN_BINDING_ID),
    other === undefined ? undefined : parseOtherTokenBindingIDs(other),
  );
}

/**
 * Collects the forwarded headers (and the assertion) of a raw header list, refusing any that
 * appears more than once: Node joins repeated unknown headers with ", ", which for
 * Sec-Other-Token-Binding-ID would silently merge two lists.
 *
 * @throws {TokenBindingError} `ERR_TB_FORWARDED_MALFORMED` on a repeated header
 */
export function collectForwardedHeaders(rawHeaders: readonly string[]): ForwardedHeaderValues & { readonly assertion?: string | undefined } {
  const found: Record<string, string> = {};
  let any = false;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (!isForwardedHeaderName(name)) continue;
    const lower = name.toLowerCase();
    if (Object.hasOwn(found, lower)) throw malformed({ field: lower, expected: 'one header', actual: 'repeated' });
    found[lower] = rawHeaders[i + 1]!;
    any = true;
  }
  if (!any) return {};
  return {
    provided: found[SEC_PROVIDED_TOKEN_BINDING_ID],
    referred: found[SEC_REFERRED_TOKEN_BINDING_ID],
    other: found[SEC_OTHER_TOKEN_BINDING_ID],
    assertion: found[SEC_TOKEN_BINDING_ASSERTION],
  };
}
