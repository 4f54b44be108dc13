import type { Client } from '../engine/client.js';
import { UserError, isUserError } from '../errors.js';
import type { Job, JobStore } from './journal.js';
import type { Runner } from './queue.js';
import type { Fleet } from './fleet.js';

/** What a deploy job carries: a resolved target on this host plus the deploy flags. */
export interface DeployJobRequest {
  target: string;
  ports: string[];
  env: string[];
  memory?: string;
  cpus?: number;
  debug: boolean;
  rootfs?: string;
  labels: string[];
  resolvedFrom: string;
}
export interface DestroyJobRequest { graceMs: number; }
export interface MoveJobRequest { from: string; sourceDown: boolean; graceMs: number; }

const BUILD_AND_BOOT_TIMEOUT_MS = 30 * 60_000;

/**
 * Runs jobs on a node through the same engine as local mode. Idempotent per job: the deploy passes the job id
 * as the engine's idempotency key, so a job replayed after a crash finds its deployment instead of making a second.
 */
export class EngineRunner implements Runner {
  constructor(private readonly node: Client, private readonly fleet: Fleet | null) {}

  async run(job: Job): Promise<unknown> {
    if (job.kind === 'move') {
      if (!this.fleet) throw new UserError('E_INVALID_ARGUMENT', 'move jobs need cluster mode (--nodes agents)');
      const r = job.request as MoveJobRequest;
      return (await this.fleet.move(job.target, r.from, { sourceDown: r.sourceDown, graceMs: r.graceMs })) ?? { name: job.target, moved: false };
    }
    if (job.kind === 'deploy') {
      const r = job.request as DeployJobRequest;
      const res = await this.node.deploy({
        target: r.target, name: job.target, ports: r.ports, env: r.env, debug: r.debug, labels: r.labels, cwd: '/',
        idempotencyKey: job.id,
        ...(r.memory !== undefined ? { memory: r.memory } : {}),
        ...(r.cpus !== undefined ? { cpus: r.cpus } : {}),
        ...(r.rootfs !== undefined ? { rootfs: r.rootfs } : {}),
      });
      const d = await this.node.waitFor(job.target, (x) => !x || ['running', 'exited', 'failed'].includes(x.state), BUILD_AND_BOOT_TIMEOUT_MS);
      if (!d) throw new UserError('E_CANCELLED', `deployment ${job.target} was removed before it started`);
      if (d.state === 'failed') {
        const code = /^(E_[A-Z_]+):/.exec(d.reason ?? '')?.[1] ?? 'E_DEPLOY_FAILED';
        throw new UserError(code as 'E_INTERNAL', d.reason ?? 'the deployment failed');
      }
      return { name: res.name, deploymentId: res.deploymentId, state: d.state };
    }
    const r = job.request as DestroyJobRequest;
    try {
      await this.node.destroy([job.target], { graceMs: r.graceMs });
    } catch (e) {
      if (!(isUserError(e) && e.code === 'E_UNKNOWN_APP')) throw e; // already gone: a replayed destroy is done
    }
    const left = await this.node.waitFor(job.target, (x) => x === null, r.graceMs + 30_000);
    if (left) throw new UserError('E_TRANSIENT', `deployment ${job.target} is still being destroyed`);
    return { name: job.target, state: 'gone' };
  }
}

/**
 * A runner that does no VM work, for queue tests and benchmarks: it records the job's effect in the journal's
 * database keyed by job id (idempotent), so "exactly once" is checkable after kill -9 and replay.
 */
export class FakeRunner implements Runner {
  constructor(private readonly store: JobStore, private readonly workMs = 5) {}

  async run(job: Job): Promise<unknown> {
    await new Promise((r) => setTimeout(r, this.workMs));
    await this.store.recordEffect(job.id);
    return { fake: true, name: job.target };
  }
}
