/**
 * `tokbind demo` (what `npm start` runs): a binding-aware HTTPS server with a tiny login app, a
 * victim who logs in, and an attacker whose stolen cookie fails three ways. Then the server keeps
 * running for the user to poke at, until Ctrl-C; with `--once` it exits, 0 only if every step
 * behaved (CI runs it). `--serve` keeps the app running without the walkthrough.
 */
import type { RequestListener } from 'node:http';
import { runDemoScenario, type DemoStep } from '../demo/scenario.js';
import { randomBytes } from 'node:crypto';
import { createSelfSignedCertificate } from '../tls/certificate.js';
import { DemoStartError, parseDemoSessionStore, startDemoServer, type DemoServer, type DemoServerOptions, type DemoSessionStore } from '../demo/server.js';
import { announceListening, clusterOptions, isClusterPrimary, parseWorkerCount, runWorkers, sharedFromPrimary } from './cluster.js';
import { defineCommand, listenFailure, serverOptions } from './args.js';
import { runFederationScenario, startFederationDemo } from '../demo/federation.js';
import { ExitCode, UsageError, untilStopped, writeLine, type CliIo } from './io.js';

/** The port when neither `--port` nor `PORT` says otherwise. */
export const DEFAULT_DEMO_PORT = 8443;

/** Options of {@link runDemo}: the parsed command line, and what tests swap in. */
export interface RunDemoOptions {
  readonly io: CliIo;
  /** 0 picks a free port. */
  readonly port: number;
  /** Run the scenario and exit instead of serving until stopped. */
  readonly once: boolean;
  /** Stops a server left running (as Ctrl-C does). */
  readonly signal?: AbortSignal | undefined;
  /** The app to serve. Default: the demo app (`createDemoApp`). */
  readonly app?: RequestListener | undefined;
  /** Default 127.0.0.1. */
  readonly host?: string | undefined;
  /** Default memory. */
  readonly sessionStore?: DemoSessionStore | undefined;
  /** Keep the app running without the walkthrough (prints `listening on https://HOST:PORT`). */
  readonly serve?: boolean | undefined;
  /** Offer DBSC on login with this bound-cookie lifetime (seconds); undefined: no DBSC. */
  readonly dbscCookieTtl?: number | undefined;
  /** `--serve` only: certificate, session secret and PROXY protocol (see `startDemoServer`). */
  readonly server?: Pick<DemoServerOptions, 'tls' | 'secret' | 'proxyProtocol'> | undefined;
}

interface Style {
  readonly ok: (s: string) => string;
  readonly bad: (s: string) => string;
  readonly dim: (s: string) => string;
  readonly bold: (s: string) => string;
}

const sgr = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;
const COLOR: Style = { ok: sgr(32, 39), bad: sgr(31, 39), dim: sgr(2, 22), bold: sgr(1, 22) };
const PLAIN: Style = { ok: (s) => s, bad: (s) => s, dim: (s) => s, bold: (s) => s };

/** Colour only for a terminal, and never when NO_COLOR is set to anything (no-color.org). */
function styleFor(io: CliIo): Style {
  const tty = (io.stdout as { isTTY?: boolean }).isTTY === true;
  const noColor = io.env['NO_COLOR'] !== undefined && io.env['NO_COLOR'] !== '';
  return tty && !noColor ? COLOR : PLAIN;
}

function formatStep(step: DemoStep, style: Style): string[] {
  const head = step.ok
    ? `${style.ok('✔')} ${step.actor}: ${step.action} → ${style.bold(step.outcome)} ${style.dim(`(${step.why})`)}`
    : `${style.bad('✘')} ${step.actor}: ${step.action} → ${style.bold(step.outcome)} ${style.bad(`(expected ${step.expected})`)}`;
  return [head, ...step.notes.map((n) => style.dim(`    ${n}`))];
}

/**
 * Runs the demo: starts the server on 127.0.0.1, runs the stolen-cookie scenario
 * (`runDemoScenario`) against it, prints each step, and then either stops (`once`) or serves
 * until SIGINT/SIGTERM or `signal`. Returns 0 when every step behaved as expected, 1 otherwise
 * (or when the port cannot be bound).
 *
 * @example
 * ```ts
 * const code = await runDemo({ io, port: 0, once: true })
 * ```
 */
export async function runDemo(options: RunDemoOptions): Promise<number> {
  const { io, port, once: runOnce, signal, app, host = '127.0.0.1', sessionStore, serve = false, dbscCookieTtl } = options;
  const style = styleFor(io);
  const started = performance.now();
  let server: DemoServer;
  try {
    server = await startDemoServer({
      port,
      host,
      ...options.server,
      ...(sessionStore === undefined ? {} : { sessionStore }),
      ...(app === undefined ? {} : { app }),
      ...(dbscCookieTtl === undefined ? {} : { dbsc: { cookieTtlSeconds: dbscCookieTtl } }),
    });
  } catch (err) {
    if (!(err instanceof DemoStartError)) throw err;
    writeLine(io.stderr, err.listenError === undefined ? `tokbind demo: ${err.message}` : listenFailure('demo', host, port, err.listenError));
    return ExitCode.failure;
  }
  const origin = server.url;
  try {
    if (serve) {
      const stopped = untilStopped(signal);
      announceListening(io, origin, server.server);
      await stopped;
      return ExitCode.ok;
    }
    writeLine(io.stdout, style.bold("tokbind demo: a session cookie bound to the client's Token Binding ID (RFC 8471, RFC 8473)"));
    writeLine(io.stdout, `server ${origin}  (self-signed certificate; POST /login, GET /profile, GET /whoami)`);
    writeLine(io.stdout, '');
    const { ok, steps } = await runDemoScenario(origin, {
      ca: server.cert,
      onStep: (step) => formatStep(step, style).forEach((line) => writeLine(io.stdout, line)),
    });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const failed = steps.filter((s) => !s.ok).length;
    writeLine(io.stdout, '');
    writeLine(
      io.stdout,
      ok
        ? `${style.ok('✔')} all ${steps.length} steps behaved as expected in ${seconds} s: a stolen bound cookie is useless without the victim's private key.`
        : `${style.bad('✘')} ${failed} of ${steps.length} steps did not behave as expected.`,
    );
    if (!runOnce) {
      const stopped = untilStopped(signal);
      writeLine(io.stdout, '');
      writeLine(io.stdout, 'The server keeps running. Try:');
      writeLine(io.stdout, `  tokbind fetch ${origin}/whoami --insecure   ${style.dim('(in a clone: node dist/src/cli/main.js fetch …)')}`);
      writeLine(io.stdout, `  curl -k ${origin}/whoami   ${style.dim('(no Token Binding: "tokenBinding": null)')}`);
      writeLine(io.stdout, `  openssl s_client -connect ${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`);
      writeLine(io.stdout, 'Ctrl-C to stop.');
      await stopped;
    }
    return ok ? ExitCode.ok : ExitCode.failure;
  } finally {
    await server.close();
  }
}

/**
 * `tokbind demo --federation`: starts the identity provider and the app (src/demo/federation.ts),
 * runs the sign-in and the three attacks, prints each step; then stops (`once`) or serves until
 * SIGINT/SIGTERM. 0 only when every step behaved as described.
 */
async function runFederationDemo(io: CliIo, port: number, runOnce: boolean, signal: AbortSignal | undefined): Promise<number> {
  const style = styleFor(io);
  let demo: Awaited<ReturnType<typeof startFederationDemo>>;
  try {
    demo = await startFederationDemo({ port });
  } catch (err) {
    writeLine(io.stderr, listenFailure('demo', 'localhost', port, err as Error));
    return ExitCode.failure;
  }
  try {
    writeLine(io.stdout, style.bold('tokbind demo --federation: a token-bound sign-in across two sites (RFC 8473 §5, OpenID Connect Token Bound Authentication)'));
    writeLine(io.stdout, `identity provider ${demo.idp}   app ${demo.app}   (self-signed certificate; two key scopes)`);
    writeLine(io.stdout, '');
    const { ok, steps } = await runFederationScenario(demo, { onStep: (step) => formatStep(step, style).forEach((line) => writeLine(io.stdout, line)) });
    writeLine(io.stdout, '');
    writeLine(
      io.stdout,
      ok
        ? `${style.ok('✔')} all ${steps.length} steps behaved as expected: the ID token, the code and the cookie are useless to another client.`
        : `${style.bad('✘')} ${steps.filter((s) => !s.ok).length} of ${steps.length} steps did not behave as expected.`,
    );
    if (!runOnce) {
      const stopped = untilStopped(signal);
      writeLine(io.stdout, '');
      writeLine(io.stdout, `The servers keep running. Sign in: tokbind fetch '${demo.app}/login?user=alice' --insecure. Ctrl-C to stop.`);
      await stopped;
    }
    return ok ? ExitCode.ok : ExitCode.failure;
  } finally {
    await demo.close();
  }
}

/**
 * The `demo` command: `tokbind demo [--once | --serve] [--port N] [--host H]
 * [--session-store memory|redis://HOST:PORT]`; the port comes from `--port`, else `PORT`, else
 * 8443 (0 picks a free one). `--serve` runs the app without the walkthrough and prints
 * `listening on https://HOST:PORT` when ready. `signal` stops a server left running, as Ctrl-C does.
 *
 * @example
 * ```sh
 * npm start                 # tokbind demo: the scenario, then the server stays up
 * PORT=0 npm start -- --once
 * tokbind demo --serve --port 0 --session-store redis://127.0.0.1:6379
 * ```
 */
export const demo = defineCommand(
  {
    name: 'demo',
    summary: 'show a stolen cookie failing against a binding-aware server (what `npm start` runs)',
    description:
      'Starts a binding-aware HTTPS server with a tiny login app (POST /login with form field user, GET /profile, GET /whoami) ' +
      'whose sessions are bound with tokbind/session, logs a victim in, and shows the attacker\'s stolen cookie failing. ' +
      'Then the server keeps running until Ctrl-C. With --serve: the app alone, no walkthrough; prints ' +
      '"listening on https://HOST:PORT" once ready and runs until SIGINT/SIGTERM (then exits 0).',
    options: {
      ...serverOptions,
      port: { ...serverOptions.port, default: DEFAULT_DEMO_PORT },
      once: { type: 'boolean', description: 'exit after the scenario instead of serving (CI runs this)' },
      serve: { type: 'boolean', description: 'serve the demo app without the walkthrough (not with --once)' },
      federation: {
        type: 'boolean',
        description: 'the federation demo instead: an identity provider (127.0.0.1) and an app (localhost), a token-bound sign-in through the redirect, three attacks refused (with --once, --port: the app\'s port)',
      },
      'session-store': {
        type: 'string',
        placeholder: 'memory|redis://HOST:PORT',
        default: 'memory',
        description: 'where sessions live: in memory, or in Redis (needs connect-redis and redis installed)',
      },
      dbsc: {
        type: 'boolean',
        description: 'offer DBSC (Device Bound Session Credentials) on login to browsers without Token Binding (with --serve)',
      },
      'dbsc-cookie-ttl': {
        type: 'integer',
        min: 1,
        default: 600,
        placeholder: 'SECONDS',
        description: 'lifetime of the DBSC short-lived bound cookie (with --dbsc)',
      },
      'session-secret': {
        type: 'string',
        env: 'TOKBIND_SESSION_SECRET',
        placeholder: 'SECRET',
        description: 'the session cookie signing secret, the same on every node sharing a store (default: random per process; prefer the environment variable to the command line)',
      },
      ...clusterOptions,
    },
    exitCodes: {
      0: 'every step behaved as expected (--serve: stopped by SIGINT/SIGTERM)',
      1: 'a step did not, the port cannot be bound, or the session store cannot be reached (one line on stderr)',
    },
    examples: [
      'tokbind demo',
      'PORT=0 tokbind demo --once',
      'tokbind demo --serve --port 0 --session-store redis://127.0.0.1:6379',
      'tokbind demo --serve --dbsc --dbsc-cookie-ttl 300',
      'TOKBIND_SESSION_SECRET=… tokbind demo --serve --workers auto --proxy-protocol --session-store redis://127.0.0.1:6379',
    ],
  },
  async ({ values }, io, signal) => {
    if (values.once && values.serve) throw new UsageError('--once and --serve exclude each other');
    if (values.federation) {
      if (values.serve || values.workers !== '1' || values['proxy-protocol'] || values['session-secret'] !== undefined || values['session-store'] !== 'memory' || values.host !== '127.0.0.1') {
        throw new UsageError('--federation goes with --once and --port only (the provider is on 127.0.0.1, the app on localhost)');
      }
      return runFederationDemo(io, values.port, values.once, signal);
    }
    if (values.host === '') throw new UsageError('--host must not be empty');
    let sessionStore: DemoSessionStore;
    try {
      sessionStore = parseDemoSessionStore(values['session-store']);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (values.dbsc && !values.serve) throw new UsageError('--dbsc needs --serve (the walkthrough is Token Binding only)');
    const scaled = values.workers !== '1' || values['proxy-protocol'] || values['session-secret'] !== undefined;
    if (scaled && !values.serve) throw new UsageError('--workers, --proxy-protocol and --session-secret go with --serve');
    if (isClusterPrimary(values)) {
      // Every worker must accept every other's cookies and sessions: one store, one secret, one certificate.
      if (sessionStore.kind === 'memory') throw new UsageError('--workers needs --session-store redis://HOST:PORT (memory sessions live in one process)');
      const shared = {
        tls: createSelfSignedCertificate({ altNames: [...new Set(['localhost', '127.0.0.1', values.host])], days: 30 }),
        secret: values['session-secret'] ?? randomBytes(32).toString('base64url'),
      };
      return runWorkers({ command: 'demo', workers: parseWorkerCount(values.workers), io, signal, shared });
    }
    const shared = sharedFromPrimary<{ tls?: { key: string; cert: string }; secret?: string }>();
    const secret = shared?.secret ?? values['session-secret'];
    const server = {
      ...(shared?.tls === undefined ? {} : { tls: shared.tls }),
      ...(secret === undefined ? {} : { secret }),
      proxyProtocol: values['proxy-protocol'],
    };
    return runDemo({
      io,
      port: values.port,
      once: values.once,
      serve: values.serve,
      host: values.host,
      sessionStore,
      signal,
      server,
      dbscCookieTtl: values.dbsc ? values['dbsc-cookie-ttl'] : undefined,
    });
  },
);
