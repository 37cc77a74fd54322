/**
 * Loader for vectors/messages.json, shared by the codec, crypto and http vector tests.
 * The file's shape is checked on load, so a schema drift fails every consumer loudly instead of
 * letting a loop silently test nothing.
 */
import { readFileSync } from 'node:fs';

/** The repository root (this file runs from dist/test/vectors/). */
export const repoRoot = new URL('../../../', import.meta.url);

export type SignatureVerdict = 'valid' | 'invalid' | 'unevaluated';

export interface ExpectedBinding {
  readonly type: number;
  readonly keyParameters: number;
  /** base64url of the TokenBindingID bytes. */
  readonly id: string;
  /** base64url(SHA-256(TokenBindingID)): the `tbh`. */
  readonly hash: string;
  /** Absent for parse-only cases (no EKM in the source). */
  readonly signature?: SignatureVerdict;
}

export interface MessageCase {
  readonly id: string;
  readonly source: Readonly<Record<string, string>>;
  readonly note?: string | null;
  /** The Sec-Token-Binding value. */
  readonly header: string;
  /** The connection's EKM, hex; null for parse-only cases. */
  readonly ekm: string | null;
  /** What the connection negotiated; null: any supported. */
  readonly negotiatedKeyParameters: readonly number[] | null;
  readonly expect: {
    /** Absent: no per-binding expectation. `[]`: the message holds no binding at all (malformed). */
    readonly bindings?: readonly ExpectedBinding[];
    /** The RFC 8471 §4.2 / RFC 8473 §2 server verdict, where the source states one. */
    readonly accept?: boolean;
    readonly reencodeEqualsInput?: boolean;
  };
}

/** Hex (even length, no separators) to bytes; throws on anything else. */
export function hexToBytes(hex: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new Error(`not hex: ${hex.slice(0, 20)}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function fail(where: string, what: string): never {
  throw new Error(`vectors/messages.json: ${where}: ${what}`);
}

const VERDICTS = new Set(['valid', 'invalid', 'unevaluated']);
const isByte = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 255;

function checkCase(c: unknown, index: number): MessageCase {
  if (typeof c !== 'object' || c === null) fail(`case ${index}`, 'not an object');
  const o = c as Record<string, unknown>;
  const at = typeof o.id === 'string' ? o.id : `case ${index}`;
  if (typeof o.id !== 'string') fail(at, 'id');
  if (typeof o.header !== 'string') fail(at, 'header');
  if (o.ekm !== null && (typeof o.ekm !== 'string' || hexToBytes(o.ekm).length !== 32)) fail(at, 'ekm');
  const n = o.negotiatedKeyParameters;
  if (n !== null && !(Array.isArray(n) && n.every(isByte))) fail(at, 'negotiatedKeyParameters');
  const e = o.expect as Record<string, unknown> | undefined;
  if (typeof e !== 'object' || e === null) fail(at, 'expect');
  if (e.accept !== undefined && typeof e.accept !== 'boolean') fail(at, 'expect.accept');
  if (e.reencodeEqualsInput !== undefined && typeof e.reencodeEqualsInput !== 'boolean') fail(at, 'expect.reencodeEqualsInput');
  if (e.bindings !== undefined) {
    if (!Array.isArray(e.bindings)) fail(at, 'expect.bindings');
    for (const b of e.bindings as Record<string, unknown>[]) {
      if (!isByte(b.type) || !isByte(b.keyParameters)) fail(at, 'binding type/keyParameters');
      if (typeof b.id !== 'string' || typeof b.hash !== 'string') fail(at, 'binding id/hash');
      if (b.signature !== undefined && !VERDICTS.has(b.signature as string)) fail(at, 'binding signature');
    }
  }
  return c as MessageCase;
}

function load(): { description: string; cases: readonly MessageCase[] } {
  const json = JSON.parse(readFileSync(new URL('vectors/messages.json', repoRoot), 'utf8')) as unknown;
  const root = json as { description?: unknown; cases?: unknown };
  if (!Array.isArray(root.cases) || root.cases.length === 0) fail('root', 'cases');
  const cases = root.cases.map(checkCase);
  const ids = new Set(cases.map((c) => c.id));
  if (ids.size !== cases.length) fail('root', 'duplicate case ids');
  return { description: String(root.description), cases: Object.freeze(cases) };
}

const loaded = load();

/** The file's own description of its schema. */
export const messagesDescription: string = loaded.description;

/** Every case of vectors/messages.json, in file order. */
export const messageCases: readonly MessageCase[] = loaded.cases;
