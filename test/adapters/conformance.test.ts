/**
 * One table of RFC 8473 §2 server behaviours, run over real TLS on 127.0.0.1 against tokbind's
 * own servers, Express and Fastify (on plain Node servers and on tokbind's), TLS 1.2 and 1.3 over
 * HTTP/1.1, TLS 1.3 over HTTP/2. The adapters must answer exactly as the server does.
 */
import { createHash } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { createSecTokenBindingHeader, generateTokenBindingKey, type TokenBindingKey } from '../../src/crypto/sign.js';
import type { TokenBindingAdapterOptions } from '../../src/adapters/request.js';
import { problemDetails } from '../../src/http/problem.js';
import { TokenBindingError, type TokenBindingErrorCode } from '../../src/errors.js';
import type { Listening } from '../_tls.js';
import { openConnection, type TestConnection, type TestResponse, type TlsVersion } from './_client.js';
import { targets, type Seen, type Target } from './_targets.js';

/** OpenSSL 3's SSL_OP_NO_EXTENDED_MASTER_SECRET (not in crypto.constants). */
const SSL_OP_NO_EXTENDED_MASTER_SECRET = 0x1;

interface Run {
  readonly target: Target;
  readonly tls: TlsVersion;
  readonly servers: { readonly optional: Listening; readonly required: Listening };
}

interface Case {
  readonly name: string;
  /** Only on these TLS versions (default: all). */
  readonly tls?: TlsVersion;
  run(t: ExecutionContext, ctx: CaseContext): Promise<void>;
}

interface CaseContext {
  /** A new connection to the server started with `required: false` (or `true`). */
  open(server?: 'optional' | 'required', options?: { secureOptions?: number }): Promise<TestConnection>;
  readonly key: TokenBindingKey;
}

const rsaKey = generateTokenBindingKey('rsa2048_pss');

function accepted(t: ExecutionContext, res: TestResponse): Seen {
  t.is(res.status, 200, res.body);
  t.regex(String(res.headers['content-type']), /^application\/json/);
  return JSON.parse(res.body) as Seen;
}

/** A rejection must be the server's exact 400 problem document for `code`. */
function rejected(t: ExecutionContext, res: TestResponse, code: TokenBindingErrorCode): void {
  t.is(res.status, 400, res.body);
  t.is(res.headers['content-type'], 'application/problem+json');
  t.is(res.headers['cache-control'], 'no-store');
  t.is(res.headers['x-content-type-options'], 'nosniff');
  t.deepEqual(JSON.parse(res.body), problemDetails(new TokenBindingError(code)));
}

function expectBound(t: ExecutionContext, seen: Seen, key: TokenBindingKey): void {
  if (seen.tokenBinding === null || seen.tokenBinding === 'unset') return void t.fail(`expected a binding, got ${String(seen.tokenBinding)}`);
  // Expected values computed with Node's own base64url and SHA-256, not tokbind's.
  const raw = Buffer.from(key.id.raw);
  t.is(seen.tokenBinding.provided.id, raw.toString('base64url'));
  t.is(seen.tokenBinding.provided.hash, createHash('sha256').update(raw).digest('base64url'));
  t.is(seen.tokenBinding.provided.keyParameters, 'ecdsap256');
  t.is(seen.tokenBinding.referred, null);
}

const cases: readonly Case[] = [
  {
    name: 'a valid binding is accepted and exposed, again on the same connection',
    async run(t, { open, key }) {
      const conn = await open();
      const header = createSecTokenBindingHeader({ provided: key, ekm: conn.ekm });
      for (let i = 0; i < 2; i++) expectBound(t, accepted(t, await conn.request('/', { 'sec-token-binding': header })), key);
      await conn.close();
    },
  },
  {
    name: 'a valid binding is accepted when required',
    async run(t, { open, key }) {
      const conn = await open('required');
      expectBound(t, accepted(t, await conn.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) })), key);
      await conn.close();
    },
  },
  {
    name: 'the same message on a new connection: 400 ERR_TB_SIGNATURE_INVALID',
    async run(t, { open, key }) {
      const first = await open();
      const header = createSecTokenBindingHeader({ provided: key, ekm: first.ekm });
      accepted(t, await first.request('/', { 'sec-token-binding': header }));
      const second = await open();
      rejected(t, await second.request('/', { 'sec-token-binding': header }), 'ERR_TB_SIGNATURE_INVALID');
      await Promise.all([first.close(), second.close()]);
    },
  },
  {
    name: 'two Sec-Token-Binding headers: 400 ERR_TB_HEADER_DUPLICATE',
    async run(t, { open, key }) {
      const conn = await open();
      const header = createSecTokenBindingHeader({ provided: key, ekm: conn.ekm });
      rejected(t, await conn.request('/', { 'sec-token-binding': [header, header] }), 'ERR_TB_HEADER_DUPLICATE');
      await conn.close();
    },
  },
  {
    name: 'an empty message (AAA): 400 ERR_TB_MALFORMED',
    async run(t, { open }) {
      const conn = await open();
      rejected(t, await conn.request('/', { 'sec-token-binding': 'AAA' }), 'ERR_TB_MALFORMED');
      await conn.close();
    },
  },
  {
    name: 'padded base64: 400 ERR_TB_HEADER_ENCODING',
    async run(t, { open, key }) {
      const conn = await open();
      const padded = Buffer.from(createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }), 'base64url').toString('base64');
      rejected(t, await conn.request('/', { 'sec-token-binding': padded.endsWith('=') ? padded : `${padded}=` }), 'ERR_TB_HEADER_ENCODING');
      await conn.close();
    },
  },
  {
    name: 'key parameters not accepted (rsa2048_pss by default): 400 ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED',
    async run(t, { open }) {
      const conn = await open();
      const header = createSecTokenBindingHeader({ provided: rsaKey, ekm: conn.ekm });
      rejected(t, await conn.request('/', { 'sec-token-binding': header }), 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
      await conn.close();
    },
  },
  {
    name: 'no header, not required: accepted with tokenBinding null',
    async run(t, { open }) {
      const conn = await open();
      t.is(accepted(t, await conn.request('/')).tokenBinding, null);
      await conn.close();
    },
  },
  {
    name: 'no header, required: 400 ERR_TB_HEADER_MISSING',
    async run(t, { open }) {
      const conn = await open('required');
      rejected(t, await conn.request('/'), 'ERR_TB_HEADER_MISSING');
      await conn.close();
    },
  },
  {
    name: 'client-sent Sec-*-Token-Binding-ID headers are stripped before the handler',
    async run(t, { open, key }) {
      const conn = await open();
      const spoof = {
        'Sec-Provided-Token-Binding-ID': Buffer.from(key.id.raw).toString('base64url'),
        'sec-referred-token-binding-id': 'AgBBQA',
        'Sec-Other-Token-Binding-ID': '02.AgBBQA',
      };
      t.deepEqual(accepted(t, await conn.request('/', spoof)), { tokenBinding: null, ttrp: [] });
      const header = createSecTokenBindingHeader({ provided: key, ekm: conn.ekm });
      const seen = accepted(t, await conn.request('/', { ...spoof, 'sec-token-binding': header }));
      t.deepEqual(seen.ttrp, []);
      expectBound(t, seen, key);
      await conn.close();
    },
  },
  {
    name: 'TLS 1.2 without Extended Master Secret: 400 ERR_TB_TLS_CONDITIONS, absent header still fine',
    tls: 'TLSv1.2',
    async run(t, { open, key }) {
      const conn = await open('optional', { secureOptions: SSL_OP_NO_EXTENDED_MASTER_SECRET });
      rejected(t, await conn.request('/', { 'sec-token-binding': createSecTokenBindingHeader({ provided: key, ekm: conn.ekm }) }), 'ERR_TB_TLS_CONDITIONS');
      t.is(accepted(t, await conn.request('/')).tokenBinding, null);
      await conn.close();
    },
  },
];

const runs: Run[] = [];
const key = generateTokenBindingKey('ecdsap256');

test.before(async () => {
  const optional: TokenBindingAdapterOptions = {};
  const required: TokenBindingAdapterOptions = { required: true };
  for (const target of targets) {
    const servers = { optional: await target.start(optional), required: await target.start(required) };
    const versions: TlsVersion[] = target.http2 ? ['TLSv1.3'] : ['TLSv1.2', 'TLSv1.3'];
    for (const tls of versions) runs.push({ target, tls, servers });
  }
});

test.after.always(async () => {
  const all = new Set(runs.flatMap((r) => [r.servers.optional, r.servers.required]));
  await Promise.all([...all].map((s) => s.close()));
});

for (const target of targets) {
  const versions: TlsVersion[] = target.http2 ? ['TLSv1.3'] : ['TLSv1.2', 'TLSv1.3'];
  for (const tls of versions) {
    for (const c of cases) {
      if (c.tls !== undefined && c.tls !== tls) continue;
      test(`${target.name} · ${tls}${target.http2 ? ' h2' : ''} · ${c.name}`, async (t) => {
        const run = runs.find((r) => r.target === target && r.tls === tls);
        if (run === undefined) return t.fail('server not started');
        const opened: TestConnection[] = [];
        try {
          await c.run(t, {
            key,
            open: async (server = 'optional', options = {}) => {
              const conn = await openConnection(run.servers[server].port, { tls, http2: target.http2, ...options });
              t.is(conn.protocol, tls);
              opened.push(conn);
              return conn;
            },
          });
        } finally {
          await Promise.all(opened.map((c) => c.close()));
        }
      });
    }
  }
}
