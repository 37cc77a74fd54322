/**
 * The TTRP header format (draft-ietf-tokbind-ttrp-09 §2), both directions.
 */
import test from 'ava';
import { formatTokenBindingID } from '../../src/codec/message.js';
import { generateTokenBindingKey } from '../../src/crypto/sign.js';
import { TokenBindingError } from '../../src/errors.js';
import {
  FORWARDED_HEADER_NAMES,
  SEC_OTHER_TOKEN_BINDING_ID,
  SEC_PROVIDED_TOKEN_BINDING_ID,
  SEC_REFERRED_TOKEN_BINDING_ID,
  collectForwardedHeaders,
  formatForwardedTokenBindingHeaders,
  formatOtherTokenBindingIDs,
  isForwardedHeaderName,
  parseForwardedTokenBindingHeaders,
  parseOtherTokenBindingIDs,
} from '../../src/http/forwarded.js';
import { createVerifiedID } from '../../src/http/result.js';

const a = generateTokenBindingKey();
const b = generateTokenBindingKey();
const c = generateTokenBindingKey();
const idA = formatTokenBindingID(a.id);
const idB = formatTokenBindingID(b.id);
const idC = formatTokenBindingID(c.id);

const malformed = { instanceOf: TokenBindingError, code: 'ERR_TB_FORWARDED_MALFORMED' } as const;

test('format: the provided ID exactly, referred and other only when verified, nothing without a verdict', (t) => {
  t.deepEqual(formatForwardedTokenBindingHeaders(null), {});
  t.deepEqual(formatForwardedTokenBindingHeaders(undefined), {});
  const result = {
    provided: createVerifiedID(a.id),
    referred: createVerifiedID(b.id),
    others: [
      { type: 77, id: createVerifiedID(c.id) },
      { type: 11, id: createVerifiedID(a.id) },
      { type: 255, id: createVerifiedID(b.id) },
    ],
  };
  t.deepEqual(formatForwardedTokenBindingHeaders(result), {
    [SEC_PROVIDED_TOKEN_BINDING_ID]: idA,
    [SEC_REFERRED_TOKEN_BINDING_ID]: idB,
    // The draft's example: `4d.AgBB…,b.AgBB…` (hex type without a leading zero).
    [SEC_OTHER_TOKEN_BINDING_ID]: `4d.${idC},b.${idA},ff.${idB}`,
  });
  t.deepEqual(formatForwardedTokenBindingHeaders({ provided: createVerifiedID(a.id), referred: null, others: [] }), {
    [SEC_PROVIDED_TOKEN_BINDING_ID]: idA,
  });
  t.is(formatOtherTokenBindingIDs([]), '');
});

test('parse: the same shape as a direct verdict (id, hash, keyParameters, raw), frozen', (t) => {
  const result = parseForwardedTokenBindingHeaders({ provided: idA, referred: idB, other: `4D.${idC} ,\tb.${idA}` })!;
  t.is(result.provided.id, idA);
  t.is(result.provided.hash, createVerifiedID(a.id).hash);
  t.is(result.provided.keyParameters, 'ecdsap256');
  t.deepEqual(result.provided.raw, a.id.raw);
  t.is(result.referred!.id, idB);
  t.deepEqual(
    result.others.map((o) => [o.type, o.id.id]),
    [
      [77, idC],
      [11, idA],
    ],
  );
  t.true(Object.isFrozen(result) && Object.isFrozen(result.others));
  t.is(JSON.stringify(result), JSON.stringify({ provided: createVerifiedID(a.id), referred: createVerifiedID(b.id), others: result.others }));
  t.is(parseForwardedTokenBindingHeaders({}), null);
  t.is(parseForwardedTokenBindingHeaders({ provided: idA })!.referred, null);
});

test('parse refuses anything but canonical EncodedTokenBindingIDs and the draft list syntax', (t) => {
  const bad: Record<string, string | undefined>[] = [
    { referred: idB },
    { other: `4d.${idC}` },
    { provided: '' },
    { provided: `${idA}=` },
    { provided: 'not base64url!' },
    { provided: 'AgBB' },
    { provided: 'A'.repeat(1025) },
    { provided: idA, other: `0.${idB}` },
    { provided: idA, other: `1.${idB}` },
    { provided: idA, other: `100.${idB}` },
    { provided: idA, other: `4d.${idB},` },
    { provided: idA, other: `4d${idB}` },
    { provided: idA, other: `zz.${idB}` },
    { provided: idA, other: Array.from({ length: 17 }, () => `4d.${idB}`).join(',') },
    { provided: idA, other: 'x'.repeat(20000) },
  ];
  for (const values of bad) t.throws(() => parseForwardedTokenBindingHeaders(values), malformed, JSON.stringify(values).slice(0, 80));
  t.throws(() => parseForwardedTokenBindingHeaders({ provided: 5 as unknown as string }), { instanceOf: TypeError });
  t.throws(() => parseForwardedTokenBindingHeaders(null as never), { instanceOf: TypeError });
  t.throws(() => parseOtherTokenBindingIDs(5 as unknown as string), { instanceOf: TypeError });
});

test('header names: every forwarded header in any case, nothing else; repeated ones are malformed', (t) => {
  t.deepEqual([...FORWARDED_HEADER_NAMES].sort(), [
    'sec-other-token-binding-id',
    'sec-provided-token-binding-id',
    'sec-referred-token-binding-id',
    'sec-token-binding-assertion',
  ]);
  for (const name of FORWARDED_HEADER_NAMES) {
    t.true(isForwardedHeaderName(name.toUpperCase()));
    t.true(isForwardedHeaderName(name));
  }
  t.false(isForwardedHeaderName('sec-token-binding'));
  t.false(isForwardedHeaderName('sec-provided-token-binding-ix'));
  t.deepEqual(collectForwardedHeaders(['Host', 'x', 'Sec-Token-Binding', 'y']), {});
  t.deepEqual(collectForwardedHeaders(['Sec-Provided-Token-Binding-ID', idA, 'SEC-TOKEN-BINDING-ASSERTION', 'jws']), {
    provided: idA,
    referred: undefined,
    other: undefined,
    assertion: 'jws',
  });
  t.throws(() => collectForwardedHeaders(['sec-provided-token-binding-id', idA, 'Sec-Provided-Token-Binding-ID', idB]), malformed);
  t.throws(() => collectForwardedHeaders(['sec-other-token-binding-id', `4d.${idA}`, 'sec-other-token-binding-id', `4d.${idB}`]), malformed);
});
