import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isUserError } from '../errors.js';
import { homeLayout } from '../paths.js';
import type { SystemUser } from '../util/users.js';
import { ensureTenantUser, prepareTenant, protectTenantFiles, TENANT_VMM_OVERHEAD_MIB, tenantMemoryBytes, tenantUserName, type TenantHost } from './tenant.js';

/** A host with an in-memory user and group database; useradd can be made to lose races or fail. */
function fakeHost(o: { root?: boolean; kvmGid?: number | null; useradd?: (argv: string[], db: Map<string, SystemUser>) => { status: number; stderr: string } } = {}) {
  const users = new Map<string, SystemUser>();
  const groups = new Map<string, { name: string; gid: number; members: string[] }>([['kvm', { name: 'kvm', gid: 108, members: [] }]]);
  const calls: string[][] = [];
  let next = 900;
  const host: TenantHost = {
    isRoot: () => o.root ?? true,
    lookupUser: (name) => users.get(name) ?? null,
    lookupGroup: (key) => [...groups.values()].find((g) => g.name === key || String(g.gid) === key) ?? null,
    exec: (argv) => {
      calls.push(argv);
      if (argv[0] === 'useradd') {
        if (o.useradd) return o.useradd(argv, users);
        const name = argv.at(-1) ?? '';
        users.set(name, { name, uid: next, gid: next++ });
        const gi = argv.indexOf('--groups');
        if (gi !== -1) groups.get(argv[gi + 1] ?? '')?.members.push(name);
        return { status: 0, stderr: '' };
      }
      if (argv[0] === 'usermod') {
        groups.get(argv[3] ?? '')?.members.push(argv[4] ?? '');
        return { status: 0, stderr: '' };
      }
      return { status: 1, stderr: 'unexpected' };
    },
    kvmGid: () => (o.kvmGid === undefined ? null : o.kvmGid),
    sleep: () => {},
  };
  return { host, users, groups, calls };
}

describe('ensureTenantUser', () => {
  it('creates a system user with its own group, no home and no login shell, once', () => {
    const f = fakeHost();
    const first = ensureTenantUser('acme', f.host);
    expect(first.user.name).toBe('unikctl-t-acme');
    expect(first.kvm).toBe(false);
    const add = f.calls[0] ?? [];
    expect(add.slice(0, 5)).toEqual(['useradd', '--system', '--user-group', '--no-create-home', '--home-dir']);
    expect(add).toContain('--shell');
    expect(add[add.indexOf('--shell') + 1]).toMatch(/nologin|false$/);
    expect(add).not.toContain('--groups');
    // the second deploy of the tenant finds the user
    expect(ensureTenantUser('acme', f.host).user).toEqual(first.user);
    expect(f.calls.filter((c) => c[0] === 'useradd')).toHaveLength(1);
  });

  it('accepts a user a concurrent supervisor created first (its own useradd fails), and retries a locked passwd file', () => {
    let tries = 0;
    const f = fakeHost({
      useradd: (argv, db) => {
        tries++;
        if (tries === 1) return { status: 1, stderr: 'useradd: cannot lock /etc/passwd; try again later.' };
        db.set(argv.at(-1) ?? '', { name: argv.at(-1) ?? '', uid: 777, gid: 777 }); // the other supervisor's user
        return { status: 9, stderr: 'useradd: user already exists' };
      },
    });
    expect(ensureTenantUser('acme', f.host).user).toEqual({ name: 'unikctl-t-acme', uid: 777, gid: 777 });
    expect(tries).toBe(2);
  });

  it('fails with E_TENANT_ISOLATION when it cannot create the user: not root, or useradd keeps failing', () => {
    const notRoot = fakeHost({ root: false });
    expect(() => ensureTenantUser('acme', notRoot.host)).toThrow(expect.objectContaining({ code: 'E_TENANT_ISOLATION' }));
    const broken = fakeHost({ useradd: () => ({ status: 1, stderr: 'useradd: /etc/passwd is read-only' }) });
    try {
      ensureTenantUser('acme', broken.host);
      expect.unreachable();
    } catch (e) {
      expect(isUserError(e) && e.code).toBe('E_TENANT_ISOLATION');
      expect((e as Error).message).toContain('/etc/passwd is read-only');
    }
  });

  it('puts the user into the group of a group-accessible /dev/kvm, also a user made before', () => {
    const f = fakeHost({ kvmGid: 108 });
    const made = ensureTenantUser('acme', f.host);
    expect(made.kvm).toBe(true);
    expect(f.calls[0]).toEqual(expect.arrayContaining(['--groups', 'kvm']));
    expect(f.groups.get('kvm')?.members).toEqual(['unikctl-t-acme']);

    const older = fakeHost({ kvmGid: 108 });
    older.users.set('unikctl-t-old', { name: 'unikctl-t-old', uid: 5, gid: 5 });
    expect(ensureTenantUser('old', older.host).kvm).toBe(true);
    expect(older.calls).toEqual([['usermod', '--append', '--groups', 'kvm', 'unikctl-t-old']]);
  });
});

describe('tenant quotas', () => {
  it('limits memory to the quota plus one QEMU allowance per VM, and not at all without a quota', () => {
    const MiB = 1024 * 1024;
    expect(tenantMemoryBytes({ name: 'a', memoryMiB: 512 }, 1)).toBe((512 + TENANT_VMM_OVERHEAD_MIB) * MiB);
    expect(tenantMemoryBytes({ name: 'a', memoryMiB: 512 }, 3)).toBe((512 + 3 * TENANT_VMM_OVERHEAD_MIB) * MiB);
    expect(tenantMemoryBytes({ name: 'a', memoryMiB: 512 }, 0)).toBe((512 + TENANT_VMM_OVERHEAD_MIB) * MiB);
    expect(tenantMemoryBytes({ name: 'a' }, 2)).toBeNull();
  });
});

describe('tenant files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unikctl-tenant-unit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('closes the home and the deployment directory to group and others', () => {
    const layout = homeLayout({ UNIKCTL_HOME: join(dir, 'home') });
    const dep = join(layout.deployments, 'web');
    mkdirSync(dep, { recursive: true, mode: 0o755 });
    protectTenantFiles(layout, dep);
    expect(statSync(layout.home).mode & 0o777).toBe(0o700);
    expect(statSync(dep).mode & 0o777).toBe(0o700);
  });

  it('refuses a tenant when the daemon is not root, before touching anything', () => {
    const layout = homeLayout({ UNIKCTL_HOME: join(dir, 'other') });
    const f = fakeHost({ root: false });
    expect(() => prepareTenant({ name: 'acme' }, layout, join(layout.deployments, 'web'), f.host)).toThrow(expect.objectContaining({ code: 'E_TENANT_ISOLATION' }));
    expect(f.calls).toEqual([]);
    expect(tenantUserName('acme')).toBe('unikctl-t-acme');
  });
});
