/**
 * `tokbind verify`: the server's verdict (RFC 8471 §4.2, RFC 8473 §2) on a Sec-Token-Binding value
 * for a given EKM — one value from the command line, or NDJSON lines from stdin with `--batch`.
 */
import { createInterface } from 'node:readline';
import { parseKeyParameters } from '../codec/keyparams.js';
import { isTokenBindingError } from '../errors.js';
import { verifyTokenBindingHeader } from '../http/verify.js';
import { defineCommand, readStream } from './args.js';
import { explainHeaderError } from './decode.js';
import { ExitCode, UsageError, writeJson } from './io.js';

/** The code of a batch line that is not `{"header","ekm","keyParameters"?}` (not a library error). */
export const BATCH_LINE_INVALID = 'ERR_BATCH_LINE_INVALID';

const EKM_HEX = /^[0-9a-fA-F]{64}$/;

type Outcome =
  | { ok: true; provided: unknown; referred: unknown; others: unknown }
  | { ok: false; error: { code: string; message: string } };

function parseKeyParameterList(list: readonly unknown[]): number[] {
  if (list.length === 0) throw new TypeError('key parameters list is empty');
  return list.map((k) => {
    if (typeof k !== 'string' && typeof k !== 'number') throw new TypeError('key parameters must be names or numbers');
    return parseKeyParameters(k);
  });
}

function judge(header: string, ekmHex: string, keyParameters: readonly number[]): Outcome {
  const ekm = Uint8Array.from(Buffer.from(ekmHex, 'hex'));
  try {
    const result = verifyTokenBindingHeader(header, { ekm, negotiatedKeyParameters: keyParameters }, { keyParameters });
    // A present header never yields null (that is only for an absent one).
    return { ok: true, provided: result!.provided, referred: result!.referred, others: result!.others };
  } catch (err) {
    if (isTokenBindingError(err)) return { ok: false, error: explainHeaderError(err, header) };
    throw err;
  }
}

function batchLine(line: string, fallback: readonly number[]): Outcome {
  const invalid = (message: string): Outcome => ({ ok: false, error: { code: BATCH_LINE_INVALID, message } });
  let input: unknown;
  try {
    input = JSON.parse(line);
  } catch {
    return invalid('not JSON');
  }
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return invalid('not a JSON object');
  const { header, ekm, keyParameters } = input as Record<string, unknown>;
  if (typeof header !== 'string') return invalid('"header" must be a string');
  if (typeof ekm !== 'string' || !EKM_HEX.test(ekm)) return invalid('"ekm" must be 64 hex digits (32 bytes)');
  let accepted = fallback;
  if (keyParameters !== undefined) {
    try {
      const list = typeof keyParameters === 'string' ? keyParameters.split(',') : keyParameters;
      if (!Array.isArray(list)) return invalid('"keyParameters" must be an array or a comma-separated string');
      accepted = parseKeyParameterList(list);
    } catch (err) {
      return invalid(err instanceof Error ? err.message : String(err));
    }
  }
  return judge(header, ekm, accepted);
}

/**
 * The `verify` command. Single mode prints `{"ok":true,"provided","referred","others"}` (exit 0)
 * or `{"ok":false,"error":{"code","message"}}` (exit 1). `--batch` reads NDJSON
 * `{"header","ekm","keyParameters"?}` lines from stdin and prints one result line per input line
 * (blank lines skipped; a line that is not such an object gets `ERR_BATCH_LINE_INVALID`); exit 0
 * when every line was accepted, 1 otherwise. Accepted key parameters default to all three.
 *
 * @example
 * ```sh
 * tokbind verify --ekm 45da43…4124 --key-parameters ecdsap256 AIkAAgBBQ…
 * cat cases.ndjson | tokbind verify --batch
 * ```
 */
export const verify = defineCommand(
  {
    name: 'verify',
    summary: 'verify a Sec-Token-Binding header against an EKM (RFC 8471 §4.2, RFC 8473 §2)',
    description:
      'Single mode judges one value for --ekm. --batch reads NDJSON lines {"header","ekm","keyParameters"?} from stdin ' +
      'and prints one result line per input line on stdout (blank lines skipped; a line that is not such an object gets ' +
      `${BATCH_LINE_INVALID}).`,
    options: {
      ekm: { type: 'string', placeholder: 'HEX', description: 'the 32-byte exported keying material, 64 hex digits (single mode)' },
      'key-parameters': {
        type: 'string',
        placeholder: 'LIST',
        default: 'ecdsap256,rsa2048_pss,rsa2048_pkcs1.5',
        description: 'comma-separated key parameters accepted, names or numbers (all three: the CLI judges a message, it stands for no deployment)',
      },
      batch: { type: 'boolean', description: 'read NDJSON cases from stdin, one result line each on stdout' },
    },
    positionals: [{ name: 'header', description: 'the Sec-Token-Binding value, or - to read it from stdin' }],
    exitCodes: {
      0: 'accepted: {"ok":true,"provided","referred","others"} on stdout (batch: every line accepted)',
      1: 'rejected: {"ok":false,"error":{"code","message"}} on stderr (batch: results on stdout, exit 1 if any line was rejected)',
    },
    examples: [
      'tokbind verify --ekm 45da43…4124 --key-parameters ecdsap256 AIkAAgBBQ…',
      'printf %s "$HEADER" | tokbind verify --ekm "$EKM" -',
      'tokbind verify --batch < cases.ndjson',
    ],
  },
  async ({ values, positionals }, io) => {
    let keyParameters: readonly number[];
    try {
      keyParameters = parseKeyParameterList(values['key-parameters'].split(','));
    } catch (err) {
      throw new UsageError(`--key-parameters: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (values.batch) {
      if (values.ekm !== undefined || positionals.length > 0) throw new UsageError('--batch takes its headers and EKMs from stdin (no --ekm, no <header>)');
      let allOk = true;
      const lines = createInterface({ input: io.stdin, crlfDelay: Infinity });
      for await (const line of lines) {
        if (line.trim() === '') continue;
        const outcome = batchLine(line, keyParameters);
        allOk &&= outcome.ok;
        writeJson(io.stdout, outcome);
      }
      return allOk ? ExitCode.ok : ExitCode.failure;
    }

    if (values.ekm === undefined) throw new UsageError('missing --ekm HEX (the 32-byte EKM as 64 hex digits), or use --batch');
    if (!EKM_HEX.test(values.ekm)) throw new UsageError('--ekm must be 64 hex digits (the 32-byte EKM)');
    if (positionals.length !== 1) throw new UsageError('missing <header>: the Sec-Token-Binding value, or - to read it from stdin');
    const header = positionals[0] === '-' ? (await readStream(io.stdin)).toString('utf8').replace(/(?:\r?\n)+$/, '') : positionals[0]!;
    const outcome = judge(header, values.ekm, keyParameters);
    writeJson(outcome.ok ? io.stdout : io.stderr, outcome);
    return outcome.ok ? ExitCode.ok : ExitCode.failure;
  },
);
