/**
 * Access token figures (tokbind/token): the per-request cost of each `cnf` check, beside a bare
 * jose `jwtVerify` of the same tokens, and beside what users would pick instead —
 * express-oauth2-jwt-bearer's DPoP and mTLS verification — on the same tokens and proofs.
 *
 * - `token.tbh_ratio`: tokbind's verifier on a `cnf.tbh` token (JWT + tbh compare against the
 *   request's verified Token Binding ID) over jose `jwtVerify` of the same token.
 * - `token.mtls_vs_peer`: tokbind on a `cnf["x5t#S256"]` token (JWT + SHA-256 of the client
 *   certificate) over express-oauth2-jwt-bearer `auth({ getCertificate })` on the same token.
 * - `token.dpop_vs_peer`: tokbind on a `cnf.jkt` token with its DPoP proof (JWT, proof: typ,
 *   alg, embedded key, htm, htu, iat, ath, thumbprint, and the `jti` replay cache ON) over
 *   express-oauth2-jwt-bearer `auth({ dpop })`, which keeps no replay cache, on the same token
 *   and proofs. Each proof is used once per pass; a pass over all proofs starts tokbind on a
 *   fresh verifier (fresh cache), since a second use would rightly be refused as a replay.
 *
 * Every case runs in-process on the same request object (headers, method, URL, a socket whose
 * `getPeerCertificate()` returns the same certificate); both sides use jose with a local JWKS.
 * Each group runs in its own child process (one verifier set per heap).
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { SignJWT, createLocalJWKSet, exportJWK, jwtVerify, type JSONWebKeySet, type JWK } from 'jose';
import { auth } from 'express-oauth2-jwt-bearer';
import { generateTokenBindingKey } from '../src/crypto/sign.js';
import { createVerifiedID, type TokenBindingResult } from '../src/http/result.js';
import { DpopSigner } from '../src/client/dpop.js';
import { certificateConfirmation, tokenBindingConfirmation } from '../src/token/cnf.js';
import { createAccessTokenVerifier, type AccessTokenRequest } from '../src/token/verify.js';
import { createBenchCertificate } from './lib/cert.js';
import type { BenchContext, Budget } from './lib/context.js';
import { compareAsync, type AsyncMicroCase } from './lib/micro-async.js';
import type { MicroResult } from './lib/micro.js';
import { serveParent } from './lib/proc.js';
import type { FigureSpec } from './lib/report.js';
import { generateKeyPair } from './lib/keys.js';
import { pairedRatio } from './lib/stats.js';

const ISSUER = 'https://as.bench';
const AUDIENCE = 'https://rs.bench';
const HOST = 'rs.bench';
const PROOFS = 8192;

interface Setup {
  readonly jwks: JSONWebKeySet;
  readonly mint: (claims: Record<string, unknown>) => Promise<string>;
}

async function issuer(): Promise<Setup> {
  const { privateKey, publicKey } = generateKeyPair('ec');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' } as JWK;
  return {
    jwks: { keys: [jwk] },
    mint: (claims) =>
      new SignJWT({ sub: 'alice', scope: 'read write', client_id: 'bench', ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime('1h')
        .setJti(randomBytes(12).toString('base64url'))
        .sign(privateKey),
  };
}

/** One request object both sides read: what Node's (and Express's) request carries. */
function request(headers: Record<string, string>, cert: X509Certificate, tokenBinding: TokenBindingResult | null): AccessTokenRequest & Record<string, unknown> {
  const all = { host: HOST, ...headers };
  const peer = { raw: cert.raw };
  return {
    headers: all,
    rawHeaders: Object.entries(all).flat(),
    method: 'GET',
    url: '/whoami',
    originalUrl: '/whoami',
    protocol: 'https',
    query: {},
    body: undefined,
    socket: { encrypted: true, remoteAddress: '127.0.0.1', getPeerCertificate: () => peer },
    tokenBinding,
    get: (name: string) => (all as Record<string, string>)[name.toLowerCase()],
    is: () => false,
  } as unknown as AccessTokenRequest & Record<string, unknown>;
}

function peerCall(middleware: ReturnType<typeof auth>, req: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    void middleware(req as never, {} as never, (err?: unknown) => (err === undefined ? resolve() : reject(err as Error)));
  });
}

function figure(key: string, label: string, res: Map<string, MicroResult>, name: string, base: string, baseLabel: string, target?: number, note?: string): FigureSpec {
  const candidate = res.get(name)!;
  const baseline = res.get(base)!;
  return {
    key: `token.${key}_ops`,
    label,
    unit: 'ops/s',
    summary: candidate.ops,
    baseline: { key: `token.${key}_baseline_ops`, label: baseLabel, summary: baseline.ops },
    ratio: { key: `token.${key === 'tbh' ? 'tbh_ratio' : key}`, summary: pairedRatio(candidate.ops.rounds, baseline.ops.rounds) },
    ...(target === undefined ? {} : { target: { on: 'ratio' as const, op: '>=' as const, value: target } }),
    ...(note === undefined ? {} : { note }),
  };
}

const groups: Record<string, (budget: Budget) => Promise<{ figures: FigureSpec[] }>> = {
  async tbh(budget) {
    const { jwks, mint } = await issuer();
    const id = createVerifiedID(generateTokenBindingKey('ecdsap256').id);
    const token = await mint({ cnf: tokenBindingConfirmation(id) });
    const keys = createLocalJWKSet(jwks);
    const verifier = createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks });
    const cert = new X509Certificate((await createBenchCertificate()).cert);
    const req = request({ authorization: `Bearer ${token}` }, cert, { provided: id, referred: null, others: [] });
    const cases: AsyncMicroCase[] = [
      { name: 'jose', run: async (n) => { for (let i = 0; i < n; i++) await jwtVerify(token, keys, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['ES256'] }); } },
      { name: 'tokbind', run: async (n) => { for (let i = 0; i < n; i++) if ((await verifier.verify(req)).method !== 'tbh') throw new Error('tbh'); } },
    ];
    const res = await compareAsync(cases, { rounds: budget.rounds, roundMs: budget.microMs, warmupMs: budget.microWarmupMs });
    return { figures: [figure('tbh', 'token.tbh_ops (JWT + cnf.tbh)', res, 'tokbind', 'jose', 'jose jwtVerify', 0.9)] };
  },

  async mtls(budget) {
    const { jwks, mint } = await issuer();
    const cert = new X509Certificate((await createBenchCertificate()).cert);
    const token = await mint({ cnf: certificateConfirmation(cert.raw) });
    const keys = createLocalJWKSet(jwks);
    const verifier = createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks });
    const peer = auth({
      issuer: ISSUER,
      audience: AUDIENCE,
      publicKey: jwks as never,
      tokenSigningAlg: 'ES256',
      mtls: { enabled: true, required: true },
      getCertificate: (req) => (req.socket as unknown as { getPeerCertificate(): { raw: Buffer } }).getPeerCertificate().raw,
    });
    const req = request({ authorization: `Bearer ${token}` }, cert, null);
    const cases: AsyncMicroCase[] = [
      { name: 'peer', run: async (n) => { for (let i = 0; i < n; i++) await peerCall(peer, req); } },
      { name: 'tokbind', run: async (n) => { for (let i = 0; i < n; i++) if ((await verifier.verify(req)).method !== 'x5t#S256') throw new Error('x5t'); } },
      { name: 'jose', run: async (n) => { for (let i = 0; i < n; i++) await jwtVerify(token, keys, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['ES256'] }); } },
    ];
    const res = await compareAsync(cases, { rounds: budget.rounds, roundMs: budget.microMs, warmupMs: budget.microWarmupMs });
    return {
      figures: [
        figure('mtls_vs_peer', 'token.mtls_ops (JWT + cnf.x5t#S256)', res, 'tokbind', 'peer', 'express-oauth2-jwt-bearer mTLS', 1.0),
        figure('x5t_ratio', 'token.mtls_ops (vs bare jose)', res, 'tokbind', 'jose', 'jose jwtVerify'),
      ],
    };
  },

  async dpop(budget) {
    const { jwks, mint } = await issuer();
    const cert = new X509Certificate((await createBenchCertificate()).cert);
    const signer = new DpopSigner(generateKeyPair('ec').privateKey);
    const token = await mint({ cnf: { jkt: await signer.thumbprint() } });
    const url = `https://${HOST}/whoami`;
    const requests: (AccessTokenRequest & Record<string, unknown>)[] = [];
    for (let i = 0; i < PROOFS; i++) {
      requests.push(request({ authorization: `DPoP ${token}`, dpop: await signer.proof({ method: 'GET', url, accessToken: token }) }, cert, null));
    }
    const keys = createLocalJWKSet(jwks);
    // The same iat window as the peer's default (300 s in the past); our replay cache on.
    const fresh = () => createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks, dpop: { maxAge: 300 } });
    let verifier = fresh();
    const peer = auth({ issuer: ISSUER, audience: AUDIENCE, publicKey: jwks as never, tokenSigningAlg: 'ES256', dpop: { enabled: true, required: true } });
    let ours = 0;
    let theirs = 0;
    const cases: AsyncMicroCase[] = [
      {
        name: 'peer',
        run: async (n) => {
          for (let i = 0; i < n; i++) {
            await peerCall(peer, requests[theirs]!);
            if (++theirs === PROOFS) theirs = 0;
          }
        },
      },
      {
        name: 'tokbind',
        run: async (n) => {
          for (let i = 0; i < n; i++) {
            if ((await verifier.verify(requests[ours]!)).method !== 'jkt') throw new Error('jkt');
            if (++ours === PROOFS) {
              ours = 0;
              verifier = fresh();
            }
          }
        },
      },
      { name: 'jose', run: async (n) => { for (let i = 0; i < n; i++) await jwtVerify(token, keys, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['ES256'] }); } },
    ];
    const res = await compareAsync(cases, { rounds: budget.rounds, roundMs: budget.microMs, warmupMs: budget.microWarmupMs });
    return {
      figures: [
        figure('dpop_vs_peer', 'token.dpop_ops (JWT + DPoP proof, replay cache on)', res, 'tokbind', 'peer', 'express-oauth2-jwt-bearer DPoP (no replay cache)', 1.0),
        figure('jkt_ratio', 'token.dpop_ops (vs bare jose on the token)', res, 'tokbind', 'jose', 'jose jwtVerify', undefined, 'a DPoP request verifies two signatures (token and proof): ~0.5 is the floor'),
      ],
    };
  },
};

export async function benchToken(ctx: BenchContext): Promise<void> {
  for (const group of Object.keys(groups)) {
    const child = ctx.spawn(new URL(import.meta.url), { role: 'server', name: `token ${group} benchmark` });
    try {
      const reply = await child.request({ cmd: 'group', group, budget: ctx.budget }, ctx.quick ? 60_000 : 600_000);
      for (const f of (reply.result as { figures: FigureSpec[] }).figures) ctx.report.figure(f);
    } finally {
      await child.close();
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send !== undefined) {
  serveParent(async (msg) => {
    const run = groups[msg.group as string];
    if (run === undefined) throw new Error(`unknown group ${String(msg.group)}`);
    return { result: await run(msg.budget as Budget) };
  });
}
