/**
 * A real Chromium for tests, driven over the DevTools protocol (CDP), with DBSC on:
 *
 *   import { launchChromium, spkiHash } from '../_chromium.js'
 *   const browser = await launchChromium(t, { trustSpki: [spkiHash(cert)] })
 *   const page = await browser.newPage()
 *   await page.navigate('https://127.0.0.1:PORT/login?user=alice')
 *   await page.waitForDbscEvent((e) => e.creationEventDetails !== undefined, 10_000)
 *
 * Facts measured on Debian's Chromium 156 (the flags below follow from them):
 * - DBSC without a TPM needs `--enable-features=DeviceBoundSessions,EnableBoundSessionCredentialsSoftwareKeysForManualTesting`.
 * - Chromium ignores `Secure-Session-Registration` on a connection with a certificate error, so
 *   `--ignore-certificate-errors` is not enough: the test certificate is trusted by the SHA-256 of
 *   its SPKI (`--ignore-certificate-errors-spki-list`).
 * - `Network.enableDeviceBoundSessions` makes Chromium report `Network.deviceBoundSessionEventOccurred`
 *   (creation, challenge, refresh results).
 * Chromium is killed and its profile removed in `t.teardown`, always.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import WebSocket from 'ws';
import { freePort, requireTool } from './_tools.js';

/** base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate: what `--ignore-certificate-errors-spki-list` takes. */
export function spkiHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** A `Network.deviceBoundSessionEventOccurred` event's params (the fields tests read). */
export interface DbscEvent {
  readonly sessionId?: string;
  readonly succeeded: boolean;
  readonly creationEventDetails?: { readonly fetchResult: string; readonly newSession?: { readonly key: { readonly id: string } } };
  readonly refreshEventDetails?: { readonly refreshResult: string; readonly fetchResult?: string; readonly wasFullyProactiveRefresh?: boolean };
  readonly challengeEventDetails?: { readonly challengeResult: string; readonly challenge: string };
  readonly terminationEventDetails?: { readonly deletionReason: string };
  readonly [field: string]: unknown;
}

export interface BrowserCookie {
  readonly name: string;
  readonly value: string;
  readonly expires: number;
}

export interface ChromiumPage {
  /** Navigates and waits for the load event (bounded by `timeoutMs`). */
  navigate(url: string, timeoutMs?: number): Promise<void>;
  /** The page's body text (`document.body.innerText`). */
  bodyText(): Promise<string>;
  /** Every cookie the browser holds for `url`, HttpOnly ones included. */
  cookies(url: string): Promise<BrowserCookie[]>;
  /** DBSC events seen so far on this page. */
  readonly dbscEvents: readonly DbscEvent[];
  /** The first DBSC event (seen already or to come) matching `match`, or a rejection after `timeoutMs`. */
  waitForDbscEvent(match: (e: DbscEvent) => boolean, timeoutMs: number, from?: number): Promise<DbscEvent>;
}

export interface Chromium {
  newPage(): Promise<ChromiumPage>;
  /** Chromium's stderr lines mentioning device bound sessions (with `verbose`). */
  readonly log: readonly string[];
}

export interface LaunchOptions {
  /** SPKI hashes ({@link spkiHash}) of the certificates to trust. */
  readonly trustSpki: readonly string[];
  /** `--enable-logging=stderr --v=1`, keeping the lines about device bound sessions in `log`. */
  readonly verbose?: boolean;
}

interface CdpMessage {
  readonly id?: number;
  readonly method?: string;
  readonly params?: Record<string, unknown>;
  readonly result?: Record<string, unknown>;
  readonly error?: { readonly message: string };
  readonly sessionId?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a headless Chromium with DBSC on, on a fresh profile; killed in `t.teardown`. */
export async function launchChromium(t: ExecutionContext, options: LaunchOptions): Promise<Chromium> {
  const binary = requireTool('chromium');
  const profile = mkdtempSync(join(tmpdir(), 'tokbind-chromium-'));
  const port = await freePort();
  const args = [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    `--user-data-dir=${profile}`,
    `--remote-debugging-port=${port}`,
    '--remote-debugging-address=127.0.0.1',
    '--enable-features=DeviceBoundSessions,EnableBoundSessionCredentialsSoftwareKeysForManualTesting',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-quic',
    `--ignore-certificate-errors-spki-list=${options.trustSpki.join(',')}`,
    ...(options.verbose === true ? ['--enable-logging=stderr', '--v=1'] : []),
    'about:blank',
  ];
  // Its own process group, so that the teardown kills the renderers and helpers too.
  const child: ChildProcess = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const log: string[] = [];
  let stderrTail = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-4000);
    if (options.verbose === true) for (const line of chunk.split('\n')) if (/device_bound|bound_session|dbsc/i.test(line)) log.push(line);
  });
  let ws: WebSocket | undefined;
  t.teardown(async () => {
    ws?.terminate();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      await Promise.race([exited, sleep(5000)]);
    }
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  });

  let browserUrl: string | undefined;
  for (let i = 0; i < 150 && browserUrl === undefined; i++) {
    if (child.exitCode !== null) throw new Error(`chromium exited (${child.exitCode}): ${stderrTail}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/json/version`);
      browserUrl = ((await res.json()) as { webSocketDebuggerUrl: string }).webSocketDebuggerUrl;
    } catch {
      await sleep(100);
    }
  }
  if (browserUrl === undefined) throw new Error(`chromium did not open its DevTools port in 15 s: ${stderrTail}`);
  const socket = new WebSocket(browserUrl, { perMessageDeflate: false });
  ws = socket;
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });

  let nextId = 0;
  const pending = new Map<number, { resolve: (m: CdpMessage) => void; reject: (e: Error) => void }>();
  const listeners = new Set<(m: CdpMessage) => void>();
  socket.on('message', (data) => {
    const message = JSON.parse(String(data)) as CdpMessage;
    if (message.id !== undefined) {
      const waiter = pending.get(message.id);
      pending.delete(message.id);
      if (message.error !== undefined) waiter?.reject(new Error(`CDP: ${message.error.message}`));
      else waiter?.resolve(message);
      return;
    }
    for (const listener of listeners) listener(message);
  });
  socket.on('close', () => {
    for (const waiter of pending.values()) waiter.reject(new Error('CDP connection closed'));
    pending.clear();
  });
  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string, timeoutMs = 15_000): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const id = ++nextId;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`CDP ${method}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m.result ?? {});
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      socket.send(JSON.stringify(sessionId === undefined ? { id, method, params } : { id, method, params, sessionId }));
    });

  async function newPage(): Promise<ChromiumPage> {
    const { targetId } = (await send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    const dbscEvents: DbscEvent[] = [];
    const eventWaiters = new Set<() => void>();
    let loadWaiter: (() => void) | undefined;
    listeners.add((m) => {
      if (m.sessionId !== sessionId) return;
      if (m.method === 'Network.deviceBoundSessionEventOccurred') {
        dbscEvents.push(m.params as unknown as DbscEvent);
        for (const w of eventWaiters) w();
      } else if (m.method === 'Page.loadEventFired') loadWaiter?.();
    });
    await send('Page.enable', {}, sessionId);
    await send('Network.enable', {}, sessionId);
    await send('Network.enableDeviceBoundSessions', { enable: true }, sessionId);
    return {
      dbscEvents,
      async navigate(url, timeoutMs = 15_000) {
        const loaded = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`${url}: not loaded in ${timeoutMs} ms`)), timeoutMs);
          loadWaiter = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        const result = (await send('Page.navigate', { url }, sessionId)) as { errorText?: string };
        if (result.errorText !== undefined) throw new Error(`${url}: ${result.errorText}`);
        await loaded;
      },
      async bodyText() {
        const { result } = (await send('Runtime.evaluate', { expression: 'document.body ? document.body.innerText : ""', returnByValue: true }, sessionId)) as {
          result: { value: string };
        };
        return result.value;
      },
      async cookies(url) {
        const { cookies } = (await send('Network.getCookies', { urls: [url] }, sessionId)) as { cookies: BrowserCookie[] };
        return cookies;
      },
      waitForDbscEvent(match, timeoutMs, from = 0) {
        return new Promise((resolve, reject) => {
          const check = (): boolean => {
            const found = dbscEvents.slice(from).find(match);
            if (found === undefined) return false;
            clearTimeout(timer);
            eventWaiters.delete(waiter);
            resolve(found);
            return true;
          };
          const waiter = (): void => void check();
          const timer = setTimeout(() => {
            eventWaiters.delete(waiter);
            reject(new Error(`no matching DBSC event in ${timeoutMs} ms; seen: ${JSON.stringify(dbscEvents.slice(from))}`));
          }, timeoutMs);
          eventWaiters.add(waiter);
          check();
        });
      },
    };
  }

  return { newPage, log };
}
