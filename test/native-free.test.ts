import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const checker = fileURLToPath(new URL('../../native-free/check.js', import.meta.url));

function makeTree(dep: { files?: Record<string, string>; pkg?: Record<string, unknown> }): string {
  const root = mkdtempSync(join(tmpdir(), 'tokbind-native-free-'));
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', dependencies: { dep: '1.0.0' } }));
  const depDir = join(root, 'node_modules', 'dep');
  mkdirSync(depDir, { recursive: true });
  writeFileSync(join(depDir, 'package.json'), JSON.stringify({ name: 'dep', version: '1.0.0', ...dep.pkg }));
  for (const [name, content] of Object.entries(dep.files ?? {})) {
    mkdirSync(join(depDir, name, '..'), { recursive: true });
    writeFileSync(join(depDir, name), content);
  }
  return root;
}

function check(root: string) {
  const result = spawnSync(process.execPath, [checker, root], { encoding: 'utf8' });
  rmSync(root, { recursive: true, force: true });
  return result;
}

test('the repository itself is native-free', (t) => {
  const result = spawnSync(process.execPath, [checker], { encoding: 'utf8' });
  t.is(result.status, 0, result.stderr);
});

test('a pure JS dependency passes', (t) => {
  t.is(check(makeTree({ files: { 'index.js': 'export {}' } })).status, 0);
});

for (const [what, dep] of [
  ['a .node binary', { files: { 'build/Release/addon.node': '\u007fELF' } }],
  ['a binding.gyp', { files: { 'binding.gyp': '{}' } }],
  ['an install script', { pkg: { scripts: { install: 'node-gyp rebuild' } } }],
  ['a postinstall script', { pkg: { scripts: { postinstall: 'node build.js' } } }],
] as const) {
  test(`${what} in the production tree fails the check`, (t) => {
    const result = check(makeTree(dep));
    t.is(result.status, 1);
    t.regex(result.stderr, /dep@1\.0\.0/);
  });
}
