import { describe, expect, it } from 'vitest';
import type { Client, DeploymentView, DeployResult, StatusResult } from '../../engine/client.js';
import type { Operation } from '../../store/types.js';
import { waitSettled } from './deploy.js';

const result = { name: 'web', operationId: 'op_1' } as DeployResult;

/** A remote engine whose deployment and deploy operation follow a timeline (ms since the start → state). */
function timeline(steps: Array<{ at: number; d: Partial<DeploymentView> | null; op: Partial<Operation> }>): Client {
  const t0 = Date.now();
  const now = (): (typeof steps)[number] => [...steps].reverse().find((s) => Date.now() - t0 >= s.at) ?? (steps[0] as (typeof steps)[number]);
  const dep = (): DeploymentView | null => { const d = now().d; return d ? ({ name: 'web', code: null, exitCode: null, reason: null, ...d } as DeploymentView) : null; };
  return {
    deploy: () => Promise.reject(new Error('unused')),
    destroy: () => Promise.reject(new Error('unused')),
    logs: () => { throw new Error('unused'); },
    close: () => undefined,
    has: async () => dep() !== null,
    status: async (): Promise<StatusResult> => ({ deployments: [], operations: [{ id: 'op_1', kind: 'deploy', target: 'web', ...now().op } as Operation] }),
    waitFor: async (_name, until, timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const d = dep();
        if (until(d) || Date.now() >= deadline) return d;
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}

describe('deploy --wait (waitSettled)', () => {
  it('keeps waiting through a failed attempt the control plane retries, and returns the retry\'s outcome', async () => {
    const client = timeline([
      { at: 0, d: { state: 'failed', code: 'E_QEMU_FAILED', reason: 'QEMU exited (code 1)' }, op: { state: 'queued', error: { code: 'E_QEMU_FAILED', message: 'x' } } },
      { at: 300, d: { state: 'building' }, op: { state: 'running' } },
      { at: 500, d: { state: 'running' }, op: { state: 'succeeded', error: null } },
    ]);
    const { d, op } = await waitSettled(client, result, 5000);
    expect(d?.state).toBe('running');
    expect(op?.state).toBe('succeeded');
  });

  it('returns a failure at once when the operation has ended', async () => {
    const client = timeline([{ at: 0, d: { state: 'failed', code: 'E_BUILD_FAILED', reason: 'make: 2' }, op: { state: 'failed', error: { code: 'E_BUILD_FAILED', message: 'make: 2' } } }]);
    const t0 = Date.now();
    const { d, op } = await waitSettled(client, result, 5000);
    expect(Date.now() - t0).toBeLessThan(300);
    expect([d?.code, op?.error?.code]).toEqual(['E_BUILD_FAILED', 'E_BUILD_FAILED']);
  });

  it('a deployment gone while its operation failed returns the operation (its code explains why)', async () => {
    const client = timeline([{ at: 0, d: null, op: { state: 'failed', error: { code: 'E_PACKAGE_NOT_FOUND', message: 'no package' } } }]);
    const { d, op } = await waitSettled(client, result, 5000);
    expect(d).toBeNull();
    expect(op?.error?.code).toBe('E_PACKAGE_NOT_FOUND');
  });
});
