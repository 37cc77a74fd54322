/**
 * RFC 8472: the token_binding extension bytes from peers, and the negotiation cases peers test
 * (vectors/peers/tls_extension_token_binding_type24.json), as tables. Every peer case line must
 * be claimed by at least one row below or be listed as not applicable, so the tables cannot
 * silently drift from the vector file.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import {
  DEFAULT_MIN_TOKEN_BINDING_VERSION,
  TOKEN_BINDING_EXTENSION_TYPE,
  encodeTokenBindingExtension,
  parseTokenBindingExtension,
  selectTokenBindingParameters,
  validateTokenBindingReply,
  type TokenBindingServerNegotiation,
  type TokenBindingTlsFacts,
} from '../../src/codec/extension.js';
import type { TokenBindingParameters, TokenBindingProtocolVersion } from '../../src/codec/types.js';
import { TokenBindingError } from '../../src/errors.js';
import { hexToBytes, repoRoot } from '../vectors/_messages.js';

interface Type24File {
  vectors: { raw_hex: string; expected: { ext_type: number; ext_len: number; version: string; key_parameters_list?: number[]; key_parameters?: number[] } }[];
  negotiation_cases_from_peers: Record<string, string[]>;
}
const type24 = JSON.parse(readFileSync(new URL('vectors/peers/tls_extension_token_binding_type24.json', repoRoot), 'utf8')) as Type24File;

const v = (s: string): TokenBindingProtocolVersion => {
  const [major, minor] = s.split('.').map(Number);
  return { major: major!, minor: minor! };
};
const params = (version: string, keyParameters: number[]): TokenBindingParameters => ({ version: v(version), keyParameters });

const TLS13: TokenBindingTlsFacts = { version: 'TLSv1.3', extendedMasterSecret: false, renegotiationIndication: false };
const TLS12: TokenBindingTlsFacts = { version: 'TLSv1.2', extendedMasterSecret: true, renegotiationIndication: true };
const TLS12_NO_EMS: TokenBindingTlsFacts = { ...TLS12, extendedMasterSecret: false };
const TLS12_NO_RI: TokenBindingTlsFacts = { ...TLS12, renegotiationIndication: false };

// ---------------------------------------------------------------------------------------------
// Raw extension bytes

for (const [i, vec] of type24.vectors.entries()) {
  test(`type24 vector #${i}: ${vec.raw_hex} (${vec.expected.version})`, (t) => {
    const raw = hexToBytes(vec.raw_hex);
    t.is((raw[0]! << 8) | raw[1]!, vec.expected.ext_type);
    t.is(vec.expected.ext_type, TOKEN_BINDING_EXTENSION_TYPE);
    t.is((raw[2]! << 8) | raw[3]!, vec.expected.ext_len);
    const body = raw.subarray(4);
    t.is(body.length, vec.expected.ext_len);
    const parsed = parseTokenBindingExtension(body);
    const hexVersion = /0x([0-9a-f]{4})/i.exec(vec.expected.version)?.[1];
    t.truthy(hexVersion, 'the vector names its version in hex');
    t.is((parsed.version.major << 8) | parsed.version.minor, parseInt(hexVersion!, 16));
    t.deepEqual(parsed.keyParameters, vec.expected.key_parameters_list ?? vec.expected.key_parameters);
    t.deepEqual(encodeTokenBindingExtension(parsed), body);
  });
}

function malformedExtension(t: import('ava').ExecutionContext, hex: string, field: string): void {
  const err = t.throws(() => parseTokenBindingExtension(hexToBytes(hex)), { instanceOf: TokenBindingError });
  t.is(err?.code, 'ERR_TB_EXTENSION_MALFORMED');
  t.is((err?.cause as { field?: string }).field, field);
}

test('parse: key_parameters_list<1..2^8-1>, exact consumption', (t) => {
  malformedExtension(t, '010000', 'key_parameters_list.length'); // empty list
  malformedExtension(t, '', 'major');
  malformedExtension(t, '01', 'minor');
  malformedExtension(t, '0100', 'key_parameters_list.length');
  malformedExtension(t, '01000201', 'key_parameters_list');
  malformedExtension(t, '0100010200', 'token_binding');
  t.deepEqual(parseTokenBindingExtension(hexToBytes('01000400010202')).keyParameters, [0, 1, 2, 2]);
  const long = new Uint8Array(3 + 255).fill(7);
  long[2] = 255;
  t.is(parseTokenBindingExtension(long).keyParameters.length, 255);
  t.throws(() => parseTokenBindingExtension('010000' as never), { instanceOf: TypeError });
});

test('encode: TypeError for an empty or oversized list and bad versions', (t) => {
  t.deepEqual(encodeTokenBindingExtension(params('1.0', [2, 0])), Uint8Array.of(1, 0, 2, 2, 0));
  t.throws(() => encodeTokenBindingExtension(params('1.0', [])), { instanceOf: TypeError });
  t.throws(() => encodeTokenBindingExtension(params('1.0', new Array<number>(256).fill(2))), { instanceOf: TypeError });
  t.throws(() => encodeTokenBindingExtension(params('1.0', [256])), { instanceOf: TypeError });
  t.throws(() => encodeTokenBindingExtension({ version: { major: 256, minor: 0 }, keyParameters: [2] }), { instanceOf: TypeError });
  t.throws(() => encodeTokenBindingExtension({ keyParameters: [2] } as never), { instanceOf: TypeError });
  t.throws(() => encodeTokenBindingExtension(null as never), { instanceOf: TypeError });
});

// ---------------------------------------------------------------------------------------------
// Negotiation tables

const BORING = 'boringssl_runner';
const PING = 'pingidentity/java8-token-binding-negotiation';

/** A peer case line, found by its file section and its opening words. */
interface PeerRef {
  readonly section: string;
  readonly line: string;
}
const ref = (section: string, line: string): PeerRef => ({ section, line });

type Row =
  | {
      readonly peer: PeerRef;
      readonly kind: 'select';
      readonly offer: TokenBindingParameters;
      readonly server: TokenBindingServerNegotiation;
      readonly expect: TokenBindingParameters | null;
    }
  | {
      readonly peer: PeerRef;
      readonly kind: 'validate';
      readonly offer: TokenBindingParameters;
      readonly reply: TokenBindingParameters | null;
      readonly tls: TokenBindingTlsFacts;
      readonly minVersion?: TokenBindingProtocolVersion;
      readonly expect: { version: string; keyParameters: number } | null | 'ERR_TB_NEGOTIATION_INVALID';
    }
  | { readonly peer: PeerRef; readonly kind: 'parse'; readonly hex: string; readonly expect: 'ERR_TB_EXTENSION_MALFORMED' | number[] };

// BoringSSL's runner spoke drafts 13..16: its server is min 0.13, max 0.16.
const boringServer = (keyParameters: number[], tls = TLS12): TokenBindingServerNegotiation => ({
  keyParameters,
  minVersion: v('0.13'),
  maxVersion: v('0.16'),
  tls,
});
// Ping's JDK negotiation accepts drafts from 0.10.
const pingServer = (keyParameters: number[]): TokenBindingServerNegotiation => ({ keyParameters, minVersion: v('0.10'), tls: TLS12 });
const ours = (keyParameters: number[], tls = TLS12): TokenBindingServerNegotiation => ({ keyParameters, tls });

const B1 = ref(BORING, 'Server: client offers [0,1,2], server config [2,1,0]');
const B2 = ref(BORING, 'Server: client offers [3] only');
const B3 = ref(BORING, 'Server: client version 12');
const B4 = ref(BORING, 'Server: client offers empty list');
const B5 = ref(BORING, 'Server: repeated param');
const B7 = ref(BORING, 'Client: server sends 2 params');
const B8 = ref(BORING, 'Client: server version below client min');
const B9 = ref(BORING, 'TLS<=1.2 without EMS or without RI');
const P1 = ref(PING, 'server picks by SERVER preference');
const P2 = ref(PING, 'client version 1.x / 2.x / 3.0');

const NOT_APPLICABLE: readonly [PeerRef, string][] = [
  [
    ref(BORING, 'Client: server sends extension the client did not offer'),
    'TLS-stack bookkeeping of which extensions were sent; a client that sent no offer never calls validateTokenBindingReply',
  ],
  [ref(BORING, 'TLS 1.3: token binding + 0-RTT'), 'early data: Node has no 0-RTT, and 0-RTT data never carries Token Binding (PROTOCOL.md)'],
];

const rows: Row[] = [
  // --- BoringSSL, server side
  { peer: B1, kind: 'select', offer: params('0.16', [0, 1, 2]), server: boringServer([2, 1, 0]), expect: params('0.16', [2]) },
  { peer: B1, kind: 'select', offer: params('1.0', [0, 1, 2]), server: ours([2, 1, 0]), expect: params('1.0', [2]) },
  { peer: B1, kind: 'select', offer: params('1.0', [0, 1, 2]), server: ours([2, 1, 0], TLS13), expect: params('1.0', [2]) },
  { peer: B2, kind: 'select', offer: params('0.16', [3]), server: boringServer([2, 1, 0]), expect: null },
  { peer: B2, kind: 'select', offer: params('1.0', [3]), server: ours([2, 1, 0]), expect: null },
  { peer: B3, kind: 'select', offer: params('0.12', [2]), server: boringServer([2]), expect: null },
  { peer: B3, kind: 'select', offer: params('0.12', [2]), server: ours([2]), expect: null },
  { peer: B3, kind: 'select', offer: params('0.17', [2]), server: boringServer([2]), expect: params('0.16', [2]) },
  { peer: B3, kind: 'select', offer: params('1.0', [2]), server: boringServer([2]), expect: params('0.16', [2]) },
  { peer: B3, kind: 'select', offer: params('0.13', [2]), server: ours([2]), expect: params('0.13', [2]) },
  { peer: B4, kind: 'parse', hex: '001000', expect: 'ERR_TB_EXTENSION_MALFORMED' },
  { peer: B4, kind: 'parse', hex: '010000', expect: 'ERR_TB_EXTENSION_MALFORMED' },
  { peer: B4, kind: 'select', offer: params('1.0', []), server: ours([2, 1, 0]), expect: null },
  { peer: B5, kind: 'parse', hex: '00100400010202', expect: [0, 1, 2, 2] },
  { peer: B5, kind: 'select', offer: params('0.16', [0, 1, 2, 2]), server: boringServer([2, 1, 0]), expect: params('0.16', [2]) },
  { peer: B5, kind: 'select', offer: params('1.0', [2, 2, 2]), server: ours([2, 2]), expect: params('1.0', [2]) },
  // --- BoringSSL, client side
  { peer: B7, kind: 'validate', offer: params('1.0', [2, 1]), reply: params('1.0', [2, 1]), tls: TLS12, expect: 'ERR_TB_NEGOTIATION_INVALID' },
  { peer: B7, kind: 'parse', hex: '010000', expect: 'ERR_TB_EXTENSION_MALFORMED' },
  { peer: B7, kind: 'validate', offer: params('1.0', [2]), reply: params('1.0', []), tls: TLS12, expect: 'ERR_TB_NEGOTIATION_INVALID' },
  { peer: B7, kind: 'validate', offer: params('1.0', [0, 1, 2]), reply: params('1.0', [3]), tls: TLS12, expect: 'ERR_TB_NEGOTIATION_INVALID' },
  { peer: B8, kind: 'validate', offer: params('1.0', [2]), reply: params('0.12', [2]), tls: TLS12, expect: null },
  { peer: B8, kind: 'validate', offer: params('1.0', [2]), reply: params('0.0', [2]), tls: TLS12, expect: null },
  // Below the minimum, nothing was negotiated: not even EMS/RI or a foreign parameter is an error.
  { peer: B8, kind: 'validate', offer: params('1.0', [2]), reply: params('0.12', [3]), tls: TLS12_NO_EMS, expect: null },
  { peer: B8, kind: 'validate', offer: params('1.0', [2]), reply: params('0.10', [2]), tls: TLS12, minVersion: v('0.10'), expect: { version: '0.10', keyParameters: 2 } },
  { peer: B8, kind: 'validate', offer: params('1.0', [2]), reply: params('1.1', [2]), tls: TLS12, expect: 'ERR_TB_NEGOTIATION_INVALID' },
  { peer: B8, kind: 'validate', offer: params('0.16', [2]), reply: params('0.17', [2]), tls: TLS12, expect: 'ERR_TB_NEGOTIATION_INVALID' },
  { peer: B8, kind: 'validate', offer: params('1.0', [2]), reply: params('2.0', [2]), tls: TLS12, expect: 'ERR_TB_NEGOTIATION_INVALID' },
  { peer: B8, kind: 'validate', offer: params('1.0', [2]), reply: params('0.14', [2]), tls: TLS12, expect: { version: '0.14', keyParameters: 2 } },
  // RFC 8472 §4: a version the client does not speak → the connection goes on without Token Binding.
  { peer: B8, kind: 'validate', offer: params('1.0', [2]), reply: params('0.20', [2]), tls: TLS12, expect: null },
  // --- EMS and RI
  { peer: B9, kind: 'select', offer: params('1.0', [2]), server: ours([2], TLS12_NO_EMS), expect: null },
  { peer: B9, kind: 'select', offer: params('1.0', [2]), server: ours([2], TLS12_NO_RI), expect: null },
  { peer: B9, kind: 'select', offer: params('1.0', [2]), server: ours([2], { version: 'TLSv1.1', extendedMasterSecret: true, renegotiationIndication: true }), expect: params('1.0', [2]) },
  { peer: B9, kind: 'select', offer: params('1.0', [2]), server: ours([2], { version: 'TLSv1.4', extendedMasterSecret: false, renegotiationIndication: false }), expect: null },
  { peer: B9, kind: 'select', offer: params('1.0', [2]), server: ours([2], TLS13), expect: params('1.0', [2]) },
  { peer: B9, kind: 'validate', offer: params('1.0', [2]), reply: params('1.0', [2]), tls: TLS12_NO_EMS, expect: 'ERR_TB_NEGOTIATION_INVALID' },
  { peer: B9, kind: 'validate', offer: params('1.0', [2]), reply: params('1.0', [2]), tls: TLS12_NO_RI, expect: 'ERR_TB_NEGOTIATION_INVALID' },
  { peer: B9, kind: 'validate', offer: params('1.0', [2]), reply: params('1.0', [2]), tls: TLS13, expect: { version: '1.0', keyParameters: 2 } },
  { peer: B9, kind: 'validate', offer: params('1.0', [2]), reply: params('1.0', [2]), tls: TLS12, expect: { version: '1.0', keyParameters: 2 } },
  { peer: B9, kind: 'validate', offer: params('1.0', [2]), reply: null, tls: TLS12_NO_EMS, expect: null },
  // --- Ping: server preference, unknown ids (-5 is 251 as a byte)
  { peer: P1, kind: 'select', offer: params('1.0', [0, 1, 2]), server: pingServer([2, 1, 0]), expect: params('1.0', [2]) },
  { peer: P1, kind: 'select', offer: params('1.0', [2, 1, 0]), server: pingServer([0, 1, 2]), expect: params('1.0', [0]) },
  { peer: P1, kind: 'select', offer: params('1.0', [100, 101, 1, 102, 251, 77, 121]), server: pingServer([2, 1, 0]), expect: params('1.0', [1]) },
  { peer: P1, kind: 'select', offer: params('1.0', [100, 101, 102, 251, 77, 121]), server: pingServer([2, 1, 0]), expect: null },
  { peer: P1, kind: 'select', offer: params('1.0', [2]), server: ours([]), expect: null },
];

// Ping's versions: with Ping's minimum (0.10) and with ours (0.13).
for (const client of ['1.0', '1.1', '1.255', '2.0', '2.7', '3.0']) {
  rows.push({ peer: P2, kind: 'select', offer: params(client, [2]), server: pingServer([2]), expect: params('1.0', [2]) });
  rows.push({ peer: P2, kind: 'select', offer: params(client, [2]), server: ours([2]), expect: params('1.0', [2]) });
}
for (const client of ['0.0', '0.2', '0.8', '0.9', '0.22', '0.17', '0.255']) {
  rows.push({ peer: P2, kind: 'select', offer: params(client, [2]), server: pingServer([2]), expect: null });
  rows.push({ peer: P2, kind: 'select', offer: params(client, [2]), server: ours([2]), expect: null });
}
for (let minor = 10; minor <= 16; minor++) {
  const client = `0.${minor}`;
  rows.push({ peer: P2, kind: 'select', offer: params(client, [2]), server: pingServer([2]), expect: params(client, [2]) });
  rows.push({ peer: P2, kind: 'select', offer: params(client, [2]), server: ours([2]), expect: minor >= 13 ? params(client, [2]) : null });
}

const describe = (p: TokenBindingParameters | null) => (p === null ? 'null' : `${p.version.major}.${p.version.minor} [${p.keyParameters.join(',')}]`);
const describe2 = (version: TokenBindingProtocolVersion | undefined) => (version === undefined ? 'default' : `${version.major}.${version.minor}`);

for (const [i, row] of rows.entries()) {
  const name =
    row.kind === 'parse'
      ? `parse ${row.hex}`
      : row.kind === 'select'
        ? `select offer ${describe(row.offer)} server [${row.server.keyParameters.join(',')}] min ${describe2(row.server.minVersion)} max ${describe2(row.server.maxVersion)} ${row.server.tls.version}${row.server.tls.extendedMasterSecret ? '+EMS' : ''}${row.server.tls.renegotiationIndication ? '+RI' : ''}`
        : `validate offer ${describe(row.offer)} reply ${describe(row.reply)} ${row.tls.version}${row.tls.extendedMasterSecret ? '+EMS' : ''}${row.tls.renegotiationIndication ? '+RI' : ''}${row.minVersion ? ` min ${describe2(row.minVersion)}` : ''}`;
  test(`negotiation #${i} (${row.peer.line}): ${name}`, (t) => {
    if (row.kind === 'parse') {
      if (typeof row.expect === 'string') {
        const err = t.throws(() => parseTokenBindingExtension(hexToBytes(row.hex)), { instanceOf: TokenBindingError });
        t.is(err?.code, row.expect);
      } else {
        t.deepEqual(parseTokenBindingExtension(hexToBytes(row.hex)).keyParameters, row.expect);
      }
    } else if (row.kind === 'select') {
      const reply = selectTokenBindingParameters(row.offer, row.server);
      t.deepEqual(reply, row.expect);
      // Whatever the server selects, a client holding the same offer and TLS facts accepts as is.
      if (reply !== null) {
        const minVersion = row.server.minVersion ?? DEFAULT_MIN_TOKEN_BINDING_VERSION;
        t.deepEqual(validateTokenBindingReply(row.offer, reply, row.server.tls, { minVersion }), {
          version: reply.version,
          keyParameters: reply.keyParameters[0],
        });
      }
    } else {
      const run = () => validateTokenBindingReply(row.offer, row.reply, row.tls, row.minVersion ? { minVersion: row.minVersion } : undefined);
      if (row.expect === 'ERR_TB_NEGOTIATION_INVALID') {
        const err = t.throws(run, { instanceOf: TokenBindingError });
        t.is(err?.code, row.expect);
      } else {
        t.deepEqual(run(), row.expect === null ? null : { version: v(row.expect.version), keyParameters: row.expect.keyParameters });
      }
    }
  });
}

test('every peer negotiation case is covered by a row or explained as not applicable', (t) => {
  const claimed = [...rows.map((r) => r.peer), ...NOT_APPLICABLE.map(([p]) => p)];
  let lines = 0;
  for (const [section, cases] of Object.entries(type24.negotiation_cases_from_peers)) {
    for (const line of cases) {
      lines++;
      t.true(
        claimed.some((p) => section.startsWith(p.section) && line.startsWith(p.line)),
        `uncovered peer case: ${section}: ${line}`,
      );
    }
  }
  t.is(lines, 12);
  // And no row points at a line that is not in the file.
  for (const p of claimed) {
    const section = Object.entries(type24.negotiation_cases_from_peers).find(([s]) => s.startsWith(p.section));
    t.truthy(section?.[1].some((line) => line.startsWith(p.line)), `stale row reference: ${p.line}`);
  }
});

test('server configuration errors are TypeErrors', (t) => {
  const offer = params('1.0', [2]);
  t.throws(() => selectTokenBindingParameters(offer, { ...ours([2]), maxVersion: v('1.1') }), { instanceOf: TypeError });
  t.throws(() => selectTokenBindingParameters(offer, { ...ours([2]), minVersion: v('1.0'), maxVersion: v('0.16') }), { instanceOf: TypeError });
  t.throws(() => selectTokenBindingParameters(offer, { ...ours([2]), minVersion: { major: 0, minor: 256 } }), { instanceOf: TypeError });
  t.throws(() => selectTokenBindingParameters(offer, ours([300])), { instanceOf: TypeError });
  t.throws(() => selectTokenBindingParameters(offer, null as never), { instanceOf: TypeError });
  t.throws(() => selectTokenBindingParameters(offer, { keyParameters: [2] } as never), { instanceOf: TypeError });
  t.throws(() => selectTokenBindingParameters({ version: null } as never, ours([2])), { instanceOf: TypeError });
  t.throws(() => validateTokenBindingReply(offer, offer, null as never), { instanceOf: TypeError });
  t.throws(() => validateTokenBindingReply(offer, { version: v('1.0') } as never, TLS13), { instanceOf: TypeError });
});
