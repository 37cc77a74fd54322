/**
 * The shipped operational artefacts (observability/): promtool checks and unit-tests the rules
 * (every alert has a test in which it fires), the dashboard is importable JSON, and every metric
 * name the dashboard and the rules use is one the exporter emits (or a rule records), so neither
 * can drift from src/metrics.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { Registry } from 'prom-client';
import { TOKEN_BINDING_METRICS, registerTokenBindingMetrics } from '../../src/metrics/index.js';
import { requireTool } from '../_tools.js';

const ROOT = fileURLToPath(new URL('../../../observability/', import.meta.url));
const RULES = `${ROOT}prometheus/tokbind-rules.yml`;
const DASHBOARD = `${ROOT}grafana/tokbind-dashboard.json`;
const TESTS = readdirSync(`${ROOT}tests`)
  .filter((f) => f.endsWith('.yml'))
  .map((f) => `${ROOT}tests/${f}`);

const rulesText = readFileSync(RULES, 'utf8');
const alertNames = [...rulesText.matchAll(/^\s*- alert: (\S+)$/gm)].map((m) => m[1]!);
const recordNames = new Set([...rulesText.matchAll(/^\s*- record: (\S+)$/gm)].map((m) => m[1]!));

interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource: unknown;
  readonly gridPos: unknown;
  readonly targets: readonly { readonly expr: string; readonly refId: string }[];
}
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
  readonly uid: string;
  readonly title: string;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly { readonly name: string; readonly definition?: string }[] };
};

/** The series names the exporter emits, from a real registration: families plus histogram suffixes. */
async function emittedNames(): Promise<Map<string, Set<string>>> {
  const registry = new Registry();
  const metrics = registerTokenBindingMetrics(registry);
  try {
    const names = new Map<string, Set<string>>();
    for (const m of await registry.getMetricsAsJSON()) {
      const def = Object.values(TOKEN_BINDING_METRICS).find((d) => d.name === m.name)!;
      const labels = new Set<string>([...def.labels, 'job', 'instance', 'worker']);
      names.set(m.name, labels);
      if (def.type === 'histogram') {
        for (const suffix of ['_bucket', '_sum', '_count']) names.set(m.name + suffix, new Set([...labels, 'le']));
      }
    }
    return names;
  } finally {
    metrics.unregister();
  }
}

test('promtool check rules accepts the rules', (t) => {
  const run = spawnSync(requireTool('promtool'), ['check', 'rules', RULES], { encoding: 'utf8' });
  t.is(run.status, 0, run.stdout + run.stderr);
  t.regex(run.stdout, new RegExp(`SUCCESS: ${alertNames.length + recordNames.size} rules found`));
});

test('promtool test rules: every alert fires in a unit test, and is quiet in another', (t) => {
  t.true(TESTS.length > 0);
  const run = spawnSync(requireTool('promtool'), ['test', 'rules', ...TESTS], { encoding: 'utf8', cwd: `${ROOT}tests` });
  t.is(run.status, 0, run.stdout + run.stderr);
  t.regex(run.stdout, /SUCCESS/);
  const tests = TESTS.map((f) => readFileSync(f, 'utf8')).join('\n');
  // Each `alertname:` entry, with whether its exp_alerts is empty.
  const cases = [...tests.matchAll(/alertname: (\S+)\n\s+exp_alerts:( \[\])?/g)].map((m) => ({ name: m[1]!, quiet: m[2] !== undefined }));
  t.deepEqual(alertNames.sort(), [
    'TokbindBindingErrorBudgetBurnFast',
    'TokbindBindingErrorBudgetBurnSlow',
    'TokbindRejectionReasonSurge',
    'TokbindReplayDetected',
    'TokbindStolenCredentialPresented',
    'TokbindTlsConditionsUnmetAfterDeploy',
  ]);
  for (const name of alertNames) {
    t.true(cases.some((c) => c.name === name && !c.quiet), `${name} fires in a test`);
    t.true(cases.some((c) => c.name === name && c.quiet), `${name} is quiet in a test`);
  }
  t.deepEqual(new Set(cases.map((c) => c.name)), new Set(alertNames), 'no test of an alert that does not exist');
});

test('the dashboard is importable: panels with unique ids, a Prometheus data source variable, queries', (t) => {
  t.is(dashboard.uid, 'tokbind-sli');
  t.true(dashboard.templating.list.some((v) => v.name === 'datasource'));
  const ids = dashboard.panels.map((p) => p.id);
  t.is(new Set(ids).size, ids.length);
  for (const p of dashboard.panels) {
    t.truthy(p.gridPos, p.title);
    t.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' }, p.title);
    t.true(p.targets.length > 0 && p.targets.every((q) => q.expr.length > 0), p.title);
  }
  const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join(' | ');
  for (const topic of ['success rate', 'p95', 'rejections by reason', 'replays', 'stolen credentials', 'tls conditions', 'per worker', 'upstream']) {
    t.true(titles.includes(topic), `a panel for ${topic}`);
  }
});

test('every metric name (and grouping label) the dashboard and the rules use is one the exporter emits', async (t) => {
  const emitted = await emittedNames();
  const expressions = [
    ...dashboard.panels.flatMap((p) => p.targets.map((q) => q.expr)),
    ...dashboard.templating.list.flatMap((v) => (v.definition === undefined ? [] : [v.definition])),
    rulesText,
  ];
  const used = new Set<string>();
  for (const text of expressions) {
    for (const m of text.matchAll(/\btokbind[_:][a-zA-Z0-9_:]*/g)) used.add(m[0]);
  }
  t.true(used.size > 10);
  for (const name of used) {
    t.true(emitted.has(name) || recordNames.has(name), `${name} is emitted by tokbind/metrics or recorded by a rule`);
  }
  // Every family is on the dashboard.
  for (const def of Object.values(TOKEN_BINDING_METRICS)) {
    t.true([...used].some((u) => u.startsWith(def.name)), `${def.name} is used`);
  }
  // Labels a query groups or filters by exist on the metric it reads.
  const allLabels = new Set([...emitted.values()].flatMap((s) => [...s]));
  for (const text of expressions) {
    for (const m of text.matchAll(/\b(?:by|on)\s*\(([^)]*)\)/g)) {
      for (const label of m[1]!.split(',').map((l) => l.trim()).filter(Boolean)) t.true(allLabels.has(label), `label ${label}`);
    }
    for (const m of text.matchAll(/(tokbind_[a-z0-9_]+)\{([^}]*)\}/g)) {
      for (const l of m[2]!.matchAll(/([a-z_]+)\s*(?:=~|!=|!~|=)/g)) t.true(emitted.get(m[1]!)?.has(l[1]!), `${m[1]}{${l[1]}}`);
    }
  }
});
