/**
 * Codec figures: parsing a typical provided + referred TokenBindingMessage (two ecdsap256
 * bindings, as sent on the request after an RFC 8473 §5 redirect), and decoding its
 * Sec-Token-Binding value as a separate figure.
 *
 * Baselines, same run: header decoding against Node's native (non-strict) base64url decoder;
 * parsing has no library to race, so it is set beside one raw ECDSA verification — the parse is
 * meant to be noise next to the signature it precedes (the ratio says how many parses fit in one
 * verify).
 */
import { randomBytes, sign, verify } from 'node:crypto';
import { decodeSecTokenBindingHeader } from '../src/codec/header.js';
import { parseTokenBindingMessage } from '../src/codec/message.js';
import { tokenBindingSignedData } from '../src/codec/signed-data.js';
import { createTokenBindingMessage, createSecTokenBindingHeader, generateTokenBindingKey } from '../src/crypto/sign.js';
import { generateKeyPair } from './lib/keys.js';
import type { BenchContext } from './lib/context.js';
import { runIsolated, serveGroups } from './lib/isolate.js';
import type { Group } from './lib/isolate.js';
import { asHeaderString } from './lib/strings.js';

/** A typical provided + referred message (RFC 8473 §5), as bytes and as a header value. */
function message(): { ekm: Uint8Array; bytes: Uint8Array; header: string } {
  const ekm = new Uint8Array(randomBytes(32));
  const provided = generateTokenBindingKey('ecdsap256');
  const referred = generateTokenBindingKey('ecdsap256');
  return {
    ekm,
    bytes: createTokenBindingMessage({ provided, referred, ekm }),
    header: asHeaderString(createSecTokenBindingHeader({ provided, referred, ekm })),
  };
}

const parse: Group = {
  setup() {
    const { ekm, bytes } = message();
    const raw = generateKeyPair('ec');
    const data = tokenBindingSignedData(0, 2, ekm);
    const sig = sign('sha256', data, { key: raw.privateKey, dsaEncoding: 'ieee-p1363' });
    const rawKey = { key: raw.publicKey, dsaEncoding: 'ieee-p1363' as const };
    return {
      cases: [
        {
          name: 'raw-verify',
          run: (n) => {
            let ok = true;
            for (let i = 0; i < n; i++) ok = verify('sha256', data, rawKey, sig) && ok;
            if (!ok) throw new Error('raw verify failed');
            return ok;
          },
        },
        {
          name: 'parse',
          run: (n) => {
            let m;
            for (let i = 0; i < n; i++) m = parseTokenBindingMessage(bytes);
            if (m?.bindings.length !== 2) throw new Error('parse');
            return m;
          },
        },
      ],
      report: (res) => ({
        figures: [
          {
            key: 'codec.parse_ops',
            label: `codec.parse_ops (provided+referred, ${bytes.length} B)`,
            unit: 'ops/s',
            summary: res.get('parse')!.ops,
            baseline: { key: 'codec.parse_raw_verify_ops', label: 'raw verify', summary: res.get('raw-verify')!.ops },
            ratio: { key: 'codec.parse_per_verify', summary: res.get('parse')!.ratio! },
            note: 'ratio = parses per raw ECDSA verify',
          },
        ],
        values: { 'codec.parse_ns': Math.round(1e9 / res.get('parse')!.ops.median) },
      }),
    };
  },
};

const decode: Group = {
  setup() {
    const { header } = message();
    return {
      cases: [
        {
          name: 'buffer',
          run: (n) => {
            let b;
            for (let i = 0; i < n; i++) b = Buffer.from(header, 'base64url');
            return b;
          },
        },
        {
          name: 'decode',
          run: (n) => {
            let b;
            for (let i = 0; i < n; i++) b = decodeSecTokenBindingHeader(header);
            return b;
          },
        },
      ],
      report: (res) => ({
        figures: [
          {
            key: 'codec.header_decode_ops',
            label: `codec.header_decode_ops (${header.length} chars)`,
            unit: 'ops/s',
            summary: res.get('decode')!.ops,
            baseline: { key: 'codec.header_decode_buffer_ops', label: 'Buffer.from', summary: res.get('buffer')!.ops },
            ratio: { key: 'codec.header_decode_ratio', summary: res.get('decode')!.ratio! },
          },
        ],
        values: {},
      }),
    };
  },
};

export async function benchCodec(ctx: BenchContext): Promise<void> {
  await runIsolated(ctx, new URL(import.meta.url), 'parse');
  await runIsolated(ctx, new URL(import.meta.url), 'decode');
}

serveGroups(import.meta.url, { parse, decode });
