/**
 * tokbind/session: sessions bound to the client's Token Binding ID, for express-session and
 * @fastify/session (any of their stores: MemoryStore, connect-redis, …). On login call
 * {@link bindSession}; mount {@link sessionBinding} (Express) or register
 * {@link fastifySessionBinding} (Fastify) to check every later request.
 *
 * @packageDocumentation
 */
export {
  SESSION_BINDING_KEY,
  SESSION_CHANNEL_NAME,
  checkSessionBinding,
  createTokenBindingSessionBinding,
  publishSessionEvent,
  readSessionBinding,
  resolveSessionBindingOptions,
  sessionErrorStatus,
  tokenBindingSessionMethod,
  type ResolvedSessionBindingOptions,
  type SessionBindingMethod,
  type SessionBindingMethodName,
  type SessionBindingOptions,
  type SessionBindingRecord,
  type SessionBindingRequest,
  type SessionBindingVerdict,
  type SessionEvent,
  type SessionMismatchAction,
  type SessionPolicy,
  type SessionRefusal,
  type SessionRefusalReason,
  type TokenBindingSessionBinding,
} from './binding.js';
export { bindSession, type BindSessionOptions, type SessionRequest } from './bind.js';
export { sessionBinding, type SessionBindingMiddleware } from './express.js';
export { fastifySessionBinding } from './fastify.js';
export { regenerateSession } from './bind.js';
export {
  deviceBoundSessions,
  type DbscAlgorithm,
  type DbscSessionBinding,
  type DbscSessionConfig,
  type DeviceBoundSessionOptions,
  type DeviceBoundSessions,
  type VerifiedDbscProof,
} from './dbsc.js';
export { writeDbscAnswer, type DbscAnswer } from './dbsc.js';
export { fastifyDeviceBoundSessions, type FastifyDeviceBoundSessionsOptions } from './dbsc-fastify.js';
