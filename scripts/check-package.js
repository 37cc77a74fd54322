#!/usr/bin/env node
// The package as a consumer meets it, checked end to end on the packed tarball:
//
//   npm run check:package            (node scripts/check-package.js [--keep])
//
//  1. `npm pack` (prepack: a clean build of src/) into a temporary directory outside the repository;
//  2. the tarball's file list, source maps and manifest (scripts/check-tarball.js);
//  3. publint --strict and @arethetypeswrong/cli on the tarball, for every export path;
//  4. a scratch project in the temporary directory: `npm install <tarball>` alone must print no
//     warning at all (every warning there is ours: our manifest, our dependencies), then the
//     libraries a user installs beside it — each peer dependency of the package (express,
//     fastify, …) with its @types/* if this repository uses one, undici, @types/node and
//     typescript, at the ranges this repository develops against, from the npm registry;
//  5. a consumer file importing every path in the tarball's "exports" (generated from its
//     package.json, so new export paths are covered without editing this script) plus
//     scripts/consumer/app.ts, type-checked WITHOUT skipLibCheck under `moduleResolution:
//     nodenext` and `bundler`;
//  6. the compiled consumer run with node: createServer, Express and Fastify from the tarball,
//     requests bound by tokbind's client, `req.tokenBinding` checked.
//
// Any failure exits 1 with the step and the reason; `--keep` leaves the temporary directory.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkPackage, unpack } from './check-tarball.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const keep = process.argv.includes('--keep');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const repoPkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));

class StepFailure extends Error {}

let current = '';
let stepStarted = Date.now();
function step(name) {
  if (current !== '') console.log(`   (${((Date.now() - stepStarted) / 1000).toFixed(1)} s)`);
  current = name;
  stepStarted = Date.now();
  console.log(`-- ${name}`);
}

function fail(reason) {
  throw new StepFailure(reason);
}

/** Runs a command; on a non-zero exit fails the step with its output. Returns its output. */
function run(command, args, options = {}) {
  const result = spawnSync(command, args, {
    cwd: options.cwd ?? root,
    encoding: 'utf8',
    env: { ...process.env, npm_config_update_notifier: 'false', NO_COLOR: '1', FORCE_COLOR: '0', ...options.env },
    maxBuffer: 64 * 1024 * 1024,
    // A hung server or install fails the step instead of stalling CI.
    timeout: options.timeout ?? 600_000,
    killSignal: 'SIGKILL',
  });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.error?.code === 'ETIMEDOUT') {
    fail(`\`${[path.basename(command), ...args].join(' ')}\` did not finish within ${(options.timeout ?? 600_000) / 1000} s:\n${output.trimEnd()}`);
  }
  if (result.error !== undefined) fail(`${command} could not run: ${result.error.message}`);
  if (result.status !== 0) {
    fail(`\`${[path.basename(command), ...args].join(' ')}\` exited ${result.status ?? result.signal}:\n${output.trimEnd()}`);
  }
  return { stdout: result.stdout, stderr: result.stderr, output };
}

const bin = (dir, name) => path.join(dir, 'node_modules', '.bin', process.platform === 'win32' ? `${name}.cmd` : name);

/** The range this repository develops against for `name` (so the consumer gets what CI tests). */
function rangeOf(name) {
  const range = repoPkg.dependencies?.[name] ?? repoPkg.devDependencies?.[name] ?? repoPkg.peerDependencies?.[name];
  if (range === undefined) fail(`package.json has no version range for ${name}`);
  return `${name}@${range}`;
}

const work = mkdtempSync(path.join(tmpdir(), 'tokbind-consumer-'));
const started = Date.now();
try {
  step('npm pack (prepack: clean build of dist/src)');
  run(npm, ['pack', '--pack-destination', work, '--silent']);
  const tarballs = readdirSync(work).filter((f) => f.endsWith('.tgz'));
  if (tarballs.length !== 1) fail(`expected one tarball in ${work}, found ${tarballs.join(', ') || 'none'}`);
  const tarball = path.join(work, tarballs[0]);
  console.log(`   ${tarballs[0]}`);

  step('tarball contents (scripts/check-tarball.js)');
  const { pkgDir, cleanup } = unpack(tarball);
  let packed;
  try {
    const problems = checkPackage(pkgDir, root);
    if (problems.length > 0) fail(problems.join('\n'));
    packed = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  } finally {
    cleanup();
  }
  const subpaths = Object.keys(packed.exports ?? {}).filter((s) => s !== './package.json');
  if (!subpaths.includes('.')) fail('package.json "exports" has no "." entry');
  console.log(`   export paths: ${subpaths.join(' ')}`);

  step('publint --strict');
  const publint = run(bin(root, 'publint'), ['run', tarball, '--strict']);
  // Suggestions do not change publint's exit code; a clean package has none either.
  if (!/All good!/.test(publint.output)) fail(`publint reported:\n${publint.output.trimEnd()}`);

  step('attw (node16/nodenext from ESM, bundler; every export path)');
  // --profile node16 drops node10 resolution (no `exports` support; this package needs Node
  // 20.19+). cjs-resolves-to-esm is ignored because tokbind is ESM only ("type": "module", no
  // `require` condition): a CommonJS importer under node16 resolves to ESM, which attw reports,
  // and which Node 20.19+ loads with require(esm). Every other rule stays on, in every mode.
  // --no-definitely-typed: the package ships its own types; no @types/tokbind is consulted.
  run(bin(root, 'attw'), [
    tarball,
    '--profile',
    'node16',
    '--ignore-rules',
    'cjs-resolves-to-esm',
    '--no-definitely-typed',
    '--format',
    'ascii',
    '--no-color',
    '--no-emoji',
  ]);

  step('npm install <tarball> into a scratch project (no warning allowed)');
  const app = path.join(work, 'app');
  mkdirSync(app);
  writeFileSync(
    path.join(app, 'package.json'),
    `${JSON.stringify({ name: 'tokbind-consumer', version: '0.0.0', private: true, type: 'module' }, null, 2)}\n`,
  );
  const install = ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel', 'warn'];
  const ours = run(npm, [...install, tarball], { cwd: app });
  const warnings = ours.output.split('\n').filter((line) => /\bnpm (warn|WARN|ERR)\b/.test(line));
  if (warnings.length > 0) fail(`installing the tarball alone printed warnings (all of them ours):\n${warnings.join('\n')}`);

  step("npm install the user's libraries beside it");
  const peers = Object.keys(packed.peerDependencies ?? {});
  const types = peers.map((p) => `@types/${p.replace(/^@([^/]+)\//, '$1__')}`).filter((t) => repoPkg.devDependencies?.[t]);
  const libraries = [...peers, ...types, 'undici', '@types/node', 'typescript'].map(rangeOf);
  console.log(`   ${libraries.join(' ')}`);
  const theirs = run(npm, [...install, ...libraries], { cwd: app });
  const foreign = theirs.output.split('\n').filter((line) => /\bnpm (warn|WARN)\b/.test(line));
  if (foreign.some((line) => line.includes('tokbind'))) fail(`warnings naming tokbind:\n${foreign.join('\n')}`);
  if (foreign.length > 0) console.log(`   (warnings from these libraries, not tokbind:)\n   ${foreign.join('\n   ')}`);

  step('type-check the consumer without skipLibCheck (nodenext, bundler)');
  const imports = subpaths.map((subpath, i) => {
    const specifier = subpath === '.' ? packed.name : `${packed.name}/${subpath.slice(2)}`;
    return { specifier, line: `import * as entry${i} from '${specifier}';` };
  });
  writeFileSync(
    path.join(app, 'exports.ts'),
    [
      '// Generated by scripts/check-package.js from the tarball\'s package.json "exports".',
      ...imports.map((i) => i.line),
      '',
      'export const entryPoints: Record<string, object> = {',
      ...imports.map((i, n) => `  '${i.specifier}': entry${n},`),
      '};',
      '',
    ].join('\n'),
  );
  copyFileSync(path.join(root, 'scripts', 'consumer', 'app.ts'), path.join(app, 'app.ts'));
  const common = {
    target: 'ES2022',
    lib: ['ES2023'],
    strict: true,
    skipLibCheck: false,
    forceConsistentCasingInFileNames: true,
    verbatimModuleSyntax: true,
  };
  const configs = {
    'tsconfig.nodenext.json': { ...common, module: 'nodenext', moduleResolution: 'nodenext', outDir: 'out' },
    'tsconfig.bundler.json': { ...common, module: 'preserve', moduleResolution: 'bundler', noEmit: true },
  };
  for (const [file, compilerOptions] of Object.entries(configs)) {
    writeFileSync(path.join(app, file), `${JSON.stringify({ compilerOptions, files: ['app.ts', 'exports.ts'] }, null, 2)}\n`);
    console.log(`   tsc -p ${file}`);
    run(bin(app, 'tsc'), ['-p', file], { cwd: app });
  }

  step('run the consumer (createServer, Express, Fastify, client: all from the tarball)');
  const smoke = run(process.execPath, [path.join(app, 'out', 'app.js')], { cwd: app, timeout: 120_000 });
  process.stdout.write(smoke.stdout.replace(/^/gm, '   '));

  console.log(`check-package: ok (${((Date.now() - started) / 1000).toFixed(0)} s)`);
} catch (err) {
  if (!(err instanceof StepFailure)) throw err;
  console.error(`check-package: FAILED at "${current}"\n${err.message}`);
  if (keep) console.error(`(scratch directory kept: ${work})`);
  process.exitCode = 1;
} finally {
  if (keep) console.log(`scratch directory: ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
