/**
 * scripts/check-tarball.js, the file-list and manifest check `npm run check:package` runs on the
 * packed tarball: a package built right passes, and each way a tarball goes wrong is named.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const checker = fileURLToPath(new URL('../../../scripts/check-tarball.js', import.meta.url));

const SOURCE = 'export const answer = 42;\n';

type Files = Record<string, string | null>;

function map(source: string, content: string | null = SOURCE): string {
  return JSON.stringify({ version: 3, file: 'x.js', sources: [source], sourcesContent: content === null ? undefined : [content], mappings: 'AAAA' });
}

/** A package as `npm pack` unpacks it, and the source tree it was built from. */
function good(): { pkg: Files; src: Files } {
  const manifest = {
    name: 'tokbind',
    version: '0.0.0',
    license: 'Apache-2.0',
    type: 'module',
    repository: { type: 'git', url: 'git+https://example.invalid/tokbind.git' },
    homepage: 'https://example.invalid/tokbind',
    bugs: { url: 'https://example.invalid/tokbind/issues' },
    main: './dist/src/index.js',
    types: './dist/src/index.d.ts',
    bin: { tokbind: './dist/src/cli/main.js' },
    exports: {
      '.': { types: './dist/src/index.d.ts', default: './dist/src/index.js' },
      './package.json': './package.json',
    },
    scripts: { build: 'tsc', prepack: 'npm run build' },
  };
  return {
    pkg: {
      'package.json': JSON.stringify(manifest),
      'README.md': '#',
      'SECURITY.md': '#',
      LICENSE: 'Apache',
      NOTICE: 'tokbind',
      'CHANGELOG.md': '#',
      'dist/src/index.js': 'export const answer = 42;\n//# sourceMappingURL=index.js.map\n',
      'dist/src/index.d.ts': 'export declare const answer = 42;\n',
      'dist/src/index.js.map': map('../../src/index.ts'),
      'dist/src/cli/main.js': '#!/usr/bin/env node\nconsole.log(1);\n//# sourceMappingURL=main.js.map\n',
      'dist/src/cli/main.d.ts': 'export {};\n',
      'dist/src/cli/main.js.map': map('../../../src/cli/main.ts', 'console.log(1);\n'),
    },
    src: { 'src/index.ts': SOURCE, 'src/cli/main.ts': 'console.log(1);\n', 'src/types.d.ts': 'declare const x: 1;\n' },
  };
}

function write(root: string, files: Files): void {
  for (const [name, content] of Object.entries(files)) {
    if (content === null) continue;
    mkdirSync(dirname(join(root, name)), { recursive: true });
    writeFileSync(join(root, name), content);
  }
}

function check(pkg: Files, src: Files) {
  const root = mkdtempSync(join(tmpdir(), 'tokbind-check-tarball-'));
  try {
    write(join(root, 'package'), pkg);
    write(join(root, 'repo'), src);
    return spawnSync(process.execPath, [checker, join(root, 'package'), '--src', join(root, 'repo')], { encoding: 'utf8' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test('a package built from its sources, with the documents, passes', (t) => {
  const { pkg, src } = good();
  const result = check(pkg, src);
  t.is(result.status, 0, result.stderr);
  t.regex(result.stdout, /12 files, as expected/);
});

test('a packed .tgz is unpacked and checked the same way', (t) => {
  const { pkg, src } = good();
  const root = mkdtempSync(join(tmpdir(), 'tokbind-check-tarball-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  write(join(root, 'package'), pkg);
  write(join(root, 'repo'), src);
  const tar = spawnSync('tar', ['-czf', join(root, 'p.tgz'), '-C', root, 'package'], { encoding: 'utf8' });
  t.is(tar.status, 0, tar.stderr);
  const ok = spawnSync(process.execPath, [checker, join(root, 'p.tgz'), '--src', join(root, 'repo')], { encoding: 'utf8' });
  t.is(ok.status, 0, ok.stderr);
  const bad = spawnSync(process.execPath, [checker, join(root, 'missing.tgz'), '--src', join(root, 'repo')], { encoding: 'utf8' });
  t.not(bad.status, 0);
});

const broken: ReadonlyArray<readonly [string, (p: { pkg: Files; src: Files }) => void, RegExp]> = [
  ['a compiled test', ({ pkg }) => void (pkg['dist/test/x.test.js'] = ''), /dist\/test\/x\.test\.js: not part of the package/],
  ['a benchmark', ({ pkg }) => void (pkg['dist/bench/run.js'] = ''), /dist\/bench\/run\.js: not part of the package/],
  ['a TypeScript source', ({ pkg }) => void (pkg['src/index.ts'] = SOURCE), /src\/index\.ts: not part of the package/],
  ['a declaration map', ({ pkg }) => void (pkg['dist/src/index.d.ts.map'] = '{}'), /index\.d\.ts\.map: not part of the package/],
  ['a stray file', ({ pkg }) => void (pkg['.npmrc'] = ''), /\.npmrc: not part of the package/],
  ['no LICENSE', ({ pkg }) => void (pkg['LICENSE'] = null), /missing LICENSE/],
  ['no CHANGELOG', ({ pkg }) => void (pkg['CHANGELOG.md'] = null), /missing CHANGELOG\.md/],
  ['no NOTICE', ({ pkg }) => void (pkg['NOTICE'] = null), /missing NOTICE/],
  ['stale output of a deleted source', ({ pkg }) => void (pkg['dist/src/old.js'] = ''), /dist\/src\/old\.\*: no src\/old\.ts/],
  ['a source not built', ({ src }) => void (src['src/new.ts'] = ''), /dist\/src\/new\.js: missing/],
  ['a missing declaration', ({ pkg }) => void (pkg['dist/src/index.d.ts'] = null), /dist\/src\/index\.d\.ts: missing/],
  ['a map without sourcesContent', ({ pkg }) => void (pkg['dist/src/index.js.map'] = map('../../src/index.ts', null)), /sourcesContent missing/],
  ['a map whose content is stale', ({ pkg }) => void (pkg['dist/src/index.js.map'] = map('../../src/index.ts', 'old')), /sourcesContent differs/],
  ['a map pointing elsewhere', ({ pkg }) => void (pkg['dist/src/index.js.map'] = map('../../lib/index.ts')), /is not src\/index\.ts/],
  ['a map that is not JSON', ({ pkg }) => void (pkg['dist/src/index.js.map'] = '{'), /not JSON/],
  ['a .js without its map link', ({ pkg }) => void (pkg['dist/src/index.js'] = 'export {};\n'), /does not end with \/\/# sourceMappingURL=index\.js\.map/],
];

for (const [what, breakIt, expected] of broken) {
  test(`refused: ${what}`, (t) => {
    const p = good();
    breakIt(p);
    const result = check(p.pkg, p.src);
    t.is(result.status, 1);
    t.regex(result.stderr, expected);
  });
}

const manifests: ReadonlyArray<readonly [string, (m: Record<string, unknown>) => void, RegExp]> = [
  ['a prepare script', (m) => void ((m['scripts'] as Record<string, string>)['prepare'] = 'npm run build'), /scripts\.prepare runs on consumers' installs/],
  ['a postinstall script', (m) => void ((m['scripts'] as Record<string, string>)['postinstall'] = 'node x'), /scripts\.postinstall/],
  ['no repository', (m) => void delete m['repository'], /no repository\.url/],
  ['no homepage', (m) => void delete m['homepage'], /no homepage/],
  ['no bugs', (m) => void delete m['bugs'], /no bugs/],
  ['no license', (m) => void delete m['license'], /no license/],
  ['an export target not packed', (m) => void ((m['exports'] as Record<string, unknown>)['./x'] = { types: './dist/src/x.d.ts', default: './dist/src/x.js' }), /names \.\/dist\/src\/x\.js, which is not in the package/],
  ['an export without types first', (m) => void ((m['exports'] as Record<string, unknown>)['.'] = { default: './dist/src/index.js', types: './dist/src/index.d.ts' }), /exports\["\."\] must be/],
  ['a bin without its shebang', (m) => void (m['bin'] = { tokbind: './dist/src/index.js' }), /bin \.\/dist\/src\/index\.js does not start with #!\/usr\/bin\/env node/],
  ['a bin not packed', (m) => void (m['bin'] = { tokbind: './dist/src/cli/gone.js' }), /names \.\/dist\/src\/cli\/gone\.js/],
];

for (const [what, breakIt, expected] of manifests) {
  test(`refused: package.json with ${what}`, (t) => {
    const p = good();
    const manifest = JSON.parse(p.pkg['package.json']!) as Record<string, unknown>;
    breakIt(manifest);
    p.pkg['package.json'] = JSON.stringify(manifest);
    const result = check(p.pkg, p.src);
    t.is(result.status, 1);
    t.regex(result.stderr, expected);
  });
}

test('usage errors exit 2', (t) => {
  const result = spawnSync(process.execPath, [checker], { encoding: 'utf8' });
  t.is(result.status, 2);
  t.regex(result.stderr, /usage:/);
});
