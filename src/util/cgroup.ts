import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './proc.js';

/** What a resource group bounds: memory (bytes, no swap), CPU (a fraction of cores), and the number of tasks. */
export interface ResourceLimits { memoryBytes: number; cpus: number; pids: number; }

/** A controller a group is made under; `cpuacct` only where cgroup v1 mounts it apart from `cpu` (CPU-time accounting). */
export type Controller = 'memory' | 'cpu' | 'pids' | 'cpuacct';

/** Where the cgroup tree is mounted; UNIKCTL_CGROUP_ROOT for a host that mounts it elsewhere (and for tests). */
const root = (): string => process.env.UNIKCTL_CGROUP_ROOT || '/sys/fs/cgroup';
const CPU_PERIOD_US = 100_000;
const SANDBOX_CONTROLLERS: readonly Controller[] = ['memory', 'cpu', 'pids'];

const isV2 = (): boolean => existsSync(join(root(), 'cgroup.controllers'));

/**
 * A cgroup `unikctl/<id>`, on cgroup v2 (one unified tree) or on cgroup v1 (one directory per controller).
 * Two uses: one group per sandboxed build (create: memory, cpu and pids limits, removed after the build), and one
 * long-lived group per tenant that all the tenant's VMs join (ensure, then setCpus / setMemory whenever the quota
 * or the number of VMs changes). Processes join by pid before they run anything of their own where the caller can
 * arrange it (the sandbox blocks until then; the VMM launcher writes itself into procsFiles() before exec).
 */
export class ResourceGroup {
  private constructor(private readonly dirs: Partial<Record<Controller, string>>, private readonly v2: boolean) {}

  /** The cgroup version this host offers writable limits on for these controllers, or why none. */
  static detect(controllers: readonly Controller[] = SANDBOX_CONTROLLERS): { version: 1 | 2 } | { unavailable: string } {
    const wanted = controllers.filter((c) => c !== 'cpuacct'); // v2 accounts CPU time in the cpu controller itself
    if (isV2()) {
      const have = readFileSync(join(root(), 'cgroup.controllers'), 'utf8').split(/\s+/);
      const missing = wanted.filter((c) => !have.includes(c));
      return missing.length === 0 ? { version: 2 } : { unavailable: `the cgroup v2 tree lacks the ${missing.join(', ')} controller(s)` };
    }
    const missing = wanted.filter((c) => !existsSync(join(root(), c, 'cgroup.procs')));
    return missing.length === 0 ? { version: 1 } : { unavailable: `no cgroup v1 hierarchy for ${missing.join(', ')} under ${root()}` };
  }

  /** The group's directories: one on v2; on v1 one per controller (cpuacct where it is a hierarchy of its own). */
  private static layout(id: string, controllers: readonly Controller[]): ResourceGroup {
    const rel = join('unikctl', id);
    if (isV2()) {
      const dir = join(root(), rel);
      return new ResourceGroup(Object.fromEntries(controllers.map((c) => [c, dir])), true);
    }
    const dirs: Partial<Record<Controller, string>> = {};
    for (const c of controllers) {
      if (c === 'cpuacct' && !existsSync(join(root(), c, 'cgroup.procs'))) continue;
      dirs[c] = join(root(), c, rel);
    }
    return new ResourceGroup(dirs, false);
  }

  /** Makes the group's directories (existing ones are kept: concurrent callers all succeed) with the controllers enabled. */
  private static make(id: string, controllers: readonly Controller[]): ResourceGroup {
    const found = ResourceGroup.detect(controllers);
    if ('unavailable' in found) throw new Error(found.unavailable);
    const g = ResourceGroup.layout(id, controllers);
    if (g.v2) {
      // a child cgroup only gets the controllers its parent delegates
      const enable = controllers.filter((c) => c !== 'cpuacct').map((c) => `+${c}`).join(' ');
      const parent = join(root(), 'unikctl');
      mkdirSync(parent, { recursive: true });
      writeFileSync(join(root(), 'cgroup.subtree_control'), enable);
      writeFileSync(join(parent, 'cgroup.subtree_control'), enable);
    }
    for (const d of g.dirList()) mkdirSync(d, { recursive: true });
    return g;
  }

  /** Creates the group `unikctl/<id>` with the limits applied. Throws (with the OS's message) when the host refuses. */
  static create(id: string, limits: ResourceLimits): ResourceGroup {
    const g = ResourceGroup.make(id, SANDBOX_CONTROLLERS);
    g.setMemory(limits.memoryBytes);
    g.setCpus(limits.cpus);
    const pids = g.dirs.pids ?? '';
    writeFileSync(join(pids, 'pids.max'), String(limits.pids));
    return g;
  }

  /**
   * The group `unikctl/<id>` under these controllers, made if missing, its limits left as they are (a long-lived
   * group shared by several processes that come and go, like a tenant's). Throws when the host refuses.
   */
  static ensure(id: string, controllers: readonly Controller[]): ResourceGroup {
    return ResourceGroup.make(id, controllers);
  }

  /** The group `unikctl/<id>` as made by create (to remove one a killed process left behind). */
  static existing(id: string, controllers: readonly Controller[] = SANDBOX_CONTROLLERS): ResourceGroup {
    return ResourceGroup.layout(id, controllers);
  }

  private dirList(): string[] {
    return [...new Set(Object.values(this.dirs))];
  }

  /** The files a process writes its pid to to join the group (all of them; one on v2). */
  procsFiles(): string[] {
    return this.dirList().map((d) => join(d, 'cgroup.procs'));
  }

  add(pid: number): void {
    for (const f of this.procsFiles()) writeFileSync(f, String(pid));
  }

  /**
   * The CPU-time limit in cores (cpus × the period; null: unlimited). On v1 a group with a quota is throttled when
   * all its tasks together used cpus × 100 ms in a 100 ms period.
   */
  setCpus(cpus: number | null): void {
    const dir = this.dirs.cpu;
    if (!dir) throw new Error('the group has no cpu controller');
    const quota = cpus === null ? null : Math.max(1000, Math.round(cpus * CPU_PERIOD_US));
    if (this.v2) {
      writeFileSync(join(dir, 'cpu.max'), `${quota ?? 'max'} ${CPU_PERIOD_US}`);
      return;
    }
    writeFileSync(join(dir, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
    writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota ?? -1));
  }

  /** The memory limit in bytes without swap (null: unlimited). Lowering it below the use makes the kernel reclaim. */
  setMemory(bytes: number | null): void {
    const dir = this.dirs.memory;
    if (!dir) throw new Error('the group has no memory controller');
    if (this.v2) {
      writeFileSync(join(dir, 'memory.max'), bytes === null ? 'max' : String(bytes));
      if (existsSync(join(dir, 'memory.swap.max'))) writeFileSync(join(dir, 'memory.swap.max'), '0');
      return;
    }
    const value = bytes === null ? '-1' : String(bytes);
    const mem = join(dir, 'memory.limit_in_bytes');
    const memsw = join(dir, 'memory.memsw.limit_in_bytes');
    // without swap accounting the limit alone covers everything the group can use; with it, memory+swap gets the
    // same limit (no swap). v1 keeps memory ≤ memory+swap at every write, so a raise writes memsw first.
    if (!existsSync(memsw)) {
      writeFileSync(mem, value);
      return;
    }
    const current = Number(readFileSync(mem, 'utf8').trim());
    const raising = bytes === null || bytes > current;
    for (const f of raising ? [memsw, mem] : [mem, memsw]) writeFileSync(f, value);
  }

  /** Times the kernel's OOM killer ended a task of this group. */
  oomKills(): number {
    try {
      const text = readFileSync(join(this.dirs.memory ?? '', this.v2 ? 'memory.events' : 'memory.oom_control'), 'utf8');
      return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  /** Peak memory use in bytes (null where the kernel does not report it). */
  peakMemoryBytes(): number | null {
    const file = this.v2 ? 'memory.peak' : 'memory.max_usage_in_bytes';
    try {
      return Number(readFileSync(join(this.dirs.memory ?? '', file), 'utf8').trim());
    } catch {
      return null;
    }
  }

  /** CPU time all tasks of the group used, in seconds (v2 cpu.stat usage_usec, v1 cpuacct.usage; null: not accounted). */
  cpuUsageSeconds(): number | null {
    try {
      if (this.v2) return Number(/^usage_usec (\d+)$/m.exec(readFileSync(join(this.dirs.cpu ?? '', 'cpu.stat'), 'utf8'))?.[1]) / 1e6;
      const acct = this.dirs.cpuacct;
      return acct ? Number(readFileSync(join(acct, 'cpuacct.usage'), 'utf8').trim()) / 1e9 : null;
    } catch {
      return null;
    }
  }

  /** The processes in the group. */
  pids(): number[] {
    const first = this.dirList()[0];
    if (!first) return [];
    try {
      return readFileSync(join(first, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  /** SIGKILLs every task of the group (repeatedly: a forking task may add new ones while we kill). */
  async killAll(): Promise<void> {
    for (let i = 0; i < 50; i++) {
      const pids = this.pids();
      if (pids.length === 0) return;
      for (const p of pids) {
        try { process.kill(p, 'SIGKILL'); } catch { /* already gone */ }
      }
      await sleep(20);
    }
  }

  /** Kills what is left and removes the group's directories (a cgroup with tasks cannot be removed). */
  async remove(): Promise<void> {
    await this.killAll();
    for (const d of this.dirList()) {
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(d);
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
          await sleep(20);
        }
      }
    }
  }
}
