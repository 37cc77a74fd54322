/**
 * `tokbind/token`: credentials bound to a request. Issue JWTs with `cnf.tbh`
 * (draft-ietf-oauth-token-binding-08), and verify access tokens at a resource server with one
 * `cnf` check for every binding method: `tbh` (Token Binding), `x5t#S256` (RFC 8705 mTLS),
 * `jkt` (RFC 9449 DPoP). Express and Fastify glue live at `tokbind/token/express` and
 * `tokbind/token/fastify`.
 *
 * @packageDocumentation
 */
export {
  ConfirmationMethods,
  certificateConfirmation,
  certificateThumbprint,
  checkConfirmation,
  checkTokenBindingConfirmation,
  confirmationMethod,
  dpopConfirmation,
  selectTokenBindingID,
  tokenBindingConfirmation,
  type Confirmation,
  type ConfirmationMethod,
} from './cnf.js';
export { bindClaims, signTokenBoundJwt, type SignTokenBoundJwtOptions } from './issue.js';
export {
  DPOP_ALGORITHMS,
  DpopNonces,
  MAX_JTI_LENGTH,
  MemoryDpopReplayCache,
  createDpopKeyCache,
  normalizeHtu,
  verifyDpopProof,
  type DpopKeyCache,
  type DpopProofCheck,
  type DpopReplayCache,
  type VerifiedDpopProof,
} from './dpop.js';
export {
  ACCESS_TOKEN_ALGORITHMS,
  TOKEN_CHANNEL_NAME,
  accessTokenProblem,
  createAccessTokenVerifier,
  loadJwksFile,
  type AccessTokenChallenge,
  type AccessTokenRequest,
  type AccessTokenVerifier,
  type AccessTokenVerifierOptions,
  type DpopVerifierOptions,
  type TokenEvent,
  type VerifiedAccessToken,
} from './verify.js';
export { sendAccessTokenChallenge, type AccessTokenGlueOptions } from './respond.js';
