import type { Command } from 'commander';
import type { Client, DeploymentView, DeployResult, ServiceFlags, ServiceView } from '../../engine/client.js';
import { UserError } from '../../errors.js';
import type { ListenHealth, Operation } from '../../store/types.js';
import { sleep } from '../../util/proc.js';
import type { Output } from '../output.js';
import { makeClient } from '../context.js';
import { formatElapsed } from '../../util/duration.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

interface DeployFlags {
  port: string[]; memory?: string; cpus?: string; env: string[]; name?: string; debug?: boolean; idempotencyKey?: string;
  rootfs?: string; label: string[]; wait?: boolean; timeout: string; signKey?: string;
  replicas?: string; check?: string; restart?: string; strategy?: string; maxSurge?: string; maxUnavailable?: string; canary?: string;
  minHealthy?: string; healthyDeadline?: string; autoRevert?: boolean; supersede?: boolean;
}

/** The service settings the user typed (undefined ones are left to unik.yaml and the defaults). */
function serviceFlags(f: DeployFlags): ServiceFlags | undefined {
  const picked: ServiceFlags = {
    ...(f.replicas !== undefined ? { replicas: f.replicas } : {}), ...(f.check !== undefined ? { check: f.check } : {}),
    ...(f.restart !== undefined ? { restart: f.restart } : {}), ...(f.strategy !== undefined ? { strategy: f.strategy } : {}),
    ...(f.maxSurge !== undefined ? { maxSurge: f.maxSurge } : {}), ...(f.maxUnavailable !== undefined ? { maxUnavailable: f.maxUnavailable } : {}),
    ...(f.canary !== undefined ? { canary: f.canary } : {}), ...(f.minHealthy !== undefined ? { minHealthy: f.minHealthy } : {}),
    ...(f.healthyDeadline !== undefined ? { healthyDeadline: f.healthyDeadline } : {}), ...(f.autoRevert !== undefined ? { autoRevert: f.autoRevert } : {}),
  };
  return Object.keys(picked).length > 0 ? picked : undefined;
}

export function registerDeploy(program: Command, out: () => Output): void {
  program
    .command('deploy')
    .description('start a VM asynchronously from a project directory, a package (path or name[:tag]) or an ELF binary')
    .argument('[target]', 'project dir, package or binary', '.')
    .option('-p, --port <host:guest>', 'publish a TCP port (repeatable; ADDR:HOST:GUEST binds one address)', collect, [])
    .option('-m, --memory <size>', 'guest memory, e.g. 64M or 1G (default: from the image)')
    .option('--cpus <n>', 'virtual CPUs', '1')
    .option('-e, --env <KEY=VALUE>', 'environment variable for the app (repeatable)', collect, [])
    .option('--name <name>', 'deployment name (default: derived from the target, made unique)')
    .option('--debug', 'debug build and verbose kernel console in logs')
    .option('--idempotency-key <key>', 'repeat-safe deploy: the same key returns the same operation')
    .option('--rootfs <dir>', 'a directory merged into the image root (never a Dockerfile)')
    .option('--label <k=v>', 'placement label (repeatable; used by the cluster scheduler)', collect, [])
    .option('--sign-key <pem>', 'local mode: sign the image this deploy builds with this Ed25519 private key (default: $UNIKCTL_SIGNING_KEY)')
    .option('--replicas <n>', 'run N replicas behind a front on the published ports (a service; docs/services.md)')
    .option('--check <spec>', 'health check: tcp:PORT or http:PORT/PATH[,interval=2s,timeout=1s,grace=5s,failures=3], or none')
    .option('--restart <policy>', 'replace replicas that end: always | on-failure (services\' default) | never')
    .option('--strategy <s>', 'how a new version replaces the old: rolling (default) | canary | immediate')
    .option('--max-surge <n>', 'rolling: replicas above the count during a rollout (a number or N%)')
    .option('--max-unavailable <n>', 'rolling: replicas below the count that may be out of rotation (a number or N%)')
    .option('--canary <n>', 'canary: replicas of the new version that take a share of traffic before promotion')
    .option('--min-healthy <duration>', 'a new replica counts once healthy this long')
    .option('--healthy-deadline <duration>', 'the new version must be healthy by then, or the rollout fails')
    .option('--auto-revert', 'revert a failed rollout to the previous version (default)')
    .option('--no-auto-revert', 'leave a failed rollout where it stopped')
    .option('--supersede', 'replace a rollout in progress instead of failing with E_ROLLOUT_IN_PROGRESS')
    .option('--wait', 'block until the app runs and listens on its published ports (or fails) instead of returning at once; a service: until its rollout ends')
    .option('--timeout <seconds>', 'with --wait: how long to wait', '300')
    .addHelpText('after', '\nExamples:\n  unikctl deploy examples/go-http -p 8080:8080\n  unikctl deploy local/go-http:latest --name web -e GREETING=hi\n  unikctl deploy ./server-binary -p 9000:9000 --wait')
    .action(async (target: string, f: DeployFlags) => {
      const o = out();
      const client = makeClient();
      try {
        const r = await client.deploy({
          target, ports: f.port, env: f.env, labels: f.label, debug: Boolean(f.debug), cwd: process.cwd(),
          cpus: Number(f.cpus ?? 1),
          ...(f.memory !== undefined ? { memory: f.memory } : {}),
          ...(f.name !== undefined ? { name: f.name } : {}),
          ...(f.idempotencyKey !== undefined ? { idempotencyKey: f.idempotencyKey } : {}),
          ...(f.rootfs !== undefined ? { rootfs: f.rootfs } : {}),
          ...(f.signKey !== undefined ? { signKey: f.signKey } : {}),
          ...(serviceFlags(f) ? { service: serviceFlags(f) } : {}),
          ...(f.supersede ? { supersede: true } : {}),
        });
        if (r.reused && r.error) {
          // the key's operation already failed: answering "deploying" would hide that; a retry needs a new key
          if (o.json) { o.jsonData(r); process.exitCode = 1; return; }
          throw new UserError(r.error.code, `operation ${r.operationId} of this idempotency key failed: ${r.error.message}`, {
            hint: 'an idempotency key always answers with its first operation: deploy again with a new --idempotency-key to retry',
          });
        }
        if (!f.wait) {
          if (o.json) o.jsonData(r);
          else {
            o.progress(`using ${r.resolvedFrom}`);
            o.data(`${r.name} ${r.operationId}`);
            o.progress(`deploying ${r.name} (operation ${r.operationId})${r.reused ? ' — existing operation for this idempotency key' : ''}; follow it with: unikctl status ${r.name}  /  unikctl logs -f ${r.name}`);
          }
          return;
        }
        o.progress(`deploying ${r.name} from ${r.resolvedFrom} (operation ${r.operationId}) …`);
        if (r.service) {
          await waitService(o, client, r, Number(f.timeout) * 1000);
          return;
        }
        const { d, op } = await waitSettled(client, r, Number(f.timeout) * 1000);
        // the failure's code is a typed field of the deployment (or of the operation when no deployment is left)
        const exitedNonZero = d?.state === 'exited' && d.exitCode !== 0;
        const failed = !d || d.state === 'failed' || exitedNonZero;
        // running, yet its published port serves nobody: not a success (the VM is left running for its logs)
        const unhealthy = d?.state === 'running' ? d.listen?.warning ?? null : null;
        const code = d?.code ?? op?.error?.code ?? unhealthy?.code ?? (failed ? (d ? 'E_DEPLOY_FAILED' : 'E_CANCELLED') : null);
        const reason = d?.reason ?? (exitedNonZero ? `the app exited with code ${d.exitCode}` : null) ?? op?.error?.message ?? unhealthy?.message ?? null;
        const health = d?.state === 'running' ? d.listen?.health ?? null : null;
        if (o.json) o.jsonData({ ...r, state: d?.state ?? 'gone', health, exitCode: d?.exitCode ?? null, code, reason, listen: d?.listen ?? null, boot: d?.boot ?? null });
        else o.data(`${r.name} ${d?.state ?? 'gone'}${healthText(health)}${d?.boot.vmmStartToAppStartMs !== undefined ? ` (app started ${formatElapsed(d.boot.vmmStartToAppStartMs)} after the VM)` : ''}${reason ? `: ${reason}` : ''}`);
        if (failed || unhealthy) {
          if (o.json) { process.exitCode = 1; return; } // the JSON above already carries state, code and reason
          if (unhealthy) {
            throw new UserError(unhealthy.code, `deployment ${r.name} runs but does not serve its published port: ${unhealthy.message}`, {
              hint: `${unhealthy.fix} (the VM keeps running: unikctl logs ${r.name}; unikctl destroy ${r.name} to remove it)`,
            });
          }
          throw new UserError(code ?? 'E_DEPLOY_FAILED', `deployment ${r.name} ${d ? 'failed' : 'is gone'}: ${reason ?? (d ? d.state : 'it was removed')}`, { hint: `see unikctl logs ${r.name} and unikctl status ${r.name}` });
        }
      } finally {
        client.close();
      }
    });
}

/** After the state in deploy --wait's line: a running app's listener health (nothing without published ports). */
const HEALTH_TEXT: Partial<Record<ListenHealth, string>> = {
  listening: ', listening', checking: ', listeners still being checked', unknown: ', listeners unknown',
  'localhost-only': ', listening on localhost only', 'not-listening': ', not listening',
};
const healthText = (health: ListenHealth | null): string => (health === null ? '' : HEALTH_TEXT[health] ?? '');

/** Settled for --wait: running, exited or failed — and for a running app with published ports, its listeners checked. */
const settled = (x: DeploymentView | null): boolean =>
  !x || ['exited', 'failed'].includes(x.state) || (x.state === 'running' && x.listen?.health !== 'checking');

/**
 * Waits until the deployment runs (and its listener check has an answer) or ends. A failed deployment whose operation is still queued or running is not
 * the end in remote mode: the control plane retries platform failures, and the next attempt replaces it.
 */
export async function waitSettled(client: Client, r: DeployResult, timeoutMs: number): Promise<{ d: DeploymentView | null; op: Operation | null }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const d = await client.waitFor(r.name, settled, Math.max(0, deadline - Date.now()));
    const op = (await client.status(r.name).catch(() => null))?.operations.find((o) => o.id === r.operationId) ?? null;
    const retrying = (d === null || d.state === 'failed') && (op?.state === 'queued' || op?.state === 'running');
    if (!retrying || Date.now() > deadline) return { d, op };
    await sleep(500);
  }
}

/** The operation of this deploy has ended (a rollout) and the serving version has its replicas healthy (a scale). */
export function serviceSettled(v: ServiceView | undefined, op: Operation | null): boolean {
  // no service (destroyed, or a plain deployment after all) is settled once the operation ended; while it runs, the
  // service may not be there yet (a cluster's node has not been asked yet, or has not answered)
  if (!v) return !op || op.state === 'succeeded' || op.state === 'failed';
  if (op && (op.state === 'failed' || (op.state === 'succeeded' && v.rollout?.operationId === op.id))) return true;
  const serving = v.versions.find((x) => x.version === v.current);
  return op?.state === 'succeeded' && serving !== undefined && serving.healthy === v.desired && serving.total === v.desired;
}

/** deploy --wait of a service: until its rollout succeeded (exit 0) or failed/reverted (exit 1 with the code). */
async function waitService(o: Output, client: Client, r: DeployResult, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let v: ServiceView | undefined;
  let op: Operation | null = null;
  for (;;) {
    const st = await client.status(r.name);
    v = st.services?.find((x) => x.name === r.name);
    op = st.operations.find((x) => x.id === r.operationId) ?? null;
    if (serviceSettled(v, op) || Date.now() > deadline) break;
    await sleep(250);
  }
  const rollout = v?.rollout && v.rollout.operationId === r.operationId ? v.rollout : null;
  const failed = op?.state === 'failed';
  const timedOut = !failed && !serviceSettled(v, op);
  const code = failed ? op?.error?.code ?? 'E_ROLLOUT_FAILED' : timedOut ? 'E_ROLLOUT_IN_PROGRESS' : null;
  const reason = failed ? op?.error?.message ?? rollout?.reason ?? null : timedOut ? `still rolling out after ${Math.round(timeoutMs / 1000)}s` : null;
  const serving = v?.versions.find((x) => x.version === v?.current);
  if (o.json) o.jsonData({ ...r, state: failed ? 'failed' : timedOut ? 'pending' : 'running', code, reason, rollout, current: v?.current ?? null, service: v ?? null });
  else o.data(`${r.name} ${failed ? 'failed' : timedOut ? 'rolling out' : 'running'}: v${v?.current ?? '?'} serving, ${serving?.healthy ?? 0}/${v?.desired ?? 0} healthy${reason ? ` — ${reason}` : ''}`);
  if (code) {
    if (o.json) { process.exitCode = 1; return; }
    throw new UserError(code, `deploy of ${r.name}: ${reason ?? code}`, { hint: `see unikctl status ${r.name} and unikctl logs ${r.name}` });
  }
}
