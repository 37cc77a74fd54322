/**
 * Reads a V8 .cpuprofile (what `node --cpu-prof` writes) and ranks functions by self and
 * inclusive time, so a benchmark miss can be pinned on a file:function with its share of samples.
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  readonly name: string;
  /** µs */
  readonly self: number;
  readonly inclusive: number;
}

function label(n: Node): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const file = url === '' ? '' : url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/');
  return `${functionName || '(anonymous)'}${file === '' ? '' : ` ${file}:${lineNumber + 1}`}`;
}

export function analyzeProfile(path: string): { total: number; functions: FunctionTime[] } {
  const p = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    const leaf = byId.get(p.samples[i]!)!;
    total += dt;
    const leafName = label(leaf);
    self.set(leafName, (self.get(leafName) ?? 0) + dt);
    // Each function once per sample, however deep it recurses.
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const name = label(byId.get(id)!);
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + dt);
    }
  }
  const functions = [...inclusive.entries()].map(([name, inc]) => ({ name, self: self.get(name) ?? 0, inclusive: inc }));
  return { total, functions };
}

/** A text report: top functions by self time, and tokbind's own functions by inclusive time. */
export function formatProfile(path: string, top = 25, busyOnly = true): string {
  const { total, functions } = analyzeProfile(path);
  const idle = functions.find((f) => f.name.startsWith('(idle)'))?.self ?? 0;
  const busy = busyOnly ? total - idle : total;
  const pct = (x: number): string => `${((x / busy) * 100).toFixed(1).padStart(5)}%`;
  const lines = [`${path}: ${(total / 1000).toFixed(0)} ms sampled, ${(idle / 1000).toFixed(0)} ms idle; % of busy time`, '', 'self time:'];
  for (const f of [...functions].sort((a, b) => b.self - a.self).slice(0, top)) {
    if (f.name.startsWith('(idle)')) continue;
    lines.push(`  ${pct(f.self)}  ${f.name}`);
  }
  lines.push('', 'inclusive time, tokbind (dist/src) functions:');
  for (const f of functions.filter((x) => x.name.includes('dist/src/')).sort((a, b) => b.inclusive - a.inclusive).slice(0, top)) {
    lines.push(`  ${pct(f.inclusive)}  (self ${pct(f.self).trim()})  ${f.name}`);
  }
  return lines.join('\n');
}
