/**
 * The demo's story, run against any server that speaks the demo app's routes: a victim logs in
 * over Token Binding, an attacker steals its cookie and tries three ways to use it. Each step
 * states what it expects and checks it, so the demo doubles as an end-to-end test (CI runs it).
 */
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { TokenBindingAgent } from '../client/agent.js';
import { MemoryKeyStore } from '../client/keystore.js';
import { SEC_TOKEN_BINDING_HEADER } from '../client/referred.js';
import { tokenBindingScope } from '../client/scope.js';
import { tokenBindingHash } from '../crypto/hash.js';
import { SESSION_COOKIE } from './app.js';

/** One step of the scenario: what was sent, what came back, and whether that was expected. */
export interface DemoStep {
  readonly actor: 'victim' | 'attacker';
  /** What was sent, in a few words. */
  readonly action: string;
  /** What came back, in a few words (`403 ERR_TB_SESSION_BINDING_MISMATCH`, `200 {"user":"alice"}`). */
  readonly outcome: string;
  /** What the step expects (`403 ERR_TB_SESSION_BINDING_MISMATCH`). */
  readonly expected: string;
  /** Why the server answered as it did, when it answered as expected. */
  readonly why: string;
  /** Extra facts worth a line of their own (the bound `tbh`, the captured header). */
  readonly notes: readonly string[];
  readonly ok: boolean;
}

/** Options of {@link runDemoScenario}. */
export interface DemoScenarioOptions {
  /** The certificate to trust (the demo's self-signed one). */
  readonly ca?: string | Buffer;
  /** Skip certificate verification instead (a server whose certificate you do not have). */
  readonly insecure?: boolean;
  /** Called after each step, as it completes. */
  readonly onStep?: (step: DemoStep) => void;
  /** Who logs in. Default `alice`. */
  readonly user?: string;
  /** Per-request time limit in ms. Default 5000. */
  readonly timeoutMs?: number;
}

/** The outcome of {@link runDemoScenario}: `ok` only when every step behaved as expected. */
export interface DemoScenarioResult {
  readonly ok: boolean;
  readonly steps: readonly DemoStep[];
}

interface Exchange {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly json: Record<string, unknown> | null;
  readonly text: string;
  /** The Sec-Token-Binding value the request went out with, if any. */
  readonly sentBinding: string | undefined;
}

interface SendOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** A TokenBindingAgent, or none: a plain request on a connection of its own. */
  readonly agent?: https.Agent;
}

function request(url: URL, tls: https.RequestOptions, timeoutMs: number, options: SendOptions): Promise<Exchange> {
  const { method = 'GET', headers = {}, body, agent } = options;
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        ...tls,
        method,
        // Object headers: the binding agent must see them before anything is rendered.
        headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        agent: agent ?? false,
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> | null = null;
          try {
            const parsed = JSON.parse(text) as unknown;
            if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
          } catch {
            // Not JSON: the outcome shows the status alone.
          }
          const sent = req.getHeader(SEC_TOKEN_BINDING_HEADER);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json, text, sentBinding: typeof sent === 'string' ? sent : undefined });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** `403 ERR_TB_SESSION_BINDING_MISMATCH`, `401 not_logged_in`, or `200 {"user":"alice"}`. */
function summarize(x: Exchange): string {
  const label = x.json?.['code'] ?? x.json?.['error'];
  if (typeof label === 'string') return `${x.status} ${label}`;
  const body = x.json === null ? x.text.trim() : JSON.stringify(x.json);
  return body === '' ? String(x.status) : `${x.status} ${body.length > 60 ? body.slice(0, 59) + '…' : body}`;
}

function abbreviate(value: string, keep: number): string {
  return value.length > keep ? `${value.slice(0, keep)}… (${value.length} chars)` : value;
}

function sessionCookie(headers: IncomingHttpHeaders): string | undefined {
  for (const line of headers['set-cookie'] ?? []) {
    const pair = line.split(';', 1)[0]!.trim();
    if (pair.startsWith(`${SESSION_COOKIE}=`) && pair.length > SESSION_COOKIE.length + 1) return pair;
  }
  return undefined;
}

/**
 * Runs the stolen-cookie scenario against a server at `url` that serves the demo app
 * (`createDemoApp`) behind tokbind's binding-aware server:
 *
 * 1. victim (a `TokenBindingAgent`): `POST /login` → 200 and a cookie bound to its ID's `tbh`;
 * 2. victim: `GET /profile` with the cookie and its binding → 200 `{"user"}`;
 * 3. attacker, stolen cookie and the victim's captured `Sec-Token-Binding` on a new connection
 *    (a plain https request) → 400 `ERR_TB_SIGNATURE_INVALID`: the signature covers the EKM of
 *    the victim's connection (RFC 8471 §3.3), which this one does not share; the request never
 *    reaches the session;
 * 4. attacker, stolen cookie, its own key → 403 `ERR_TB_SESSION_BINDING_MISMATCH`, and the
 *    server destroys the session (a stolen cookie is a theft signal);
 * 5. victim: `GET /profile` → 401 `not_logged_in`: its session is gone;
 * 6. victim: `POST /login` again → 200 and a new bound cookie;
 * 7. attacker, the new cookie stolen, no Token Binding → 401 `ERR_TB_SESSION_BINDING_MISSING`
 *    (destroyed too).
 *
 * Every step is checked; the result is `ok` only when all behaved. Never throws for a server
 * that misbehaves or does not answer: that step fails.
 *
 * @example
 * ```ts
 * const { ok, steps } = await runDemoScenario('https://127.0.0.1:8443', { ca: cert })
 * ```
 */
export async function runDemoScenario(url: string | URL, options: DemoScenarioOptions = {}): Promise<DemoScenarioResult> {
  const base = new URL(url);
  if (base.protocol !== 'https:') throw new TypeError('the demo scenario needs an https: URL');
  const { ca, insecure = false, onStep, user = 'alice', timeoutMs = 5000 } = options;
  const tls: { rejectUnauthorized?: boolean; ca?: string | Buffer } = insecure ? { rejectUnauthorized: false } : ca === undefined ? {} : { ca };
  const victim = new TokenBindingAgent({ ...tls, keyStore: new MemoryKeyStore() });
  const attacker = new TokenBindingAgent({ ...tls, keyStore: new MemoryKeyStore() });
  const steps: DemoStep[] = [];
  const at = (path: string): URL => new URL(path, base);

  async function step(
    actor: DemoStep['actor'],
    action: string,
    expected: string,
    why: string,
    run: () => Promise<{ exchange: Exchange | null; ok: boolean; notes?: string[]; outcome?: string }>,
  ): Promise<void> {
    let outcome: string;
    let ok = false;
    let notes: string[] = [];
    try {
      const r = await run();
      ok = r.ok;
      notes = r.notes ?? [];
      outcome = r.outcome ?? (r.exchange === null ? 'not sent' : summarize(r.exchange));
    } catch (err) {
      outcome = `request failed: ${(err as { code?: string }).code ?? (err as Error).message}`;
    }
    const done: DemoStep = Object.freeze({ actor, action, outcome, expected, why, notes: Object.freeze(notes), ok });
    steps.push(done);
    onStep?.(done);
  }

  try {
    let cookie: string | undefined;
    const withCookie = (): Record<string, string> => (cookie === undefined ? {} : { cookie });
    const login = (action: string, expected: string, why: string) =>
      step('victim', action, expected, why, async () => {
        const exchange = await request(at('/login'), tls, timeoutMs, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ user }).toString(),
          agent: victim,
        });
        cookie = sessionCookie(exchange.headers);
        const tbh = tokenBindingHash((await victim.binder.key(tokenBindingScope(base))).id);
        if (exchange.status !== 200) return { exchange, ok: false };
        if (cookie === undefined) return { exchange, ok: false, outcome: '200 but no session cookie' };
        if (exchange.json?.['tbh'] !== tbh) return { exchange, ok: false, outcome: "200 but the session is not bound to the victim's ID" };
        return {
          exchange,
          ok: true,
          outcome: `200, cookie ${cookie.slice(0, SESSION_COOKIE.length + 7)}…`,
          notes: [`session bound to tbh ${tbh} = base64url(SHA-256(victim's Token Binding ID))`],
        };
      });

    await login(`POST /login user=${user}, with its Token Binding`, '200 and a session cookie bound to its ID', 'the session remembers its Token Binding ID');

    let captured: string | undefined;
    await step('victim', 'GET /profile with cookie + its own binding', `200 {"user":"${user}"}`, 'same Token Binding ID as at login', async () => {
      const exchange = await request(at('/profile'), tls, timeoutMs, { headers: withCookie(), agent: victim });
      captured = exchange.sentBinding;
      const ok = exchange.status === 200 && exchange.json?.['user'] === user && captured !== undefined;
      return { exchange, ok, notes: captured === undefined ? [] : [`sent Sec-Token-Binding: ${abbreviate(captured, 24)}, which the attacker captures`] };
    });

    await step(
      'attacker',
      "stolen cookie + victim's captured Sec-Token-Binding, new connection",
      '400 ERR_TB_SIGNATURE_INVALID',
      "tokbind: the victim signed its own connection's EKM, not this one's",
      async () => {
        if (captured === undefined) return { exchange: null, ok: false, outcome: 'nothing captured to replay' };
        const exchange = await request(at('/profile'), tls, timeoutMs, {
          headers: { ...withCookie(), [SEC_TOKEN_BINDING_HEADER]: captured },
        });
        const problem = (exchange.headers['content-type'] ?? '').startsWith('application/problem+json');
        return { exchange, ok: exchange.status === 400 && problem && exchange.json?.['code'] === 'ERR_TB_SIGNATURE_INVALID' };
      },
    );

    await step(
      'attacker',
      'stolen cookie, own key',
      '403 ERR_TB_SESSION_BINDING_MISMATCH',
      'the cookie is bound to another Token Binding ID: the server destroys the session',
      async () => {
        const exchange = await request(at('/profile'), tls, timeoutMs, { headers: withCookie(), agent: attacker });
        const ok = exchange.status === 403 && exchange.json?.['code'] === 'ERR_TB_SESSION_BINDING_MISMATCH' && exchange.sentBinding !== undefined;
        return { exchange, ok };
      },
    );

    await step('victim', 'GET /profile again, cookie + its own binding', '401 not_logged_in', 'the theft signal ended the session: log in again', async () => {
      const exchange = await request(at('/profile'), tls, timeoutMs, { headers: withCookie(), agent: victim });
      return { exchange, ok: exchange.status === 401 && exchange.json?.['error'] === 'not_logged_in' };
    });

    await login(`POST /login user=${user} again`, '200 and a new bound session cookie', 'a new session, bound to the same Token Binding ID');

    await step(
      'attacker',
      'new cookie stolen, no Token Binding',
      '401 ERR_TB_SESSION_BINDING_MISSING',
      'the session is bound, the request is not: destroyed too',
      async () => {
        const exchange = await request(at('/profile'), tls, timeoutMs, { headers: withCookie() });
        return { exchange, ok: exchange.status === 401 && exchange.json?.['code'] === 'ERR_TB_SESSION_BINDING_MISSING' };
      },
    );
  } finally {
    victim.destroy();
    attacker.destroy();
  }
  return { ok: steps.every((s) => s.ok), steps };
}
