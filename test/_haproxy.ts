/**
 * A real HAProxy (Debian's `haproxy`) running the shipped recipe examples/deploy/haproxy.cfg on
 * free loopback ports, in front of tokbind nodes:
 *
 *   const lb = await startHaproxy([node1Port, node2Port])   // lb.port; await lb.close()
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { freePort, requireTool } from './_tools.js';

/** The recipe itself, from the repository (tests run from dist/test/). */
export const HAPROXY_RECIPE = fileURLToPath(new URL('../../examples/deploy/haproxy.cfg', import.meta.url));

export interface RunningHaproxy {
  readonly port: number;
  /** What HAProxy printed (warnings, alerts): for a failing test's message. */
  output(): string;
  close(): Promise<void>;
}

async function accepting(port: number): Promise<boolean> {
  const socket = connect({ host: '127.0.0.1', port });
  try {
    await once(socket, 'connect');
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

/** Starts `haproxy -f examples/deploy/haproxy.cfg -db` balancing over the two node ports. */
export async function startHaproxy(nodePorts: readonly [number, number]): Promise<RunningHaproxy> {
  const haproxy = requireTool('haproxy');
  const port = await freePort();
  const env = {
    ...process.env,
    TOKBIND_LB_BIND: `127.0.0.1:${port}`,
    TOKBIND_NODE1: `127.0.0.1:${nodePorts[0]}`,
    TOKBIND_NODE2: `127.0.0.1:${nodePorts[1]}`,
  };
  const child = spawn(haproxy, ['-f', HAPROXY_RECIPE, '-db'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
  const exited = once(child, 'exit');
  const deadline = Date.now() + 15_000;
  while (!(await accepting(port))) {
    if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}: ${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`haproxy did not listen on ${port} within 15 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    output: () => output,
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}
