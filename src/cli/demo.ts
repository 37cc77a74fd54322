/**
 * `tokbind demo` (what `npm start` runs): a binding-aware HTTPS server with a tiny login app, a
 * victim who logs in, and an attacker whose stolen cookie fails three ways. Then the server keeps
 * running for the user to poke at, until Ctrl-C; with `--once` it exits, 0 only if every step
 * behaved (CI runs it).
 */
import { once } from 'node:events';
import type { RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDemoApp } from '../demo/app.js';
import { runDemoScenario, type DemoStep } from '../demo/scenario.js';
import { createServer } from '../http/server.js';
import { createSelfSignedCertificate } from '../tls/certificate.js';
import { defineCommand, listenFailure, serverOptions } from './args.js';
import { ExitCode, untilStopped, writeLine, type CliIo } from './io.js';

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
  const { io, port, once: runOnce, signal, app = createDemoApp().handler } = options;
  const style = styleFor(io);
  const started = performance.now();
  const { key, cert } = createSelfSignedCertificate({ altNames: ['localhost', '127.0.0.1'], days: 30 });
  // Not `required`: a request without Sec-Token-Binding reaches the app, which explains itself.
  const server = createServer({ key, cert, tokenBinding: { required: false } }, app);
  try {
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
  } catch (err) {
    writeLine(io.stderr, listenFailure('demo', '127.0.0.1', port, err as Error));
    return ExitCode.failure;
  }
  const listening = (server.address() as AddressInfo).port;
  const origin = `https://127.0.0.1:${listening}`;
  try {
    writeLine(io.stdout, style.bold("tokbind demo: a session cookie bound to the client's Token Binding ID (RFC 8471, RFC 8473)"));
    writeLine(io.stdout, `server ${origin}  (self-signed certificate; POST /login, GET /profile, GET /whoami)`);
    writeLine(io.stdout, '');
    const { ok, steps } = await runDemoScenario(origin, {
      ca: cert,
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
      writeLine(io.stdout, `  openssl s_client -connect 127.0.0.1:${listening}`);
      writeLine(io.stdout, 'Ctrl-C to stop.');
      await stopped;
    }
    return ok ? ExitCode.ok : ExitCode.failure;
  } finally {
    const closed = once(server, 'close');
    server.close();
    server.closeAllConnections();
    await closed;
  }
}

/**
 * The `demo` command: `tokbind demo [--once] [--port N]`; the port comes from `--port`, else
 * `PORT`, else 8443 (0 picks a free one). `signal` stops a server left running, as Ctrl-C does.
 *
 * @example
 * ```sh
 * npm start                 # tokbind demo: the scenario, then the server stays up
 * PORT=0 npm start -- --once
 * ```
 */
export const demo = defineCommand(
  {
    name: 'demo',
    summary: 'show a stolen cookie failing against a binding-aware server (what `npm start` runs)',
    description:
      'Starts a binding-aware HTTPS server on 127.0.0.1 with a tiny login app (POST /login, GET /profile, GET /whoami), ' +
      "logs a victim in, and shows the attacker's stolen cookie failing three ways. Then the server keeps running until Ctrl-C.",
    options: {
      port: { ...serverOptions.port, default: DEFAULT_DEMO_PORT },
      once: { type: 'boolean', description: 'exit after the scenario instead of serving (CI runs this)' },
    },
    exitCodes: { 0: 'every step behaved as expected', 1: 'a step did not, or the port cannot be bound (one line on stderr)' },
    examples: ['tokbind demo', 'PORT=0 tokbind demo --once'],
  },
  async ({ values }, io, signal) => runDemo({ io, port: values.port, once: values.once, signal }),
);
