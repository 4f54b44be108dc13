import type { Command } from 'commander';
import type { DeploymentView, QuotaView, StatusResult } from '../../engine/client.js';
import type { ListenHealth } from '../../store/types.js';
import { ago, formatDuration, table, type Output } from '../output.js';
import { formatBytes } from '../../util/size.js';
import { makeClient } from '../context.js';

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

export function renderStatus(o: Output, s: StatusResult): string {
  const now = Date.now();
  const lines: string[] = [];
  if (s.deployments.length === 0) lines.push('no deployments');
  else {
    const cluster = s.deployments.some((d) => d.node !== undefined);
    lines.push(table(s.deployments.map((d) => [
      d.name, stateCell(o, d.state, d.exitCode), healthCell(o, d), ...(cluster ? [d.node ?? '-'] : []), d.ports.join(',') || '-', formatBytes(d.imageBytes), d.accel ?? '-',
      formatDuration(d.bootMs), formatDuration(d.uptimeMs), formatBytes(d.metrics?.rssBytes), d.reason ?? '',
    ]), ['NAME', 'STATE', 'HEALTH', ...(cluster ? ['NODE'] : []), 'PORTS', 'IMAGE', 'ACCEL', 'BOOT', 'UPTIME', 'MEM', 'REASON']));
  }
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
    .addHelpText('after', '\nStates: pending → building → starting → running → exited(code) | failed(reason); destroying → gone.\nHealth of a running app with published ports: checking → listening | localhost-only | not-listening (a warning with its code and fix).\n\nExamples:\n  unikctl status\n  unikctl status web --json')
    .action(async (app: string | undefined, f: { watch?: boolean }) => {
      const o = out();
      const client = makeClient();
      try {
        for (;;) {
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
