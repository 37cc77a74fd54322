/**
 * The `tokbind:proxy` diagnostics channel: one event per request a tokbind proxy or sidecar sent
 * upstream (or failed to), with its outcome and latency. Never headers, IDs or addresses.
 */
import diagnosticsChannel from 'node:diagnostics_channel';

/** The channel `tokbind proxy` and `tokbind forward` publish on. */
export const PROXY_CHANNEL_NAME = 'tokbind:proxy';

/** What a `tokbind:proxy` subscriber receives, once per forwarded request or upgrade. */
export interface ProxyEvent {
  /** `proxy`: the TLS-terminating reverse proxy; `forward`: the client sidecar. */
  readonly role: 'proxy' | 'forward';
  /** `ok`: the upstream's response was relayed to its end (or the upgrade established). */
  readonly outcome: 'ok' | 'error';
  /** The status the client got: the upstream's, or 502/504 when this hop answered for it. */
  readonly status?: number;
  /** From the request's arrival to the end of the relayed response (or the failure). */
  readonly durationSeconds: number;
  /** On error: undici's error code (`UND_ERR_…`, `ECONNREFUSED`, …) or a tokbind code. */
  readonly code?: string;
}

const channel = diagnosticsChannel.channel(PROXY_CHANNEL_NAME);

/** Monotonic nanoseconds. */
export function proxyClock(): bigint {
  return process.hrtime.bigint();
}

/** Publishes one event (built only when someone listens). */
export function publishProxyEvent(
  role: ProxyEvent['role'],
  started: bigint,
  outcome: ProxyEvent['outcome'],
  status: number | undefined,
  code?: string,
): void {
  if (!channel.hasSubscribers) return;
  const event: { -readonly [K in keyof ProxyEvent]: ProxyEvent[K] } = {
    role,
    outcome,
    durationSeconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
  if (status !== undefined) event.status = status;
  if (code !== undefined) event.code = code;
  channel.publish(event);
}
