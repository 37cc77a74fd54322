/**
 * The framework-free core of tokbind/session: options, records, the ladder on records a store may
 * hand back corrupted, and a second binding method plugged in beside Token Binding.
 */
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import test from 'ava';
import { TokenBindingError } from '../../src/errors.js';
import { problemDetails } from '../../src/http/problem.js';
import type { TokenBindingResult } from '../../src/http/result.js';
import {
  SESSION_BINDING_KEY,
  checkSessionBinding,
  createTokenBindingSessionBinding,
  readSessionBinding,
  resolveSessionBindingOptions,
  sessionErrorStatus,
  tokenBindingSessionMethod,
  type SessionBindingMethod,
  type SessionBindingOptions,
} from '../../src/session/index.js';

const TBH_A = 'A'.repeat(43);
const TBH_B = 'B'.repeat(43);
const raw = new IncomingMessage(new Socket());

function bindingFor(hash: string): TokenBindingResult {
  return { provided: { id: 'x', hash, keyParameters: 'ecdsap256', raw: new Uint8Array() }, referred: null, others: [] };
}

test('options: defaults are required + destroy; bad values are TypeErrors', (t) => {
  const resolved = resolveSessionBindingOptions();
  t.is(resolved.policy, 'required');
  t.is(resolved.onMismatch, 'destroy');
  t.deepEqual([...resolved.methods.keys()], ['token-binding']);
  const bad: unknown[] = [
    null,
    'required',
    { policy: 'strict' },
    { onMismatch: 'log' },
    { isAuthenticated: true },
    { methods: [] },
    { methods: 'token-binding' },
    { methods: [{ method: 'dbsc' }] },
    { methods: [null] },
    { methods: [tokenBindingSessionMethod, tokenBindingSessionMethod] },
  ];
  for (const options of bad) t.throws(() => resolveSessionBindingOptions(options as SessionBindingOptions), { instanceOf: TypeError }, JSON.stringify(options));
});

test('createTokenBindingSessionBinding: the provided ID hash, or ERR_TB_SESSION_BINDING_MISSING', (t) => {
  const record = createTokenBindingSessionBinding(bindingFor(TBH_A));
  t.like(record, { method: 'token-binding', tbh: TBH_A });
  t.true(Number.isInteger(record.boundAt));
  for (const none of [null, undefined]) {
    const err = t.throws(() => createTokenBindingSessionBinding(none), { instanceOf: TokenBindingError });
    t.is(err?.code, 'ERR_TB_SESSION_BINDING_MISSING');
  }
});

test('readSessionBinding: only an object with a string method is a record', (t) => {
  t.is(readSessionBinding(undefined), null);
  t.is(readSessionBinding({}), null);
  t.is(readSessionBinding({ [SESSION_BINDING_KEY]: 'tbh' }), null);
  t.is(readSessionBinding({ [SESSION_BINDING_KEY]: { tbh: TBH_A } }), null);
  t.deepEqual(readSessionBinding({ [SESSION_BINDING_KEY]: { method: 'token-binding', tbh: TBH_A, boundAt: 1 } }), { method: 'token-binding', tbh: TBH_A, boundAt: 1 });
});

test('a record a store hands back damaged, or naming an unknown method, is refused as a mismatch (fail closed)', (t) => {
  const options = resolveSessionBindingOptions({ policy: 'optional' });
  const request = { tokenBinding: bindingFor(TBH_A), raw };
  for (const value of [
    'not a record',
    { tbh: TBH_A },
    { method: 'token-binding', tbh: 'short', boundAt: 1 },
    { method: 'token-binding', tbh: 42, boundAt: 1 },
    { method: 'dbsc', boundAt: 1 },
    { method: 'something-else', boundAt: 1 },
  ]) {
    const refusal = checkSessionBinding({ [SESSION_BINDING_KEY]: value, user: 'alice' }, request, options);
    t.is(refusal?.reason, 'mismatch', JSON.stringify(value));
    t.is(refusal?.status, 403);
    t.is(refusal?.error.code, 'ERR_TB_SESSION_BINDING_MISMATCH');
    t.true(refusal?.destroy);
  }
});

test('the ladder on records: match, mismatch, missing; anonymous sessions pass', (t) => {
  const options = resolveSessionBindingOptions();
  const session = { [SESSION_BINDING_KEY]: { method: 'token-binding', tbh: TBH_A, boundAt: 1 }, user: 'alice' };
  t.is(checkSessionBinding(session, { tokenBinding: bindingFor(TBH_A), raw }, options), null);
  t.like(checkSessionBinding(session, { tokenBinding: bindingFor(TBH_B), raw }, options), { reason: 'mismatch', status: 403, method: 'token-binding' });
  t.like(checkSessionBinding(session, { tokenBinding: null, raw }, options), { reason: 'missing-binding', status: 401, method: 'token-binding' });
  t.is(checkSessionBinding({ cookie: {} }, { tokenBinding: null, raw }, options), null);
  t.like(checkSessionBinding({ cookie: {}, user: 'bob' }, { tokenBinding: null, raw }, options), { reason: 'unbound', status: 401, destroy: false });
  t.like(checkSessionBinding(session, { tokenBinding: null, raw }, resolveSessionBindingOptions({ onMismatch: 'reject' })), { destroy: false });
});

test('a second binding method plugs in: its verdicts go through the same ladder (expired → 401, destroyed)', (t) => {
  const seen: unknown[] = [];
  const dbsc: SessionBindingMethod = {
    method: 'dbsc',
    check(binding, request) {
      seen.push([binding['key'], request.raw === raw]);
      return binding['key'] === 'good' ? 'match' : 'expired';
    },
  };
  const options = resolveSessionBindingOptions({ methods: [tokenBindingSessionMethod, dbsc] });
  const request = { tokenBinding: null, raw };
  t.is(checkSessionBinding({ [SESSION_BINDING_KEY]: { method: 'dbsc', key: 'good', boundAt: 1 } }, request, options), null);
  const expired = checkSessionBinding({ [SESSION_BINDING_KEY]: { method: 'dbsc', key: 'old', boundAt: 1 } }, request, options);
  t.like(expired, { reason: 'expired', status: 401, method: 'dbsc', destroy: true });
  t.is(expired?.error.code, 'ERR_TB_SESSION_BINDING_EXPIRED');
  t.deepEqual(seen, [
    ['good', true],
    ['old', true],
  ]);
});

test('status and problem document per session code', (t) => {
  t.is(sessionErrorStatus('ERR_TB_SESSION_BINDING_MISMATCH'), 403);
  for (const code of ['ERR_TB_SESSION_BINDING_MISSING', 'ERR_TB_SESSION_BINDING_EXPIRED', 'ERR_TB_SESSION_UNBOUND'] as const) t.is(sessionErrorStatus(code), 401);
  t.deepEqual(problemDetails(new TokenBindingError('ERR_TB_SESSION_BINDING_MISMATCH'), 403), {
    type: 'urn:tokbind:error:ERR_TB_SESSION_BINDING_MISMATCH',
    title: 'Session bound to another client',
    status: 403,
    detail: 'the session is bound to another client',
    code: 'ERR_TB_SESSION_BINDING_MISMATCH',
  });
  t.is(problemDetails(new TokenBindingError('ERR_TB_MALFORMED')).status, 400);
});
