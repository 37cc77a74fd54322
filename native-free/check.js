#!/usr/bin/env node
// The native-free guarantee: walk the installed *production* dependency tree of tokbind and fail
// on anything that would need or ship a native addon: a `.node` binary, a `binding.gyp`, or an
// install-time script (preinstall/install/postinstall) that could build one. See README.md here.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

// Usage: node native-free/check.js [package-root]  (default: this repository)
const root = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..');
const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall'];

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** Resolve `name` as Node would from `fromDir`: the nearest node_modules upwards. */
function resolvePackageDir(name, fromDir) {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) return null;
  }
}

/** Every file below `dir`, not descending into nested node_modules (those are packages of their own). */
function* walkFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') yield* walkFiles(full);
    } else if (entry.isFile()) {
      yield full;
    }
  }
}

const problems = [];
const seen = new Map(); // package dir -> name@version
const queue = [{ dir: root, isRoot: true }];

while (queue.length > 0) {
  const { dir, isRoot } = queue.shift();
  if (seen.has(dir)) continue;
  const pkg = readJson(join(dir, 'package.json'));
  seen.set(dir, `${pkg.name}@${pkg.version}`);
  if (!isRoot) {
    for (const script of INSTALL_SCRIPTS) {
      if (pkg.scripts?.[script]) problems.push(`${pkg.name}@${pkg.version}: "${script}" script: ${pkg.scripts[script]}`);
    }
    if (pkg.gypfile) problems.push(`${pkg.name}@${pkg.version}: "gypfile": true`);
    for (const file of walkFiles(dir)) {
      if (file.endsWith('.node') || file.endsWith('binding.gyp')) {
        problems.push(`${pkg.name}@${pkg.version}: ${relative(dir, file)}`);
      }
    }
  }
  // Production dependencies only: dependencies and optionalDependencies (peers are the user's).
  const deps = { ...pkg.dependencies, ...pkg.optionalDependencies };
  for (const name of Object.keys(deps)) {
    const depDir = resolvePackageDir(name, dir);
    if (depDir === null) {
      if (pkg.optionalDependencies?.[name]) continue;
      problems.push(`${pkg.name}: dependency ${name} is not installed (run npm ci first)`);
      continue;
    }
    if (!seen.has(depDir) && statSync(depDir).isDirectory()) queue.push({ dir: depDir, isRoot: false });
  }
}

const packages = [...seen.values()].slice(1);
if (problems.length > 0) {
  console.error(`native-free: FAILED — ${problems.length} problem(s) in the production dependency tree:`);
  for (const p of problems) console.error(`  - ${p}`);
  process.exit(1);
}
console.log(`native-free: ok — ${packages.length} production packages, no native addon, no install script`);
console.log(`  ${packages.join(', ')}`);
