import type { Command } from 'commander';
import type { Client, DeploymentView, DeployResult } from '../../engine/client.js';
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
    .option('--wait', 'block until the app runs and listens on its published ports (or fails) instead of returning at once')
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
