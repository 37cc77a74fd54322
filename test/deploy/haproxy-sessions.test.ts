/**
 * The deployment recipe end to end: a real HAProxy (examples/deploy/haproxy.cfg: L4 passthrough,
 * send-proxy-v2) balancing two `tokbind demo --serve --proxy-protocol` nodes — separate
 * processes, each terminating TLS — whose bound sessions live in one real redis-server. A
 * client's connections land on both nodes and its bound session holds on each; a stolen cookie is
 * refused on each; a Token Binding message replayed on another connection is refused on each.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import test from 'ava';
import { TokenBindingAgent } from '../../src/client/agent.js';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { spawnBin } from '../cli/_bin.js';
import { startHaproxy } from '../_haproxy.js';
import { startRedis } from '../_redis.js';

const SECRET = 'deploy-test-secret-shared-by-both-nodes';

async function startNode(redisUrl: string): Promise<{ child: ChildProcess; port: number; stop(): Promise<void> }> {
  const child = spawnBin(['demo', '--serve', '--port', '0', '--proxy-protocol', '--session-store', redisUrl], { env: { TOKBIND_SESSION_SECRET: SECRET } });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = once(child, 'exit');
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /^listening on https:\/\/127\.0\.0\.1:(\d+)$/m.exec(out);
      if (m !== null) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`demo --serve exited ${code}: ${stderr}`)));
  });
  return {
    child,
    port,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
  /** Which node answered: its (self-signed, per-node) certificate. */
  readonly node: string;
  readonly sentBinding: string | undefined;
}

function call(port: number, agent: https.Agent | false, path: string, options: { method?: string; cookie?: string; body?: string; binding?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.cookie !== undefined) headers['cookie'] = options.cookie;
    if (options.body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    if (options.binding !== undefined) headers['sec-token-binding'] = options.binding;
    const req = https.request(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', agent, headers, rejectUnauthorized: false, servername: 'localhost' },
      (res) => {
        const node = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        let text = '';
        res.setEncoding('utf8').on('data', (s: string) => (text += s));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) as Record<string, unknown>, node, sentBinding: req.getHeader('sec-token-binding') as string | undefined }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A fresh connection per request and no TLS session reuse: each request is a full handshake, balanced anew. */
function client(): TokenBindingAgent {
  return new TokenBindingAgent({ keepAlive: false, maxCachedSessions: 0, rejectUnauthorized: false, keyStore: new MemoryKeyStore() });
}

const cookieOf = (reply: Reply): string => String(reply.headers['set-cookie']?.[0] ?? '').split(';', 1)[0]!;

test('behind HAProxy, two nodes and one Redis: the bound session holds on both; stolen cookies and replayed messages are refused on both', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const nodes = [await startNode(redis.url), await startNode(redis.url)];
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())));
  const lb = await startHaproxy([nodes[0]!.port, nodes[1]!.port]);
  t.teardown(() => lb.close());

  const victim = client();
  const thief = client();
  t.teardown(() => {
    victim.destroy();
    thief.destroy();
  });

  const login = await call(lb.port, victim, '/login', { method: 'POST', body: 'user=alice' });
  t.is(login.status, 200, JSON.stringify(login.body));
  const cookie = cookieOf(login);
  t.regex(cookie, /^sid=/);
  // The victim's requests spread over both nodes, and the session (in Redis) holds on each.
  const served = new Set<string>([login.node]);
  for (let i = 0; i < 6; i++) {
    const profile = await call(lb.port, victim, '/profile', { cookie });
    t.is(profile.status, 200, JSON.stringify(profile.body));
    t.deepEqual(profile.body, { user: 'alice' });
    served.add(profile.node);
  }
  t.is(served.size, 2, 'both nodes served the victim');

  // A stolen cookie from another client (its own key) is refused on each node. Each theft ends
  // that session, so the victim logs in anew between attempts.
  const refusedOn = new Set<string>();
  for (let attempt = 0; attempt < 8 && refusedOn.size < 2; attempt++) {
    const fresh = await call(lb.port, victim, '/login', { method: 'POST', body: 'user=alice' });
    t.is(fresh.status, 200);
    const stolen = await call(lb.port, thief, '/profile', { cookie: cookieOf(fresh) });
    t.is(stolen.status, 403, JSON.stringify(stolen.body));
    refusedOn.add(stolen.node);
    // The session is destroyed in the shared store: gone on every node.
    t.is((await call(lb.port, victim, '/profile', { cookie: cookieOf(fresh) })).status, 401);
  }
  t.is(refusedOn.size, 2, 'the stolen cookie was refused on both nodes');

  // The victim's own signed message, captured and replayed with its cookie on new connections,
  // lands on both nodes and is refused by each (it signs another connection's EKM).
  const again = await call(lb.port, victim, '/login', { method: 'POST', body: 'user=alice' });
  const captured = await call(lb.port, victim, '/profile', { cookie: cookieOf(again) });
  t.is(captured.status, 200);
  const replayedOn = new Set<string>();
  for (let attempt = 0; attempt < 8 && replayedOn.size < 2; attempt++) {
    const replay = await call(lb.port, false, '/profile', { cookie: cookieOf(again), binding: captured.sentBinding! });
    t.is(replay.status, 400);
    t.is((replay.body as { code?: string }).code, 'ERR_TB_SIGNATURE_INVALID');
    replayedOn.add(replay.node);
  }
  t.is(replayedOn.size, 2, 'the replayed message was refused on both nodes');
});

test('demo --workers needs --serve and a shared store', async (t) => {
  const { runBin } = await import('../cli/_bin.js');
  const memory = await runBin(['demo', '--serve', '--port', '0', '--workers', '2']);
  t.is(memory.code, 2);
  t.regex(memory.stderr, /--workers needs --session-store redis:\/\/HOST:PORT/);
  const walkthrough = await runBin(['demo', '--once', '--port', '0', '--proxy-protocol']);
  t.is(walkthrough.code, 2);
  t.regex(walkthrough.stderr, /go with --serve/);
});

test('demo --serve --workers 2 on Redis: one listening line, and a session made on one worker is good on the other', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const child = spawnBin(['demo', '--serve', '--port', '0', '--workers', '2', '--session-store', redis.url]);
  const exited = once(child, 'exit');
  t.teardown(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /^listening on https:\/\/127\.0\.0\.1:(\d+)$/m.exec(out);
      if (m !== null) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  const victim = client();
  t.teardown(() => victim.destroy());
  const login = await call(port, victim, '/login', { method: 'POST', body: 'user=bob' });
  t.is(login.status, 200);
  for (let i = 0; i < 6; i++) t.is((await call(port, victim, '/profile', { cookie: cookieOf(login) })).status, 200);
  t.is(out.match(/listening on/g)?.length, 1);
  child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  t.is(code, 0);
});
