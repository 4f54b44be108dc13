import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { Client } from '../../src/engine/client.js';
import { Metrics } from '../../src/controlplane/metrics.js';
import type { OperationJournal } from '../../src/controlplane/operation-journal.js';
import { ROOT } from '../e2e/helpers.js';

/** The shipped Prometheus rules and Grafana dashboard (monitoring/, docs/slo.md) against what /v1/metrics exports. */
const PROM = join(ROOT, 'monitoring', 'prometheus');
const RULES = join(PROM, 'unikctl-slo.rules.yml');
const hasPromtool = spawnSync('promtool', ['--version']).status === 0;
if (!hasPromtool) console.warn('slo-monitoring: promtool tests skipped — promtool is not installed (scripts/ci-tools.sh installs it)');

/** The metric names /v1/metrics exports (from a real Metrics registry; a histogram adds _bucket, _count and _sum). */
async function exported(): Promise<Set<string>> {
  const journal = { counts: async () => ({ queued: 0, running: 0, succeeded: 0, failed: 0 }) } as unknown as OperationJournal;
  const node = { status: async () => ({ deployments: [], operations: [] }) } as unknown as Client;
  const m = new Metrics(journal, node);
  const names = new Set<string>();
  for (const metric of await m.registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (String(metric.type) === 'histogram') for (const s of ['_bucket', '_count', '_sum']) names.add(metric.name + s);
  }
  return names;
}

interface RuleFile { groups: Array<{ rules: Array<{ record?: string; alert?: string; expr: string }> }>; }
const rules = (): RuleFile => parseYaml(readFileSync(RULES, 'utf8')) as RuleFile;
/** Series names in a PromQL expression: unikctld_… exports and unikctl:… recording rules. */
const seriesOf = (expr: string): string[] => [...expr.matchAll(/\b(unikctld_[a-z_]+|unikctl:[a-z0-9_:]+)/g)].map((m) => m[1] as string);

describe('Prometheus rules and the Grafana dashboard', () => {
  it.skipIf(!hasPromtool)('promtool check rules and promtool test rules pass', () => {
    expect(execFileSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' })).toContain('SUCCESS: 14 rules found');
    const t = spawnSync('promtool', ['test', 'rules', 'unikctl-slo.rules.test.yml'], { cwd: PROM, encoding: 'utf8' });
    expect(t.status, `${t.stdout}\n${t.stderr}`).toBe(0);
  });

  it('every rule names only series /v1/metrics exports or rules defined here', async () => {
    const names = await exported();
    const recorded = new Set(rules().groups.flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : []))));
    for (const g of rules().groups) {
      for (const r of g.rules) {
        const used = seriesOf(r.expr);
        expect(used.length, r.expr).toBeGreaterThan(0);
        for (const s of used) expect(names.has(s) || recorded.has(s), `${r.record ?? r.alert}: ${s}`).toBe(true);
      }
    }
  });

  it('every dashboard query names a series /v1/metrics exports (directly or through a shipped recording rule)', async () => {
    const names = await exported();
    const recorded = new Map(rules().groups.flatMap((g) => g.rules.flatMap((r) => (r.record ? [[r.record, r.expr] as const] : []))));
    const dash = JSON.parse(readFileSync(join(ROOT, 'monitoring', 'grafana', 'unikctl-slo.json'), 'utf8')) as {
      panels: Array<{ title: string; targets?: Array<{ expr: string }> }>; templating: { list: Array<{ definition?: string }> };
    };
    const exprs = [...dash.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: p.title, expr: t.expr }))),
      ...dash.templating.list.flatMap((v) => (v.definition ? [{ where: 'variable', expr: v.definition }] : []))];
    expect(exprs.length).toBeGreaterThan(8);
    for (const { where, expr } of exprs) {
      const used = seriesOf(expr);
      expect(used.length, `${where}: ${expr}`).toBeGreaterThan(0);
      for (const s of used) {
        const ok = names.has(s) || (recorded.has(s) && seriesOf(recorded.get(s) ?? '').every((x) => names.has(x)));
        expect(ok, `${where}: ${s} is neither exported nor a recording rule over exported series`).toBe(true);
      }
    }
  });
});
