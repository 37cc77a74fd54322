/**
 * Micro-benchmark groups run in child processes, in one of two ways:
 *
 * - `shared`: the group's cases (baseline first) in one fresh process, alternating in ~20 ms
 *   slices (lib/micro.ts) — the best noise cancellation, for cases that do not disturb each other;
 * - `separate`: each case in its own process, the runner alternating rounds between them (A/B/A/B).
 *   Used where two cases in one heap would tax each other: measured for the new-key group, where
 *   the baseline's per-call KeyObjects and tokbind's LRU of imported keys share one heap's
 *   collections and cost the candidate ~8% it does not pay alone (0.84 shared vs 0.91 separate,
 *   same machine, same minute).
 *
 * Groups never share a process with another group either: a second verification backend makes
 * tokbind's call sites polymorphic (a server uses one backend), and thousands of keys imported by
 * one group leave a heap the next one would pay for.
 */
import { fileURLToPath } from 'node:url';
import type { BenchContext, Budget } from './context.js';
import { calibrate, compare, runFor } from './micro.js';
import type { MicroCase, MicroResult } from './micro.js';
import { serveParent } from './proc.js';
import type { FigureSpec } from './report.js';
import { pairedRatio, summarize } from './stats.js';

export interface GroupResult {
  readonly figures: FigureSpec[];
  /** Extra values for results.json (key → value). */
  readonly values: Record<string, unknown>;
  readonly notes?: string[];
}

/** A group: its cases (the first is the baseline) and how to turn their results into figures. */
export interface Group {
  readonly mode?: 'shared' | 'separate';
  setup(budget: Budget): { cases: MicroCase[]; report(results: Map<string, MicroResult>): GroupResult };
}

const SEPARATE_SLICE_MS = 20;

/** Runs `group` of `module` (a module that calls {@link serveGroups}) and records its figures. */
export async function runIsolated(ctx: BenchContext, module: URL, group: string, mode: 'shared' | 'separate' = 'shared'): Promise<void> {
  const timeout = ctx.quick ? 60_000 : 600_000;
  let result: GroupResult;
  if (mode === 'shared') {
    const child = ctx.spawn(module, { role: 'server', name: `${group} benchmark` });
    try {
      result = (await child.request({ cmd: 'group', group, budget: ctx.budget }, timeout)).result as GroupResult;
    } finally {
      await child.close();
    }
  } else {
    const first = ctx.spawn(module, { role: 'server', name: `${group} benchmark` });
    const names = ((await first.request({ cmd: 'setup', group, budget: ctx.budget, case: 0 }, timeout)).cases as string[]) ?? [];
    const children = [first];
    try {
      for (let i = 1; i < names.length; i++) {
        const c = ctx.spawn(module, { role: 'server', name: `${group}/${names[i]} benchmark` });
        children.push(c);
        await c.request({ cmd: 'setup', group, budget: ctx.budget, case: i }, timeout);
      }
      const samples = names.map(() => [] as number[]);
      for (let r = 0; r < ctx.budget.rounds; r++) {
        // Rounds alternate between the processes in short turns, rotating who goes first.
        const elapsed = names.map(() => 0);
        const ops = names.map(() => 0);
        while (Math.min(...elapsed) < ctx.budget.microMs) {
          for (let k = 0; k < names.length; k++) {
            const i = (k + r) % names.length;
            const reply = await children[i]!.request({ cmd: 'turn', ms: SEPARATE_SLICE_MS * 5 }, timeout);
            ops[i]! += (reply.ops as number) * (reply.ms as number);
            elapsed[i]! += reply.ms as number;
          }
        }
        names.forEach((_, i) => samples[i]!.push(ops[i]! / elapsed[i]!));
      }
      const results = names.map((_, i) => (i === 0 ? { ops: summarize(samples[0]!) } : { ops: summarize(samples[i]!), ratio: pairedRatio(samples[i]!, samples[0]!) }));
      result = (await first.request({ cmd: 'report', results }, timeout)).result as GroupResult;
    } finally {
      await Promise.all(children.map((c) => c.close()));
    }
  }
  for (const f of result.figures) ctx.report.figure(f);
  for (const [k, v] of Object.entries(result.values)) ctx.report.set(k, v);
  for (const n of result.notes ?? []) ctx.report.note(n);
}

/** In a benchmark module: when it is the child process's entry point, serve its groups. */
export function serveGroups(module: string, groups: Record<string, Group>): void {
  if (process.argv[1] !== fileURLToPath(module) || process.send === undefined) return;
  let active: { cases: MicroCase[]; report(results: Map<string, MicroResult>): GroupResult; mine: MicroCase; batch: number } | null = null;
  serveParent((msg) => {
    switch (msg.cmd) {
      case 'group': {
        const g = groups[msg.group as string];
        if (g === undefined) throw new Error(`unknown group ${String(msg.group)}`);
        const { cases, report } = g.setup(msg.budget as Budget);
        const b = msg.budget as Budget;
        return { result: report(compare(cases, { rounds: b.rounds, roundMs: b.microMs, warmupMs: b.microWarmupMs })) };
      }
      case 'setup': {
        const g = groups[msg.group as string];
        if (g === undefined) throw new Error(`unknown group ${String(msg.group)}`);
        const { cases, report } = g.setup(msg.budget as Budget);
        const mine = cases[msg.case as number]!;
        active = { cases, report, mine, batch: calibrate(mine, (msg.budget as Budget).microWarmupMs) };
        return { cases: cases.map((c) => c.name) };
      }
      case 'turn': {
        if (active === null) throw new Error('turn before setup');
        const ms = msg.ms as number;
        return { ops: runFor(active.mine, active.batch, ms), ms };
      }
      case 'report': {
        if (active === null) throw new Error('report before setup');
        const list = msg.results as MicroResult[];
        return { result: active.report(new Map(active.cases.map((c, i) => [c.name, list[i]!]))) };
      }
      default:
        throw new Error(`unknown command ${String(msg.cmd)}`);
    }
  });
}
