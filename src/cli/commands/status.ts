import type { Command } from 'commander';
import type { DeploymentView, QuotaView, ServiceView, StatusResult } from '../../engine/client.js';
import type { ListenHealth } from '../../store/types.js';
import { ago, table, type Output } from '../output.js';
import { formatBytes } from '../../util/size.js';
import { makeClient } from '../context.js';
import { API_WINDOWS, type SloWindow } from '../../engine/slo.js';
import type { SloView } from '../../engine/slo-reader.js';
import { UserError } from '../../errors.js';
import { formatElapsed } from '../../util/duration.js';

const pct = (v: number | null): string => (v === null ? '-' : `${(v * 100).toFixed(2)} %`);
const times = (v: number | null): string => (v === null ? '-' : `${v.toFixed(1)}x`);
const money = (v: number | null, cur: string): string => (v === null ? '-' : `${v < 0.01 && v !== 0 ? v.toExponential(2) : v.toFixed(4)} ${cur}`);

/** `status --slo`: the figures of docs/slo.md for one window (local store, or the control plane's /v1/slo). */
export function renderSlo(s: SloView): string {
  const b = s.boot;
  const d = s.deploys;
  const c = s.cost;
  const lines = [
    `SLO (${s.window}${s.filter.app ? `, app ${s.filter.app}` : ''}${s.filter.tenant ? `, tenant ${s.filter.tenant}` : ''})`,
    table([
      ['boot p50 / p95', `${formatElapsed(b.p50Ms)} / ${formatElapsed(b.p95Ms)}`, `objective p95 <= ${formatElapsed(b.objective.p95Ms)} (${b.count} boots, ${b.good} within)`],
      ['boot budget left', pct(b.budgetRemaining), `burn 1h ${times(b.burnRate['1h'])}, 5m ${times(b.burnRate['5m'])}`],
      ['deploy success', pct(d.successRate), `objective ${pct(d.objective)} (${d.succeeded} succeeded, ${d.platformFailures} platform failures)`],
      ['deploy budget left', pct(d.budgetRemaining), `burn 1h ${times(d.burnRate['1h'])}, 5m ${times(d.burnRate['5m'])}`],
      ['user errors', String(d.userErrors), d.userByCode.map((x) => `${x.code} ${x.count}`).join(', ') || 'not in the rate'],
      ['cost', money(c.total, c.currency), `${Math.round(c.vmSeconds)} VM-seconds`],
      ['cost per request', money(c.perRequest, c.currency), s.requests.note ?? ''],
      ['requests / s', s.requests.perSecond === null ? '-' : s.requests.perSecond.toFixed(2), s.requests.note ?? ''],
    ], ['FIGURE', 'VALUE', 'DETAIL']),
  ];
  if (c.perApp.length > 0) lines.push('', table(c.perApp.map((a) => [a.tenant || '-', a.app, String(Math.round(a.vmSeconds)), money(a.cost, c.currency)]), ['TENANT', 'APP', 'VM-SECONDS', 'COST']));
  return lines.join('\n');
}

function stateCell(o: Output, state: string, exitCode: number | null): string {
  const text = state === 'exited' ? `exited(${exitCode ?? '?'})` : state;
  const color = state === 'running' ? 'green' : state === 'failed' ? 'red' : state === 'exited' ? (exitCode === 0 ? 'dim' : 'yellow') : 'cyan';
  return o.paint(text, color);
}

/** `tenant acme: vms 2/3, vcpus 2/4, memory 512/2048 MiB, apps 2/3, artifacts 1.2 MiB/1.0 GiB` (∞: no limit). */
export function quotaLine(q: QuotaView): string {
  const of = (used: number, limit: number | undefined, fmt: (n: number) => string = String): string => `${fmt(used)}/${limit === undefined ? '∞' : fmt(limit)}`;
  return `tenant ${q.tenant}: vms ${of(q.used.vms, q.quota.vms)}, vcpus ${of(q.used.vcpus, q.quota.vcpus)}, memory ${of(q.used.memoryMiB, q.quota.memoryMiB)} MiB, `
    + `apps ${of(q.used.apps, q.quota.apps)}, artifacts ${of(q.used.artifactBytes, q.quota.artifactBytes, formatBytes)}`;
}

const HEALTH_COLOR: Record<ListenHealth, 'green' | 'red' | 'yellow' | 'cyan' | 'dim'> = {
  listening: 'green', checking: 'cyan', 'localhost-only': 'red', 'not-listening': 'red', 'no-ports': 'dim', unknown: 'yellow',
};

function healthCell(o: Output, d: DeploymentView): string {
  const h = d.listen?.health;
  return h ? o.paint(h, HEALTH_COLOR[h]) : '-';
}

/** The listener warnings of running apps: what is wrong and the fix, each on its own line (too long for a cell). */
function listenWarnings(o: Output, s: StatusResult): string[] {
  const lines: string[] = [];
  for (const d of s.deployments) {
    const w = d.listen?.warning;
    if (!w) continue;
    lines.push(`${d.name}: ${o.paint(w.code, 'red')}: ${w.message}`, `  fix: ${w.fix}`);
  }
  return lines.length > 0 ? ['', 'WARNINGS', ...lines] : [];
}

/** Each service: its serving version and replicas (healthy/running/total), the rollout, restarts and why it is not well. */
function renderServices(o: Output, services: ServiceView[]): string[] {
  const rows = services.map((v) => {
    const serving = v.versions.find((x) => x.version === v.current);
    const r = v.rollout;
    const moving = r && ['canary', 'progressing', 'reverting'].includes(r.phase);
    const rollout = r ? `v${r.from ?? '-'}→v${r.to} ${r.phase}` : '-';
    const healthy = serving ? `${serving.healthy}/${serving.running}/${v.desired}` : `0/0/${v.desired}`;
    const why = v.crashLoop ? o.paint(`crash-loop: ${v.crashLoop.reason}`, 'red') : r?.reason && r.phase !== 'succeeded' ? `${r.code ?? ''} ${r.reason}`.trim() : '';
    return [v.name, v.destroying ? o.paint('destroying', 'cyan') : v.current === null ? '-' : `v${v.current}`, healthy,
      moving ? o.paint(rollout, 'cyan') : r?.phase === 'reverted' || r?.phase === 'failed' ? o.paint(rollout, 'red') : rollout,
      v.ports.join(',') || '-', String(v.restarts), why];
  });
  return [table(rows, ['APP', 'SERVING', 'HEALTHY/RUNNING/WANT', 'ROLLOUT', 'PORTS', 'RESTARTS', 'REASON'])];
}

export function renderStatus(o: Output, s: StatusResult): string {
  const now = Date.now();
  const lines: string[] = [];
  if (s.deployments.length === 0) lines.push('no deployments');
  else {
    const cluster = s.deployments.some((d) => d.node !== undefined);
    lines.push(table(s.deployments.map((d) => [
      d.name, stateCell(o, d.state, d.exitCode), healthCell(o, d), ...(cluster ? [d.node ?? '-'] : []), d.ports.join(',') || '-', formatBytes(d.imageBytes), d.accel ?? '-',
      formatElapsed(d.bootMs), formatElapsed(d.uptimeMs), formatBytes(d.metrics?.rssBytes), d.reason ?? '',
    ]), ['NAME', 'STATE', 'HEALTH', ...(cluster ? ['NODE'] : []), 'PORTS', 'IMAGE', 'ACCEL', 'BOOT', 'UPTIME', 'MEM', 'REASON']));
  }
  if (s.services && s.services.length > 0) lines.push('', 'SERVICES', ...renderServices(o, s.services));
  if (s.quota) lines.push('', quotaLine(s.quota));
  lines.push(...listenWarnings(o, s));
  if (s.nodes && s.nodes.length > 0) {
    lines.push('', 'NODES');
    lines.push(table(s.nodes.map((n) => [
      n.name, o.paint(n.status, n.status === 'ready' ? 'green' : 'red'), n.cordoned ? 'cordoned' : 'eligible', n.address,
      Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-', `${n.capacity.cpus ?? '?'} cpu / ${n.capacity.memoryMiB ?? '?'} MiB`,
      String(n.capacity.runningVms ?? '-'), ago(n.lastHeartbeatAt),
    ]), ['NODE', 'STATUS', 'PLACEMENT', 'ADDRESS', 'LABELS', 'CAPACITY', 'VMS', 'HEARTBEAT']));
  }
  if (s.operations.length > 0) {
    lines.push('', 'RECENT OPERATIONS');
    lines.push(table(s.operations.map((op) => [op.id, op.kind, op.target, op.state, ago(op.createdAt, now), op.error ? `${op.error.code}: ${op.error.message}` : '']),
      ['ID', 'KIND', 'TARGET', 'STATE', 'CREATED', 'ERROR']));
  }
  return lines.join('\n');
}

export function registerStatus(program: Command, out: () => Output): void {
  program
    .command('status')
    .description('lifecycle state of deployments plus recent operations, in one view')
    .argument('[app]', 'only this deployment')
    .option('-w, --watch', 'refresh every 2 seconds (Ctrl-C to stop)')
    .option('--slo [window]', `SLO figures instead: boot p50/p95, deploy success rate, error budgets and burn rates, cost (window ${API_WINDOWS.join('|')}, default 1h; docs/slo.md)`)
    .addHelpText('after', '\nStates: pending → building → starting → running → exited(code) | failed(reason); destroying → gone.\nHealth of a running app with published ports: checking → listening | localhost-only | not-listening (a warning with its code and fix).\n\nExamples:\n  unikctl status\n  unikctl status web --json\n  unikctl status --slo 24h')
    .action(async (app: string | undefined, f: { watch?: boolean; slo?: string | true }) => {
      const o = out();
      const window = f.slo === true ? '1h' : f.slo;
      if (window !== undefined && !API_WINDOWS.includes(window as SloWindow)) throw new UserError('E_USAGE', `--slo ${window} is not a window`, { hint: `use one of ${API_WINDOWS.join(', ')}` });
      const client = makeClient();
      try {
        for (;;) {
          if (window !== undefined) {
            const v = await client.slo({ window: window as SloWindow, ...(app !== undefined ? { app } : {}) });
            if (o.json) process.stdout.write(`${JSON.stringify(v, null, f.watch ? 0 : 2)}\n`);
            else {
              if (f.watch && process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
              o.data(renderSlo(v));
            }
            if (!f.watch) break;
            await new Promise((r) => setTimeout(r, 2000));
            continue;
          }
          const s = await client.status(app);
          if (o.json) {
            process.stdout.write(`${JSON.stringify(s, null, f.watch ? 0 : 2)}\n`);
          } else {
            if (f.watch && process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
            o.data(renderStatus(o, s));
          }
          if (!f.watch) break;
          await new Promise((r) => setTimeout(r, 2000));
        }
      } finally {
        client.close();
      }
    });
}
