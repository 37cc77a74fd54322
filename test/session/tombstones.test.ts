/**
 * The destroyed-session record (src/session/tombstones.ts) on a real express-session MemoryStore:
 * set and touch of a buried id are dropped (callback or not), other ids pass, the oldest id goes
 * first past the cap. The in-flight requests it exists for are tested end to end in session.test.ts.
 */
import test from 'ava';
import session from 'express-session';
import { MAX_TOMBSTONES, bury, sessionIdOf, storeOf } from '../../src/session/tombstones.js';

type Data = session.SessionData;
const data = (user: string): Data => ({ cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) }, user } as unknown as Data);

function get(store: session.MemoryStore, sid: string): Promise<Data | null | undefined> {
  return new Promise((resolve, reject) => store.get(sid, (err, found) => (err ? reject(err as Error) : resolve(found))));
}
function set(store: session.MemoryStore, sid: string, value: Data): Promise<void> {
  return new Promise((resolve, reject) => store.set(sid, value, (err) => (err ? reject(err as Error) : resolve())));
}

test('a buried id is never saved again; other ids and the store object are as before', async (t) => {
  const store = new session.MemoryStore();
  await set(store, 'a', data('alice'));
  bury(store, 'a');
  await new Promise<void>((resolve) => store.destroy('a', () => resolve()));
  await set(store, 'a', data('alice again'));
  t.is(await get(store, 'a'), undefined);
  store.set('a', data('no callback'));
  await new Promise<void>((resolve) => store.touch('a', data('touched'), () => resolve()));
  t.is(await get(store, 'a'), undefined);
  await set(store, 'b', data('bob'));
  t.like(await get(store, 'b'), { user: 'bob' });
  // The guard is an own, non-enumerable property: nothing new shows in the store's keys.
  t.false(Object.keys(store).includes('set'));
  bury(store, 'c');
  t.is(Object.getOwnPropertyDescriptor(store, 'set')?.enumerable, false);
});

test('past the cap the oldest id is forgotten first', async (t) => {
  const store = new session.MemoryStore();
  for (let i = 0; i <= MAX_TOMBSTONES; i++) bury(store, `sid-${i}`);
  await set(store, 'sid-0', data('the oldest, forgotten'));
  t.like(await get(store, 'sid-0'), { user: 'the oldest, forgotten' });
  await set(store, 'sid-1', data('still buried'));
  t.is(await get(store, 'sid-1'), undefined);
  // Burying again makes an id the newest: the next one past the cap forgets sid-1, not sid-2.
  bury(store, 'sid-2');
  bury(store, 'sid-extra');
  await set(store, 'sid-1', data('forgotten now'));
  t.like(await get(store, 'sid-1'), { user: 'forgotten now' });
  await set(store, 'sid-2', data('still buried'));
  t.is(await get(store, 'sid-2'), undefined);
});

test('a frozen store cannot be guarded: burying an id still works and the store is as before', async (t) => {
  const store = new session.MemoryStore();
  Object.freeze(store);
  t.notThrows(() => bury(store, 'a'));
  await set(store, 'a', data('saved: nothing could stop it'));
  t.like(await get(store, 'a'), { user: 'saved: nothing could stop it' });
});

test('the store and id of express-session and @fastify/session shapes; anything else is left alone', (t) => {
  const store = new session.MemoryStore();
  t.is(storeOf({ sessionStore: store }), store);
  t.is(storeOf({}), undefined);
  t.is(storeOf({ sessionStore: { get() {} } }), undefined);
  t.is(sessionIdOf({ id: 'express' }), 'express');
  t.is(sessionIdOf({ sessionId: 'fastify' }), 'fastify');
  t.is(sessionIdOf({}), undefined);
});
