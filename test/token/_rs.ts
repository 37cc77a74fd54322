/**
 * Token test helpers: an issuer (ES256 keys, a JWKS), access tokens minted with jose, DPoP proofs
 * with any claim set, and a resource server on tokbind's createServer over real TLS.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { KeyObject, hash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SignJWT, exportJWK, generateKeyPair, type JSONWebKeySet, type JWK, type JWTPayload } from 'jose';
import { Agent, fetch } from 'undici';
import { createServer } from '../../src/http/server.js';
import { sendAccessTokenChallenge } from '../../src/token/respond.js';
import { TOKEN_CHANNEL_NAME, createAccessTokenVerifier, type AccessTokenVerifier, type AccessTokenVerifierOptions, type TokenEvent } from '../../src/token/verify.js';
import { isTokenBindingError } from '../../src/errors.js';
import { listen, testCertificate } from '../_tls.js';

export const ISSUER = 'https://as.test';
export const AUDIENCE = 'https://rs.test';

export interface Issuer {
  readonly privateKey: KeyObject;
  readonly jwks: JSONWebKeySet;
  readonly kid: string;
  mint(claims: JWTPayload, options?: { alg?: string; exp?: number; iss?: string; aud?: string; key?: KeyObject; kid?: string }): Promise<string>;
}

export async function createIssuer(alg = 'ES256'): Promise<Issuer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomBytes(6).toString('hex');
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } as JWK;
  return {
    privateKey: KeyObject.from(privateKey),
    jwks: { keys: [jwk] },
    kid,
    async mint(claims, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ sub: 'alice', ...claims })
        .setProtectedHeader({ alg: options.alg ?? alg, kid: options.kid ?? kid })
        .setIssuer(options.iss ?? ISSUER)
        .setAudience(options.aud ?? AUDIENCE)
        .setIssuedAt(now)
        .setExpirationTime(options.exp ?? now + 300)
        .sign((options.key ?? privateKey) as KeyObject);
    },
  };
}

/** A DPoP proof with the given claims and header (defaults: a valid proof for `htm`/`htu`/`token`). */
export async function makeProof(
  key: { privateKey: KeyObject; jwk: JWK },
  claims: { htm: string; htu: string; token?: string; [k: string]: unknown },
  header: Record<string, unknown> = {},
): Promise<string> {
  const { token, ...rest } = claims;
  const body: Record<string, unknown> = {
    jti: randomBytes(16).toString('base64url'),
    iat: Math.floor(Date.now() / 1000),
    ...(token === undefined ? {} : { ath: hash('sha256', token, 'base64url') }),
    ...rest,
  };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  return new SignJWT(body).setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk, ...header } as never).sign(key.privateKey);
}

export async function dpopKey(): Promise<{ privateKey: KeyObject; jwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const { kty, crv, x, y } = await exportJWK(publicKey);
  return { privateKey: KeyObject.from(privateKey), jwk: { kty: kty!, crv: crv!, x: x!, y: y! } };
}

export interface ResourceServer {
  readonly url: string;
  readonly port: number;
  readonly verifier: AccessTokenVerifier;
  close(): Promise<void>;
}

/** A tokbind server (client certificates requested, self-signed accepted) answering GET /whoami through the verifier. */
export async function startResourceServer(options: Partial<AccessTokenVerifierOptions> & { jwks: AccessTokenVerifierOptions['jwks'] }): Promise<ResourceServer> {
  const verifier = createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, ...options });
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    verifier.verify(req).then(
      (token) => {
        const body = JSON.stringify({ sub: token.payload.sub, method: token.method, scheme: token.scheme });
        res.writeHead(200, { 'content-type': 'application/json', ...(token.dpopNonce ? { 'dpop-nonce': token.dpopNonce } : {}) });
        res.end(body);
      },
      (err: unknown) => {
        if (isTokenBindingError(err)) return sendAccessTokenChallenge(res, verifier, err);
        res.writeHead(500).end(String(err));
      },
    );
  };
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert, requestCert: true, rejectUnauthorized: false }, handler);
  server.on('tlsClientError', () => {});
  const listening = await listen(server);
  return { url: `https://127.0.0.1:${listening.port}`, port: listening.port, verifier, close: listening.close };
}

/** A client without Token Binding (and without a certificate unless given). */
export function plainAgent(tls: { cert?: string; key?: string; ca?: string } = {}): Agent {
  return new Agent({ connect: { ca: testCertificate.ca, servername: 'localhost', ...tls } });
}

export async function plainGet(url: string, headers: Record<string, string>, agent: Agent, method = 'GET'): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const res = await fetch(url, { method, headers, dispatcher: agent });
  const text = await res.text();
  return { status: res.status, headers: res.headers as unknown as Headers, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

/** Collects `tokbind:token` events while `fn` runs (serial tests only). */
export async function collectTokenEvents<T>(fn: () => Promise<T>): Promise<{ result: T; events: TokenEvent[] }> {
  const events: TokenEvent[] = [];
  const onMessage = (message: unknown): void => void events.push(message as TokenEvent);
  diagnosticsChannel.subscribe(TOKEN_CHANNEL_NAME, onMessage);
  try {
    return { result: await fn(), events };
  } finally {
    diagnosticsChannel.unsubscribe(TOKEN_CHANNEL_NAME, onMessage);
  }
}
