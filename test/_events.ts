import diagnosticsChannel from 'node:diagnostics_channel';
import { VERIFY_CHANNEL_NAME, type VerifyEvent } from '../src/http/metrics.js';

/** Runs `fn` and collects the `tokbind:verify` events published meanwhile (use from serial tests). */
export async function collectVerifyEvents<T>(fn: () => Promise<T>): Promise<{ result: T; events: VerifyEvent[] }> {
  const events: VerifyEvent[] = [];
  const onMessage = (message: unknown): void => void events.push(message as VerifyEvent);
  diagnosticsChannel.subscribe(VERIFY_CHANNEL_NAME, onMessage);
  try {
    return { result: await fn(), events };
  } finally {
    diagnosticsChannel.unsubscribe(VERIFY_CHANNEL_NAME, onMessage);
  }
}
