/**
 * parseClientHello and the record reassembler, on hand-built ClientHellos and on real ones
 * captured from Node's TLS client.
 */
import test from 'ava';
import fc from 'fast-check';
import { encodeTokenBindingExtension } from '../../src/codec/extension.js';
import { isTokenBindingError } from '../../src/errors.js';
import { ClientHelloReader, MAX_CLIENT_HELLO_RECORDS, parseClientHello, type ClientHelloInfo } from '../../src/tls/client-hello.js';
import { WorkBudgetExceeded, countCopies } from '../_work.js';
import { buildClientHello, captureNodeClientHello, spliceExtension, toRecords, type Extension } from './_hello.js';

const TB_OFFER = encodeTokenBindingExtension({ version: { major: 1, minor: 0 }, keyParameters: [2, 1, 0] });

function sni(name: string): Uint8Array {
  const n = Buffer.from(name, 'latin1');
  return Uint8Array.from([0, n.length + 3, 0, 0, n.length, ...n]);
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return isTokenBindingError(err) ? err.code : `not a TokenBindingError: ${String(err)}`;
  }
}

test('reads the fields Token Binding cares about', (t) => {
  const extensions: Extension[] = [
    [0, sni('example.com')],
    [23, new Uint8Array(0)],
    [24, TB_OFFER],
    [43, Uint8Array.of(4, 0x03, 0x04, 0x03, 0x03)],
    [0xff01, Uint8Array.of(0)],
    [0x1234, Uint8Array.of(1, 2, 3)],
  ];
  const info = parseClientHello(buildClientHello({ cipherSuites: [0x1301, 0xc02b], extensions }));
  t.deepEqual(info, {
    legacyVersion: 0x0303,
    cipherSuites: [0x1301, 0xc02b],
    tokenBinding: { version: { major: 1, minor: 0 }, keyParameters: [2, 1, 0] },
    extendedMasterSecret: true,
    renegotiationIndication: true,
    supportedVersions: [0x0304, 0x0303],
    serverName: 'example.com',
  } satisfies ClientHelloInfo);
});

test('no extensions block at all (a legal TLS 1.2 ClientHello)', (t) => {
  const info = parseClientHello(buildClientHello({ cipherSuites: [0xc02b] }));
  t.is(info.tokenBinding, null);
  t.false(info.extendedMasterSecret);
  t.false(info.renegotiationIndication);
  t.deepEqual(info.supportedVersions, []);
  t.is(info.serverName, null);
});

test('the SCSV 0x00FF counts as renegotiation indication (RFC 5746 §3.3)', (t) => {
  t.true(parseClientHello(buildClientHello({ cipherSuites: [0xc02b, 0x00ff], extensions: [] })).renegotiationIndication);
  t.false(parseClientHello(buildClientHello({ cipherSuites: [0xc02b], extensions: [] })).renegotiationIndication);
});

test('a non-ASCII host_name is reported as no name', (t) => {
  t.is(parseClientHello(buildClientHello({ extensions: [[0, sni('ex\u00e4mple')]] })).serverName, null);
});

test('malformed ClientHellos raise ERR_TB_CLIENT_HELLO', (t) => {
  const good = buildClientHello({ extensions: [[24, TB_OFFER]] });
  const cases: Record<string, Uint8Array> = {
    'not a ClientHello': Uint8Array.from([2, ...good.subarray(1)]),
    'length too long': Uint8Array.from([1, 0, 0xff, 0xff, ...good.subarray(4)]),
    'trailing byte': Uint8Array.from([1, 0, (good.length - 3) >> 8, (good.length - 3) & 0xff, ...good.subarray(4), 0]),
    'no cipher suites': buildClientHello({ cipherSuites: [] }),
    'duplicate extension': buildClientHello({ extensions: [[23, new Uint8Array(0)], [23, new Uint8Array(0)]] }),
    'EMS with a body': buildClientHello({ extensions: [[23, Uint8Array.of(0)]] }),
    'empty token_binding list': buildClientHello({ extensions: [[24, Uint8Array.of(1, 0, 0)]] }),
    'token_binding trailing byte': buildClientHello({ extensions: [[24, Uint8Array.of(1, 0, 1, 2, 9)]] }),
    'odd supported_versions': buildClientHello({ extensions: [[43, Uint8Array.of(3, 3, 4, 3)]] }),
    'renegotiation_info overrun': buildClientHello({ extensions: [[0xff01, Uint8Array.of(5, 1)]] }),
    'sni overrun': buildClientHello({ extensions: [[0, Uint8Array.of(0, 9, 0, 0, 3, 0x61)]] }),
    'no compression methods': buildClientHello({ compressionMethods: [] }),
    'session id over 32': buildClientHello({ sessionId: new Uint8Array(33) }),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    t.is(code(() => parseClientHello(bytes)), 'ERR_TB_CLIENT_HELLO', name);
  }
  // Every strict prefix of a good ClientHello is malformed.
  for (let n = 0; n < good.length; n++) {
    t.is(code(() => parseClientHello(good.subarray(0, n))), 'ERR_TB_CLIENT_HELLO', `prefix ${n}`);
  }
  t.throws(() => parseClientHello('x' as unknown as Uint8Array), { instanceOf: TypeError });
});

test('a malformed token_binding extension keeps the codec error as its cause', (t) => {
  const err = t.throws(() => parseClientHello(buildClientHello({ extensions: [[24, Uint8Array.of(1)]] })));
  t.true(isTokenBindingError(err, 'ERR_TB_CLIENT_HELLO'));
  t.true(isTokenBindingError((err?.cause as { cause?: unknown } | undefined)?.cause, 'ERR_TB_EXTENSION_MALFORMED'));
});

test("Node's own ClientHello: TLS 1.3 offer, EMS, RI, SNI; no token_binding", async (t) => {
  const { message } = await captureNodeClientHello();
  const info = parseClientHello(message);
  t.is(info.legacyVersion, 0x0303);
  t.deepEqual(info.supportedVersions, [0x0304, 0x0303]);
  t.true(info.extendedMasterSecret);
  t.true(info.renegotiationIndication);
  t.true(info.cipherSuites.includes(0x00ff), 'OpenSSL signals RI with the SCSV');
  t.is(info.serverName, 'localhost');
  t.is(info.tokenBinding, null);
});

test('extension 24 spliced into a real ClientHello is read as the offer', async (t) => {
  const { message } = await captureNodeClientHello({ maxVersion: 'TLSv1.2' });
  const info = parseClientHello(spliceExtension(message, 24, TB_OFFER));
  t.deepEqual(info.tokenBinding, { version: { major: 1, minor: 0 }, keyParameters: [2, 1, 0] });
  t.deepEqual(info.supportedVersions, [], 'a TLS 1.2-only client sends no supported_versions');
  t.true(info.extendedMasterSecret);
});

test('ClientHelloReader reassembles across records and byte-sized segments', async (t) => {
  const { message } = await captureNodeClientHello();
  const smallest = Math.ceil(message.length / MAX_CLIENT_HELLO_RECORDS);
  for (const [fragment, maxRecords] of [[16384], [100], [smallest], [7, 4096], [1, 4096]] as const) {
    const wire = toRecords(message, fragment);
    const reader = new ClientHelloReader(16384, maxRecords);
    let out: Uint8Array | null = null;
    for (let i = 0; i < wire.length; i++) {
      out = reader.push(wire.subarray(i, i + 1));
      if (out !== null) {
        t.is(i, wire.length - 1, 'complete exactly on the last byte');
        break;
      }
    }
    t.deepEqual(out && Buffer.from(out), Buffer.from(message), `fragment ${fragment}`);
    t.deepEqual(reader.bytes, wire, 'every byte kept for unshift');
  }
});

test(`ClientHelloReader refuses a hello spread over more than ${MAX_CLIENT_HELLO_RECORDS} records, on the first record past the cap`, (t) => {
  const message = buildClientHello({ extensions: [[0x1234, new Uint8Array(400)]] });
  const wire = toRecords(message, 1);
  const reader = new ClientHelloReader();
  let refused = -1;
  for (let i = 0; i < wire.length && refused < 0; i++) {
    if (code(() => reader.push(wire.subarray(i, i + 1))) === 'ERR_TB_CLIENT_HELLO') refused = i;
  }
  // Record n (1-based) starts at byte 6(n-1); its header is complete at 6(n-1)+4.
  t.is(refused, 6 * MAX_CLIENT_HELLO_RECORDS + 4, 'refused on the last header byte of record 65');
  t.is(code(() => new ClientHelloReader(16384, 2).push(toRecords(message, Math.ceil(message.length / 3)))), 'ERR_TB_CLIENT_HELLO');
  t.truthy(new ClientHelloReader(16384, 3).push(toRecords(message, Math.ceil(message.length / 3))), 'exactly maxRecords records');
});

/**
 * Issue 11, item 1: the reader re-scanned every record and concatenated every fragment on each
 * push, O(records³) for a hello in one-byte records trickled a byte at a time (2,700 records under
 * the 16 KiB cap took 209 s of CPU). Counted: bytes copied (and list entries walked by concat) per
 * byte on the wire must be the same small constant whether the hello comes in one record or in
 * 2,700 one-byte records pushed a byte at a time. The budget stops the quadratic reader at once.
 */
test('ClientHelloReader: O(1) work per byte, one record or 2,700 one-byte records trickled a byte at a time', (t) => {
  const message = buildClientHello({ extensions: [[0x1234, new Uint8Array(2700 - 4 - 2 - 32 - 33 - 8 - 2 - 2 - 4)]] });
  t.is(message.length, 2700);
  const cases = [
    { name: 'one record, one push', wire: toRecords(message), records: 1, segment: 1 << 30 },
    { name: 'one record, a byte per push', wire: toRecords(message), records: 1, segment: 1 },
    { name: 'four records, 100-byte pushes', wire: toRecords(message, 675), records: 4, segment: 100 },
    { name: '2,700 one-byte records, one push', wire: toRecords(message, 1), records: 2700, segment: 1 << 30 },
    { name: '2,700 one-byte records, a byte per push', wire: toRecords(message, 1), records: 2700, segment: 1 },
  ];
  const perByte: Record<string, number> = {};
  for (const { name, wire, records, segment } of cases) {
    const reader = new ClientHelloReader(16384, 4096);
    // Linear work copies each byte a handful of times; a quadratic reader passes 10 per byte at once.
    const budget = 10 * wire.length + 4096;
    let out: Uint8Array | null = null;
    let work: { bytes: number; calls: number };
    try {
      work = countCopies(() => {
        for (let i = 0; i < wire.length && out === null; i += segment) out = reader.push(wire.subarray(i, i + segment));
      }, budget);
    } catch (err) {
      if (err instanceof WorkBudgetExceeded) return void t.fail(`${name}: more than ${budget} bytes copied for ${wire.length} bytes on the wire`);
      throw err;
    }
    t.deepEqual(out && Buffer.from(out), message, name);
    t.deepEqual(reader.bytes, wire, `${name}: every byte kept for unshift`);
    perByte[name] = work.bytes / wire.length;
    t.true(work.bytes <= 4 * wire.length + 1024, `${name}: ${work.bytes} bytes copied for ${wire.length} on the wire`);
    const pushes = Math.ceil(wire.length / segment);
    t.true(work.calls <= 2 * (pushes + records) + 16, `${name}: ${work.calls} copy calls for ${pushes} pushes of ${records} records`);
  }
  t.log(perByte);
});

test('ClientHelloReader keeps bytes that follow the ClientHello', (t) => {
  const message = buildClientHello({ extensions: [] });
  const wire = Buffer.concat([toRecords(message), Buffer.from([23, 3, 3, 0, 1, 0xee])]);
  const reader = new ClientHelloReader();
  const out = reader.push(wire);
  t.deepEqual(out && Buffer.from(out), message);
  t.deepEqual(reader.bytes, wire);
});

test('ClientHelloReader rejects what is not a TLS ClientHello, early', (t) => {
  const push = (bytes: number[], maxBytes?: number) => code(() => new ClientHelloReader(maxBytes).push(Uint8Array.from(bytes)));
  t.is(push([...Buffer.from('GET / HTTP/1.1\r\n\r\n')]), 'ERR_TB_CLIENT_HELLO');
  t.is(push([21, 3, 3, 0, 2]), 'ERR_TB_CLIENT_HELLO', 'an alert record');
  t.is(push([22, 2, 0, 0, 2]), 'ERR_TB_CLIENT_HELLO', 'SSL 2 version');
  t.is(push([22, 3, 1, 0, 0]), 'ERR_TB_CLIENT_HELLO', 'empty record');
  t.is(push([22, 3, 1, 0x40, 1]), 'ERR_TB_CLIENT_HELLO', 'record over 2^14');
  t.is(push([22, 3, 1, 0, 4, 2]), 'ERR_TB_CLIENT_HELLO', 'a ServerHello, seen on its first byte');
  t.is(push([22, 3, 1, 0x10, 0], 1024), 'ERR_TB_CLIENT_HELLO', 'a record that would pass maxBytes');
  t.is(push([22, 3, 1, 0, 4, 1, 0, 0x10, 0], 1024), 'ERR_TB_CLIENT_HELLO', 'a ClientHello length over maxBytes');
  t.is(push([22, 3, 1, 0, 1]), undefined, 'a partial record waits');
});

test('ClientHelloReader refuses a ClientHello spread over records beyond maxBytes', (t) => {
  const message = buildClientHello({ extensions: [[0x1234, new Uint8Array(900)]] });
  const reader = new ClientHelloReader(512);
  t.is(code(() => reader.push(toRecords(message, 100))), 'ERR_TB_CLIENT_HELLO');
});

test('property: random bytes only ever give a result or ERR_TB_CLIENT_HELLO', (t) => {
  const onlyCoded = (bytes: Uint8Array): boolean => {
    const c = code(() => parseClientHello(bytes));
    return c === undefined || c === 'ERR_TB_CLIENT_HELLO';
  };
  const good = buildClientHello({ extensions: [[0, sni('a.example')], [23, new Uint8Array(0)], [24, TB_OFFER], [43, Uint8Array.of(2, 3, 4)]] });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), onlyCoded), { numRuns: 3000 });
  // Random corruptions of a valid ClientHello reach the deeper branches.
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (edits) => {
      const bytes = Uint8Array.from(good);
      for (const [i, v] of edits) bytes[i] = v;
      return onlyCoded(bytes);
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 64 }), (bytes, step) => {
      const reader = new ClientHelloReader(1024);
      try {
        for (let i = 0; i < bytes.length; i += step) reader.push(bytes.subarray(i, i + step));
        return true;
      } catch (err) {
        return isTokenBindingError(err, 'ERR_TB_CLIENT_HELLO');
      }
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('property: any token_binding offer round-trips through a ClientHello', (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 255 }),
      fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 255 }),
      fc.array(fc.integer({ min: 0x100, max: 0xfe00 }), { maxLength: 5 }),
      (major, minor, keyParameters, otherTypes) => {
        const others: Extension[] = [...new Set(otherTypes)].map((type) => [type, Uint8Array.of(type & 0xff)]);
        const offer = encodeTokenBindingExtension({ version: { major, minor }, keyParameters });
        const info = parseClientHello(buildClientHello({ extensions: [...others, [24, offer]] }));
        return (
          info.tokenBinding !== null &&
          info.tokenBinding.version.major === major &&
          info.tokenBinding.version.minor === minor &&
          info.tokenBinding.keyParameters.join() === keyParameters.join()
        );
      },
    ),
    { numRuns: 500 },
  );
  t.pass();
});
