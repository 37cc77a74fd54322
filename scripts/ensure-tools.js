#!/usr/bin/env node
// Makes sure the real systems the test suite runs against are on this machine, before any test
// starts: redis-server (bound sessions in Redis), haproxy (the L4 balancer recipe), promtool
// (Prometheus metrics and alert rules) and a headless chromium (DBSC). `npm test` runs this first.
//
//   node scripts/ensure-tools.js           ensure every tool (install what is missing)
//   node scripts/ensure-tools.js --check   only report; exit 1 if anything is missing
//
// When a tool is missing: as root on Debian, it runs `apt-get update` and `apt-get install` for the
// Debian packages below; anywhere else it stops at once with the exact command to run. It never
// lets the suite go on without a tool (the tests would then fail, never skip).
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';

/** tool -> { package: Debian package, paths: where Debian puts it (searched before PATH) } */
export const TOOLS = {
  'redis-server': { package: 'redis-server', paths: ['/usr/bin/redis-server'] },
  haproxy: { package: 'haproxy', paths: ['/usr/sbin/haproxy'] },
  promtool: { package: 'prometheus', paths: ['/usr/bin/promtool'] },
  chromium: { package: 'chromium', paths: ['/usr/lib/chromium/chromium', '/usr/bin/chromium'] },
};

function executable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of `tool`, or undefined. */
export function findTool(tool) {
  const spec = TOOLS[tool];
  for (const p of spec?.paths ?? []) if (executable(p)) return p;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir !== '' && executable(path.join(dir, tool))) return path.join(dir, tool);
  }
  return undefined;
}

function missingTools() {
  return Object.keys(TOOLS).filter((t) => findTool(t) === undefined);
}

const invokedDirectly = process.argv[1] !== undefined && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname;
if (invokedDirectly) {
  const checkOnly = process.argv.includes('--check');
  let missing = missingTools();
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((t) => TOOLS[t].package))];
    const command = `apt-get install -y ${packages.join(' ')}`;
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    const debian = existsSync('/etc/debian_version') && findOnPath('apt-get');
    if (checkOnly || !isRoot || !debian) {
      console.error(`ensure-tools: the test suite needs ${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not installed.`);
      console.error(debian ? `run: sudo apt-get update && sudo ${command}` : `install the Debian packages ${packages.join(', ')} (or your system's equivalents)`);
      process.exit(1);
    }
    console.log(`ensure-tools: installing ${packages.join(', ')} with apt-get`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    // Services the packages would start are not wanted: tests start their own on free ports.
    run('apt-get', ['update', '-qq'], env);
    // With the recommended packages, as the suite was tested (Chromium's among them).
    run('apt-get', ['install', '-y', '-qq', ...packages], env);
    missing = missingTools();
    if (missing.length > 0) {
      console.error(`ensure-tools: still missing after apt-get install: ${missing.join(', ')}`);
      process.exit(1);
    }
  }
  console.log(`ensure-tools: ${Object.keys(TOOLS).map((t) => `${t} ${findTool(t)}`).join(', ')}`);
}

function findOnPath(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function run(cmd, args, env) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', env });
  if (r.status !== 0) {
    console.error(`ensure-tools: ${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}
