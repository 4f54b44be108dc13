import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './helpers.js';
import { which } from '../../src/util/exec.js';

// etcd for the control-plane tests that run on the etcd store (controlplane-ha, tenants-quota). It is installed by
// scripts/ci-tools.sh (CI runs it); these tests fail, rather than skip, when it is missing.
const INSTALL_HINT = 'run scripts/ci-tools.sh (it installs Debian\'s etcd-server; CI runs it before the tests)';

/** A throw-away etcd cluster of `size` members on loopback, each with its own client/peer port and data dir. */
export class EtcdCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'unikctl-etcd-'));
  readonly procs: ChildProcess[] = [];
  clientUrls: string[] = [];
  log = '';

  async start(size: number): Promise<void> {
    const bin = which('etcd', { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/bin:/usr/local/bin` });
    if (!bin) throw new Error(`etcd is not installed: ${INSTALL_HINT}`);
    const members = [];
    for (let i = 1; i <= size; i++) members.push({ name: `m${i}`, client: await freePort(), peer: await freePort() });
    const cluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
    this.clientUrls = members.map((m) => `http://127.0.0.1:${m.client}`);
    for (const m of members) {
      const data = join(this.dir, m.name);
      mkdirSync(data, { recursive: true, mode: 0o700 });
      const p = spawn(bin, [
        '--name', m.name, '--data-dir', data,
        '--listen-client-urls', `http://127.0.0.1:${m.client}`, '--advertise-client-urls', `http://127.0.0.1:${m.client}`,
        '--listen-peer-urls', `http://127.0.0.1:${m.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
        '--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', `unikctl-ha-${process.pid}`,
        '--logger', 'zap', '--log-level', 'error',
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      p.stdout?.on('data', (c: Buffer) => { this.log += `[${m.name}] ${c.toString()}`; });
      p.stderr?.on('data', (c: Buffer) => { this.log += `[${m.name}] ${c.toString()}`; });
      this.procs.push(p);
    }
    const deadline = Date.now() + 30_000;
    for (;;) {
      const dead = this.procs.find((p) => p.exitCode !== null);
      if (dead) throw new Error(`an etcd member exited (${dead.exitCode}):\n${this.log}`);
      const healthy = await Promise.all(this.clientUrls.map((u) => fetch(`${u}/health`).then(async (r) => r.ok && ((await r.json()) as { health?: string }).health === 'true', () => false)));
      if (healthy.every(Boolean)) return;
      if (Date.now() > deadline) throw new Error(`the etcd cluster did not become healthy:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** `etcd://127.0.0.1:P1,127.0.0.1:P2,…` */
  get spec(): string {
    return `etcd://${this.clientUrls.map((u) => u.replace('http://', '')).join(',')}`;
  }

  killAllSync(): void {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? null : new Promise((r) => { p.once('exit', r); p.kill('SIGKILL'); }))));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
