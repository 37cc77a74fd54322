import { createPrivateKey, randomBytes, type JsonWebKey } from 'node:crypto';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { keyParametersName, parseKeyParameters } from '../codec/keyparams.js';
import type { KeyParametersName } from '../codec/types.js';
import { generateTokenBindingKey, tokenBindingKeyFromKeyObject, type TokenBindingKey } from '../crypto/sign.js';
import { TokenBindingError } from '../errors.js';

/**
 * Where a client keeps its Token Binding keys: one key pair per scope (RFC 8473 §2.1, see
 * `tokenBindingScope`) and key parameters. A key that leaves the store is an identity that
 * leaves the device, so implementations keep private keys where only their owner can read them.
 */
export interface TokenBindingKeyStore {
  /** The key for `scope` and `keyParameters`, or `undefined` when there is none. */
  getKey(scope: string, keyParameters: KeyParametersName): Promise<TokenBindingKey | undefined>;
  /** The key for `scope` and `keyParameters`, generated (and kept) when there is none yet. */
  getOrCreateKey(scope: string, keyParameters: KeyParametersName): Promise<TokenBindingKey>;
}

function checkArguments(scope: unknown, keyParameters: unknown): KeyParametersName {
  if (typeof scope !== 'string' || scope === '') throw new TypeError('scope must be a non-empty string');
  const name = keyParametersName(parseKeyParameters(keyParameters as KeyParametersName));
  if (typeof name === 'number') throw new TypeError(`cannot keep keys for key parameters ${name}`);
  return name;
}

/**
 * Keys in memory, for the life of the process: every run is a new identity. The default of
 * `TokenBindingAgent` and `TokenBindingDispatcher`.
 *
 * @example
 * ```ts
 * const keyStore = new MemoryKeyStore()
 * const key = await keyStore.getOrCreateKey('example.com', 'ecdsap256')
 * ```
 */
export class MemoryKeyStore implements TokenBindingKeyStore {
  readonly #keys = new Map<string, TokenBindingKey>();

  async getKey(scope: string, keyParameters: KeyParametersName): Promise<TokenBindingKey | undefined> {
    const name = checkArguments(scope, keyParameters);
    return this.#keys.get(`${name} ${scope}`);
  }

  async getOrCreateKey(scope: string, keyParameters: KeyParametersName): Promise<TokenBindingKey> {
    const name = checkArguments(scope, keyParameters);
    const id = `${name} ${scope}`;
    let key = this.#keys.get(id);
    if (key === undefined) {
      key = generateTokenBindingKey(name);
      this.#keys.set(id, key);
    }
    return key;
  }
}

/** The on-disk form of a {@link FileKeyStore} (version 1). */
interface KeyStoreFile {
  tokbind: 'key-store';
  version: 1;
  /** scope → key parameters name → key. */
  keys: Record<string, Partial<Record<KeyParametersName, { created: string; jwk: JsonWebKey }>>>;
}

interface StoredKey {
  readonly key: TokenBindingKey;
  readonly created: string;
  readonly jwk: JsonWebKey;
}

const KEY_PARAMETERS_NAMES: readonly string[] = ['ecdsap256', 'rsa2048_pss', 'rsa2048_pkcs1.5'];

function storeError(path: string, message: string, cause?: Error | Record<string, unknown>): TokenBindingError {
  return new TokenBindingError('ERR_TB_KEY_STORE', `key store ${path}: ${message}`, { path, ...(cause instanceof Error ? { error: cause.message } : cause) });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Keys in a JSON file that holds each private key as a JWK, by scope and key parameters, so a
 * client keeps its Token Binding IDs across runs (what `tokbind fetch --key-store` uses).
 *
 * - Writes are atomic: a temporary file in the same directory, created with mode 0600, written,
 *   fsynced and renamed over the store (then the directory is fsynced), so a crash leaves the old
 *   file or the new one, never half of either.
 * - A file that cannot be read or parsed, or holds a key that does not load, is an
 *   `ERR_TB_KEY_STORE` error: the store never starts over with a new identity on its own.
 * - Permissions: a file that its group or others may access (mode wider than 0600) is refused
 *   with `ERR_TB_KEY_STORE`, as ssh refuses a readable private key (not checked on Windows).
 * - A missing file is an empty store; it is created on the first new key (or by {@link init}).
 * - Writers in one process are serialised. Before adding a key the file is read again, so keys
 *   that another process added meanwhile are kept; two processes creating the first key of the
 *   same scope at the same instant are not coordinated (use one writer, e.g. `tokbind keygen`
 *   ahead of time).
 *
 * @example
 * ```ts
 * const keyStore = new FileKeyStore(join(homedir(), '.tokbind-keys.json'))
 * const agent = new TokenBindingAgent({ keyStore })
 * ```
 */
export class FileKeyStore implements TokenBindingKeyStore {
  /** The file this store reads and writes. */
  readonly path: string;
  #keys: Map<string, StoredKey> | undefined;
  #loading: Promise<Map<string, StoredKey>> | undefined;
  #writing: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty string');
    this.path = path;
  }

  async getKey(scope: string, keyParameters: KeyParametersName): Promise<TokenBindingKey | undefined> {
    const name = checkArguments(scope, keyParameters);
    return (await this.#load()).get(`${name} ${scope}`)?.key;
  }

  async getOrCreateKey(scope: string, keyParameters: KeyParametersName): Promise<TokenBindingKey> {
    const name = checkArguments(scope, keyParameters);
    const id = `${name} ${scope}`;
    const known = (await this.#load()).get(id);
    if (known !== undefined) return known.key;
    return this.#serialise(async () => {
      // Another writer (this process or another) may have added it since we looked.
      const current = await this.#read();
      this.#keys = current;
      const existing = current.get(id);
      if (existing !== undefined) return existing.key;
      const key = generateTokenBindingKey(name);
      const jwk = key.privateKey.export({ format: 'jwk' });
      const next = new Map(current).set(id, { key, created: new Date().toISOString(), jwk });
      await this.#write(next);
      this.#keys = next;
      return key;
    });
  }

  /** Every scope and key parameters the store holds a key for, in file order. */
  async list(): Promise<{ scope: string; keyParameters: KeyParametersName; created: string }[]> {
    return [...(await this.#load()).entries()].map(([id, stored]) => {
      const space = id.indexOf(' ');
      return { scope: id.slice(space + 1), keyParameters: id.slice(0, space) as KeyParametersName, created: stored.created };
    });
  }

  /**
   * Creates the file (empty, mode 0600) when it does not exist yet; checks it when it does.
   * Returns whether it was created.
   */
  async init(): Promise<boolean> {
    return this.#serialise(async () => {
      const found = await exists(this.path);
      const current = await this.#read();
      this.#keys = current;
      if (found) return false;
      await this.#write(current);
      return true;
    });
  }

  #load(): Promise<Map<string, StoredKey>> {
    if (this.#keys !== undefined) return Promise.resolve(this.#keys);
    this.#loading ??= this.#read().then(
      (keys) => (this.#keys ??= keys),
      (err: unknown) => {
        // Let the next call look at the file again (the user may fix it meanwhile).
        this.#loading = undefined;
        throw err;
      },
    );
    return this.#loading;
  }

  #serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#writing.then(task, task);
    this.#writing = run.catch(() => {});
    return run;
  }

  async #read(): Promise<Map<string, StoredKey>> {
    let text: string;
    try {
      const info = await stat(this.path);
      if (!info.isFile()) throw storeError(this.path, 'not a regular file');
      if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
        throw storeError(this.path, `permissions ${(info.mode & 0o777).toString(8).padStart(4, '0')} are too open; it holds private keys (chmod 600)`, {
          field: 'mode',
          expected: '0600',
          actual: (info.mode & 0o777).toString(8),
        });
      }
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if (err instanceof TokenBindingError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw storeError(this.path, `cannot read: ${(err as Error).message}`, err as Error);
    }
    return parseKeyStore(this.path, text);
  }

  async #write(keys: Map<string, StoredKey>): Promise<void> {
    const file: KeyStoreFile = { tokbind: 'key-store', version: 1, keys: {} };
    for (const [id, stored] of keys) {
      const space = id.indexOf(' ');
      const scope = id.slice(space + 1);
      const name = id.slice(0, space) as KeyParametersName;
      // A null-prototype record: a scope named `__proto__` stays data.
      file.keys[scope] ??= Object.create(null) as KeyStoreFile['keys'][string];
      file.keys[scope]![name] = { created: stored.created, jwk: stored.jwk };
    }
    const dir = dirname(this.path);
    const temp = join(dir, `.${basename(this.path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const handle = await open(temp, 'wx', 0o600);
      try {
        // The umask may have narrowed the mode further, never widened it; make it exact.
        await handle.chmod(0o600);
        await handle.writeFile(JSON.stringify(file, null, 2) + '\n', 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.path);
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw storeError(this.path, `cannot write: ${(err as Error).message}`, err as Error);
    }
    await syncDirectory(dir);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  // Makes the rename itself durable. Not every platform lets a directory be opened or fsynced.
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Durability of the rename is best effort where the OS does not support it.
  }
}

function parseKeyStore(path: string, text: string): Map<string, StoredKey> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw storeError(path, 'not valid JSON', err as Error);
  }
  if (!isObject(data) || data['tokbind'] !== 'key-store') throw storeError(path, 'not a tokbind key store', { field: 'tokbind' });
  if (data['version'] !== 1) {
    throw storeError(path, `unsupported version ${JSON.stringify(data['version'])}`, { field: 'version', expected: 1, actual: data['version'] });
  }
  const keys = data['keys'];
  if (!isObject(keys)) throw storeError(path, '"keys" is not an object', { field: 'keys' });
  const out = new Map<string, StoredKey>();
  for (const [scope, byParameters] of Object.entries(keys)) {
    if (scope === '' || !isObject(byParameters)) throw storeError(path, `bad entry for scope ${JSON.stringify(scope)}`, { field: `keys.${scope}` });
    for (const [name, entry] of Object.entries(byParameters)) {
      const field = `keys.${scope}.${name}`;
      if (!KEY_PARAMETERS_NAMES.includes(name)) throw storeError(path, `unknown key parameters at ${field}`, { field });
      if (!isObject(entry) || typeof entry['created'] !== 'string' || !isObject(entry['jwk'])) {
        throw storeError(path, `bad key entry at ${field}`, { field });
      }
      let key: TokenBindingKey;
      try {
        const jwk = entry['jwk'] as JsonWebKey;
        if (typeof jwk.d !== 'string') throw new Error('the JWK holds no private key');
        key = tokenBindingKeyFromKeyObject(createPrivateKey({ key: jwk, format: 'jwk' }), name as KeyParametersName);
      } catch (err) {
        throw storeError(path, `key at ${field} does not load: ${(err as Error).message}`, { field });
      }
      out.set(`${name} ${scope}`, { key, created: entry['created'], jwk: entry['jwk'] as JsonWebKey });
    }
  }
  return out;
}

