/**
 * Token Binding metadata names, exactly as the drafts register them: OpenID Connect Token Bound
 * Authentication 1.0 draft 04 §5 (ID tokens) and draft-ietf-oauth-token-binding-08 §4 (access
 * and refresh tokens), plus the PKCE methods of §5 for `code_challenge_methods_supported`.
 */
import { TokenBindingPkceMethods } from './codes.js';

/** The metadata member names. */
export const TokenBindingMetadataNames = {
  /** RP registration: the `cnf` member it wants in ID tokens (`tbh`). */
  idTokenTokenBindingCnf: 'id_token_token_binding_cnf',
  /** OP metadata: the `cnf` members it can put in ID tokens. */
  idTokenTokenBindingCnfValuesSupported: 'id_token_token_binding_cnf_values_supported',
  /** Client registration: it supports token-bound access tokens. */
  clientAccessTokenTokenBindingSupported: 'client_access_token_token_binding_supported',
  /** Client registration: it supports token-bound refresh tokens. */
  clientRefreshTokenTokenBindingSupported: 'client_refresh_token_token_binding_supported',
  /** AS metadata: it issues token-bound access tokens. */
  asAccessTokenTokenBindingSupported: 'as_access_token_token_binding_supported',
  /** AS metadata: it issues token-bound refresh tokens. */
  asRefreshTokenTokenBindingSupported: 'as_refresh_token_token_binding_supported',
} as const;

/**
 * The provider (OP / AS) metadata members of a server that issues what tokbind/federation binds;
 * merge them into `/.well-known/openid-configuration` (or RFC 8414 metadata).
 *
 * @example
 * ```ts
 * res.json({ issuer, authorization_endpoint, token_endpoint, jwks_uri, ...providerTokenBindingMetadata() })
 * ```
 */
export function providerTokenBindingMetadata(): Record<string, unknown> {
  return {
    [TokenBindingMetadataNames.idTokenTokenBindingCnfValuesSupported]: ['tbh'],
    [TokenBindingMetadataNames.asAccessTokenTokenBindingSupported]: true,
    [TokenBindingMetadataNames.asRefreshTokenTokenBindingSupported]: true,
    code_challenge_methods_supported: [TokenBindingPkceMethods.referred, TokenBindingPkceMethods.native],
  };
}

/**
 * The client registration members (RFC 7591) of a relying party that wants token-bound ID,
 * access and refresh tokens.
 *
 * @example
 * ```ts
 * await register({ client_name: 'app', redirect_uris, ...clientTokenBindingMetadata() })
 * ```
 */
export function clientTokenBindingMetadata(): Record<string, unknown> {
  return {
    [TokenBindingMetadataNames.idTokenTokenBindingCnf]: 'tbh',
    [TokenBindingMetadataNames.clientAccessTokenTokenBindingSupported]: true,
    [TokenBindingMetadataNames.clientRefreshTokenTokenBindingSupported]: true,
  };
}
