import { describe, expect, it } from 'vitest';
import type { Client, DeploymentView, DeployResult, StatusResult } from '../../engine/client.js';
import type { Operation } from '../../store/types.js';
import { serviceSettled, waitSettled } from './deploy.js';

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

  it('a running app whose listeners are still being checked is not settled; its warning is the answer', async () => {
    const warning = { code: 'E_LISTENING_LOCALHOST_ONLY' as const, message: 'the app listens on 127.0.0.1:8080 only', fix: 'bind 0.0.0.0' };
    const client = timeline([
      { at: 0, d: { state: 'running', listen: { health: 'checking', ports: [8080], listeners: null, warning: null, since: 0 } }, op: { state: 'succeeded' } },
      { at: 300, d: { state: 'running', listen: { health: 'localhost-only', ports: [8080], listeners: [{ address: '127.0.0.1', port: 8080 }], warning, since: 1 } }, op: { state: 'succeeded' } },
    ]);
    const t0 = Date.now();
    const { d } = await waitSettled(client, result, 5000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(d?.listen?.warning?.code).toBe('E_LISTENING_LOCALHOST_ONLY');
  });

  it('a running app without published ports, or from a peer without the check, is settled at once', async () => {
    for (const listen of [{ health: 'no-ports' as const, ports: [], listeners: [], warning: null, since: 0 }, undefined]) {
      const client = timeline([{ at: 0, d: { state: 'running', ...(listen ? { listen } : {}) }, op: { state: 'succeeded' } }]);
      const t0 = Date.now();
      expect((await waitSettled(client, result, 5000)).d?.state).toBe('running');
      expect(Date.now() - t0).toBeLessThan(1000);
    }
  });
});

describe('deploy --wait of a service: serviceSettled', () => {
  const op = (state: Operation['state']): Operation => ({ id: 'op_1', kind: 'deploy', target: 'web', state } as Operation);
  it('no service yet while its operation runs (a cluster node not asked yet) is not settled; once the operation ended, it is', () => {
    expect(serviceSettled(undefined, op('queued'))).toBe(false);
    expect(serviceSettled(undefined, op('running'))).toBe(false);
    expect(serviceSettled(undefined, op('succeeded'))).toBe(true);
    expect(serviceSettled(undefined, op('failed'))).toBe(true);
    expect(serviceSettled(undefined, null)).toBe(true);
  });
});
