import { createPrivateKey, randomBytes, type JsonWebKey } from 'node:crypto';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import lockfile from 'proper-lockfile';
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

/** Options of {@link FileKeyStore}. */
export interface FileKeyStoreOptions {
  /** How long a write waits for another process's lock before `ERR_TB_KEY_STORE`. Default 15000. */
  readonly lockWaitMs?: number;
  /** A lock not refreshed for this long is a crashed writer's and is taken over. Default 10000 (min 2000). */
  readonly lockStaleMs?: number;
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
 * - Safe across processes: every write holds a lock (`proper-lockfile`: the directory
 *   `<path>.lock`, created atomically), re-reads the file under it and adds to what it finds (keys
 *   another process created meanwhile are kept, and a key for the same scope created meanwhile is
 *   the one returned, not replaced), then renames. Waiting for the lock is bounded
 *   (`lockWaitMs`, 15 s by default: then `ERR_TB_KEY_STORE`); a lock left by a crashed process is
 *   taken over once it is `lockStaleMs` old (10 s; a live holder refreshes it every 5 s).
 *   Readers take no lock: the rename makes every read see a whole file.
 * - Scopes are data: `__proto__` or `constructor` are scopes like any other (null-prototype
 *   records and Maps only).
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
  readonly #lockWaitMs: number;
  readonly #lockStaleMs: number;
  #keys: Map<string, StoredKey> | undefined;
  #loading: Promise<Map<string, StoredKey>> | undefined;
  #writing: Promise<unknown> = Promise.resolve();

  constructor(path: string, options: FileKeyStoreOptions = {}) {
    if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty string');
    const { lockWaitMs = 15_000, lockStaleMs = 10_000 } = options;
    if (!Number.isInteger(lockWaitMs) || lockWaitMs < 0) throw new TypeError('lockWaitMs must be a non-negative integer');
    if (!Number.isInteger(lockStaleMs) || lockStaleMs < 2000) throw new TypeError('lockStaleMs must be an integer >= 2000');
    this.path = path;
    this.#lockWaitMs = lockWaitMs;
    this.#lockStaleMs = lockStaleMs;
  }

  async getKey(scope: string, keyParameters: KeyParametersName): Promise<TokenBindingKey | undefined> {
    const name = checkArguments(scope, keyParameters);
    return (await this.#load()).get(`${name} ${scope}`)?.key;
  }

  async getOrCreateKey(scope: string, keyParameters: KeyParametersName): Promise<TokenBindingKey> {
    return (await this.ensureKey(scope, keyParameters)).key;
  }

  /**
   * The key for `scope` and `keyParameters`, and whether this call created it: of several
   * processes racing to create the same scope's key, exactly one gets `created: true` and all
   * get that key.
   */
  async ensureKey(scope: string, keyParameters: KeyParametersName): Promise<{ key: TokenBindingKey; created: boolean }> {
    const name = checkArguments(scope, keyParameters);
    const id = `${name} ${scope}`;
    const known = (await this.#load()).get(id);
    if (known !== undefined) return { key: known.key, created: false };
    return this.#serialise(() =>
      this.#locked(async (isCompromised) => {
        // Another writer (this process or another) may have added it since we looked.
        const current = this.#merge(await this.#read());
        const existing = current.get(id);
        if (existing !== undefined) return { key: existing.key, created: false };
        const key = generateTokenBindingKey(name);
        const jwk = key.privateKey.export({ format: 'jwk' });
        const next = new Map(current).set(id, { key, created: new Date().toISOString(), jwk });
        await this.#write(next, isCompromised);
        this.#keys = next;
        return { key, created: true };
      }),
    );
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
    return this.#serialise(() =>
      this.#locked(async (isCompromised) => {
        const found = await exists(this.path);
        const current = this.#merge(await this.#read());
        if (found) return false;
        await this.#write(current, isCompromised);
        return true;
      }),
    );
  }

  /**
   * What the file holds now, plus any key this instance knows that it lacks (a key once handed
   * out is an identity in use: it is never dropped because the file was replaced meanwhile).
   */
  #merge(current: Map<string, StoredKey>): Map<string, StoredKey> {
    for (const [id, stored] of this.#keys ?? []) if (!current.has(id)) current.set(id, stored);
    this.#keys = current;
    return current;
  }

  /** Runs `task` holding the store's cross-process lock (bounded wait, stale-lock recovery). */
  async #locked<T>(task: (isCompromised: () => Error | undefined) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#lockWaitMs;
    let compromised: Error | undefined;
    const options = {
      realpath: false,
      stale: this.#lockStaleMs,
      retries: 0,
      onCompromised: (err: Error) => {
        compromised = err;
      },
    };
    let release: () => Promise<void>;
    for (let attempt = 0; ; attempt++) {
      try {
        release = await lockfile.lock(this.path, options);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') throw storeError(this.path, `cannot create it: the directory ${dirname(this.path)} does not exist`, err as Error);
        if (code !== 'ELOCKED') throw storeError(this.path, `cannot lock (${code ?? (err as Error).message})`, err as Error);
        const left = deadline - Date.now();
        if (left <= 0) {
          throw storeError(
            this.path,
            `locked by another process for more than ${this.#lockWaitMs} ms (a lock ${this.#lockStaleMs} ms old is taken over; if no tokbind process uses this store, remove ${this.path}.lock)`,
            { field: 'lock' },
          );
        }
        // Jittered, growing waits: racers do not wake together.
        await sleep(Math.min(left, Math.min(200, 5 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random())));
      }
    }
    try {
      return await task(() => compromised);
    } finally {
      await release().catch(() => {});
    }
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

  async #write(keys: Map<string, StoredKey>, isCompromised: () => Error | undefined): Promise<void> {
    // Null-prototype records: a scope named `__proto__` or `constructor` stays data.
    const file: KeyStoreFile = { tokbind: 'key-store', version: 1, keys: Object.create(null) as KeyStoreFile['keys'] };
    for (const [id, stored] of keys) {
      const space = id.indexOf(' ');
      const scope = id.slice(space + 1);
      const name = id.slice(0, space) as KeyParametersName;
      if (!Object.hasOwn(file.keys, scope)) file.keys[scope] = Object.create(null) as KeyStoreFile['keys'][string];
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
      // The lock was lost (this process stalled past the stale time): another writer may hold it.
      const lost = isCompromised();
      if (lost !== undefined) throw new Error(`lost the lock: ${lost.message}`);
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

