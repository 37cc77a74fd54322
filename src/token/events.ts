/**
 * The `tokbind:token` diagnostics channel contract: what tokbind/token publishes once per access
 * token decision, and what tokbind/metrics reads. Its own module, free of jose, so that a reader
 * of the channel does not load the verifier.
 */
import type { TokenBindingErrorCode } from '../errors.js';
import type { ConfirmationMethod } from './cnf.js';

/** The diagnostics channel every access token decision is published on. */
export const TOKEN_CHANNEL_NAME = 'tokbind:token';

/** What a `tokbind:token` subscriber receives, once per request that went through verification. */
export interface TokenEvent {
  readonly outcome: 'accepted' | 'rejected';
  /** The token's confirmation method, when known (`null`: unbound, or rejected before `cnf` was read). */
  readonly method: ConfirmationMethod | null;
  readonly code?: TokenBindingErrorCode;
  /** A bound token presented with another client's binding, key or certificate, or a replayed DPoP proof. */
  readonly stolen: boolean;
}
