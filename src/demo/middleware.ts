/**
 * Running connect-style middleware (express-session, tokbind/session) on a plain Node request,
 * as the demos do without Express.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** A connect-style middleware on the plain Node request. */
export type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/**
 * Runs `middleware`: true when it called `next()`, false when it answered the request itself (a
 * refused session never calls next: resolved on 'finish'); rejects with the error it passed on.
 */
export function runMiddleware(middleware: Middleware, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onFinish = (): void => resolve(false);
    res.once('finish', onFinish);
    middleware(req, res, (err) => {
      res.off('finish', onFinish);
      if (err === undefined || err === null) resolve(true);
      else reject(err as Error);
    });
  });
}
