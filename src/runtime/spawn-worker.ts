import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { HomeLayout } from '../paths.js';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

/**
 * Starts a detached worker (worker.ts: a deployment's supervisor, a destroy, a service's controller) that outlives
 * the command; it finds the same state through UNIKCTL_HOME and UNIKCTL_KERNEL_DIR. Returns its pid.
 */
export function spawnWorker(layout: HomeLayout, env: NodeJS.ProcessEnv, args: string[]): number | undefined {
  const child = spawn(process.execPath, [WORKER, ...args], {
    detached: true, stdio: 'ignore', env: { ...env, UNIKCTL_HOME: layout.home, UNIKCTL_KERNEL_DIR: layout.kernels },
  });
  child.unref();
  return child.pid;
}
