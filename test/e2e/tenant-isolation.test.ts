// Node isolation of tenants (issue 12) with real VMs: each tenant's QEMU runs as the tenant's own user in the
// tenant's cgroup, CPU quota enforced, the tenant's files closed to the other tenants' users. Driven through the
// local engine with `tenant` set on the deploy request, the way the control plane's runner sets it.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeployRequest } from '../../src/engine/client.js';
import { homeLayout } from '../../src/paths.js';
import { tenantUserName, TENANT_VMM_OVERHEAD_MIB } from '../../src/runtime/tenant.js';
import type { TenantIsolation } from '../../src/store/types.js';
import { ResourceGroup } from '../../src/util/cgroup.js';
import { lookupUser } from '../../src/util/users.js';
import { compileFixture, freePort, httpGet, ROOT, TestHome } from './helpers.js';

type LocalClientModule = typeof import('../../src/engine/local.js');

const cgroups = ResourceGroup.detect(['memory', 'cpu']);
const skipReason = process.getuid?.() !== 0 ? 'tenant isolation needs root (it creates users and cgroups)'
  : 'unavailable' in cgroups ? `no cgroup for tenants: ${cgroups.unavailable}` : null;
if (skipReason) console.log(`skipping the tenant isolation e2e: ${skipReason}`);

/** utime + stime of a process in seconds (clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Runs `cat file` as a user (and only its own group): the exit status and what cat said. */
function catAs(user: { uid: number; gid: number }, file: string): { status: number | null; stderr: string } {
  const r = spawnSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', 'cat', file], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

describe.skipIf(skipReason !== null)('tenant isolation on the node with real VMs', () => {
  const home = new TestHome();
  const layout = homeLayout(home.env);
  const bin = compileFixture('tenant-app.c', join(mkdtempSync(join(tmpdir(), 'unikctl-tenant-')), 'tenant-app'), ['-static', '-pthread']);
  // names of their own per run: users and cgroups are host-wide, and other checkouts may run this test at once
  const run = randomBytes(3).toString('hex');
  const tenantA: TenantIsolation = { name: `ta${run}`, cpus: 1, memoryMiB: 256 };
  const tenantB: TenantIsolation = { name: `tb${run}` };
  const saved = { accel: process.env.UNIKCTL_ACCEL, grace: process.env.UNIKCTL_STOP_GRACE_MS };
  let client: InstanceType<LocalClientModule['LocalClient']>;
  let port = 0;
  const t0 = Date.now();

  const deploy = (name: string, extra: Partial<DeployRequest>): ReturnType<typeof client.deploy> =>
    client.deploy({ target: bin, name, ports: [], env: [], debug: false, labels: [], cwd: ROOT, ...extra });
  const qemuPid = (name: string): number => {
    const pid = client.store.getDeployment(name)?.vmm?.pid;
    if (!pid) throw new Error(`${name} has no VM process`);
    return pid;
  };

  beforeAll(async () => {
    // the engine's workers take the accelerator and grace period from the environment, like the CLI's
    process.env.UNIKCTL_ACCEL = home.env.UNIKCTL_ACCEL;
    process.env.UNIKCTL_STOP_GRACE_MS = home.env.UNIKCTL_STOP_GRACE_MS;
    // the built engine: its workers are dist/runtime/worker.js
    const { LocalClient } = (await import(join(ROOT, 'dist', 'engine', 'local.js'))) as LocalClientModule;
    client = new LocalClient(layout);
    port = await freePort();
    await deploy('spin-a', { cpus: 2, env: ['APP_MODE=spin'], tenant: tenantA });
    await deploy('http-b', { env: ['APP_MODE=http'], ports: [`${port}:8080`], tenant: tenantB });
    await deploy('local-c', { env: ['APP_MODE=http'] }); // no tenant: local mode, as before
    for (const name of ['spin-a', 'http-b', 'local-c']) {
      const d = await client.waitFor(name, (v) => !v || ['running', 'failed', 'exited'].includes(v.state), 180_000);
      expect(d?.state, `${name}: ${d?.code} ${d?.reason}`).toBe('running');
    }
    console.log(`tenant isolation: three VMs running ${((Date.now() - t0) / 1000).toFixed(1)} s after the first deploy`);
  });

  afterAll(async () => {
    const names = client ? client.store.listDeployments().map((d) => d.name) : [];
    if (names.length > 0) await home.cli(['destroy', ...names, '--wait', '--timeout', '1']);
    client?.close();
    await home.cleanup();
    process.env.UNIKCTL_ACCEL = saved.accel;
    process.env.UNIKCTL_STOP_GRACE_MS = saved.grace;
    if (saved.accel === undefined) delete process.env.UNIKCTL_ACCEL;
    if (saved.grace === undefined) delete process.env.UNIKCTL_STOP_GRACE_MS;
    for (const t of [tenantA, tenantB]) {
      const user = tenantUserName(t.name);
      // no VM may be left running as a tenant's user
      expect(spawnSync('pgrep', ['-u', user]).status, `processes of ${user} left`).not.toBe(0);
      spawnSync('userdel', [user]);
      await ResourceGroup.existing(`tenant-${t.name}`, ['memory', 'cpu', 'cpuacct']).remove();
    }
    rmSync(join(bin, '..'), { recursive: true, force: true });
    console.log(`tenant isolation: file wall time ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  it('runs each tenant\'s QEMU as its own user and in its own cgroup; a deployment without a tenant stays as it was', () => {
    const users = ['spin-a', 'http-b', 'local-c'].map((n) => execFileSync('ps', ['-o', 'user:32=', '-p', String(qemuPid(n))], { encoding: 'utf8' }).trim());
    expect(users).toEqual([tenantUserName(tenantA.name), tenantUserName(tenantB.name), 'root']);
    // ps's default column (8 characters) shows both long names as "unikctl+": the uids tell them apart
    const uids = ['spin-a', 'http-b'].map((n) => execFileSync('ps', ['-o', 'uid=', '-p', String(qemuPid(n))], { encoding: 'utf8' }).trim());
    expect(uids[0]).not.toBe(uids[1]);
    expect(uids).not.toContain('0');

    const cgroupOf = (n: string): string => readFileSync(`/proc/${qemuPid(n)}/cgroup`, 'utf8');
    expect(cgroupOf('spin-a')).toContain(`/unikctl/tenant-${tenantA.name}`);
    expect(cgroupOf('http-b')).toContain(`/unikctl/tenant-${tenantB.name}`);
    expect(cgroupOf('local-c')).not.toContain('/unikctl/tenant-');
    // the QEMU of a tenant opens no path of the unikctl home: its kernel and root filesystem were handed to it
    const args = readFileSync(`/proc/${qemuPid('spin-a')}/cmdline`, 'utf8').split('\0');
    expect(args.join(' ')).not.toContain(home.dir);
    expect(readFileSync(`/proc/${qemuPid('local-c')}/cmdline`, 'utf8')).toContain(home.dir);

    if ('version' in cgroups && cgroups.version === 1) {
      const memLimit = Number(readFileSync(`/sys/fs/cgroup/memory/unikctl/tenant-${tenantA.name}/memory.limit_in_bytes`, 'utf8'));
      expect(memLimit).toBe((256 + TENANT_VMM_OVERHEAD_MIB) * 1024 * 1024); // one VM: the quota plus one QEMU allowance
      expect(readFileSync(`/sys/fs/cgroup/cpu/unikctl/tenant-${tenantA.name}/cpu.cfs_quota_us`, 'utf8').trim()).toBe('100000');
      expect(readFileSync(`/sys/fs/cgroup/cpu/unikctl/tenant-${tenantB.name}/cpu.cfs_quota_us`, 'utf8').trim()).toBe('-1');
    } else {
      const dir = `/sys/fs/cgroup/unikctl/tenant-${tenantA.name}`;
      expect(Number(readFileSync(`${dir}/memory.max`, 'utf8'))).toBe((256 + TENANT_VMM_OVERHEAD_MIB) * 1024 * 1024);
      expect(readFileSync(`${dir}/cpu.max`, 'utf8').trim()).toBe('100000 100000');
    }
  });

  it('holds a tenant limited to 1 core to 1.1 cores while its 2 vCPUs spin, and the other tenant\'s VM still answers', async () => {
    const pid = qemuPid('spin-a');
    const started = cpuSeconds(pid);
    const wall = Date.now();
    const answers: string[] = [];
    while (Date.now() - wall < 10_000) {
      answers.push(await httpGet(`http://127.0.0.1:${port}/`, 20_000));
      await new Promise((r) => setTimeout(r, 1000));
    }
    const cores = (cpuSeconds(pid) - started) / ((Date.now() - wall) / 1000);
    // how often the quota cut the group off (a loaded host may never give the VM a whole core: then 0)
    const cpuStat = readFileSync('version' in cgroups && cgroups.version === 2 ? `/sys/fs/cgroup/unikctl/tenant-${tenantA.name}/cpu.stat` : `/sys/fs/cgroup/cpu/unikctl/tenant-${tenantA.name}/cpu.stat`, 'utf8');
    const throttled = /^nr_throttled (\d+)$/m.exec(cpuStat)?.[1] ?? '?';
    console.log(`tenant isolation: tenant A's QEMU used ${cores.toFixed(2)} cores over ${((Date.now() - wall) / 1000).toFixed(1)} s (quota 1, throttled in ${throttled} periods); tenant B answered ${answers.length} requests`);
    expect(cores).toBeLessThanOrEqual(1.1);
    expect(answers.length).toBeGreaterThan(0);
    expect(new Set(answers)).toEqual(new Set(['tenant-app ok\n']));
    const lines: string[] = [];
    for await (const e of client.logs({ name: 'spin-a', follow: false, signal: new AbortController().signal })) lines.push(e.m);
    expect(lines).toContain('tenant-app: spinning on 2 threads');
  });

  it('closes a tenant\'s files to the other tenant\'s user, through the home and through the deployment directory', () => {
    const userA = lookupUser(tenantUserName(tenantA.name));
    const userB = lookupUser(tenantUserName(tenantB.name));
    if (!userA || !userB) throw new Error('the tenant users do not exist');
    const aDir = join(layout.deployments, 'spin-a');
    const bDir = join(layout.deployments, 'http-b');
    const aFiles = [join(aDir, 'console.log'), join(aDir, 'image', 'rootfs.erofs'), join(aDir, 'image', 'manifest.json'), join(aDir, 'supervisor.log')];
    expect(readFileSync(aFiles[0] ?? '', 'utf8')).toContain('spinning'); // root reads it: the file is there
    expect(statSync(layout.home).mode & 0o077).toBe(0);
    expect(statSync(aDir).mode & 0o777).toBe(0o700);
    const denied = (): void => {
      for (const f of aFiles) expect(catAs(userB, f), f).toMatchObject({ status: 1, stderr: expect.stringContaining('Permission denied') });
      expect(catAs(userA, join(bDir, 'console.log')), 'A reading B').toMatchObject({ status: 1, stderr: expect.stringContaining('Permission denied') });
    };
    denied();
    // the deployment directory protects on its own too, under a home others may enter (a data directory in /var/lib)
    chmodSync(home.dir, 0o755);
    try {
      denied();
    } finally {
      chmodSync(home.dir, 0o700);
    }
  });

  it('a tenant\'s VM still dies with its supervisor (RT-10: the user change comes before the death signal is armed)', async () => {
    const d = client.store.getDeployment('http-b');
    const qemu = qemuPid('http-b');
    if (!d?.supervisor) throw new Error('http-b has no supervisor');
    process.kill(d.supervisor.pid, 'SIGKILL');
    const alive = (): boolean => {
      try {
        return !/^\S+ \(.*\) [ZX] /.test(readFileSync(`/proc/${qemu}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 150 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(alive(), `QEMU ${qemu} of http-b outlived its supervisor`).toBe(false);
    await expect(httpGet(`http://127.0.0.1:${port}/`, 1000)).rejects.toThrow();
  });

  it('refuses a bad tenant and a privileged host port for a tenant before anything starts', async () => {
    await expect(deploy('bad-tenant', { tenant: { name: 'Not-A-Tenant' } })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    await expect(deploy('bad-quota', { tenant: { name: 'ok', cpus: 0 } })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    await expect(deploy('low-port', { ports: ['80:8080'], tenant: tenantB })).rejects.toMatchObject({ code: 'E_INVALID_PORT' });
    expect(client.store.getDeployment('bad-tenant')).toBeNull();
  });

  it('destroy stops the tenants\' VMs: nothing runs as their users any more', async () => {
    const r = await home.cli(['destroy', 'spin-a', 'http-b', 'local-c', '--wait', '--json']);
    expect(r.code, r.stderr).toBe(0);
    for (const t of [tenantA, tenantB]) expect(spawnSync('pgrep', ['-u', tenantUserName(t.name)]).status).not.toBe(0);
  });
});
