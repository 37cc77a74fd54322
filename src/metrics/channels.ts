/**
 * The diagnostics channels tokbind publishes on, read once and turned into bounded label values
 * for the prom-client and OpenTelemetry sinks. Channels are the zero-dependency source: nothing
 * here knows about either library.
 *
 * Every label value is taken from a closed list (outcome, code, key parameters, reason, method,
 * role…); anything else becomes `other`. A value carried by an event — an ID, a host, a path,
 * a header — can never become a label, so cardinality is bounded and nothing secret is exported.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { TokenBindingErrorCodes } from '../errors.js';
import { TLS_CHANNEL_NAME, VERIFY_CHANNEL_NAME, type TlsConditionsEvent, type VerifyEvent } from '../http/metrics.js';
// The other channels' contracts are their publishers' own, one definition each, from modules that
// load neither a framework nor jose.
import { PROXY_CHANNEL_NAME, type ProxyEvent } from '../proxy/events.js';
import { SESSION_CHANNEL_NAME, type SessionEvent } from '../session/binding.js';
import { TOKEN_CHANNEL_NAME, type TokenEvent } from '../token/events.js';

export { PROXY_CHANNEL_NAME, SESSION_CHANNEL_NAME, TOKEN_CHANNEL_NAME, type ProxyEvent, type SessionEvent, type TokenEvent };

/** Normalised observations, every string a bounded label value. */
export interface TokenBindingSink {
  verification(outcome: string, keyParameters: string, code: string | null, cached: boolean, seconds: number | null): void;
  tlsConditionsUnmet(reason: string, protocol: string): void;
  session(outcome: string, method: string, reason: string): void;
  token(outcome: string, method: string, code: string): void;
  stolenCredential(source: 'session' | 'token', method: string): void;
  proxy(role: string, outcome: string, code: string, statusClass: string, seconds: number | null): void;
}

export const OTHER = 'other';
export const NONE = 'none';

const VERIFY_OUTCOMES = new Set(['accepted', 'rejected', 'absent']);
const KEY_PARAMETERS = new Set(['rsa2048_pkcs1.5', 'rsa2048_pss', 'ecdsap256']);
const TLS_REASONS = new Set(['tls-version', 'no-ems', 'ems-unknown', 'ekm-unavailable', 'renegotiation']);
const PROTOCOLS = new Set(['TLSv1.3', 'TLSv1.2', 'TLSv1.1', 'TLSv1', 'SSLv3', 'unknown']);
const SESSION_OUTCOMES = new Set(['bound', 'accepted', 'rejected']);
const SESSION_METHODS = new Set(['token-binding', 'dbsc']);
const SESSION_REASONS = new Set(['mismatch', 'missing-binding', 'unbound', 'expired']);
const STOLEN_SESSION_REASONS = new Set(['mismatch', 'missing-binding']);
const TOKEN_OUTCOMES = new Set(['accepted', 'rejected']);
const TOKEN_METHODS = new Set(['tbh', 'jkt', 'x5t#S256']);
const PROXY_ROLES = new Set(['proxy', 'forward']);
const PROXY_OUTCOMES = new Set(['ok', 'error']);

/** Error codes that are not tokbind's (undici's `UND_ERR_…`, Node's `ECONNREFUSED`) are capped in number. */
const FOREIGN_CODE = /^[A-Z][A-Z0-9_]{1,63}$/;
const MAX_FOREIGN_CODES = 32;
const foreignCodes = new Set<string>();

function oneOf(value: unknown, allowed: ReadonlySet<string>, absent = NONE): string {
  if (value === undefined || value === null) return absent;
  return typeof value === 'string' && allowed.has(value) ? value : OTHER;
}

/** A key parameters label: one of the three registered names, `other` for any number, `none`. */
export function keyParametersLabel(value: unknown): string {
  return oneOf(value, KEY_PARAMETERS);
}

/** A tokbind error code, or `other`; `none` when there is none. */
export function codeLabel(value: unknown): string {
  if (value === undefined || value === null) return NONE;
  return typeof value === 'string' && Object.hasOwn(TokenBindingErrorCodes, value) ? value : OTHER;
}

/** A tokbind code, or one of the first 32 other upper-case codes seen (network errors); else `other`. */
export function foreignCodeLabel(value: unknown): string {
  const own = codeLabel(value);
  if (own !== OTHER) return own;
  if (typeof value !== 'string' || !FOREIGN_CODE.test(value)) return OTHER;
  if (foreignCodes.has(value)) return value;
  if (foreignCodes.size >= MAX_FOREIGN_CODES) return OTHER;
  foreignCodes.add(value);
  return value;
}

/** `2xx` … `5xx`, `none` without a status, `other` for anything outside 100..599. */
export function statusClassLabel(status: unknown): string {
  if (status === undefined || status === null) return NONE;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) return OTHER;
  return `${Math.floor(status / 100)}xx`;
}

function seconds(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : null;
}

function isObject(message: unknown): message is Record<string, unknown> {
  return typeof message === 'object' && message !== null;
}

/**
 * Subscribes `sink` to every tokbind channel; returns the function that unsubscribes it.
 *
 * @internal Shared by the prom-client and OpenTelemetry registrations.
 */
export function subscribeTokenBindingChannels(sink: TokenBindingSink): () => void {
  const onVerify = (message: unknown): void => {
    if (!isObject(message)) return;
    const event = message as Partial<VerifyEvent>;
    let outcome = oneOf(event.outcome, VERIFY_OUTCOMES);
    if (outcome === 'rejected' && event.replayed === true) outcome = 'replayed';
    const code = outcome === 'rejected' || outcome === 'replayed' ? codeLabel(event.code) : null;
    const ns = outcome === 'absent' ? null : seconds(event.durationNs);
    sink.verification(outcome, keyParametersLabel(event.keyParameters), code, event.cached === true, ns === null || ns === 0 ? null : ns / 1e9);
  };
  const onTls = (message: unknown): void => {
    if (!isObject(message)) return;
    const event = message as Partial<TlsConditionsEvent>;
    sink.tlsConditionsUnmet(oneOf(event.reason, TLS_REASONS, OTHER), oneOf(event.protocol, PROTOCOLS, 'unknown'));
  };
  const onSession = (message: unknown): void => {
    if (!isObject(message)) return;
    const event = message as Partial<SessionEvent>;
    const outcome = oneOf(event.outcome, SESSION_OUTCOMES);
    const method = oneOf(event.method, SESSION_METHODS);
    const reason = oneOf(event.reason, SESSION_REASONS);
    sink.session(outcome, method, reason);
    if (outcome === 'rejected' && STOLEN_SESSION_REASONS.has(reason)) sink.stolenCredential('session', method);
  };
  const onToken = (message: unknown): void => {
    if (!isObject(message)) return;
    const event = message as Partial<TokenEvent>;
    const method = oneOf(event.method, TOKEN_METHODS);
    sink.token(oneOf(event.outcome, TOKEN_OUTCOMES), method, codeLabel(event.code));
    if (event.stolen === true) sink.stolenCredential('token', method);
  };
  const onProxy = (message: unknown): void => {
    if (!isObject(message)) return;
    const event = message as Partial<ProxyEvent>;
    sink.proxy(
      oneOf(event.role, PROXY_ROLES),
      oneOf(event.outcome, PROXY_OUTCOMES),
      foreignCodeLabel(event.code),
      statusClassLabel(event.status),
      seconds(event.durationSeconds),
    );
  };
  const subscriptions: [string, (message: unknown) => void][] = [
    [VERIFY_CHANNEL_NAME, onVerify],
    [TLS_CHANNEL_NAME, onTls],
    [SESSION_CHANNEL_NAME, onSession],
    [TOKEN_CHANNEL_NAME, onToken],
    [PROXY_CHANNEL_NAME, onProxy],
  ];
  for (const [name, fn] of subscriptions) diagnosticsChannel.subscribe(name, fn);
  let active = true;
  return () => {
    if (!active) return;
    active = false;
    for (const [name, fn] of subscriptions) diagnosticsChannel.unsubscribe(name, fn);
  };
}
