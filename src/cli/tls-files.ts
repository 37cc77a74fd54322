/**
 * Certificate, key and CA files of the CLI, checked when read so that a mistake names the file and
 * what is wrong with it (OpenSSL's "PEM routines::no start line" says neither).
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { createSelfSignedCertificate } from '../tls/certificate.js';
import { InputError, readFileArgument } from './args.js';
import { sharedFromPrimary } from './cluster.js';
import { UsageError, type CliIo } from './io.js';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function describe(bytes: Buffer): string {
  if (bytes.length === 0) return 'the file is empty';
  const text = bytes.toString('latin1');
  const begin = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(text);
  if (begin !== null) return `it holds a PEM "${begin[1]}" block`;
  return bytes[0] === 0x30 ? 'it looks like DER (binary); convert it with openssl x509 -inform der / openssl pkey -inform der' : 'it is not PEM';
}

/** Every certificate of a PEM file (a chain or a CA bundle); none, or one that does not parse, is an error. */
export async function readCertificates(option: string, path: string, io: CliIo): Promise<{ pem: string; certificates: X509Certificate[] }> {
  const bytes = await readFileArgument(option, path, io);
  const pem = bytes.toString('utf8');
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new InputError(`${option} ${path}: no PEM certificate (-----BEGIN CERTIFICATE-----) found: ${describe(bytes)}`);
  const certificates = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new InputError(`${option} ${path}: certificate ${i + 1} of ${blocks.length} is not a valid X.509 certificate`);
    }
  });
  return { pem, certificates };
}

/** A PEM private key (unencrypted); anything else names the file and what it holds. */
export async function readPrivateKey(option: string, path: string, io: CliIo): Promise<{ pem: string; key: KeyObject }> {
  const bytes = await readFileArgument(option, path, io);
  const pem = bytes.toString('utf8');
  if (!/-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/.test(pem)) {
    throw new InputError(`${option} ${path}: no PEM private key (-----BEGIN PRIVATE KEY-----) found: ${describe(bytes)}`);
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem)) {
    throw new InputError(`${option} ${path}: the private key is encrypted; decrypt it first (openssl pkey -in ${path} -out key.pem)`);
  }
  try {
    return { pem, key: createPrivateKey(pem) };
  } catch {
    throw new InputError(`${option} ${path}: the PEM private key does not parse (damaged or truncated?)`);
  }
}

/** `--cert` and `--key` of a server: both readable, and the key is the certificate's. */
export async function loadCertificateAndKey(certPath: string, keyPath: string, io: CliIo): Promise<{ cert: string; key: string }> {
  const { pem: cert, certificates } = await readCertificates('--cert', certPath, io);
  const { pem: key, key: privateKey } = await readPrivateKey('--key', keyPath, io);
  if (!certificates[0]!.checkPrivateKey(privateKey)) {
    throw new InputError(`--key ${keyPath} is not the private key of the certificate in --cert ${certPath} (the first certificate must be the server's)`);
  }
  return { cert, key };
}

/** The certificate options of a server command (`serve`, `proxy`). */
export interface ServerCertificateOptions {
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  /** `--host`: named in a self-signed certificate beside localhost and 127.0.0.1. */
  readonly host: string;
}

/** `--cert` and `--key` come together, or neither does. */
export function checkCertificateOptions(values: ServerCertificateOptions): void {
  if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError('--cert and --key go together');
}

function selfSigned(values: ServerCertificateOptions): { key: string; cert: string } {
  return createSelfSignedCertificate({ altNames: [...new Set(['localhost', '127.0.0.1', values.host])] });
}

/**
 * What a `--workers` primary shares with its workers: without `--cert`, the one self-signed
 * certificate it made, so that every connection presents the same whichever worker takes it.
 */
export function sharedCertificate(values: ServerCertificateOptions): { tls?: { key: string; cert: string } } {
  return values.cert === undefined ? { tls: selfSigned(values) } : {};
}

/**
 * The server's certificate and key: `--cert`/`--key` when given (read and checked), otherwise the
 * self-signed one the primary shared (a `--workers` worker), otherwise a new self-signed one.
 */
export async function serverCertificate(values: ServerCertificateOptions, io: CliIo): Promise<{ key: string; cert: string }> {
  if (values.cert !== undefined && values.key !== undefined) return loadCertificateAndKey(values.cert, values.key, io);
  return sharedFromPrimary<{ tls?: { key: string; cert: string } }>()?.tls ?? selfSigned(values);
}
