/**
 * The detached background process behind an async operation: `worker.js deploy NAME OPID` supervises a
 * deployment for its whole life; `worker.js destroy NAME OPID GRACE_MS` stops and removes one; `worker.js service
 * NAME -` runs the controller of a service (src/runtime/service-controller.ts).
 * It never writes to a terminal: diagnostics go to the deployment's supervisor.log and the store.
 */
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runDestroy, STOP_REQUEST_FILE } from './destroy.js';
import { toUserError } from '../errors.js';
import { deploymentDir, homeLayout } from '../paths.js';
import { SqliteStore } from '../store/sqlite.js';
import { Supervisor } from './supervisor.js';

async function main(): Promise<void> {
  const [mode, name, operationId, graceArg] = process.argv.slice(2);
  if (!mode || !name || !operationId) throw new Error('usage: worker.js deploy|destroy NAME OPERATION_ID [GRACE_MS]');
  const layout = homeLayout();
  const store = new SqliteStore(layout.db);
  if (mode === 'deploy') {
    const sup = new Supervisor({ layout, store, name, operationId, env: process.env });
    const graceMs = (): number => {
      try {
        return (JSON.parse(readFileSync(join(deploymentDir(layout, name), STOP_REQUEST_FILE), 'utf8')) as { graceMs: number }).graceMs;
      } catch {
        return Number(process.env.UNIKCTL_STOP_GRACE_MS ?? 10_000);
      }
    };
    let stopping: Promise<void> | null = null;
    const onStop = (): void => {
      // before the VM exists the work is a build: end it with its compiler processes (this worker leads their group)
      if (!sup.vmRunning) {
        try { process.kill(-process.pid, 'SIGKILL'); } catch { process.exit(0); }
      }
      stopping ??= sup.stop(graceMs()).then(() => process.exit(0));
    };
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
    process.on('SIGHUP', () => { /* the CLI's terminal closing must not stop a deployment */ });
    await sup.run();
    if (stopping) await stopping;
  } else if (mode === 'service') {
    // `worker.js service NAME -`: the controller of a service (no operation of its own: rollouts carry theirs)
    const { ServiceController } = await import('./service-controller.js');
    const { haproxyFront } = await import('./haproxy-front.js');
    const ctl = new ServiceController({ layout, store, name, driver: haproxyFront, env: process.env });
    process.on('SIGTERM', () => ctl.stop());
    process.on('SIGINT', () => ctl.stop());
    process.on('SIGHUP', () => { /* the CLI's terminal closing must not stop a service */ });
    await ctl.run();
  } else if (mode === 'destroy') {
    await runDestroy({ layout, store, name, operationId, graceMs: Number(graceArg ?? 10_000) });
  } else {
    throw new Error(`unknown worker mode ${mode}`);
  }
  store.close();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    const name = process.argv[3] ?? 'unknown';
    try {
      const dir = deploymentDir(homeLayout(), name);
      mkdirSync(dir, { recursive: true });
      appendFileSync(join(dir, 'supervisor.log'), `${new Date().toISOString()} worker crashed: ${toUserError(e).message}\n${(e as Error).stack ?? ''}\n`);
    } catch { /* nothing left to report to */ }
    process.exit(1);
  },
);
