/**
 * The client against tokbind's own binding-aware server (src/http): what a server built with
 * this library sees from an agent, a dispatcher and the federation flow.
 */
import test from 'ava';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { fetch } from 'undici';
import { TokenBindingAgent } from '../../src/client/agent.js';
import { TokenBindingDispatcher, tokbindFetch } from '../../src/client/dispatcher.js';
import type { KeyParametersName } from '../../src/codec/types.js';
import { tokenBindingHash } from '../../src/crypto/hash.js';
import { redirectWithReferredTokenBinding } from '../../src/http/federation.js';
import type { TokenBindingServerOptions } from '../../src/http/options.js';
import { createServer, getTokenBinding } from '../../src/http/server.js';
import { listen, testCertificate } from '../_tls.js';

interface Seen {
  readonly path: string;
  readonly provided: { id: string; hash: string; keyParameters: string | number } | null;
  readonly referred: { id: string; hash: string } | null;
}

async function startServer(
  tokenBinding: TokenBindingServerOptions,
  routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {},
  tls: https.ServerOptions = {},
) {
  const seen: Seen[] = [];
  const server = createServer({ key: testCertificate.key, cert: testCertificate.cert, ...tls, tokenBinding }, (req, res) => {
    const path = new URL(req.url ?? '/', 'https://x').pathname;
    const tb = getTokenBinding(req);
    const entry: Seen = { path, provided: tb?.provided ?? null, referred: tb?.referred ?? null };
    seen.push(entry);
    const route = routes[path];
    if (route !== undefined) return route(req, res);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(entry));
  });
  const listening = await listen(server);
  return { seen, url: (path: string, host = '127.0.0.1') => `https://${host}:${listening.port}${path}`, close: listening.close };
}

function get(url: string, agent: https.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

test('TokenBindingAgent against createServer({ required: true }): every request verified, first included', async (t) => {
  const server = await startServer({ required: true });
  t.teardown(() => server.close());
  const agent = new TokenBindingAgent({ ca: testCertificate.ca, maxSockets: 3 });
  t.teardown(() => agent.destroy());
  const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => get(server.url(`/a${i}`), agent)));
  t.deepEqual(statuses, Array(20).fill(200));
  const key = await agent.binder.keyStore.getKey('127.0.0.1', 'ecdsap256');
  t.true(server.seen.every((s) => s.provided?.hash === tokenBindingHash(key!.id)));
});

for (const keyParameters of ['ecdsap256', 'rsa2048_pss', 'rsa2048_pkcs1.5'] as KeyParametersName[]) {
  test(`TokenBindingDispatcher with ${keyParameters} against a server that accepts it`, async (t) => {
    const server = await startServer({ required: true, keyParameters: [keyParameters] });
    t.teardown(() => server.close());
    const dispatcher = new TokenBindingDispatcher({ keyParameters, connect: { ca: testCertificate.ca } });
    t.teardown(() => dispatcher.destroy());
    for (let i = 0; i < 2; i++) {
      const res = await fetch(server.url(`/d${i}`), { dispatcher });
      t.is(res.status, 200);
      t.is(((await res.json()) as Seen).provided?.keyParameters, keyParameters);
    }
  });
}

test('a server accepting only ecdsap256 rejects an rsa2048_pss client (the check is real)', async (t) => {
  const server = await startServer({ required: true, keyParameters: ['ecdsap256'] });
  t.teardown(() => server.close());
  const dispatcher = new TokenBindingDispatcher({ keyParameters: 'rsa2048_pss', connect: { ca: testCertificate.ca } });
  t.teardown(() => dispatcher.destroy());
  const res = await fetch(server.url('/'), { dispatcher });
  t.is(res.status, 400);
  await res.arrayBuffer();
});

test('federation: redirectWithReferredTokenBinding on one host, the referred ID on the other', async (t) => {
  const provider = await startServer({ required: true }, {
    '/authorize': (req, res) => {
      const tb = getTokenBinding(req);
      // A Token Provider would bind the token it issues to the referred ID.
      res.statusCode = 302;
      res.setHeader('location', `/callback?tbh=${tb?.referred?.hash ?? 'none'}`);
      res.end();
    },
  });
  t.teardown(() => provider.close());
  const rp = await startServer({ required: true }, {
    '/login': (_req, res) => redirectWithReferredTokenBinding(res, provider.url('/authorize', '127.0.0.1')),
  });
  t.teardown(() => rp.close());
  const dispatcher = new TokenBindingDispatcher({ connect: { ca: testCertificate.ca } });
  t.teardown(() => dispatcher.destroy());

  const res = await tokbindFetch(rp.url('/login', 'localhost'), { dispatcher });
  t.is(res.status, 200);
  const rpKey = await dispatcher.binder.keyStore.getKey('localhost', 'ecdsap256');
  const login = rp.seen[0]!;
  const [authorize, callback] = provider.seen;
  t.is(login.provided?.hash, tokenBindingHash(rpKey!.id));
  t.is(authorize?.referred?.id, login.provided?.id);
  t.is(new URL(res.url).searchParams.get('tbh'), login.provided?.hash ?? 'missing');
  t.is(callback?.referred, null);
  t.is(callback?.provided?.id, authorize?.provided?.id);
});
