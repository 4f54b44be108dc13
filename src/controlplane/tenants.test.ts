import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isUserError, type UserError } from '../errors.js';
import type { Principal } from './auth.js';
import { metricsForTenant } from './metrics.js';
import { checkQuota, emptyUsage, parseTenants, quotaExceeded, scopeFor, tenantOfName, TenantRegistry, TenantScope, type QuotaCheck, type TenantSpec } from './tenants.js';

const FILE = '/etc/unikctld/tenants.yaml';

function configError(text: string, file = FILE): UserError {
  try {
    parseTenants(file, text);
  } catch (e) {
    if (isUserError(e)) return e;
    throw e;
  }
  throw new Error(`parsed:\n${text}`);
}

const spec = (name: string, o: Partial<TenantSpec> = {}): TenantSpec => ({ name, quota: {}, vm: { memoryMiB: {}, cpus: {} }, ports: null, selector: {}, ...o });

describe('parseTenants', () => {
  it('reads every field of docs/tenants.md', () => {
    const t = parseTenants(FILE, `
tenants:
  acme:
    quota: { vms: 3, vcpus: 4, memory: 2G, apps: 3, artifacts: 1G }
    vm:
      memory: { default: 256M, max: 512M }
      cpus: { default: 1, max: 2 }
    ports: 20000-20999
    nodes: [zone=eu, dedicated=acme]
  beta:
  zero:
    quota: { vms: 0, memory: 0 }
`);
    expect([...t.keys()]).toEqual(['acme', 'beta', 'zero']);
    expect(t.get('acme')).toEqual({
      name: 'acme',
      quota: { vms: 3, vcpus: 4, memoryMiB: 2048, apps: 3, artifactBytes: 1024 ** 3 },
      vm: { memoryMiB: { default: 256, max: 512 }, cpus: { default: 1, max: 2 } },
      ports: { from: 20000, to: 20999 },
      selector: { zone: 'eu', dedicated: 'acme' },
    });
    expect(t.get('beta')).toEqual(spec('beta')); // absent = unlimited
    expect(t.get('zero')?.quota).toEqual({ vms: 0, memoryMiB: 0 }); // 0 = none
  });

  it('reads JSON files as JSON, and an empty file as no tenants', () => {
    expect([...parseTenants('/x/tenants.json', '{"tenants":{"acme":{"quota":{"vms":1}}}}').values()]).toEqual([spec('acme', { quota: { vms: 1 } })]);
    expect(parseTenants(FILE, '').size).toBe(0);
    expect(parseTenants(FILE, 'tenants: {}\n').size).toBe(0);
  });

  it.each([
    ['unknown top-level key', 'tenant: {}', '(top level).tenant is not a known field'],
    ['a typo in a quota field', 'tenants: { acme: { quota: { cpus: 2 } } }', 'tenants.acme.quota.cpus is not a known field (known: vms, vcpus, memory, apps, artifacts)'],
    ['an unknown tenant field', 'tenants: { acme: { memory: 1G } }', 'tenants.acme.memory is not a known field'],
    ['a name with a dash', 'tenants: { team-a: {} }', 'tenant name "team-a" must match'],
    ['an upper-case name', 'tenants: { Acme: {} }', 'tenant name "Acme" must match'],
    ['a name of 17 characters', 'tenants: { abcdefghijklmnopq: {} }', 'tenant name "abcdefghijklmnopq" must match'],
    ['a negative count', 'tenants: { acme: { quota: { vms: -1 } } }', 'tenants.acme.quota.vms must be a whole number'],
    ['a fractional count', 'tenants: { acme: { quota: { vcpus: 1.5 } } }', 'tenants.acme.quota.vcpus must be a whole number'],
    ['a count as text', 'tenants: { acme: { quota: { apps: lots } } }', 'tenants.acme.quota.apps must be a whole number'],
    ['a bad size', 'tenants: { acme: { quota: { memory: 2X } } }', 'tenants.acme.quota.memory is not a size'],
    ['a bad artifact size', 'tenants: { acme: { quota: { artifacts: big } } }', 'tenants.acme.quota.artifacts is not a size'],
    ['a bad per-VM size', 'tenants: { acme: { vm: { memory: { max: -1G } } } }', 'tenants.acme.vm.memory.max is not a size'],
    ['an unknown per-VM field', 'tenants: { acme: { vm: { disk: 1G } } }', 'tenants.acme.vm.disk is not a known field'],
    ['a default above its max (memory)', 'tenants: { acme: { vm: { memory: { default: 1G, max: 512M } } } }', 'tenants.acme.vm.memory.default is above its max'],
    ['a default above its max (cpus)', 'tenants: { acme: { vm: { cpus: { default: 4, max: 2 } } } }', 'tenants.acme.vm.cpus.default is above its max'],
    ['a reversed port range', 'tenants: { acme: { ports: 30000-20000 } }', 'tenants.acme.ports must be a range'],
    ['a port beyond 65535', 'tenants: { acme: { ports: 1-70000 } }', 'tenants.acme.ports must be a range'],
    ['port 0', 'tenants: { acme: { ports: 0-10 } }', 'tenants.acme.ports must be a range'],
    ['one port', 'tenants: { acme: { ports: 8080 } }', 'tenants.acme.ports must be a range'],
    ['nodes not a list', 'tenants: { acme: { nodes: zone=eu } }', 'tenants.acme.nodes must be a list'],
    ['a node selector that is no label', 'tenants: { acme: { nodes: [zone] } }', 'tenants.acme.nodes'],
    ['a quota that is no mapping', 'tenants: { acme: { quota: [1] } }', 'tenants.acme.quota must be a mapping'],
    ['invalid YAML', 'tenants: { acme: [', 'not valid YAML'],
  ])('%s: E_TENANT_CONFIG naming the file and the field', (_what, text, message) => {
    const e = configError(text);
    expect(e.code).toBe('E_TENANT_CONFIG');
    expect(e.message.startsWith(`${FILE}: `)).toBe(true);
    expect(e.message).toContain(message);
    expect(e.hint).toContain('last good tenants stay in force');
  });

  it('invalid JSON is named as JSON', () => {
    expect(configError('{"tenants":', '/x/t.json').message).toContain('/x/t.json: not valid JSON');
  });
});

describe('TenantScope and tenantOfName', () => {
  const acme = new TenantScope(spec('acme'));

  it('puts a tenant\'s names and keys under its prefix, and takes them out again', () => {
    expect(acme.name).toBe('acme');
    expect(acme.inside('web')).toBe('acme--web');
    expect(acme.outside('acme--web')).toBe('web');
    expect(acme.outside('acme--web--2')).toBe('web--2');
    expect(acme.key('k1')).toBe('acme/k1');
    expect(acme.keyOutside('acme/k1')).toBe('k1');
    expect(acme.key(null)).toBeNull();
    expect(acme.keyOutside(null)).toBeNull();
    expect(acme.maxNameLength).toBe(63 - 'acme--'.length);
  });

  it("another tenant's names (and names made without a tenant) are not this scope's", () => {
    for (const other of ['beta--web', 'web', 'acme-web', 'acme2--web', 'xacme--web', 'acm--web']) expect(acme.outside(other), other).toBeNull();
    // a tenant whose name extends another's shares no prefix with it
    expect(new TenantScope(spec('a')).outside('ab--web')).toBeNull();
    expect(new TenantScope(spec('ab')).outside('a--bweb')).toBeNull();
  });

  it('the global scope (no tenants, or an admin) is the identity', () => {
    const g = TenantScope.GLOBAL;
    expect([g.name, g.inside('web'), g.outside('acme--web'), g.key('k'), g.keyOutside('k'), g.maxNameLength]).toEqual([null, 'web', 'acme--web', 'k', 'k', 63]);
  });

  it('tenantOfName: the part before the first "--" when it is a tenant name', () => {
    expect(tenantOfName('acme--web')).toBe('acme');
    expect(tenantOfName('acme--web--2')).toBe('acme');
    for (const n of ['web', '--web', 'Acme--web', 'team-a--web', 'web-2', 'abcdefghijklmnopq--web']) expect(tenantOfName(n), n).toBeNull();
  });
});

describe('scopeFor: which tenant a request acts for', () => {
  const on = TenantRegistry.fixed([spec('acme'), spec('beta')]);
  const off = TenantRegistry.open(null);
  const principal = (o: Partial<Principal> = {}): Principal => ({ subject: 'ci', scopes: ['deploy', 'read'], via: 'token', ...o });
  const admin = principal({ subject: 'root', scopes: ['admin'] });

  const outcome = (p: Principal, header: string | undefined, tenants: TenantRegistry): string => {
    try {
      return scopeFor(p, header, tenants).name ?? '(global)';
    } catch (e) {
      if (isUserError(e)) return e.code;
      throw e;
    }
  };

  it.each<[string, Principal, string | undefined, 'on' | 'off', string]>([
    ['tenant token', principal({ tenant: 'acme' }), undefined, 'on', 'acme'],
    ['tenant JWT', principal({ tenant: 'beta', via: 'jwt' }), undefined, 'on', 'beta'],
    ['undeclared tenant', principal({ tenant: 'ghost' }), undefined, 'on', 'E_TENANT_UNKNOWN'],
    ['no tenant', principal(), undefined, 'on', 'E_TENANT_REQUIRED'],
    ['non-admin naming another tenant by header', principal({ tenant: 'beta' }), 'acme', 'on', 'E_FORBIDDEN'],
    ['non-admin naming its own tenant by header', principal({ tenant: 'acme' }), 'acme', 'on', 'E_FORBIDDEN'],
    ['non-admin without a tenant, with the header', principal(), 'acme', 'on', 'E_FORBIDDEN'],
    ['admin', admin, undefined, 'on', '(global)'],
    ['admin with a tenant of its own', { ...admin, tenant: 'acme' }, undefined, 'on', '(global)'],
    ['admin acting as acme', admin, 'acme', 'on', 'acme'],
    ['admin naming an undeclared tenant', admin, 'ghost', 'on', 'E_TENANT_UNKNOWN'],
    ['tenants off: a tenant credential', principal({ tenant: 'acme' }), undefined, 'off', '(global)'],
    ['tenants off: no tenant', principal(), undefined, 'off', '(global)'],
    ['tenants off: admin', admin, undefined, 'off', '(global)'],
    ['tenants off: admin with the header', admin, 'acme', 'off', 'E_TENANT_UNKNOWN'],
    ['tenants off: non-admin with the header', principal({ tenant: 'acme' }), 'acme', 'off', 'E_FORBIDDEN'],
  ])('%s', (_what, p, header, tenants, expected) => {
    expect(outcome(p, header, tenants === 'on' ? on : off)).toBe(expected);
  });

  it('a repeated header is refused like any other', () => {
    expect(() => scopeFor(admin, ['acme', 'beta'], on)).toThrow(/not declared/);
  });
});

describe('checkQuota and quotaExceeded', () => {
  const check = (quota: QuotaCheck['quota'], vcpus = 1, memoryMiB = 256): QuotaCheck => ({ tenant: 'acme', name: 'acme--web', quota, reservation: { vcpus, memoryMiB } });
  const refusal = (fn: () => void): Record<string, unknown> | undefined => {
    try {
      fn();
    } catch (e) {
      if (isUserError(e) && e.code === 'E_QUOTA_EXCEEDED') return e.details;
      throw e;
    }
    return undefined;
  };

  it('up to the limit passes; one more is refused, naming the first resource over it', () => {
    const used = { vms: 2, apps: 2, vcpus: 2, memoryMiB: 512 };
    expect(refusal(() => checkQuota(check({ vms: 3, apps: 3, vcpus: 3, memoryMiB: 768 }), used))).toBeUndefined();
    expect(refusal(() => checkQuota(check({ vms: 2, apps: 2 }), used))).toEqual({ tenant: 'acme', resource: 'apps', requested: 1, used: 2, limit: 2 });
    expect(refusal(() => checkQuota(check({ vms: 2 }), used))).toEqual({ tenant: 'acme', resource: 'vms', requested: 1, used: 2, limit: 2 });
    expect(refusal(() => checkQuota(check({ vcpus: 3 }, 2), used))).toEqual({ tenant: 'acme', resource: 'vcpus', requested: 2, used: 2, limit: 3 });
    expect(refusal(() => checkQuota(check({ memoryMiB: 700 }), used))).toEqual({ tenant: 'acme', resource: 'memory', requested: 256, used: 512, limit: 700 });
  });

  it('a limit of 0 allows nothing; an absent one everything', () => {
    expect(refusal(() => checkQuota(check({ vms: 0 }), emptyUsage()))).toMatchObject({ resource: 'vms', limit: 0 });
    expect(refusal(() => checkQuota(check({}, 64, 1 << 20), { vms: 1e6, apps: 1e6, vcpus: 1e6, memoryMiB: 1e9 }))).toBeUndefined();
  });

  it('messages say the unit, and per-VM limits have no usage', () => {
    expect(quotaExceeded('acme', 'memory', 256, 1024, 1024).message).toBe('tenant acme: memory quota exceeded: requested 256 MiB, used 1024 MiB, limit 1024 MiB');
    expect(quotaExceeded('acme', 'artifacts', 10, 5, 12).message).toBe('tenant acme: artifacts quota exceeded: requested 10 bytes, used 5 bytes, limit 12 bytes');
    const vm = quotaExceeded('acme', 'vm.memory', 1024, 0, 512);
    expect(vm.message).toBe('tenant acme: per-VM memory limit exceeded: requested 1024 MiB, limit 512 MiB');
    expect(vm.hint).toContain('-m/--cpus');
  });
});

describe('metricsForTenant', () => {
  const text = [
    '# HELP unikctld_operation_duration_seconds Time from an operation being claimed to its end, by kind and outcome.',
    '# TYPE unikctld_operation_duration_seconds histogram',
    'unikctld_operation_duration_seconds_bucket{le="1",kind="deploy",outcome="succeeded",tenant="acme"} 1',
    'unikctld_operation_duration_seconds_bucket{le="1",kind="deploy",outcome="succeeded",tenant="ab"} 4',
    'unikctld_operation_duration_seconds_count{kind="deploy",outcome="succeeded",tenant="acme"} 1',
    '# HELP unikctld_queue_operations Operations in the journal by state.',
    '# TYPE unikctld_queue_operations gauge',
    'unikctld_queue_operations{state="queued"} 7',
    '# HELP unikctld_deployment_memory_bytes Resident memory of each running VM.',
    '# TYPE unikctld_deployment_memory_bytes gauge',
    'unikctld_deployment_memory_bytes{deployment="ab--web",tenant="ab"} 5',
    'unikctld_deployment_memory_bytes{deployment="acme--web",tenant="acme"} 9',
    '# HELP unikctld_http_requests_total HTTP requests by method, route and status.',
    '# TYPE unikctld_http_requests_total counter',
    'unikctld_http_requests_total{method="GET",route="/v1/status",status="200"} 3',
    '',
  ].join('\n');

  it("keeps only the tenant's samples, with their HELP/TYPE lines, its deployments under its own names", () => {
    expect(metricsForTenant(text, 'acme')).toBe([
      '# HELP unikctld_operation_duration_seconds Time from an operation being claimed to its end, by kind and outcome.',
      '# TYPE unikctld_operation_duration_seconds histogram',
      'unikctld_operation_duration_seconds_bucket{le="1",kind="deploy",outcome="succeeded",tenant="acme"} 1',
      'unikctld_operation_duration_seconds_count{kind="deploy",outcome="succeeded",tenant="acme"} 1',
      '# HELP unikctld_deployment_memory_bytes Resident memory of each running VM.',
      '# TYPE unikctld_deployment_memory_bytes gauge',
      'unikctld_deployment_memory_bytes{deployment="web",tenant="acme"} 9',
      '',
    ].join('\n'));
  });

  it("a tenant's service series (front traffic, replicas) name the app without the prefix; another tenant's are not there", () => {
    const svc = [
      '# HELP unikctld_service_replicas Replicas of each service.',
      '# TYPE unikctld_service_replicas gauge',
      'unikctld_service_replicas{app="acme--web",tenant="acme",state="desired"} 2',
      'unikctld_service_replicas{app="beta--web",tenant="beta",state="desired"} 3',
      '',
    ].join('\n');
    expect(metricsForTenant(svc, 'acme')).toBe(['# HELP unikctld_service_replicas Replicas of each service.', '# TYPE unikctld_service_replicas gauge', 'unikctld_service_replicas{app="web",tenant="acme",state="desired"} 2', ''].join('\n'));
    expect(metricsForTenant(svc, 'beta')).not.toContain('acme');
  });

  it('a tenant whose name begins another\'s sees only its own; a tenant without series sees nothing', () => {
    const ab = metricsForTenant(text, 'ab');
    expect(ab).toContain('unikctld_deployment_memory_bytes{deployment="web",tenant="ab"} 5');
    expect(ab).not.toContain('acme');
    expect(metricsForTenant(text, 'a')).toBe('');
    expect(metricsForTenant(text, 'beta')).toBe('');
  });
});

describe('TenantRegistry', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unikctl-tenants-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a bad file at start is fatal; later a bad edit is refused (logged) and the last good tenants stay', () => {
    const file = join(dir, 'tenants.yaml');
    writeFileSync(file, 'tenants: { acme: { quota: { vmz: 1 } } }');
    expect(() => TenantRegistry.open(file)).toThrow(/tenants\.acme\.quota\.vmz/);
    expect(() => TenantRegistry.open(join(dir, 'missing.yaml'))).toThrow(/cannot read it/);

    writeFileSync(file, 'tenants: { acme: { quota: { vms: 1 } } }');
    const logs: Array<[string, Record<string, unknown> | undefined]> = [];
    const r = TenantRegistry.open(file, (msg, f) => logs.push([msg, f]));
    try {
      expect(r.enabled).toBe(true);
      expect(r.get('acme')?.quota.vms).toBe(1);
      writeFileSync(file, 'tenants: { acme: { quota: { vms: 2 } }, beta: {} }');
      expect(r.reload()).toBe(true);
      expect([r.get('acme')?.quota.vms, r.list().map((t) => t.name)]).toEqual([2, ['acme', 'beta']]);
      writeFileSync(file, 'tenants: { acme: { quota: { vms: two } } }');
      expect(r.reload()).toBe(false);
      expect([r.get('acme')?.quota.vms, r.get('beta')?.name]).toEqual([2, 'beta']);
      expect(logs.at(-1)?.[0]).toBe('tenants file refused; the previous tenants stay in force');
      expect(String(logs.at(-1)?.[1]?.error)).toContain('tenants.acme.quota.vms');
    } finally {
      r.close();
    }
  });

  it('without a file tenants are off; a fixed set is on', () => {
    const off = TenantRegistry.open(null);
    expect([off.enabled, off.get('acme'), off.reload()]).toEqual([false, null, false]);
    expect(TenantRegistry.fixed([spec('acme')]).enabled).toBe(true);
  });
});
