/**
 * When Token Binding may be used (RFC 8471 §4.2, RFC 8472 §5): TLS 1.3, or TLS 1.2 with Extended
 * Master Secret read from the real session; and the server refuses renegotiation.
 */
import { constants } from 'node:crypto';
import type { TLSSocket, TlsOptions } from 'node:tls';
import test from 'ava';
import * as asn1js from 'asn1js';
import fc from 'fast-check';
import {
  TOKBIND_SECURE_OPTIONS,
  checkTokenBindingConditions,
  tokenBindingConditions,
  withRenegotiationRefused,
} from '../../src/tls/conditions.js';
import { exportTokenBindingKeyingMaterial } from '../../src/tls/ekm.js';
import { hasExtendedMasterSecret, sessionHasExtendedMasterSecret } from '../../src/tls/session.js';
import { connectPair, startTlsServer, type TestTlsServer } from '../_tls.js';

/** OpenSSL 3's SSL_OP_NO_EXTENDED_MASTER_SECRET (not in crypto.constants). Either side may set it. */
const SSL_OP_NO_EXTENDED_MASTER_SECRET = 0x1;

let server: TestTlsServer;
let noEmsServer: TestTlsServer;
test.before(async () => {
  server = await startTlsServer();
  noEmsServer = await startTlsServer({ secureOptions: SSL_OP_NO_EXTENDED_MASTER_SECRET });
});
test.after.always(async () => {
  await server.close();
  await noEmsServer.close();
});

test('TLS 1.3: eligible', async (t) => {
  const { client, accepted } = await connectPair(server.server, server.port, { minVersion: 'TLSv1.3' });
  t.deepEqual(checkTokenBindingConditions(accepted), { ok: true, protocol: 'TLSv1.3', extendedMasterSecret: true });
  t.deepEqual(checkTokenBindingConditions(client), { ok: true, protocol: 'TLSv1.3', extendedMasterSecret: true });
  client.destroy();
});

test('TLS 1.2 with EMS (the default): eligible, read from the session on both sides', async (t) => {
  const { client, accepted } = await connectPair(server.server, server.port, { maxVersion: 'TLSv1.2' });
  t.true(hasExtendedMasterSecret(accepted));
  t.true(hasExtendedMasterSecret(client));
  t.deepEqual(checkTokenBindingConditions(accepted), { ok: true, protocol: 'TLSv1.2', extendedMasterSecret: true });
  client.destroy();
});

test('TLS 1.2 resumed session: the EMS flag comes with it', async (t) => {
  const first = await connectPair(server.server, server.port, { maxVersion: 'TLSv1.2' });
  const session = first.client.getSession();
  first.client.destroy();
  const again = await connectPair(server.server, server.port, { maxVersion: 'TLSv1.2', session: session! });
  t.true(again.client.isSessionReused());
  t.true(hasExtendedMasterSecret(again.accepted));
  t.true(checkTokenBindingConditions(again.accepted).ok);
  again.client.destroy();
});

const noEms = { ok: false, protocol: 'TLSv1.2', reason: 'ERR_TB_TLS_CONDITIONS', detail: 'no-ems' } as const;

test('TLS 1.2, client refuses EMS: ineligible (no-ems)', async (t) => {
  const { client, accepted } = await connectPair(server.server, server.port, {
    maxVersion: 'TLSv1.2',
    secureOptions: SSL_OP_NO_EXTENDED_MASTER_SECRET,
  });
  t.false(hasExtendedMasterSecret(accepted));
  t.false(hasExtendedMasterSecret(client));
  t.deepEqual(checkTokenBindingConditions(accepted), noEms);
  client.destroy();
});

test('TLS 1.2, server refuses EMS: ineligible (no-ems)', async (t) => {
  const { client, accepted } = await connectPair(noEmsServer.server, noEmsServer.port, { maxVersion: 'TLSv1.2' });
  t.false(hasExtendedMasterSecret(accepted));
  t.deepEqual(checkTokenBindingConditions(accepted), noEms);
  t.deepEqual(checkTokenBindingConditions(client), noEms);
  client.destroy();
});

test('TLS 1.0 and 1.1: ineligible (tls-version), whatever the EMS', async (t) => {
  // OpenSSL 3 keeps them only at security level 0.
  const legacy = { minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;
  const old = await startTlsServer(legacy);
  try {
    for (const version of ['TLSv1', 'TLSv1.1'] as const) {
      const { client, accepted } = await connectPair(old.server, old.port, { ...legacy, maxVersion: version });
      t.is(accepted.getProtocol(), version);
      t.deepEqual(checkTokenBindingConditions(accepted), {
        ok: false,
        protocol: version,
        reason: 'ERR_TB_TLS_CONDITIONS',
        detail: 'tls-version',
      });
      client.destroy();
    }
  } finally {
    await old.close();
  }
});

test('tokenBindingConditions: the decision table', (t) => {
  const ok = (protocol: string) => ({ ok: true, protocol, extendedMasterSecret: true });
  const no = (protocol: string, detail: string) => ({ ok: false, protocol, reason: 'ERR_TB_TLS_CONDITIONS', detail });
  t.deepEqual(tokenBindingConditions('TLSv1.3', null), ok('TLSv1.3'));
  t.deepEqual(tokenBindingConditions('TLSv1.2', true), ok('TLSv1.2'));
  t.deepEqual(tokenBindingConditions('TLSv1.2', false), no('TLSv1.2', 'no-ems'));
  t.deepEqual(tokenBindingConditions('TLSv1.2', null), no('TLSv1.2', 'ems-unknown'));
  for (const p of ['TLSv1.1', 'TLSv1', 'SSLv3', 'unknown']) t.deepEqual(tokenBindingConditions(p, true), no(p, 'tls-version'));
  t.deepEqual(tokenBindingConditions(null, true), no('unknown', 'tls-version'));
  // Every answer is frozen: the common ones are shared by all connections.
  for (const [p, ems] of [['TLSv1.3', null], ['TLSv1.2', true], ['TLSv1.2', false], ['TLSv1.2', null], ['TLSv1.1', true]] as const) {
    t.true(Object.isFrozen(tokenBindingConditions(p, ems)), `${p} ${String(ems)}`);
  }
});

function session(fields: asn1js.AsnType[]): Uint8Array {
  const seq = new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: 1 }),
      new asn1js.Integer({ value: 0x0303 }),
      new asn1js.OctetString({ valueHex: Uint8Array.of(0xc0, 0x2b) }),
      new asn1js.OctetString({ valueHex: new Uint8Array(32) }),
      new asn1js.OctetString({ valueHex: new Uint8Array(48) }),
      ...fields,
    ],
  });
  return new Uint8Array(seq.toBER());
}

const tagged = (tagNumber: number, inner: asn1js.AsnType) =>
  new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value: [inner] });

/** The same question answered by asn1js: the reference the hand-written walk is held to. */
function referenceEms(der: Uint8Array): boolean | null {
  const parsed = asn1js.fromBER(der);
  if (parsed.offset !== der.length || !(parsed.result instanceof asn1js.Sequence)) return null;
  const fields = parsed.result.valueBlock.value;
  if (!(fields[0] instanceof asn1js.Integer) || !(fields[1] instanceof asn1js.Integer)) return null;
  const flags = fields.filter((f) => f.idBlock.tagClass === 3 && f.idBlock.tagNumber === 13);
  if (flags.length === 0) return false;
  const inner = flags.length === 1 && flags[0] instanceof asn1js.Constructed ? flags[0].valueBlock.value : [];
  if (inner.length !== 1 || !(inner[0] instanceof asn1js.Integer)) return null;
  const bytes = inner[0].valueBlock.valueHexView;
  return bytes.length === 0 ? null : (bytes[bytes.length - 1]! & 1) !== 0;
}

test('sessionHasExtendedMasterSecret agrees with asn1js on real sessions', async (t) => {
  for (const secureOptions of [0, SSL_OP_NO_EXTENDED_MASTER_SECRET]) {
    const { client, accepted } = await connectPair(server.server, server.port, { maxVersion: 'TLSv1.2', secureOptions });
    for (const der of [accepted.getSession()!, client.getSession()!]) {
      t.is(sessionHasExtendedMasterSecret(der), secureOptions === 0);
      t.is(referenceEms(der), secureOptions === 0);
    }
    client.destroy();
  }
});

test('property: sessionHasExtendedMasterSecret agrees with asn1js on generated sessions and random bytes', (t) => {
  const field = fc.oneof(
    fc.record({ tag: fc.integer({ min: 0, max: 30 }), int: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
    fc.record({ tag: fc.integer({ min: 0, max: 30 }), bytes: fc.uint8Array({ maxLength: 300 }) }),
  );
  fc.assert(
    fc.property(fc.uniqueArray(field, { selector: (f) => f.tag, maxLength: 12 }), (fields) => {
      const der = session(
        fields.map((f) =>
          tagged(f.tag, 'int' in f ? new asn1js.Integer({ valueHex: bigIntBytes(f.int) }) : new asn1js.OctetString({ valueHex: f.bytes })),
        ),
      );
      return sessionHasExtendedMasterSecret(der) === referenceEms(der);
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const got = sessionHasExtendedMasterSecret(bytes);
      return got === null || got === referenceEms(bytes);
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

/** Minimal two's-complement big-endian bytes of a non-negative bigint (a DER INTEGER body). */
function bigIntBytes(n: bigint): Uint8Array {
  let hex = n.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = '00' + hex;
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

test('sessionHasExtendedMasterSecret: the [13] flags field', (t) => {
  t.true(sessionHasExtendedMasterSecret(session([tagged(2, new asn1js.Integer({ value: 7200 })), tagged(13, new asn1js.Integer({ value: 1 }))])));
  t.true(sessionHasExtendedMasterSecret(session([tagged(13, new asn1js.Integer({ value: 0x305 }))])));
  t.false(sessionHasExtendedMasterSecret(session([tagged(13, new asn1js.Integer({ value: 4 }))])));
  t.false(sessionHasExtendedMasterSecret(session([tagged(19, new asn1js.Integer({ value: 1 }))])), 'absent: flags are 0');
  t.is(sessionHasExtendedMasterSecret(session([tagged(13, new asn1js.OctetString({ valueHex: Uint8Array.of(1) }))])), null);
  t.is(sessionHasExtendedMasterSecret(Uint8Array.of(0x30, 0x03, 0x02, 0x01)), null, 'truncated');
  t.is(sessionHasExtendedMasterSecret(Uint8Array.of(0x04, 0x01, 0x01)), null, 'not a SEQUENCE');
  t.is(sessionHasExtendedMasterSecret(new Uint8Array(0)), null);
  const good = session([tagged(13, new asn1js.Integer({ value: 1 }))]);
  t.is(sessionHasExtendedMasterSecret(Uint8Array.from([...good, 0])), null, 'trailing bytes');
  t.is(sessionHasExtendedMasterSecret(new Uint8Array(new asn1js.Sequence({ value: [new asn1js.Null()] }).toBER())), null);
  const twice = session([tagged(13, new asn1js.Integer({ value: 1 })), tagged(13, new asn1js.Integer({ value: 1 }))]);
  t.is(sessionHasExtendedMasterSecret(twice), null, 'flags twice');
  t.is(sessionHasExtendedMasterSecret(Uint8Array.of(0x30, 0x80, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0, 0)), null, 'BER indefinite length');
  // A long-form length: a 200-byte OCTET STRING before the flags.
  t.true(sessionHasExtendedMasterSecret(session([tagged(10, new asn1js.OctetString({ valueHex: new Uint8Array(200) })), tagged(13, new asn1js.Integer({ value: 1 }))])));
});

test('withRenegotiationRefused sets SSL_OP_NO_RENEGOTIATION and keeps the rest', (t) => {
  t.is(TOKBIND_SECURE_OPTIONS, constants.SSL_OP_NO_RENEGOTIATION);
  t.deepEqual(withRenegotiationRefused({ ciphers: 'x' }), { ciphers: 'x', secureOptions: TOKBIND_SECURE_OPTIONS });
  // SSL_OP_ALL has bit 31: a JS `|` would have made this negative.
  const all = withRenegotiationRefused({ secureOptions: constants.SSL_OP_ALL });
  t.is(all.secureOptions, constants.SSL_OP_ALL + TOKBIND_SECURE_OPTIONS);
  t.is(withRenegotiationRefused(all).secureOptions, all.secureOptions, 'idempotent');
  t.throws(() => withRenegotiationRefused({ secureOptions: -1 }), { instanceOf: TypeError });
  t.throws(() => withRenegotiationRefused(null as unknown as TlsOptions), { instanceOf: TypeError });
});

/** Asks for a TLS 1.2 renegotiation; resolves 'renegotiated' or 'closed'. */
async function renegotiate(client: TLSSocket, accepted: TLSSocket): Promise<'renegotiated' | 'closed'> {
  accepted.on('error', () => {});
  // Node reports a refused renegotiation as a socket error, never through the callback.
  const done = new Promise<'renegotiated'>((resolve) => client.renegotiate({}, (err) => err === null && resolve('renegotiated')));
  const closed = new Promise<'closed'>((resolve) => client.once('close', () => resolve('closed')));
  return Promise.race([done, closed]);
}

test('without SSL_OP_NO_RENEGOTIATION a TLS 1.2 renegotiation changes the EKM (why it is refused)', async (t) => {
  const { client, accepted } = await connectPair(server.server, server.port, { maxVersion: 'TLSv1.2' });
  const before = Buffer.from(exportTokenBindingKeyingMaterial(accepted));
  t.is(await renegotiate(client, accepted), 'renegotiated');
  t.notDeepEqual(Buffer.from(exportTokenBindingKeyingMaterial(accepted)), before);
  t.deepEqual(Buffer.from(exportTokenBindingKeyingMaterial(accepted)), Buffer.from(exportTokenBindingKeyingMaterial(client)));
  client.destroy();
});

test('a server with withRenegotiationRefused rejects renegotiation; the EKM stays the first one', async (t) => {
  const refusing = await startTlsServer(withRenegotiationRefused({}));
  try {
    const { client, accepted } = await connectPair(refusing.server, refusing.port, { maxVersion: 'TLSv1.2' });
    const before = Buffer.from(exportTokenBindingKeyingMaterial(accepted));
    const serverError = new Promise<Error>((resolve) => accepted.once('error', resolve));
    const clientError = new Promise<NodeJS.ErrnoException>((resolve) => client.once('error', resolve));
    let renegotiated = false;
    client.renegotiate({}, (err) => (renegotiated ||= err === null));
    t.is((await clientError).code, 'ERR_SSL_NO_RENEGOTIATION');
    await serverError; // the client's handshake_failure alert
    t.false(renegotiated);
    t.deepEqual(Buffer.from(exportTokenBindingKeyingMaterial(accepted)), before);
    // Node leaves an established TLSSocket open after a TLS error (https/http2 servers destroy it).
    accepted.destroy();
    client.destroy();
  } finally {
    await refusing.close();
  }
});
