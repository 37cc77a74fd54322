/**
 * Reads Prometheus text exposition (what /metrics serves) into samples, and drives Token Binding
 * traffic at a server: valid, invalid (bad signature) and replayed (a valid header captured on one
 * connection, sent on another).
 */
import { generateTokenBindingKey, type TokenBindingKey } from '../../src/crypto/sign.js';
import { RawHttpConnection, type RawResponse } from '../reliability/_net.js';
import { validHeader } from '../reliability/_tb.js';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (match === null) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (match[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The sum of the samples of `name` whose labels include `where` (0 when none). */
export function total(samples: readonly Sample[], name: string, where: Readonly<Record<string, string>> = {}): number {
  let sum = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(where).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

/** Metric family names in the text (`# TYPE name type`), with their types. */
export function families(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

export const code = (res: RawResponse): string | undefined => {
  try {
    return (JSON.parse(res.body) as { code?: string }).code;
  } catch {
    return undefined;
  }
};

/** What {@link driveTraffic} sent and what came back. */
export interface Traffic {
  readonly valid: number;
  readonly invalid: number;
  readonly replayed: number;
  readonly statuses: number[];
  readonly codes: (string | undefined)[];
  /** The header values sent (for the secrets checks). */
  readonly headers: string[];
  readonly keys: TokenBindingKey[];
  readonly ekms: Uint8Array[];
}

/**
 * `valid` requests with a correct binding (the first on a fresh connection, the rest repeat it:
 * cache hits), `invalid` with a binding signed over the wrong EKM (never seen verified), and
 * `replayed` requests carrying a header captured from another connection where it verified.
 */
export async function driveTraffic(port: number, counts: { valid: number; invalid: number; replayed: number }, path = '/'): Promise<Traffic> {
  const key = generateTokenBindingKey();
  const a = await RawHttpConnection.open(port);
  const b = await RawHttpConnection.open(port);
  const statuses: number[] = [];
  const codes: (string | undefined)[] = [];
  const headers: string[] = [];
  const send = async (conn: RawHttpConnection, header: string): Promise<void> => {
    const res = await conn.request([['Sec-Token-Binding', header]], path);
    statuses.push(res.status);
    codes.push(code(res));
  };
  try {
    const good = validHeader(key, a.ekm);
    headers.push(good);
    for (let i = 0; i < counts.valid; i++) await send(a, good);
    // Signed over an EKM no connection has: fails everywhere, verified nowhere.
    for (let i = 0; i < counts.invalid; i++) {
      const bad = validHeader(generateTokenBindingKey(), new Uint8Array(32).fill(i + 1));
      headers.push(bad);
      await send(b, bad);
    }
    // The captured header, replayed on the other connection: a fresh connection each time, so
    // each is a fresh verification (not a cached verdict).
    for (let i = 0; i < counts.replayed; i++) {
      const c = await RawHttpConnection.open(port);
      try {
        await send(c, good);
      } finally {
        await c.close();
      }
    }
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
  return { ...counts, statuses, codes, headers, keys: [key], ekms: [a.ekm, b.ekm] };
}
