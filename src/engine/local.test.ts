import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { homeLayout } from '../paths.js';
import type { DeployRequest } from './client.js';
import { parseMemoryFlag } from './deploy-input.js';
import { parseEnv } from '../util/env.js';
import { parsePort } from '../util/port.js';
import { LocalClient } from './local.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof UserError ? e.code : `not a UserError: ${String(e)}`;
  }
  return undefined;
}

describe('parsePort', () => {
  it('parses HOST:GUEST on all addresses', () => {
    expect(parsePort('8080:80')).toEqual({ hostAddress: '0.0.0.0', hostPort: 8080, guestPort: 80, protocol: 'tcp' });
  });

  it('uses the same port on both sides for a single number', () => {
    expect(parsePort('8080')).toEqual({ hostAddress: '0.0.0.0', hostPort: 8080, guestPort: 8080, protocol: 'tcp' });
  });

  it('parses ADDR:HOST:GUEST', () => {
    expect(parsePort('127.0.0.1:8080:80')).toEqual({ hostAddress: '127.0.0.1', hostPort: 8080, guestPort: 80, protocol: 'tcp' });
  });

  it('accepts a /tcp suffix on either side', () => {
    expect(parsePort('8080/tcp:80')).toEqual({ hostAddress: '0.0.0.0', hostPort: 8080, guestPort: 80, protocol: 'tcp' });
    expect(parsePort('8080:80/tcp')).toEqual({ hostAddress: '0.0.0.0', hostPort: 8080, guestPort: 80, protocol: 'tcp' });
  });

  it('accepts the extreme valid ports', () => {
    expect(parsePort('1:65535')).toMatchObject({ hostPort: 1, guestPort: 65535 });
  });

  it.each(['0:80', '80:0', '70000:1', '1:65536', 'a:b', '1:2:3:4', '', ':80', '80:', '8080/udp:80', '-1:80', '1.5:80', 'localhost:8080:80', '1.2.3:8080:80'])(
    'rejects %j with E_INVALID_PORT',
    (spec) => {
      expect(codeOf(() => parsePort(spec))).toBe('E_INVALID_PORT');
    },
  );

  it('names the bad spec and gives a hint', () => {
    try {
      parsePort('a:b');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      expect((e as UserError).message).toContain('"a:b"');
      expect((e as UserError).hint).toContain('-p HOST:GUEST');
    }
  });

  it('rejects an IPv4 bind address with an octet above 255', () => {
    expect(codeOf(() => parsePort('300.0.0.1:8080:80'))).toBe('E_INVALID_PORT');
  });
});

describe('parseEnv', () => {
  it('parses KEY=VALUE items', () => {
    expect(parseEnv(['GREETING=hello', 'B_2=x'])).toEqual({ GREETING: 'hello', B_2: 'x' });
  });

  it('accepts an empty value', () => {
    expect(parseEnv(['EMPTY='])).toEqual({ EMPTY: '' });
  });

  it('keeps "=" inside the value', () => {
    expect(parseEnv(['URL=a=b=c', 'Q==x'])).toEqual({ URL: 'a=b=c', Q: '=x' });
  });

  it('keeps spaces and unicode in values', () => {
    expect(parseEnv(['MSG=hé llo '])).toEqual({ MSG: 'hé llo ' });
  });

  it('returns an empty map for no items', () => {
    expect(parseEnv([])).toEqual({});
  });

  it('lets a later item override an earlier one', () => {
    expect(parseEnv(['A=1', 'A=2'])).toEqual({ A: '2' });
  });

  it.each(['=value', 'NOVALUE', '1KEY=x', 'BAD-KEY=x', 'A B=x', '', '=', 'ключ=x'])('rejects %j with E_INVALID_ARGUMENT', (item) => {
    expect(codeOf(() => parseEnv([item]))).toBe('E_INVALID_ARGUMENT');
  });

  it('rejects the whole list when one item is bad', () => {
    expect(codeOf(() => parseEnv(['A=1', 'oops']))).toBe('E_INVALID_ARGUMENT');
  });
});

describe('LocalClient.deploy input validation (fails before anything is recorded or spawned)', () => {
  let tmp: string;
  let client: LocalClient;
  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'unik-local-'));
    client = new LocalClient(homeLayout({ UNIKCTL_HOME: join(tmp, 'home') }));
  });
  afterEach(() => {
    client.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const req = (over: Partial<DeployRequest>): DeployRequest => ({ target: process.execPath, ports: [], env: [], debug: false, labels: [], cwd: tmp, ...over });

  async function codeOfDeploy(over: Partial<DeployRequest>): Promise<string | undefined> {
    try {
      await client.deploy(req(over));
    } catch (e) {
      expect(client.store.listDeployments()).toEqual([]);
      expect(client.store.listOperations(10)).toEqual([]);
      return e instanceof UserError ? e.code : `not a UserError: ${String(e)}`;
    }
    return undefined;
  }

  it.each<[string, Partial<DeployRequest>, string]>([
    ['an invalid name', { name: 'Bad_Name' }, 'E_INVALID_NAME'],
    ['a bad port', { ports: ['a:b'] }, 'E_INVALID_PORT'],
    ['the same host port twice', { ports: ['8080:80', '8080:81'] }, 'E_INVALID_PORT'],
    ['a bad env item', { env: ['NOEQUALS'] }, 'E_INVALID_ARGUMENT'],
    ['a bad label', { labels: ['nolabel'] }, 'E_INVALID_ARGUMENT'],
    ['zero cpus', { cpus: 0 }, 'E_INVALID_ARGUMENT'],
    ['17 cpus', { cpus: 17 }, 'E_INVALID_ARGUMENT'],
    ['a missing target', { target: 'no-such-thing' }, 'E_PACKAGE_NOT_FOUND'],
    ['a tenant name that is no user name', { tenant: { name: 'Acme-Corp' } }, 'E_INVALID_ARGUMENT'],
    ['a tenant name longer than 16', { tenant: { name: 'a'.repeat(17) } }, 'E_INVALID_ARGUMENT'],
    ['a tenant CPU quota of 0', { tenant: { name: 'acme', cpus: 0 } }, 'E_INVALID_ARGUMENT'],
    ['a tenant memory quota below 16 MiB', { tenant: { name: 'acme', memoryMiB: 8 } }, 'E_INVALID_ARGUMENT'],
    ['a privileged host port for a tenant (its QEMU binds it unprivileged)', { ports: ['80:8080'], tenant: { name: 'acme' } }, 'E_INVALID_PORT'],
  ])('rejects %s', async (_what, over, code) => {
    expect(await codeOfDeploy(over)).toBe(code);
  });

  it('reports a bad --memory as E_INVALID_ARGUMENT, not as a unik.yaml error', async () => {
    expect(await codeOfDeploy({ memory: '12X' })).toBe('E_INVALID_ARGUMENT');
  });

  // finding 10: each of these was accepted and failed later, inside the supervisor or QEMU
  it.each<[string, Partial<DeployRequest>, string, string]>([
    ['memory "banana"', { memory: 'banana' }, 'E_INVALID_ARGUMENT', 'not a size'],
    ['memory "0"', { memory: '0' }, 'E_INVALID_ARGUMENT', 'not a size'],
    ['memory below 16 MiB', { memory: '8M' }, 'E_INVALID_ARGUMENT', 'minimum of 16 MiB'],
    ['memory above the host\'s RAM', { memory: '100000G' }, 'E_INVALID_ARGUMENT', 'host\'s total memory'],
    ['an env value with NUL', { env: ['A=x\0B=y'] }, 'E_INVALID_ARGUMENT', 'NUL'],
    ['an environment too large for the kernel command line', { env: [`BIG=${'x'.repeat(2000)}`] }, 'E_INVALID_ARGUMENT', 'kernel command line'],
    ['one host port on two addresses', { ports: ['18081:80', '127.0.0.1:18081:81'] }, 'E_INVALID_PORT', 'published twice'],
    ['an address this host does not have', { ports: ['1.2.3.4:18081:80'] }, 'E_INVALID_PORT', 'address not available on this host'],
  ])('refuses %s at admission', async (_what, over, code, text) => {
    try {
      await client.deploy(req(over));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      expect((e as UserError).code).toBe(code);
      expect((e as UserError).message).toContain(text);
    }
    expect(client.store.listDeployments()).toEqual([]);
  });

  it('accepts memory from 16 MiB up to the host\'s RAM', () => {
    expect(parseMemoryFlag('16M', 1024)).toBe(16);
    expect(parseMemoryFlag('1G', 1024)).toBe(1024);
    expect(parseMemoryFlag('100000G', undefined)).toBe(100000 * 1024);
  });
});

describe('finding 13: the published-port check is atomic with the insert', () => {
  let tmp: string;
  const clients: LocalClient[] = [];
  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'unik-race-'));
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('two concurrent deploys of one host port (two store instances on one DB): exactly one wins, the other gets E_PORT_IN_USE', async () => {
    const layout = homeLayout({ UNIKCTL_HOME: join(tmp, 'home') });
    // two engines = two SqliteStore connections, as two CLI processes would have; the worker they spawn cannot
    // start from the sources (no build), so no VM is booted
    const [a, b] = [new LocalClient(layout), new LocalClient(layout)];
    clients.push(a, b);
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    // different loopback addresses: the OS probes both succeed, only the store can see the overlap
    const results = await Promise.allSettled([
      a.deploy({ target: process.execPath, ports: [`127.0.0.1:${port}:80`], env: [], debug: false, labels: [], cwd: tmp, name: 'one' }),
      b.deploy({ target: process.execPath, ports: [`127.0.0.2:${port}:80`], env: [], debug: false, labels: [], cwd: tmp, name: 'two' }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected');
    expect((lost?.reason as UserError).code).toBe('E_PORT_IN_USE');
    expect(a.store.listDeployments()).toHaveLength(1);
  });
});

describe('a tenant\'s deploy request', () => {
  it('is recorded in the deployment\'s spec for its supervisor, and is part of the idempotency hash', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'unik-local-'));
    const client = new LocalClient(homeLayout({ UNIKCTL_HOME: join(tmp, 'home') }));
    try {
      const base: DeployRequest = { target: process.execPath, ports: [], env: [], debug: false, labels: [], cwd: tmp, name: 'web', idempotencyKey: 'k1', tenant: { name: 'acme', cpus: 1.5, memoryMiB: 512 } };
      await client.deploy(base);
      expect(client.store.getDeployment('web')?.spec.tenant).toEqual({ name: 'acme', cpus: 1.5, memoryMiB: 512 });
      await expect(client.deploy({ ...base, tenant: { name: 'other' } })).rejects.toMatchObject({ code: 'E_IDEMPOTENCY_CONFLICT' });
      await client.deploy({ target: process.execPath, ports: [], env: [], debug: false, labels: [], cwd: tmp, name: 'plain' });
      expect(client.store.getDeployment('plain')?.spec).not.toHaveProperty('tenant');
      // a tenant's service: accepted, and its version's spec (which every replica's spec copies) carries the tenant
      const svc = await client.deploy({ ...base, name: 'svc', idempotencyKey: 'k2', service: { replicas: '2' } });
      expect(svc.service).toBe(true);
      expect(client.store.getService('svc')?.versions[0]?.spec.tenant).toEqual({ name: 'acme', cpus: 1.5, memoryMiB: 512 });
    } finally {
      await client.destroy(client.store.listServices().map((v) => v.name), { graceMs: 0 }).catch(() => []);
      await client.destroy(client.store.listDeployments().map((d) => d.name), { graceMs: 0 }).catch(() => []);
      client.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
