import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deploymentDir, type HomeLayout } from '../paths.js';
import type { Store } from '../store/types.js';
import { isAlive, signalRef, waitUntilDead, type ProcessRef } from '../util/proc.js';

/** Written before the supervisor is signalled: carries destroy --timeout to it. */
export const STOP_REQUEST_FILE = 'stop-request.json';

/**
 * Runs a destroy operation to the end (in a detached worker): graceful stop through the supervisor,
 * kill after the grace period, remove runtime artifacts and the record (RT-10: no orphans).
 */
export async function runDestroy(o: { layout: HomeLayout; store: Store; name: string; operationId: string; graceMs: number }): Promise<void> {
  const { store, name, operationId } = o;
  store.updateOperation(operationId, 'running');
  const d = store.getDeployment(name);
  if (d) {
    const dir = deploymentDir(o.layout, name);
    if (existsSync(dir)) writeFileSync(join(dir, STOP_REQUEST_FILE), JSON.stringify({ graceMs: o.graceMs }));
    if (signalRef(d.supervisor, 'SIGTERM')) {
      // the supervisor asks the guest init to stop the app, and kills QEMU after the grace period
      await waitUntilDead(d.supervisor, o.graceMs + 3000);
    }
    await killAndRemove(o.layout, name, d.supervisor, [d.vmm, store.getDeployment(name)?.vmm]);
    store.deleteDeployment(name);
  }
  store.updateOperation(operationId, 'succeeded');
}

/**
 * Kills the supervisor and its VM at once and removes the deployment's files. Also the first step of a destroy on a
 * full disk, where the records cannot change until the files are gone (QEMU keeps the image allocated while it runs).
 */
export async function killAndRemove(layout: HomeLayout, name: string, supervisor: ProcessRef | null, vmms: Array<ProcessRef | null | undefined>): Promise<void> {
  signalRef(supervisor, 'SIGKILL');
  await waitUntilDead(supervisor, 2000);
  for (const vmm of vmms) {
    if (isAlive(vmm)) {
      signalRef(vmm, 'SIGKILL');
      await waitUntilDead(vmm, 5000);
    }
  }
  rmSync(deploymentDir(layout, name), { recursive: true, force: true });
}
