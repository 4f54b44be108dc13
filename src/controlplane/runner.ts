import type { Client, DeployRequest, DeployResult, ServiceFlags, StatusResult } from '../engine/client.js';
import { UserError, isUserError } from '../errors.js';
import type { Deployment, TenantIsolation } from '../store/types.js';
import type { QueuedOperation, OperationJournal } from './operation-journal.js';
import { isRetryable } from './queue.js';
import type { Runner } from './operation-runner.js';
import type { Fleet } from './fleet.js';
import { BUILD_AND_BOOT_TIMEOUT_MS, followServiceOperation } from './follow.js';

/** What a deploy operation carries: a resolved target on this host plus the deploy flags. */
export interface DeployOperationRequest {
  target: string;
  ports: string[];
  env: string[];
  memory?: string;
  cpus?: number;
  debug: boolean;
  rootfs?: string;
  labels: string[];
  resolvedFrom: string;
  /** set when a tenant deploys: the node runs the VM as that tenant's user, in its cgroup */
  tenant?: TenantIsolation;
  /** the trust check at admission (a package): the node refuses any image but the one with this manifest digest */
  trust?: { manifestSha256: string; keyid: string | null };
  /** a service's deploy (set by admission: flags, unik.yaml's settings or an existing service; may be empty) */
  service?: ServiceFlags;
  /** replaces a rollout in progress */
  supersede?: boolean;
}
export interface DestroyOperationRequest { graceMs: number; }
export interface MoveOperationRequest { from: string; sourceDown: boolean; graceMs: number; }

const SETTLED = ['running', 'exited', 'failed'];

/** A failed deployment as an error: its typed code (never parsed from the reason), E_DEPLOY_FAILED for old records without one. */
export function deploymentFailure(d: Pick<Deployment, 'name' | 'code' | 'reason'>): UserError {
  return new UserError(d.code ?? 'E_DEPLOY_FAILED', d.reason ?? `deployment ${d.name} failed`, { hint: `see unikctl logs ${d.name} and unikctl status ${d.name}` });
}

/**
 * Runs operations on a node through the same engine as local mode. Idempotent per operation: the deployment an operation makes has the
 * operation's name, which the control plane reserves while the operation is pending, so an operation replayed after a crash or a
 * shutdown finds and adopts its deployment instead of making a second. A retry after a platform failure really runs
 * again: it removes the failed deployment of the previous attempt and deploys anew (a new engine idempotency key per
 * attempt), so the build and boot happen again; a user fault is never rebuilt.
 */
export class EngineRunner implements Runner {
  /** @param fleet the cluster's workloads when VMs run on agents (moves need it), null for the local node */
  constructor(private readonly node: Client, private readonly journal: OperationJournal, private readonly fleet: Fleet | null = null) {}

  holds(name: string): Promise<boolean> {
    return this.node.has(name);
  }

  async run(op: QueuedOperation): Promise<unknown> {
    if (op.kind === 'move') {
      if (!this.fleet) throw new UserError('E_INVALID_ARGUMENT', 'move operations need cluster mode (--nodes agents)');
      const r = op.request as MoveOperationRequest;
      return (await this.fleet.move(op.target, r.from, { sourceDown: r.sourceDown, graceMs: r.graceMs })) ?? { name: op.target, moved: false };
    }
    if (op.kind === 'deploy') return this.deploy(op);
    const r = op.request as DestroyOperationRequest;
    await this.remove(op.target, r.graceMs);
    return { name: op.target, state: 'gone' };
  }

  private async deploy(op: QueuedOperation): Promise<unknown> {
    const r = op.request as DeployOperationRequest;
    // a destroy issued while this operation waited for its retry wins: the user no longer wants the deployment
    const [newest] = await this.journal.recent(1, op.target);
    if (newest && newest.id !== op.id && newest.kind === 'destroy') throw new UserError('E_CANCELLED', `deployment ${op.target} was destroyed before it started`);
    if (r.service !== undefined) return this.deployService(op, r);
    let prior = await this.node.waitFor(op.target, () => true, 0);
    if (prior?.state === 'destroying') throw new UserError('E_CANCELLED', `deployment ${op.target} is being destroyed`);
    if (prior?.state === 'failed') {
      const failure = deploymentFailure(prior);
      if (!isRetryable(failure)) throw failure; // the user's fault: building it again gives the same answer
      await this.remove(op.target, 0); // the previous attempt's platform failure: start over
      prior = null;
    }
    let deployed: { name: string; deploymentId: string } = { name: op.target, deploymentId: prior?.id ?? '' };
    if (!prior) {
      deployed = await this.node.deploy({
        target: r.target, name: op.target, ports: r.ports, env: r.env, debug: r.debug, labels: r.labels, cwd: '/',
        idempotencyKey: `${op.id}/${op.attempts}`,
        ...(r.memory !== undefined ? { memory: r.memory } : {}),
        ...(r.cpus !== undefined ? { cpus: r.cpus } : {}),
        ...(r.rootfs !== undefined ? { rootfs: r.rootfs } : {}),
        ...(r.trust ? { expectManifestSha256: r.trust.manifestSha256 } : {}),
        ...(r.tenant !== undefined ? { tenant: r.tenant } : {}),
      });
      // the node made it a service after all (a service of this name appeared meanwhile): follow its rollout
      if ((deployed as DeployResult).service) return this.followRollout(op.target, (deployed as DeployResult).operationId);
    }
    const d = await this.node.waitFor(op.target, (x) => !x || SETTLED.includes(x.state), BUILD_AND_BOOT_TIMEOUT_MS);
    if (!d) throw new UserError('E_CANCELLED', `deployment ${op.target} was removed before it started`);
    if (d.state === 'failed') throw deploymentFailure(d);
    if (!SETTLED.includes(d.state)) throw new UserError('E_BOOT_TIMEOUT', `deployment ${op.target} is still ${d.state} after ${BUILD_AND_BOOT_TIMEOUT_MS / 60_000} minutes`);
    return { name: deployed.name, deploymentId: deployed.deploymentId || d.id, state: d.state, ...(d.code ? { code: d.code, exitCode: d.exitCode } : {}) };
  }

  /**
   * A service's deploy: the node's deploy operation is its rollout (or a scale), and this operation ends when that one
   * does. The node's idempotency key is this operation's id, the same for every attempt: an attempt replayed after a
   * crash, or retried after an error, is answered with the node's first operation — never a second version.
   */
  private async deployService(op: QueuedOperation, r: DeployOperationRequest): Promise<unknown> {
    const req: DeployRequest = {
      target: r.target, name: op.target, ports: r.ports, env: r.env, debug: r.debug, labels: r.labels, cwd: '/',
      idempotencyKey: op.id, service: r.service ?? {}, ...(r.supersede ? { supersede: true } : {}),
      ...(r.memory !== undefined ? { memory: r.memory } : {}),
      ...(r.cpus !== undefined ? { cpus: r.cpus } : {}),
      ...(r.rootfs !== undefined ? { rootfs: r.rootfs } : {}),
      ...(r.trust ? { expectManifestSha256: r.trust.manifestSha256 } : {}),
      // a tenant's service: every replica VM runs isolated like a plain tenant deployment
      ...(r.tenant !== undefined ? { tenant: r.tenant } : {}),
    };
    // cluster mode: the service is spread over nodes, and the fleet rolls it out node by node
    if (this.fleet) return this.fleet.deployService(req);
    const res = await this.node.deploy(req);
    if (!res.service) {
      // no service settings anywhere after all (the service was destroyed meanwhile, no unik.yaml settings): a plain deployment
      const d = await this.node.waitFor(op.target, (x) => !x || SETTLED.includes(x.state), BUILD_AND_BOOT_TIMEOUT_MS);
      if (!d) throw new UserError('E_CANCELLED', `deployment ${op.target} was removed before it started`);
      if (d.state === 'failed') throw deploymentFailure(d);
      return { name: op.target, deploymentId: res.deploymentId || d.id, state: d.state };
    }
    return this.followRollout(op.target, res.operationId);
  }

  /** Waits for the node's operation of a service deploy to end: succeeded, or failed with its code (never retried: the key answers with it). */
  private followRollout(name: string, nodeOperationId: string): Promise<unknown> {
    const status = async (): Promise<StatusResult | null> => {
      try {
        return await this.node.status(name);
      } catch (e) {
        if (!(isUserError(e) && e.code === 'E_UNKNOWN_APP')) throw e;
        return null;
      }
    };
    return followServiceOperation(name, nodeOperationId, status, { has: () => this.node.has(name) });
  }

  /** Destroys a deployment and waits until it is gone; one already gone is done (a replayed destroy). */
  private async remove(name: string, graceMs: number): Promise<void> {
    try {
      await this.node.destroy([name], { graceMs });
    } catch (e) {
      if (!(isUserError(e) && e.code === 'E_UNKNOWN_APP')) throw e;
    }
    const left = await this.node.waitFor(name, (x) => x === null, graceMs + 30_000);
    // a service has no deployment view of its name: it is gone once the node no longer has it
    if (left || (await this.node.has(name))) throw new UserError('E_TRANSIENT', `deployment ${name} is still being destroyed`);
  }
}

/**
 * A runner that does no VM work, for queue tests and benchmarks: it records the operation's effect in the journal's
 * database keyed by operation id (idempotent), so "exactly once" is checkable after kill -9 and replay.
 */
export class FakeRunner implements Runner {
  constructor(private readonly store: OperationJournal, private readonly workMs = 5) {}

  async holds(): Promise<boolean> {
    return false; // it makes no deployments
  }

  async run(op: QueuedOperation): Promise<unknown> {
    await new Promise((r) => setTimeout(r, this.workMs));
    await this.store.recordEffect(op.id);
    return { fake: true, name: op.target };
  }
}
