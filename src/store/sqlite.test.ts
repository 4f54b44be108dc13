import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { SqliteStore } from './sqlite.js';
import type { Deployment, Operation } from './types.js';

let tmp: string;
let file: string;
let store: SqliteStore;
const extra: SqliteStore[] = [];

beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'unik-sqlite-'));
  file = join(tmp, 'nested', 'state.db');
  store = new SqliteStore(file);
});
afterEach(() => {
  store.close();
  for (const s of extra.splice(0)) s.close();
  rmSync(tmp, { recursive: true, force: true });
});

let seq = 0;
function op(over: Partial<Operation> = {}): Operation {
  seq += 1;
  return {
    id: `op_${String(seq).padStart(4, '0')}`, kind: 'deploy', target: 'app', state: 'running', idempotencyKey: null, requestHash: null,
    error: null, createdAt: 1000 + seq, updatedAt: 1000 + seq, endedAt: null, ...over,
  };
}
function dep(name: string, over: Partial<Deployment> = {}): Deployment {
  seq += 1;
  return {
    name, id: `dep_${seq}`, state: 'pending', exitCode: null, code: null, reason: null,
    spec: {
      source: { kind: 'package', dir: '/pkgs/hello', ref: 'local/hello:latest' }, resolvedFrom: 'local package store local/hello:latest',
      ports: [{ hostAddress: '0.0.0.0', hostPort: 10_000 + seq, guestPort: 80, protocol: 'tcp' }], memoryMiB: 64, cpus: 1, env: { A: '1' },
      debug: false, labels: { zone: 'a' },
    },
    image: null, supervisor: null, vmm: null, accel: null, boot: {}, listen: null, createdAt: 5000 + seq, updatedAt: 5000 + seq, startedAt: null, endedAt: null,
    ...over,
  };
}

describe('SqliteStore deployments', () => {
  it('creates a deployment with its operation and reads it back', () => {
    const d = dep('app');
    const o = op({ target: 'app' });
    store.createDeployment(d, o);
    expect(store.getDeployment('app')).toEqual(d);
    expect(store.getOperation(o.id)).toEqual(o);
    expect(store.listDeployments()).toEqual([d]);
    expect(store.listEvents('app', 10).map((e) => e.message)).toEqual([`pending (operation ${o.id})`]);
  });

  it('getDeployment is null for an unknown name', () => {
    expect(store.getDeployment('nope')).toBeNull();
  });

  it('rejects a duplicate name with E_NAME_TAKEN and changes nothing', () => {
    const first = dep('app');
    const firstOp = op({ target: 'app' });
    store.createDeployment(first, firstOp);
    const second = dep('app', { state: 'starting', spec: { ...first.spec, env: { B: '2' } } });
    const secondOp = op({ target: 'app' });
    try {
      store.createDeployment(second, secondOp);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      expect((e as UserError).code).toBe('E_NAME_TAKEN');
      expect((e as UserError).hint).toContain('unikctl destroy app');
    }
    expect(store.getDeployment('app')).toEqual(first);
    expect(store.getOperation(secondOp.id)).toBeNull();
    expect(store.listOperations(10)).toEqual([firstOp]);
    expect(store.listEvents('app', 10)).toHaveLength(1);
  });

  it('freeName picks app, app-2, app-3', () => {
    expect(store.freeName('app')).toBe('app');
    store.createDeployment(dep('app'), op());
    expect(store.freeName('app')).toBe('app-2');
    store.createDeployment(dep('app-2'), op());
    expect(store.freeName('app')).toBe('app-3');
  });

  it('freeName fills the first gap and ignores unrelated names', () => {
    store.createDeployment(dep('app'), op());
    store.createDeployment(dep('app-3'), op());
    store.createDeployment(dep('application'), op());
    expect(store.freeName('app')).toBe('app-2');
    expect(store.freeName('other')).toBe('other');
  });

  it('transition applies when the state matches and records an event', () => {
    store.createDeployment(dep('app'), op());
    const r = store.transition('app', ['pending', 'building'], 'starting');
    expect(r?.state).toBe('starting');
    expect(store.getDeployment('app')?.state).toBe('starting');
    const r2 = store.transition('app', ['starting'], 'failed', { reason: 'boom', endedAt: 1234, exitCode: null });
    expect(r2).toMatchObject({ state: 'failed', reason: 'boom', endedAt: 1234 });
    expect(store.listEvents('app', 10).map((e) => e.message)).toEqual([
      expect.stringMatching(/^pending \(operation /), 'pending → starting', 'starting → failed: boom',
    ]);
  });

  it('transition from the wrong state returns null and changes nothing', () => {
    const d = dep('app');
    store.createDeployment(d, op());
    expect(store.transition('app', ['running', 'starting'], 'exited', { exitCode: 3, endedAt: 99 })).toBeNull();
    expect(store.getDeployment('app')).toEqual(d);
    expect(store.listEvents('app', 10)).toHaveLength(1);
  });

  it('transition of an unknown deployment returns null', () => {
    expect(store.transition('ghost', ['pending'], 'starting')).toBeNull();
    expect(store.getDeployment('ghost')).toBeNull();
  });

  it('transition and patchDeployment round-trip JSON fields', () => {
    store.createDeployment(dep('app'), op());
    const image = {
      dir: '/d/image', name: 'hello', pack: 'go', mode: 'release' as const, sizeBytes: 30, kernelBytes: 20, rootfsBytes: 10,
      rootfsSha256: 'r', kernelSha256: 'k', ref: 'local/hello:latest',
    };
    store.patchDeployment('app', { image, vmm: { pid: 42, startTime: '777' }, accel: 'tcg', boot: { buildMs: 5 } });
    const r = store.transition('app', ['pending'], 'running', { startedAt: 10, boot: { buildMs: 5, vmmStartToAppStartMs: 800 } });
    expect(r).toMatchObject({ state: 'running', image, vmm: { pid: 42, startTime: '777' }, accel: 'tcg', startedAt: 10, boot: { buildMs: 5, vmmStartToAppStartMs: 800 } });
    store.patchDeployment('app', { vmm: null });
    expect(store.getDeployment('app')?.vmm).toBeNull();
    expect(store.getDeployment('app')?.state).toBe('running');
  });

  it('deleteDeployment removes the record and logs it', () => {
    store.createDeployment(dep('app'), op());
    store.deleteDeployment('app');
    expect(store.getDeployment('app')).toBeNull();
    expect(store.listEvents('app', 10).at(-1)?.message).toBe('removed');
    expect(store.freeName('app')).toBe('app');
  });

  it('listEvents returns the newest N in chronological order', () => {
    store.createDeployment(dep('app'), op());
    for (let i = 0; i < 5; i++) store.addEvent('app', 'note', `n${i}`);
    expect(store.listEvents('app', 3).map((e) => e.message)).toEqual(['n2', 'n3', 'n4']);
    expect(store.listEvents('other', 3)).toEqual([]);
  });
});

describe('SqliteStore published ports', () => {
  const on = (hostAddress: string, hostPort: number): Deployment['spec']['ports'] => [{ hostAddress, hostPort, guestPort: 80, protocol: 'tcp' }];
  const withPorts = (name: string, ports: Deployment['spec']['ports'], over: Partial<Deployment> = {}): Deployment => {
    const d = dep(name, over);
    return { ...d, spec: { ...d.spec, ports } };
  };

  it('refuses a host port a live deployment publishes, whatever the address, and records nothing', () => {
    store.createDeployment(withPorts('a', on('127.0.0.1', 18081)), op({ target: 'a' }));
    const o = op({ target: 'b' });
    for (const addr of ['127.0.0.1', '127.0.0.2', '0.0.0.0']) {
      let code = '';
      try { store.createDeployment(withPorts('b', on(addr, 18081)), o); } catch (e) { code = (e as UserError).code; }
      expect(code).toBe('E_PORT_IN_USE');
    }
    expect(store.getDeployment('b')).toBeNull();
    expect(store.getOperation(o.id)).toBeNull();
  });

  it('a second store instance on the same file sees the port taken (the check runs in the insert\'s transaction)', () => {
    const other = new SqliteStore(file);
    extra.push(other);
    store.createDeployment(withPorts('a', on('0.0.0.0', 18082)), op({ target: 'a' }));
    expect(() => other.createDeployment(withPorts('b', on('127.0.0.1', 18082)), op({ target: 'b' }))).toThrow(/18082 is already in use by deployment a/);
  });

  it('an ended deployment no longer holds its port', () => {
    store.createDeployment(withPorts('a', on('0.0.0.0', 18083), { state: 'exited' }), op({ target: 'a' }));
    store.createDeployment(withPorts('b', on('0.0.0.0', 18083)), op({ target: 'b' }));
    expect(store.getDeployment('b')?.state).toBe('pending');
  });
});

describe('SqliteStore operations', () => {
  it('lists operations newest first, with a limit and a target filter', () => {
    const a = op({ id: 'op_a', target: 'x', createdAt: 1000 });
    const b = op({ id: 'op_b', target: 'y', createdAt: 3000 });
    const c = op({ id: 'op_c', target: 'x', createdAt: 2000 });
    const d = op({ id: 'op_d', target: 'x', createdAt: 2000 });
    for (const o of [a, b, c, d]) store.createOperation(o);
    expect(store.listOperations(10).map((o) => o.id)).toEqual(['op_b', 'op_d', 'op_c', 'op_a']);
    expect(store.listOperations(2).map((o) => o.id)).toEqual(['op_b', 'op_d']);
    expect(store.listOperations(10, 'x').map((o) => o.id)).toEqual(['op_d', 'op_c', 'op_a']);
    expect(store.listOperations(10, 'z')).toEqual([]);
  });

  it('findOperationByKey finds by idempotency key', () => {
    const k = op({ idempotencyKey: 'key-1', requestHash: 'h1' });
    store.createOperation(op());
    store.createOperation(k);
    expect(store.findOperationByKey('key-1')).toEqual(k);
    expect(store.findOperationByKey('key-2')).toBeNull();
  });

  it('an idempotency key is unique', () => {
    store.createOperation(op({ idempotencyKey: 'dup' }));
    expect(() => store.createOperation(op({ idempotencyKey: 'dup' }))).toThrow();
    expect(store.listOperations(10)).toHaveLength(1);
  });

  it('updateOperation sets state, error and endedAt for terminal states', () => {
    const o = op({ state: 'queued' });
    store.createOperation(o);
    store.updateOperation(o.id, 'running');
    expect(store.getOperation(o.id)).toMatchObject({ state: 'running', endedAt: null, error: null });
    const before = Date.now();
    store.updateOperation(o.id, 'failed', { code: 'E_BOOT_TIMEOUT', message: 'slow' });
    const got = store.getOperation(o.id);
    expect(got).toMatchObject({ state: 'failed', error: { code: 'E_BOOT_TIMEOUT', message: 'slow' } });
    expect(got?.endedAt).toBeGreaterThanOrEqual(before);
    expect(got?.updatedAt).toBeGreaterThanOrEqual(before);
  });
});

describe('SqliteStore shared file', () => {
  it('two instances on the same file see each other\'s writes', () => {
    const other = new SqliteStore(file);
    extra.push(other);
    store.createDeployment(dep('app'), op({ target: 'app', idempotencyKey: 'k' }));
    expect(other.getDeployment('app')?.state).toBe('pending');
    expect(other.findOperationByKey('k')?.target).toBe('app');
    expect(other.transition('app', ['pending'], 'starting')?.state).toBe('starting');
    expect(store.getDeployment('app')?.state).toBe('starting');
    // compare-and-set across connections: the stale view loses
    expect(store.transition('app', ['pending'], 'building')).toBeNull();
    expect(other.getDeployment('app')?.state).toBe('starting');
    expect(() => other.createDeployment(dep('app'), op())).toThrow(UserError);
    expect(other.freeName('app')).toBe('app-2');
  });

  it('data survives closing and reopening', () => {
    store.createDeployment(dep('app'), op());
    store.close();
    store = new SqliteStore(file);
    expect(store.getDeployment('app')?.name).toBe('app');
  });

  it('an unopenable database is E_STATE', () => {
    try {
      new SqliteStore(tmp); // a directory, not a file
      expect.unreachable();
    } catch (e) {
      expect((e as UserError).code).toBe('E_STATE');
    }
  });
});

describe('SqliteStore schema migration', () => {
  it('adds the code column to an old database, keeping its rows and moving an "E_X: " reason prefix into it', () => {
    const oldFile = join(tmp, 'old.db');
    const db = new Database(oldFile);
    // the deployments table as it was before the code column
    db.exec(`CREATE TABLE deployments (name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, state TEXT NOT NULL, exit_code INTEGER, reason TEXT,
      spec TEXT NOT NULL, image TEXT, supervisor TEXT, vmm TEXT, accel TEXT, boot TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL, started_at INTEGER, ended_at INTEGER)`);
    const insert = db.prepare("INSERT INTO deployments (name, id, state, exit_code, reason, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?, '{}', 1, 1)");
    insert.run('built', 'dep_1', 'failed', null, 'E_BUILD_FAILED: make exited with code 2');
    insert.run('crashed', 'dep_2', 'failed', null, 'the app was killed by signal 11 (SIGSEGV)');
    insert.run('fine', 'dep_3', 'exited', 0, null);
    db.close();

    const migrated = new SqliteStore(oldFile);
    extra.push(migrated);
    expect(migrated.getDeployment('built')).toMatchObject({ state: 'failed', code: 'E_BUILD_FAILED', reason: 'make exited with code 2' });
    expect(migrated.getDeployment('crashed')).toMatchObject({ code: null, reason: 'the app was killed by signal 11 (SIGSEGV)' });
    expect(migrated.getDeployment('fine')).toMatchObject({ state: 'exited', exitCode: 0, code: null, reason: null, listen: null });
    // the listen column came with the migration too: writable
    migrated.patchDeployment('fine', { listen: { health: 'no-ports', ports: [], listeners: [], warning: null, since: 2 } });
    expect(migrated.getDeployment('fine')?.listen?.health).toBe('no-ports');
    // opening it again changes nothing
    extra.push(new SqliteStore(oldFile));
    expect(migrated.getDeployment('built')?.reason).toBe('make exited with code 2');
  });

  it('persists a running app\'s listener health with the transition and its later patches', () => {
    store.createDeployment(dep('web'), op({ target: 'web' }));
    expect(store.getDeployment('web')?.listen).toBeNull();
    const checking = { health: 'checking' as const, ports: [80], listeners: null, warning: null, since: 1 };
    store.transition('web', ['pending'], 'running', { listen: checking });
    expect(store.getDeployment('web')?.listen).toEqual(checking);
    const warned = {
      health: 'localhost-only' as const, ports: [80], listeners: [{ address: '127.0.0.1', port: 80 }], since: 2,
      warning: { code: 'E_LISTENING_LOCALHOST_ONLY' as const, message: 'm', fix: 'f' },
    };
    store.patchDeployment('web', { listen: warned });
    expect(store.getDeployment('web')?.listen).toEqual(warned);
  });

  it('persists a deployment\'s code through transitions', () => {
    store.createDeployment(dep('app'), op({ target: 'app' }));
    store.transition('app', ['pending'], 'failed', { code: 'E_QEMU_FAILED', reason: 'QEMU exited (code 1)' });
    expect(store.getDeployment('app')).toMatchObject({ state: 'failed', code: 'E_QEMU_FAILED', reason: 'QEMU exited (code 1)' });
  });
});

describe('services', () => {
  const svc = (name: string, hostPort: number): import('./service-types.js').Service => ({
    name, id: `svc_${name}`, desired: 'run', ports: [{ hostAddress: '0.0.0.0', hostPort, guestPort: 8080, protocol: 'tcp' }], health: {}, traffic: {},
    policy: { replicas: 2, check: null, restart: 'on-failure', rollout: { strategy: 'rolling', maxSurge: 1, maxUnavailable: 0, canary: 1, minHealthyMs: 1000, healthyDeadlineMs: 60_000, autoRevert: true } },
    versions: [], current: null, rollout: null, restarts: [], nextReplica: 1, controller: null, front: null, createdAt: 1, updatedAt: 1, rev: 0,
  });

  it('a service takes its name and host ports from deployments and other services, both ways', () => {
    store.createService(svc('web', 18080), op({ target: 'web' }));
    expect(() => store.createDeployment(dep('web'), op())).toThrow(expect.objectContaining({ code: 'E_NAME_TAKEN' }));
    const d = dep('api');
    d.spec.ports = [{ hostAddress: '0.0.0.0', hostPort: 18080, guestPort: 80, protocol: 'tcp' }];
    expect(() => store.createDeployment(d, op())).toThrow(expect.objectContaining({ code: 'E_PORT_IN_USE' }));
    expect(() => store.createService(svc('other', 18080), op())).toThrow(expect.objectContaining({ code: 'E_PORT_IN_USE' }));
    store.createDeployment(dep('db'), op());
    expect(() => store.createService(svc('db', 18081), op())).toThrow(expect.objectContaining({ code: 'E_NAME_TAKEN' }));
    expect(store.freeName('web')).toBe('web-2');
  });

  it('updates are compare-and-set on the revision: a stale writer loses and nothing it wrote lands', () => {
    store.createService(svc('web', 18080), op({ target: 'web' }));
    const a = store.getService('web');
    const b = store.getService('web');
    if (!a || !b) throw new Error('missing');
    expect(store.updateService({ ...a, policy: { ...a.policy, replicas: 5 } })).toBe(true);
    expect(store.updateService({ ...b, policy: { ...b.policy, replicas: 1 } })).toBe(false);
    expect(store.getService('web')?.policy.replicas).toBe(5);
    expect(store.getService('web')?.rev).toBe(1);
    store.deleteService('web');
    expect(store.getService('web')).toBeNull();
  });

  it('requests are a time series per app; null while no service ever existed', () => {
    expect(store.countRequests(0, 10_000)).toBeNull();
    store.recordRequests('web', 5, 1000);
    store.recordRequests('web', 7, 2000);
    store.recordRequests('api', 1, 2500);
    expect(store.countRequests(0, 10_000)).toBe(13);
    expect(store.countRequests(1500, 10_000, 'web')).toBe(7);
    expect(store.countRequests(3000, 10_000)).toBe(0);
  });
});
