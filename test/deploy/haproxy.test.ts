/**
 * Several tokbind nodes behind a real HAProxy in L4 passthrough (`mode tcp`, `send-proxy-v2`),
 * running the shipped recipe examples/deploy/haproxy.cfg: each node terminates TLS (so each has
 * the EKM), reads the PROXY protocol header, and verifies Token Binding on its own.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import test from 'ava';
import { TokenBindingAgent } from '../../src/client/agent.js';
import { MemoryKeyStore } from '../../src/client/keystore.js';
import { createServer } from '../../src/http/server.js';
import { acceptProxyProtocol } from '../../src/tls/proxy-protocol.js';
import { startHaproxy } from '../_haproxy.js';
import { listen, testCertificate, type Listening } from '../_tls.js';

interface NodeReply {
  readonly node: string;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly id: string | null;
}

async function startNode(name: string): Promise<Listening> {
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert, tokenBinding: { required: true } }, (req: IncomingMessage, res: ServerResponse) => {
    const body = JSON.stringify({ node: name, remoteAddress: req.socket.remoteAddress, remotePort: req.socket.remotePort, id: req.tokenBinding?.provided.id ?? null });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  server.on('tlsClientError', () => {});
  return listen(acceptProxyProtocol(server));
}

interface Reply {
  readonly status: number;
  readonly body: string;
  readonly localPort: number | undefined;
  readonly sentHeader: string | undefined;
}

function get(port: number, options: https.RequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/', servername: 'localhost', ca: testCertificate.ca, ...options }, (res) => {
      const localPort = res.socket.localPort;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), localPort, sentHeader: req.getHeader('sec-token-binding') as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('a client\'s connections land on both nodes; each verifies its binding and sees the real client port', async (t) => {
  const nodes = [await startNode('node1'), await startNode('node2')];
  const lb = await startHaproxy([nodes[0]!.port, nodes[1]!.port]);
  t.teardown(async () => {
    await lb.close();
    await Promise.all(nodes.map((n) => n.close()));
  });
  // A fresh connection per request (keepAlive off), so round robin spreads them.
  const agent = new TokenBindingAgent({ ca: testCertificate.ca, keepAlive: false, keyStore: new MemoryKeyStore() });
  t.teardown(() => agent.destroy());
  const replies: NodeReply[] = [];
  for (let i = 0; i < 6; i++) {
    const reply = await get(lb.port, { agent });
    t.is(reply.status, 200, lb.output());
    const seen = JSON.parse(reply.body) as NodeReply;
    // PROXY protocol v2 carried the client's own address and source port through HAProxy.
    t.is(seen.remoteAddress, '127.0.0.1');
    t.is(seen.remotePort as number | undefined, reply.localPort);
    replies.push(seen);
  }
  t.deepEqual([...new Set(replies.map((r) => r.node))].sort(), ['node1', 'node2']);
  t.is(new Set(replies.map((r) => r.id)).size, 1, 'the same Token Binding ID on every node');
});

test('a message captured on one node\'s connection is refused when replayed on a new connection, on every node', async (t) => {
  const nodes = [await startNode('node1'), await startNode('node2')];
  const lb = await startHaproxy([nodes[0]!.port, nodes[1]!.port]);
  t.teardown(async () => {
    await lb.close();
    await Promise.all(nodes.map((n) => n.close()));
  });
  const agent = new TokenBindingAgent({ ca: testCertificate.ca, keepAlive: false });
  t.teardown(() => agent.destroy());
  const victim = await get(lb.port, { agent });
  t.is(victim.status, 200);
  t.truthy(victim.sentHeader);
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) {
    const replay = await get(lb.port, { agent: false, headers: { 'sec-token-binding': victim.sentHeader! } });
    statuses.push(replay.status);
    t.regex(replay.body, /ERR_TB_SIGNATURE_INVALID/);
  }
  t.deepEqual(statuses, [400, 400, 400, 400]);
});

test('a client that reaches a node directly, without the balancer\'s header, is cut off', async (t) => {
  const node = await startNode('node1');
  t.teardown(() => node.close());
  const agent = new TokenBindingAgent({ ca: testCertificate.ca, keepAlive: false });
  t.teardown(() => agent.destroy());
  await t.throwsAsync(get(node.port, { agent }));
});
