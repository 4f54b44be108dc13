import type { StatusResult } from '../engine/client.js';
import { UserError } from '../errors.js';
import { sleep } from '../util/proc.js';

export const BUILD_AND_BOOT_TIMEOUT_MS = 30 * 60_000;

export interface FollowedRollout { name: string; service: true; nodeOperationId: string; state: 'running'; current: number | null; deploymentId: string; }

/**
 * Waits for a node's operation of a service deploy to end: succeeded, or failed with its code (a user error: never
 * retried, the node's idempotency key answers with it). `status` asks the node about the app (null: the node does
 * not know it); used for the local node (runner.ts) and for each node of a spread service (cluster.ts).
 */
export async function followServiceOperation(name: string, nodeOperationId: string, status: () => Promise<StatusResult | null>, opts: { pollMs?: number; timeoutMs?: number; has?: () => Promise<boolean> } = {}): Promise<FollowedRollout> {
  const timeoutMs = opts.timeoutMs ?? BUILD_AND_BOOT_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await status();
    const nodeOp = st?.operations.find((o) => o.id === nodeOperationId);
    const v = st?.services?.find((x) => x.name === name) ?? null;
    const done = (): FollowedRollout => ({ name, service: true, nodeOperationId, state: 'running', current: v?.current ?? null, deploymentId: v?.id ?? '' });
    if (nodeOp?.state === 'succeeded') return done();
    if (nodeOp?.state === 'failed') {
      const code = nodeOp.error?.code ?? 'E_ROLLOUT_FAILED';
      throw new UserError(code, nodeOp.error?.message ?? `the deploy of ${name} failed`, { hint: `see unikctl status ${name} and unikctl logs ${name}` });
    }
    // the operation fell out of the node's recent list: the rollout it started says how it ended
    const phase = !nodeOp && v?.rollout?.operationId === nodeOperationId ? v.rollout.phase : null;
    if (phase === 'succeeded') return done();
    if (phase === 'failed' || phase === 'reverted') {
      throw new UserError(v?.rollout?.code ?? 'E_ROLLOUT_FAILED', v?.rollout?.reason ?? `the rollout of ${name} ${phase === 'reverted' ? 'was reverted' : 'failed'}`);
    }
    if (!v && !(opts.has ? await opts.has() : st !== null)) throw new UserError('E_CANCELLED', `service ${name} was removed before its deploy ended`);
    if (Date.now() > deadline) throw new UserError('E_BOOT_TIMEOUT', `the deploy of ${name} has not ended after ${Math.round(timeoutMs / 60_000)} minutes`);
    await sleep(opts.pollMs ?? 500);
  }
}
