/**
 * Fastify glue (`tokbind/fastify`): a plugin that verifies Sec-Token-Binding (RFC 8473 §2) in an
 * `onRequest` hook, exposes the result as `request.tokenBinding`, and answers a rejection with
 * tokbind's 400 `application/problem+json`. Thin over src/http: verification, header stripping
 * and the problem document are the server's own.
 */
import type { FastifyPluginCallback, FastifyReply, RawServerBase, RouteGenericInterface } from 'fastify';
import fp from 'fastify-plugin';
import { TokenBindingError } from '../errors.js';
import { resolveTokenBindingOptions, type ResolvedTokenBindingOptions } from '../http/options.js';
import { PROBLEM_CONTENT_TYPE, problemDetails } from '../http/problem.js';
import { adoptForwardedVerdict } from '../http/server.js';
import { resolveTrustProxy, verifyFromTrustedProxy, type ResolvedTrustProxy } from '../http/trust-proxy.js';
import type { TokenBindingResult } from '../http/result.js';
import { verifyIncomingRequest, type TokenBindingAdapterOptions } from './request.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The verified Token Binding of this request (RFC 8471 §4.2), set by the tokbind plugin's
     * `onRequest` hook: null when the request carried no Sec-Token-Binding.
     */
    tokenBinding: TokenBindingResult | null;
  }
}

export type { TokenBindingAdapterOptions as FastifyTokenBindingOptions } from './request.js';
export type { TokenBindingResult, VerifiedID } from '../http/result.js';

/** The same 400 tokbind's server sends: never cached, never sniffed, body from the code alone. */
function reject(reply: FastifyReply<RouteGenericInterface, RawServerBase>, error: TokenBindingError): void {
  void reply
    .code(400)
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff')
    .header('content-type', PROBLEM_CONTENT_TYPE)
    // A Buffer, so Fastify sends it as is: a JSON string would get `; charset=utf-8` appended,
    // and the response should be byte for byte the one tokbind's server sends.
    .send(Buffer.from(JSON.stringify(problemDetails(error))));
}

const plugin: FastifyPluginCallback<TokenBindingAdapterOptions, RawServerBase> = (fastify, options, done) => {
  let resolved: ResolvedTokenBindingOptions;
  let trust: ResolvedTrustProxy | null;
  try {
    // Keys Fastify adds to plugin options (`prefix`, …) are not ours and are ignored.
    resolved = resolveTokenBindingOptions(options);
    trust = options.trustProxy === undefined ? null : resolveTrustProxy(options.trustProxy);
  } catch (err) {
    // A callback plugin reports setup errors through done(): register()/ready() then reject.
    done(err as Error);
    return;
  }
  // Registered again in a child scope (say, `required: true` under /api), the decorator is inherited.
  if (!fastify.hasRequestDecorator('tokenBinding')) fastify.decorateRequest('tokenBinding', null);
  fastify.addHook('onRequest', (request, reply, next) => {
    if (trust !== null) {
      // Behind a trusted proxy the assertion check is asynchronous (WebCrypto, via jose).
      verifyFromTrustedProxy(request.raw, resolved, trust, request.raw.url ?? '/').then((forwarded) => {
        const verdict = forwarded === undefined ? verifyIncomingRequest(request.raw, resolved) : adoptForwardedVerdict(request.raw, resolved, forwarded);
        if (verdict instanceof TokenBindingError) return reject(reply, verdict);
        request.raw.tokenBinding = verdict;
        request.tokenBinding = verdict;
        next();
      }, next);
      return;
    }
    const verdict = verifyIncomingRequest(request.raw, resolved);
    if (verdict instanceof TokenBindingError) {
      reject(reply, verdict);
      return;
    }
    // On the raw request too, where a tokbind server puts it: a nested registration (or any
    // tokbind glue after this one) then reuses the verdict instead of verifying again.
    request.raw.tokenBinding = verdict;
    request.tokenBinding = verdict;
    next();
  });
  done();
};

/**
 * Fastify plugin: verifies each request's Sec-Token-Binding (RFC 8471 §4.2, RFC 8473 §2) in an
 * `onRequest` hook and sets `request.tokenBinding` (null without a header). An invalid,
 * duplicated or — with `required: true` — missing header is answered with a 400
 * `application/problem+json` before any route runs. Built with fastify-plugin: registered at the
 * root it applies to every route; registered inside a scope it applies to that scope.
 *
 * Every option is this registration's own. With tokbind's `createServer` as the `serverFactory`
 * (or `attachTokenBinding(app.server)` before `listen`), the server's verdict is reused when it
 * was reached under the same `keyParameters`, `maxHeaderLength` and `backend`, with this
 * registration's `required` and `onInvalid` applied again; otherwise the header is verified under
 * these options. With Fastify's own `https` option (and `http2: true`), the connection's facts are
 * taken from `request.raw.socket` — for HTTP/2 from the session — on its first request, without
 * fixing this scope's options for another; such a server does not see WebSocket upgrades, does
 * not refuse TLS 1.2 renegotiation unless `https.secureOptions` includes
 * `SSL_OP_NO_RENEGOTIATION`, and cannot inspect the ClientHello (`attachTokenBinding` does).
 *
 * @example
 * ```ts
 * import { createServer } from 'tokbind'
 * import { tokenBinding } from 'tokbind/fastify'
 * const app = Fastify({ serverFactory: (handler) => createServer({ key, cert }, handler) })
 * await app.register(tokenBinding, { required: true })
 * app.get('/me', async (request) => ({ tbh: request.tokenBinding?.provided.hash }))
 * ```
 */
export const tokenBinding = fp(plugin, { fastify: '5.x', name: 'tokbind' });
