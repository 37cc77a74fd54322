/**
 * Memory figures, taken inside the server process (started with --expose-gc, heap read after
 * forced collections):
 *
 * - `memory.per_connection_bytes`: heap held per open, idle bound connection — N connections each
 *   send one bound request and stay open; (heapUsed after − before) / N. The same for the plain
 *   server is the baseline (what Node's HTTPS server holds anyway).
 * - `memory.keepalive_growth_bytes`: heapUsed at the end of a long keep-alive run minus heapUsed
 *   early in it (same connections open at both points): should be flat.
 */
import type { BenchContext } from './lib/context.js';
import { startRig, runOnce } from './http.js';
import type { HttpRig } from './http.js';
import { pairedRatio, summarize } from './lib/stats.js';
import type { ServerKind } from './http-server.js';

interface Heap {
  heapUsed: number;
  external: number;
  rss: number;
}

async function heap(rig: HttpRig, kind: ServerKind): Promise<Heap> {
  return (await rig.servers.get(kind)!.child.request({ cmd: 'heap' }, 30_000)) as unknown as Heap;
}

async function perConnection(ctx: BenchContext, rig: HttpRig, kind: ServerKind): Promise<{ heap: number; external: number }> {
  const n = ctx.budget.memoryConnections;
  const auth = kind === 'tokbind' ? 'tokbind' : 'none';
  const server = rig.servers.get(kind)!;
  const before = await heap(rig, kind);
  const opened = await rig.generator.request({ cmd: 'open', config: { port: server.port, ca: ctx.cert.cert, auth, connections: n } }, 120_000);
  if ((opened.errors as number) > 0 || opened.opened !== n) {
    throw new Error(`memory (${kind}): opened ${String(opened.opened)}/${n}, errors: ${(opened.firstErrors as string[]).join('; ')}`);
  }
  const after = await heap(rig, kind);
  await rig.generator.request({ cmd: 'close' }, 30_000);
  // Let the server see the closes before the next round's "before".
  for (let i = 0; i < 50; i++) {
    const c = (await server.child.request({ cmd: 'connections' }, 10_000)).connections as number;
    if (c === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { heap: (after.heapUsed - before.heapUsed) / n, external: (after.external - before.external) / n };
}

export async function benchMemory(ctx: BenchContext): Promise<void> {
  const rig = await startRig(ctx, ['plain', 'tokbind'], ['--expose-gc']);
  // Warm both servers (modules, JIT, first-use allocations) before the first "before".
  for (const kind of ['plain', 'tokbind'] as const) {
    await runOnce(ctx, rig, kind, { mode: 'keepalive', auth: kind === 'tokbind' ? 'tokbind' : 'none', connections: 8, warmupMs: 100, durationMs: 300 });
  }
  const plain: number[] = [];
  const bound: number[] = [];
  const boundExternal: number[] = [];
  for (let r = 0; r < ctx.budget.rounds; r++) {
    const order: ServerKind[] = r % 2 === 0 ? ['plain', 'tokbind'] : ['tokbind', 'plain'];
    for (const kind of order) {
      const m = await perConnection(ctx, rig, kind);
      if (kind === 'plain') plain.push(m.heap);
      else {
        bound.push(m.heap);
        boundExternal.push(m.external);
      }
    }
  }
  ctx.report.figure({
    key: 'memory.per_connection_bytes',
    label: `memory.per_connection_bytes (${ctx.budget.memoryConnections} idle)`,
    unit: 'bytes',
    summary: summarize(bound),
    baseline: { key: 'memory.plain_per_connection_bytes', label: 'https', summary: summarize(plain) },
    ratio: { key: 'memory.per_connection_ratio', summary: pairedRatio(bound, plain) },
    note: 'heapUsed after gc, server process; external (Buffers) per bound connection: ' + Math.round(summarize(boundExternal).median) + ' B',
  });
  ctx.report.set('memory.per_connection_extra_bytes', Math.round(summarize(bound.map((b, i) => b - plain[i]!)).median));

  // Growth: heap sampled (after gc) at fixed points of one long run on the same connections.
  const growth: number[] = [];
  const kind: ServerKind = 'tokbind';
  const windowMs = ctx.budget.growthMs;
  const samples: number[] = [];
  const off = rig.generator.onEvent((m) => {
    if (m.event !== 'window-start') return;
    const points = 5;
    for (let i = 0; i < points; i++) {
      setTimeout(
        () => {
          void heap(rig, kind).then((h) => samples.push(h.heapUsed));
        },
        (windowMs * i) / (points - 1) - (i === points - 1 ? 300 : 0),
      );
    }
  });
  try {
    const run = await runOnce(ctx, rig, kind, {
      mode: 'keepalive',
      auth: 'tokbind',
      connections: ctx.budget.keepaliveConnections,
      warmupMs: ctx.budget.httpWarmupMs,
      durationMs: windowMs,
    });
    await new Promise((r) => setTimeout(r, 500));
    growth.push(samples.at(-1)! - samples[0]!);
    ctx.report.set('memory.keepalive_requests', run.completed);
    ctx.report.set('memory.keepalive_heap_samples', samples);
  } finally {
    off();
  }
  const g = summarize(growth);
  ctx.report.figure({
    key: 'memory.keepalive_growth_bytes',
    label: `memory.keepalive_growth_bytes (${(windowMs / 1000).toFixed(0)} s)`,
    unit: 'bytes',
    summary: g,
    target: { on: 'value', op: '<=', value: 1048576 },
    note: `heapUsed after gc at 5 points of one tokbind keep-alive run (${ctx.budget.keepaliveConnections} conns); flat = no per-request retention`,
  });
}
