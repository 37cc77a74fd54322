/**
 * express-session glue: a middleware, mounted after `session()`, that checks every request's
 * session against its binding (see ./binding.ts for the policy ladder). It is connect-style
 * `(req, res, next)`, so it runs under Express and on a plain Node handler alike; it imports
 * nothing from Express or express-session at run time.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendProblem } from '../http/problem.js';
import { checkSessionBinding, resolveSessionBindingOptions, type SessionBindingOptions } from './binding.js';
import { enforceRefusal, requestTokenBinding, sessionOf } from './bind.js';

/** A connect/Express middleware. */
export type SessionBindingMiddleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/**
 * express-session middleware: on every request, compares the session's binding with the
 * request's verified Token Binding (`req.tokenBinding`) under `policy`. A bound session presented
 * with another client's Token Binding ID is answered 403, with none 401 (`application/problem+json`,
 * codes `ERR_TB_SESSION_BINDING_MISMATCH` / `ERR_TB_SESSION_BINDING_MISSING`), and destroyed in
 * the store unless `onMismatch: 'reject'`; under `required` an authenticated unbound session is
 * answered 401 `ERR_TB_SESSION_UNBOUND` (and kept). Every decision on a bound or authenticated
 * session is published on `tokbind:session`. A request without a session passes untouched.
 *
 * Mount it after express-session and after tokbind's verification (tokbind's `createServer`, or
 * `tokenBinding()` from tokbind/express): a request on which no verification ran is passed to
 * `next(err)` with a `TypeError` rather than treated as unbound.
 *
 * @throws {TypeError} at setup, for invalid options
 * @example
 * ```ts
 * app.use(session({ secret, resave: false, saveUninitialized: false, cookie: { secure: true } }))
 * app.use(sessionBinding({ policy: 'required' }))
 * app.post('/login', async (req, res) => { await bindSession(req); req.session.user = 'alice'; res.end() })
 * ```
 */
export function sessionBinding(options: SessionBindingOptions = {}): SessionBindingMiddleware {
  const resolved = resolveSessionBindingOptions(options);
  return function tokbindSessionBinding(req, res, next) {
    const session = sessionOf(req);
    if (session === null) return next();
    let refusal;
    try {
      refusal = checkSessionBinding(session, { tokenBinding: requestTokenBinding(req), raw: req }, resolved);
    } catch (err) {
      return next(err);
    }
    if (refusal === null) return next();
    enforceRefusal(req, session, refusal).then(
      () => sendProblem(res, refusal.error, refusal.status),
      (err: unknown) => next(err),
    );
  };
}
