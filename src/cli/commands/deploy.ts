import type { Command } from 'commander';
import { UserError } from '../../errors.js';
import { formatDuration, type Output } from '../output.js';
import { makeClient } from '../context.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

interface DeployFlags {
  port: string[]; memory?: string; cpus?: string; env: string[]; name?: string; debug?: boolean; idempotencyKey?: string;
  rootfs?: string; label: string[]; wait?: boolean; timeout: string;
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
    .option('--wait', 'block until the app runs (or fails) instead of returning at once')
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
        });
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
        const d = await client.waitFor(r.name, (x) => !x || ['running', 'exited', 'failed'].includes(x.state), Number(f.timeout) * 1000);
        if (o.json) o.jsonData({ ...r, state: d?.state ?? 'gone', exitCode: d?.exitCode ?? null, reason: d?.reason ?? null, boot: d?.boot ?? null });
        else o.data(`${r.name} ${d?.state ?? 'gone'}${d?.boot.vmmStartToAppStartMs !== undefined ? ` (app started ${formatDuration(d.boot.vmmStartToAppStartMs)} after the VM)` : ''}${d?.reason ? `: ${d.reason}` : ''}`);
        if (!d || d.state === 'failed') {
          if (o.json) { process.exitCode = 1; return; } // the JSON above already carries state and reason
          throw new UserError(d?.reason?.startsWith('E_BUILD') ? 'E_BUILD_FAILED' : 'E_QEMU_FAILED', `deployment ${r.name} failed: ${d?.reason ?? 'it disappeared'}`, { hint: `see unikctl logs ${r.name} and unikctl status ${r.name}` });
        }
      } finally {
        client.close();
      }
    });
}
