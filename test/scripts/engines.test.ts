/**
 * Every package the lockfile installs runs on every Node tokbind supports: its `engines.node`
 * admits the oldest supported release (package.json `engines`, 20.19.0) and the Node running the
 * tests. Otherwise `npm ci` on Node 20 warns EBADENGINE (it did twice: light-my-request's and
 * @fastify/cookie's `cookie`, which wants Node 22).
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import semver from 'semver';

interface Locked {
  readonly version?: string;
  readonly engines?: { readonly node?: string } | readonly string[];
}

const root = new URL('../../../', import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(new URL('package-lock.json', root), 'utf8')) as { packages: Record<string, Locked> };

test('the oldest Node tokbind supports is the one its engines field names', (t) => {
  t.is(semver.minVersion(manifest.engines.node)?.version, '20.19.0');
  t.true(semver.satisfies(process.version, manifest.engines.node), process.version);
});

test('every locked package admits the oldest supported Node and this one', (t) => {
  const oldest = semver.minVersion(manifest.engines.node)!.version;
  const refused: string[] = [];
  let checked = 0;
  for (const [path, entry] of Object.entries(lock.packages)) {
    const range = Array.isArray(entry.engines) ? undefined : (entry.engines as { node?: string } | undefined)?.node;
    if (path === '' || range === undefined) continue;
    checked++;
    for (const version of [oldest, process.version]) {
      if (!semver.satisfies(version, range)) refused.push(`${path}@${entry.version ?? '?'} wants node ${range}, not ${version}`);
    }
  }
  t.true(checked > 20, `only ${checked} packages name an engine: is this the lockfile?`);
  t.deepEqual(refused, []);
});
