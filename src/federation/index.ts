/**
 * `tokbind/federation`: token-bound sign-in across sites (RFC 8473 §5, OpenID Connect Token
 * Bound Authentication 1.0 draft 04, draft-ietf-oauth-token-binding-08). The relying party
 * redirects with `Include-Referred-Token-Binding-ID: true` ({@link redirectToSignIn}), verifies
 * the ID token's `cnf.tbh` against its own connection and binds the session
 * ({@link completeSignIn}); the provider binds what it issues to the referred ID, codes with PKCE
 * `referred_tb` / `TB-S256`, and refresh tokens to the redeeming client. Small pure functions:
 * codes, refresh tokens and pending sign-ins stay in the application's own store.
 *
 * @packageDocumentation
 */
export {
  TokenBindingPkceMethods,
  bindAuthorizationCode,
  checkAuthorizationCodeBinding,
  nativeCodeChallenge,
  referredTokenBindingCodeVerifier,
  type CodeBinding,
  type CodeRedemption,
  type PkceParameters,
  type TokenBindingPkceMethod,
} from './codes.js';
export { TokenBindingMetadataNames, clientTokenBindingMetadata, providerTokenBindingMetadata } from './metadata.js';
export {
  bindRefreshToken,
  checkRefreshTokenBinding,
  federationTokenBinding,
  issueReferredAccessToken,
  issueReferredIdToken,
  signIdToken,
  type FederationRequest,
  type RefreshTokenBinding,
  type SignIdTokenOptions,
} from './provider.js';
export {
  authorizationRequestUrl,
  completeSignIn,
  createIdTokenVerifier,
  redirectToSignIn,
  type AuthorizationRequestOptions,
  type CompletedSignIn,
  type IdTokenVerifier,
  type IdTokenVerifierOptions,
  type VerifiedIdToken,
} from './rp.js';
