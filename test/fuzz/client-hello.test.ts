/**
 * Fuzzing the ClientHello reader (record reassembly, run on raw TCP bytes before TLS when
 * `inspectClientHello` is on) and the ClientHello parser. Seeds are real ClientHellos captured
 * from Node's TLS client at test time (TLS 1.3 and 1.2, with and without an RFC 8472 offer
 * spliced in), split at random points, fragmented into several records, and mutated. Only
 * `ERR_TB_CLIENT_HELLO` may come out; an unbroken hello must come back byte for byte whatever the
 * TCP segmentation.
 */
import test from 'ava';
import fc from 'fast-check';
import { ClientHelloReader, MAX_CLIENT_HELLO_RECORDS, parseClientHello } from '../../src/tls/client-hello.js';
import type { TokenBindingErrorCode } from '../../src/errors.js';
import { mutated } from './_arbitraries.js';
import { codesText, expectCoded, fuzzParameters, fuzzTime, newTally, printSummary } from './_fuzz.js';
import { captureClientHello } from '../reliability/_net.js';

const allowed: ReadonlySet<TokenBindingErrorCode> = new Set(['ERR_TB_CLIENT_HELLO']);

/** The handshake message inside one record. */
const messageOf = (record: Buffer): Buffer => record.subarray(5);

/** Re-wraps a handshake message in records of at most `size` bytes. */
function fragment(message: Uint8Array, size: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < message.length; i += size) {
    const piece = message.subarray(i, i + size);
    out.push(Buffer.from([22, 3, 1, piece.length >>> 8, piece.length & 0xff]), Buffer.from(piece));
  }
  return Buffer.concat(out);
}

/** Adds an RFC 8472 token_binding extension (type 24, body 1.0 [2, 1, 0]) first in the block. */
function withTokenBinding(message: Buffer): Buffer {
  let p = 4 + 2 + 32;
  p += 1 + message[p]!;
  p += 2 + message.readUInt16BE(p);
  p += 1 + message[p]!;
  const ext = Buffer.from([0, 24, 0, 6, 1, 0, 3, 2, 1, 0]);
  const out = Buffer.concat([message.subarray(0, p + 2), ext, message.subarray(p + 2)]);
  out.writeUInt16BE(out.readUInt16BE(p) + ext.length, p);
  const length = out.length - 4;
  out[1] = length >>> 16;
  out.writeUInt16BE(length & 0xffff, 2);
  return out;
}

const seeds = await Promise.all([
  captureClientHello({}),
  captureClientHello({ maxVersion: 'TLSv1.2' }),
  captureClientHello({ minVersion: 'TLSv1.3', ALPNProtocols: ['h2', 'http/1.1'] }),
]);
const messages = [...seeds.map(messageOf), ...seeds.map((s) => withTokenBinding(messageOf(s)))];

/** A hello on the wire: one or more records (at most the reader's cap) of some fragment size. */
const wireArb = fc
  .tuple(fc.constantFrom(...messages), fc.oneof(fc.constant(16384), fc.integer({ min: 1, max: 600 })))
  .map(([message, size]) => fragment(message, Math.max(size, Math.ceil(message.length / MAX_CLIENT_HELLO_RECORDS))));

/** Cuts `bytes` into TCP segments at the given points. */
function segments(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    if (p > from) out.push(bytes.subarray(from, p));
    from = Math.max(from, p);
  }
  out.push(bytes.subarray(from));
  return out;
}

const tallies: [string, ReturnType<typeof newTally>][] = [];

test.serial('the seeds are real ClientHellos the parser reads (guards the generators)', (t) => {
  for (const m of messages) t.notThrows(() => parseClientHello(m));
  t.deepEqual(parseClientHello(messages[messages.length - 1]!).tokenBinding, { version: { major: 1, minor: 0 }, keyParameters: [2, 1, 0] });
});

test.serial('reader: an unbroken hello comes back byte for byte, however it is segmented and fragmented', (t) => {
  let inputs = 0;
  fc.assert(
    fc.property(wireArb, fc.array(fc.nat(), { maxLength: 40 }), (wire, cuts) => {
      inputs++;
      const reader = new ClientHelloReader();
      const parts = segments(wire, cuts);
      let message: Uint8Array | null = null;
      for (const [i, part] of parts.entries()) {
        message = reader.push(part);
        if (message !== null && i !== parts.length - 1) return false;
      }
      return message !== null && parseClientHello(message) !== undefined && messages.some((m) => m.equals(message!));
    }),
    fuzzParameters(fuzzTime(800, 30_000)),
  );
  t.true(inputs >= 200, `only ${inputs} inputs`);
  tallies.push(['ClientHello reassembly', { inputs, accepted: inputs, codes: new Map() }]);
});

test.serial('reader and parser on hostile bytes: only ERR_TB_CLIENT_HELLO', (t) => {
  const tally = newTally();
  tallies.push(['ClientHello reader', tally]);
  const hostile = fc.oneof(wireArb, mutated(wireArb), mutated(mutated(wireArb)), fc.uint8Array({ maxLength: 400 }), fc.uint8Array({ maxLength: 40 }).map((b) => Uint8Array.of(22, 3, 1, ...b)));
  fc.assert(
    fc.property(hostile, fc.array(fc.nat(), { maxLength: 10 }), fc.constantFrom(64, 512, 16384), (bytes, cuts, maxBytes) => {
      const reader = new ClientHelloReader(maxBytes);
      expectCoded(tally, allowed, () => {
        let message: Uint8Array | null = null;
        for (const part of segments(bytes, cuts)) {
          message = reader.push(part);
          if (message !== null) break;
        }
        if (message !== null) {
          if (message.length > maxBytes) throw new Error(`reader returned ${message.length} bytes over maxBytes ${maxBytes}`);
          parseClientHello(message);
        }
        return message;
      });
    }),
    fuzzParameters(fuzzTime(2000)),
  );
  t.true(tally.inputs >= 500, `only ${tally.inputs} inputs`);
  t.true(tally.accepted > 0 && (tally.codes.get('ERR_TB_CLIENT_HELLO') ?? 0) > 0);
});

test.serial('parser on mutated handshake messages: only ERR_TB_CLIENT_HELLO', (t) => {
  const tally = newTally();
  tallies.push(['ClientHello parser', tally]);
  fc.assert(
    fc.property(fc.oneof(mutated(fc.constantFrom(...messages)), fc.uint8Array({ maxLength: 300 }).map((b) => Uint8Array.of(1, 0, b.length >>> 8, b.length & 0xff, ...b))), (message) => {
      expectCoded(tally, allowed, () => parseClientHello(message));
    }),
    fuzzParameters(fuzzTime(1500)),
  );
  t.true(tally.inputs >= 500, `only ${tally.inputs} inputs`);
  t.true(tally.accepted > 0 && (tally.codes.get('ERR_TB_CLIENT_HELLO') ?? 0) > 0);
});

test.after.always('summary', () => {
  for (const [name, tally] of tallies) {
    printSummary(`fuzz: ${name}`, { inputs: tally.inputs, accepted: tally.accepted, rejected: tally.inputs - tally.accepted, crashes: 0, codes: codesText(tally.codes) });
  }
});
