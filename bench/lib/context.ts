/** What every benchmark file receives from the runner. */
import type { BenchCertificate } from './cert.js';
import type { Pinning } from './proc.js';
import { Child } from './proc.js';
import type { Report } from './report.js';

export interface Budget {
  /** Rounds per figure (baseline and candidate interleaved). */
  readonly rounds: number;
  /** Micro-benchmarks: time per case per round, and warm-up per case. */
  readonly microMs: number;
  readonly microWarmupMs: number;
  /** HTTP: warm-up and timed window per round. */
  readonly httpWarmupMs: number;
  readonly httpWindowMs: number;
  readonly keepaliveConnections: number;
  readonly newconnConcurrency: number;
  /** New connections in the same window: one untimed window per server before the rounds. */
  readonly newconnPreWarmMs: number;
  /** Memory: idle bound connections, and the length of the keep-alive growth run. */
  readonly memoryConnections: number;
  readonly growthMs: number;
}

export const QUICK: Budget = {
  rounds: 3,
  microMs: 100,
  microWarmupMs: 50,
  httpWarmupMs: 200,
  httpWindowMs: 600,
  keepaliveConnections: 32,
  newconnConcurrency: 16,
  newconnPreWarmMs: 1000,
  memoryConnections: 100,
  growthMs: 1500,
};

export const FULL: Budget = {
  rounds: 5,
  microMs: 600,
  microWarmupMs: 300,
  httpWarmupMs: 1000,
  httpWindowMs: 5000,
  keepaliveConnections: 32,
  newconnConcurrency: 16,
  newconnPreWarmMs: 15_000,
  memoryConnections: 500,
  growthMs: 30_000,
};

export interface BenchContext {
  readonly budget: Budget;
  readonly quick: boolean;
  readonly report: Report;
  readonly cert: BenchCertificate;
  readonly pinning: Pinning;
  /** Console lines (stderr when --json, so stdout stays JSON). */
  readonly log: (line: string) => void;
  /** Starts a child that the runner ends at exit (even on failure). */
  /** `unpinned`: free to run on every core (the runner's own pinning undone). */
  readonly spawn: (script: URL, options: { role: 'server' | 'generator' | 'unpinned'; nodeArgs?: readonly string[]; name: string }) => Child;
  /** Starts a process that the runner kills at exit (even on failure): for whole programs such as `tokbind serve`. */
  readonly spawnProgram: (args: readonly string[], name: string) => import('node:child_process').ChildProcess;
}
