/**
 * Replay detection (src/http/replay.ts): a message whose provided signature verified on one
 * connection and fails on another is marked `cause.replayed`, keeps its code, and is published as such.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { randomBytes } from 'node:crypto';
import test from 'ava';
import { decodeSecTokenBindingHeader } from '../../src/codec/header.js';
import { encodeTokenBindingMessage, parseTokenBindingMessage } from '../../src/codec/message.js';
import { createSecTokenBindingHeader, generateTokenBindingKey } from '../../src/crypto/sign.js';
import { TokenBindingError } from '../../src/errors.js';
import { VERIFY_CHANNEL_NAME, type VerifyEvent } from '../../src/http/metrics.js';
import { REPLAY_TABLE_SLOTS, clearReplayTable, isReplayed, markIfReplayed, rememberVerified } from '../../src/http/replay.js';
import { verifyTokenBindingHeader } from '../../src/http/verify.js';

const key = generateTokenBindingKey();

function refusal(fn: () => unknown): TokenBindingError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TokenBindingError) return err;
    throw err;
  }
  throw new Error('expected a TokenBindingError');
}

test.serial('verified on one connection, presented on another: ERR_TB_SIGNATURE_INVALID with cause.replayed, and the event says so', (t) => {
  const events: VerifyEvent[] = [];
  const onMessage = (m: unknown): void => void events.push(m as VerifyEvent);
  diagnosticsChannel.subscribe(VERIFY_CHANNEL_NAME, onMessage);
  t.teardown(() => diagnosticsChannel.unsubscribe(VERIFY_CHANNEL_NAME, onMessage));
  const a = { ekm: randomBytes(32), negotiatedKeyParameters: [2] };
  const b = { ekm: randomBytes(32), negotiatedKeyParameters: [2] };
  const header = createSecTokenBindingHeader({ provided: key, ekm: a.ekm });

  // Before it verified anywhere: a plain signature failure.
  const before = refusal(() => verifyTokenBindingHeader(header, b));
  t.is(before.code, 'ERR_TB_SIGNATURE_INVALID');
  t.false(isReplayed(before));
  t.not(verifyTokenBindingHeader(header, a), null);
  const replay = refusal(() => verifyTokenBindingHeader(header, b));
  t.is(replay.code, 'ERR_TB_SIGNATURE_INVALID', 'the code stays stable');
  t.true(isReplayed(replay));
  t.deepEqual(replay.cause, { field: 'provided', keyParameters: 'ecdsap256', replayed: true });
  t.deepEqual(
    events.map((e) => [e.outcome, e.replayed ?? false, e.keyParameters]),
    [
      ['rejected', false, 'ecdsap256'],
      ['accepted', false, 'ecdsap256'],
      ['rejected', true, 'ecdsap256'],
    ],
  );
  // The verdict on the original connection is unchanged.
  t.not(verifyTokenBindingHeader(header, a), null);
});

test.serial('only signature failures are replays; other codes pass through unchanged', (t) => {
  const a = { ekm: randomBytes(32), negotiatedKeyParameters: [2] };
  const header = createSecTokenBindingHeader({ provided: key, ekm: a.ekm });
  t.not(verifyTokenBindingHeader(header, a), null);
  const elsewhere = refusal(() => verifyTokenBindingHeader(header, { ekm: randomBytes(32), negotiatedKeyParameters: [1] }));
  t.is(elsewhere.code, 'ERR_TB_KEY_PARAMETERS_NOT_ACCEPTED');
  t.false(isReplayed(elsewhere));
  const signature = parseTokenBindingMessage(decodeSecTokenBindingHeader(header)).bindings[0]!.signature;
  const other = new TokenBindingError('ERR_TB_MALFORMED');
  t.is(markIfReplayed(signature, other), other);
  // A cause that is an Error is replaced by the facts (never kept as a nested object).
  const wrapped = markIfReplayed(signature, new TokenBindingError('ERR_TB_SIGNATURE_INVALID', undefined, new Error('inner')));
  t.deepEqual(wrapped.cause, { replayed: true });
  t.false(isReplayed(new TokenBindingError('ERR_TB_SIGNATURE_INVALID', undefined, new Error('x'))));
  t.false(isReplayed(new TokenBindingError('ERR_TB_SIGNATURE_INVALID')));
});

test.serial('the table forgets on clear; its memory is fixed whatever the traffic', (t) => {
  const a = { ekm: randomBytes(32), negotiatedKeyParameters: [2] };
  const b = { ekm: randomBytes(32), negotiatedKeyParameters: [2] };
  const header = createSecTokenBindingHeader({ provided: key, ekm: a.ekm });
  verifyTokenBindingHeader(header, a);
  t.true(isReplayed(refusal(() => verifyTokenBindingHeader(header, b))));
  clearReplayTable();
  t.false(isReplayed(refusal(() => verifyTokenBindingHeader(header, b))));
  t.is(REPLAY_TABLE_SLOTS, 16384);
  // Twice as many distinct verified values as slots: at most one per slot is remembered.
  const n = 2 * REPLAY_TABLE_SLOTS;
  const signature = (i: number): Buffer => Buffer.from(`signature-${i}`);
  for (let i = 0; i < n; i++) rememberVerified(signature(i));
  const signatureInvalid = new TokenBindingError('ERR_TB_SIGNATURE_INVALID');
  let remembered = 0;
  for (let i = 0; i < n; i++) if (isReplayed(markIfReplayed(signature(i), signatureInvalid))) remembered++;
  t.true(remembered <= REPLAY_TABLE_SLOTS, `${remembered} remembered`);
  t.true(remembered > REPLAY_TABLE_SLOTS / 2, `${remembered} remembered`);
  t.true(isReplayed(markIfReplayed(signature(n - 1), signatureInvalid)), 'the newest signature is always remembered');
  // Signatures longer than any registered key parameters make are fingerprinted too (the long way).
  rememberVerified(Buffer.alloc(4096, 7));
  t.true(isReplayed(markIfReplayed(Buffer.alloc(4096, 7), signatureInvalid)));
  t.false(isReplayed(markIfReplayed(Buffer.alloc(4096, 8), signatureInvalid)));
  t.false(isReplayed(markIfReplayed(Buffer.alloc(64, 7), signatureInvalid)), 'a prefix is another signature');
});

test.serial('a replay that changes the message around the captured signature is still a replay', (t) => {
  const a = { ekm: randomBytes(32), negotiatedKeyParameters: [2] };
  const b = { ekm: randomBytes(32), negotiatedKeyParameters: [2] };
  const header = createSecTokenBindingHeader({ provided: key, ekm: a.ekm });
  t.not(verifyTokenBindingHeader(header, a), null);
  // The captured provided binding with an extension appended: another header value, the same signature.
  const bytes = decodeSecTokenBindingHeader(header);
  const message = parseTokenBindingMessage(bytes);
  const binding = message.bindings[0]!;
  const extended = encodeTokenBindingMessage({ bindings: [{ ...binding, extensions: [{ type: 42, data: new Uint8Array([1, 2, 3]) }] }] });
  const changed = Buffer.from(extended).toString('base64url');
  t.not(changed, header);
  const replay = refusal(() => verifyTokenBindingHeader(changed, b));
  t.is(replay.code, 'ERR_TB_SIGNATURE_INVALID');
  t.true(isReplayed(replay));
});

test.serial('signatures still waiting to be hashed are found, and hashing them later changes no answer', (t) => {
  clearReplayTable();
  const signatureInvalid = new TokenBindingError('ERR_TB_SIGNATURE_INVALID');
  const sig = (i: number, length = 64): Buffer => Buffer.alloc(length, i + 1);
  const lengthOf = (i: number): number => (i % 3 === 0 ? 256 : 64);
  // One verified signature, then a replay of it before 31 more arrive: found at once.
  rememberVerified(sig(0));
  t.true(isReplayed(markIfReplayed(sig(0), signatureInvalid)));
  // Batches' worth, of both lengths a registered key makes (P-256 64, RSA-2048 256), the caller
  // reusing its buffer after each call (as the verifier's decode slab would). The newest signature
  // is always remembered (it takes its slot): checked when a batch has just been hashed (32, 64)
  // and when some are still waiting (70).
  const reused = Buffer.alloc(256);
  for (let i = 1; i <= 70; i++) {
    sig(i, lengthOf(i)).copy(reused);
    rememberVerified(reused.subarray(0, lengthOf(i)));
    reused.fill(0xee);
    if (i === 32 || i === 64 || i === 70) t.true(isReplayed(markIfReplayed(sig(i, lengthOf(i)), signatureInvalid)), `signature ${i}`);
  }
  // The table is direct-mapped (a newer fingerprint may take an older one's slot, ~0.15 of 70 in
  // 16384 slots on average): nearly all are remembered, each with the bytes it had when it verified.
  let remembered = 0;
  for (let i = 1; i <= 70; i++) if (isReplayed(markIfReplayed(sig(i, lengthOf(i)), signatureInvalid))) remembered++;
  t.true(remembered >= 60, `${remembered} of 70 remembered`);
  t.false(isReplayed(markIfReplayed(reused.subarray(0, 64), signatureInvalid)), 'what the buffer held later never verified');
  t.false(isReplayed(markIfReplayed(sig(100), signatureInvalid)));
  // Cleared with the table: nothing waiting survives.
  rememberVerified(sig(200));
  clearReplayTable();
  t.false(isReplayed(markIfReplayed(sig(200), signatureInvalid)));
});
