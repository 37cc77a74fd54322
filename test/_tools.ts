/**
 * The real systems some tests run against (redis-server, haproxy, promtool, chromium). `npm test`
 * installs them first (scripts/ensure-tools.js); a test that needs one calls `requireTool`, which
 * throws — failing the test, never skipping it — when the tool is still missing.
 *
 *   import { requireTool, freePort } from '../_tools.js'
 *   const redis = requireTool('redis-server')
 */
import { createServer } from 'node:net';

export type ToolName = 'redis-server' | 'haproxy' | 'promtool' | 'chromium';

// The one table of tools and where Debian puts them: the plain JS script `npm test` runs first
// (outside dist/, so it is loaded by its path from the repository root).
const ensureScript = new URL('../../scripts/ensure-tools.js', import.meta.url);
const { findTool } = (await import(ensureScript.href)) as { findTool: (tool: ToolName) => string | undefined };

/** The absolute path of `tool`; throws with the install command when it is not installed. */
export function requireTool(tool: ToolName): string {
  const found = findTool(tool);
  if (found === undefined) {
    throw new Error(`${tool} is not installed: run \`node scripts/ensure-tools.js\` (npm test does) or install it yourself`);
  }
  return found;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for servers that cannot take port 0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
