#!/usr/bin/env node
// What the published package may hold, checked on the packed tarball (or an unpacked package
// directory) against the source tree it was built from:
//
//   node scripts/check-tarball.js <tokbind-x.y.z.tgz | package-dir> [--src <repository root>]
//
// - files: package.json, README.md, SECURITY.md, LICENSE, NOTICE, CHANGELOG.md, and under dist/src
//   only .js, .d.ts and .js.map, one of each for every src/**/*.ts (nothing stale, no tests, no
//   bench, no examples, no declaration maps);
// - source maps carry their sources (`sourcesContent`, identical to the source tree's files), and
//   every .js names its own map;
// - the manifest: no install-time scripts (consumers would run them), repository/homepage/bugs,
//   and every path main/types/bin/exports name is in the package, with `types` first.
//
// Exit 0 when clean; 1 with one line per problem on stderr. The check script
// (scripts/check-package.js) runs it on the tarball it packs; test/scripts/ tests it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Top-level files the package ships, all required (npm adds package.json itself). */
export const TOP_LEVEL = ['package.json', 'README.md', 'SECURITY.md', 'LICENSE', 'NOTICE', 'CHANGELOG.md'];
/** Lifecycle scripts npm runs in a consumer's install (prepare: for git and directory installs). */
const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall', 'prepare', 'prepublish'];
const OUT = /^dist\/src\/(.+?)(\.js|\.d\.ts|\.js\.map)$/;

/** Every file under `dir`, as /-separated paths relative to it. */
export function listFiles(dir, prefix = '') {
  const files = [];
  for (const entry of readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) files.push(...listFiles(dir, rel));
    else files.push(rel);
  }
  return files.sort();
}

/** Every string a package.json target field names (exports conditions nest). */
function targets(value) {
  if (typeof value === 'string') return [value];
  if (value === null || typeof value !== 'object') return [];
  return Object.values(value).flatMap(targets);
}

/**
 * Problems of the package in `pkgDir` (an unpacked tarball: its `package/` folder), checked
 * against the `.ts` files under `srcRoot/src`. Returns one message per problem; [] when clean.
 */
export function checkPackage(pkgDir, srcRoot) {
  const problems = [];
  const files = listFiles(pkgDir);
  const present = new Set(files);

  for (const name of TOP_LEVEL) if (!present.has(name)) problems.push(`missing ${name}`);
  const built = new Map(); // module (src-relative, no extension) → extensions shipped
  for (const file of files) {
    if (TOP_LEVEL.includes(file)) continue;
    const match = OUT.exec(file);
    if (match === null || match[1].endsWith('.d')) {
      problems.push(`${file}: not part of the package (only ${TOP_LEVEL.join(', ')} and dist/src/**/*.{js,d.ts,js.map})`);
      continue;
    }
    const exts = built.get(match[1]) ?? new Set();
    exts.add(match[2]);
    built.set(match[1], exts);
  }

  const sources = listFiles(path.join(srcRoot, 'src'))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, -'.ts'.length));
  const sourceSet = new Set(sources);
  for (const module of sources) {
    const exts = built.get(module) ?? new Set();
    for (const ext of ['.js', '.d.ts', '.js.map']) {
      if (!exts.has(ext)) problems.push(`dist/src/${module}${ext}: missing (src/${module}.ts is not built into the package)`);
    }
  }
  for (const module of built.keys()) {
    if (!sourceSet.has(module)) problems.push(`dist/src/${module}.*: no src/${module}.ts (stale build output? rebuild from a clean dist/)`);
  }

  for (const [module, exts] of built) {
    if (exts.has('.js')) {
      const js = readFileSync(path.join(pkgDir, `dist/src/${module}.js`), 'utf8');
      const base = path.posix.basename(module);
      if (!js.trimEnd().endsWith(`//# sourceMappingURL=${base}.js.map`)) {
        problems.push(`dist/src/${module}.js: does not end with //# sourceMappingURL=${base}.js.map`);
      }
    }
    if (!exts.has('.js.map')) continue;
    const file = `dist/src/${module}.js.map`;
    let map;
    try {
      map = JSON.parse(readFileSync(path.join(pkgDir, file), 'utf8'));
    } catch (err) {
      problems.push(`${file}: not JSON (${err.message})`);
      continue;
    }
    const mapSources = Array.isArray(map.sources) ? map.sources : [];
    const contents = Array.isArray(map.sourcesContent) ? map.sourcesContent : [];
    if (mapSources.length === 0) problems.push(`${file}: no sources`);
    if (contents.length !== mapSources.length || contents.some((c) => typeof c !== 'string')) {
      problems.push(`${file}: sourcesContent missing or incomplete (the sources it points at are not in the package)`);
      continue;
    }
    mapSources.forEach((source, i) => {
      const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(file), source));
      const expected = path.join(srcRoot, resolved);
      if (resolved !== `src/${module}.ts` || !existsSync(expected)) {
        problems.push(`${file}: source ${source} is not src/${module}.ts`);
      } else if (readFileSync(expected, 'utf8') !== contents[i]) {
        problems.push(`${file}: sourcesContent differs from src/${module}.ts (stale build?)`);
      }
    });
  }

  let pkg;
  try {
    pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  } catch (err) {
    problems.push(`package.json: unreadable (${err.message})`);
    return problems;
  }
  for (const script of INSTALL_SCRIPTS) {
    if (pkg.scripts?.[script] !== undefined) problems.push(`package.json: scripts.${script} runs on consumers' installs`);
  }
  if (typeof pkg.repository?.url !== 'string') problems.push('package.json: no repository.url');
  if (typeof pkg.homepage !== 'string') problems.push('package.json: no homepage');
  if (typeof (pkg.bugs?.url ?? pkg.bugs) !== 'string') problems.push('package.json: no bugs');
  if (typeof pkg.license !== 'string') problems.push('package.json: no license');
  const named = [pkg.main, pkg.types, ...targets(pkg.bin), ...targets(pkg.exports)].filter((t) => typeof t === 'string');
  for (const target of named) {
    const rel = path.posix.normalize(target);
    if (!present.has(rel)) problems.push(`package.json: names ${target}, which is not in the package`);
  }
  for (const target of targets(pkg.bin)) {
    const rel = path.posix.normalize(target);
    if (present.has(rel) && !readFileSync(path.join(pkgDir, rel), 'utf8').startsWith('#!/usr/bin/env node\n')) {
      problems.push(`package.json: bin ${target} does not start with #!/usr/bin/env node`);
    }
  }
  for (const [subpath, entry] of Object.entries(pkg.exports ?? {})) {
    if (subpath === './package.json') continue;
    const keys = entry !== null && typeof entry === 'object' ? Object.keys(entry) : [];
    if (keys[0] !== 'types' || !keys.includes('default')) {
      problems.push(`package.json: exports["${subpath}"] must be { "types": …, "default": … } with types first`);
    }
  }
  return problems;
}

/** Unpacks a .tgz into a fresh temporary directory; returns the package folder and a cleanup. */
export function unpack(tarball) {
  const dir = mkdtempSync(path.join(tmpdir(), 'tokbind-tarball-'));
  const result = spawnSync('tar', ['-xzf', tarball, '-C', dir], { encoding: 'utf8' });
  if (result.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`tar -xzf ${tarball} failed: ${result.stderr || result.error?.message}`);
  }
  return { pkgDir: path.join(dir, 'package'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function main(argv) {
  const args = [...argv];
  let srcRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const at = args.indexOf('--src');
  if (at !== -1) {
    srcRoot = path.resolve(args[at + 1] ?? '');
    args.splice(at, 2);
  }
  if (args.length !== 1) {
    console.error('usage: node scripts/check-tarball.js <package.tgz | package-dir> [--src <repository root>]');
    return 2;
  }
  const target = path.resolve(args[0]);
  let pkgDir = target;
  let cleanup = () => {};
  if (!statSync(target, { throwIfNoEntry: false })?.isDirectory()) {
    try {
      ({ pkgDir, cleanup } = unpack(target));
    } catch (err) {
      console.error(`check-tarball: ${err.message}`);
      return 1;
    }
  }
  try {
    const problems = checkPackage(pkgDir, srcRoot);
    for (const problem of problems) console.error(`check-tarball: ${problem}`);
    if (problems.length > 0) return 1;
    console.log(`check-tarball: ${listFiles(pkgDir).length} files, as expected`);
    return 0;
  } finally {
    cleanup();
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
