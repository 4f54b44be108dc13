// The files ResourceGroup writes, on fake cgroup v1 and v2 trees (plain directories: the kernel's rules are not
// emulated). The real v1 tree is exercised by test/e2e/tenant-isolation.test.ts and build-sandbox.test.ts; these
// machines have no cgroup v2 tree with controllers, so the v2 files are only checked here.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ResourceGroup } from './cgroup.js';

let root: string;
const saved = process.env.UNIKCTL_CGROUP_ROOT;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'unikctl-cgroup-'));
  process.env.UNIKCTL_CGROUP_ROOT = root;
});
afterEach(() => {
  if (saved === undefined) delete process.env.UNIKCTL_CGROUP_ROOT;
  else process.env.UNIKCTL_CGROUP_ROOT = saved;
  rmSync(root, { recursive: true, force: true });
});

const read = (...p: string[]): string => readFileSync(join(root, ...p), 'utf8').trim();

/** A v1 hierarchy per controller, each with its root cgroup.procs (and memsw for memory: swap accounting on). */
function fakeV1(controllers: string[]): void {
  for (const c of controllers) {
    mkdirSync(join(root, c), { recursive: true });
    writeFileSync(join(root, c, 'cgroup.procs'), '');
  }
}

describe('cgroup v1', () => {
  it('detects the hierarchies a use needs', () => {
    fakeV1(['memory', 'cpu']);
    expect(ResourceGroup.detect(['memory', 'cpu', 'cpuacct'])).toEqual({ version: 1 });
    expect(ResourceGroup.detect()).toMatchObject({ unavailable: expect.stringContaining('pids') });
  });

  it('a tenant group: one directory per hierarchy, cpuacct where mounted, limits set and lifted', () => {
    fakeV1(['memory', 'cpu', 'cpuacct']);
    const g = ResourceGroup.ensure('tenant-acme', ['memory', 'cpu', 'cpuacct']);
    expect(g.procsFiles()).toEqual(['memory', 'cpu', 'cpuacct'].map((c) => join(root, c, 'unikctl', 'tenant-acme', 'cgroup.procs')));
    g.setCpus(1.5);
    expect([read('cpu/unikctl/tenant-acme/cpu.cfs_period_us'), read('cpu/unikctl/tenant-acme/cpu.cfs_quota_us')]).toEqual(['100000', '150000']);
    g.setCpus(null);
    expect(read('cpu/unikctl/tenant-acme/cpu.cfs_quota_us')).toBe('-1');

    // swap accounting on: memory+swap gets the same limit, written in an order v1 accepts (memory ≤ memory+swap)
    writeFileSync(join(root, 'memory/unikctl/tenant-acme/memory.limit_in_bytes'), '9223372036854771712');
    writeFileSync(join(root, 'memory/unikctl/tenant-acme/memory.memsw.limit_in_bytes'), '9223372036854771712');
    g.setMemory(512 * 1048576);
    expect(read('memory/unikctl/tenant-acme/memory.limit_in_bytes')).toBe(String(512 * 1048576));
    expect(read('memory/unikctl/tenant-acme/memory.memsw.limit_in_bytes')).toBe(String(512 * 1048576));
    g.setMemory(null);
    expect(read('memory/unikctl/tenant-acme/memory.limit_in_bytes')).toBe('-1');

    // ensure again (the tenant's next deploy) keeps the group
    writeFileSync(join(root, 'memory/unikctl/tenant-acme/cgroup.procs'), '41\n42\n');
    expect(ResourceGroup.ensure('tenant-acme', ['memory', 'cpu', 'cpuacct']).pids()).toEqual([41, 42]);
  });

  it('leaves cpuacct out where the host mounts none of its own', () => {
    fakeV1(['memory', 'cpu']);
    const g = ResourceGroup.ensure('tenant-acme', ['memory', 'cpu', 'cpuacct']);
    expect(g.procsFiles()).toHaveLength(2);
    expect(g.cpuUsageSeconds()).toBeNull();
  });

  it('a sandbox group keeps its limits: memory, memory+swap, cpu quota, pids', () => {
    fakeV1(['memory', 'cpu', 'pids']);
    ResourceGroup.create('job1', { memoryBytes: 1 << 30, cpus: 2, pids: 512 });
    expect(read('memory/unikctl/job1/memory.limit_in_bytes')).toBe(String(1 << 30));
    expect(read('cpu/unikctl/job1/cpu.cfs_quota_us')).toBe('200000');
    expect(read('pids/unikctl/job1/pids.max')).toBe('512');
  });
});

describe('cgroup v2', () => {
  beforeEach(() => writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n'));

  it('one directory, the controllers delegated down to it, cpu.max and memory.max (no swap)', () => {
    expect(ResourceGroup.detect(['memory', 'cpu', 'cpuacct'])).toEqual({ version: 2 });
    const g = ResourceGroup.ensure('tenant-acme', ['memory', 'cpu', 'cpuacct']);
    expect(g.procsFiles()).toEqual([join(root, 'unikctl', 'tenant-acme', 'cgroup.procs')]);
    expect(read('cgroup.subtree_control')).toBe('+memory +cpu');
    expect(read('unikctl/cgroup.subtree_control')).toBe('+memory +cpu');
    g.setCpus(1);
    expect(read('unikctl/tenant-acme/cpu.max')).toBe('100000 100000');
    g.setCpus(null);
    expect(read('unikctl/tenant-acme/cpu.max')).toBe('max 100000');
    writeFileSync(join(root, 'unikctl/tenant-acme/memory.swap.max'), 'max');
    g.setMemory(256 * 1048576);
    expect(read('unikctl/tenant-acme/memory.max')).toBe(String(256 * 1048576));
    expect(read('unikctl/tenant-acme/memory.swap.max')).toBe('0');
    g.setMemory(null);
    expect(read('unikctl/tenant-acme/memory.max')).toBe('max');
    writeFileSync(join(root, 'unikctl/tenant-acme/cpu.stat'), 'usage_usec 2500000\nuser_usec 2000000\n');
    expect(g.cpuUsageSeconds()).toBe(2.5);
  });

  it('reports a missing controller', () => {
    writeFileSync(join(root, 'cgroup.controllers'), 'cpu pids\n');
    expect(ResourceGroup.detect(['memory', 'cpu'])).toEqual({ unavailable: 'the cgroup v2 tree lacks the memory controller(s)' });
  });
});
