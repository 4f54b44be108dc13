import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './proc.js';

/** What a resource group bounds: memory (bytes, no swap), CPU (a fraction of cores), and the number of tasks. */
export interface ResourceLimits { memoryBytes: number; cpus: number; pids: number; }

const ROOT = '/sys/fs/cgroup';
const CPU_PERIOD_US = 100_000;

/**
 * One cgroup per sandboxed job, on cgroup v2 (one unified tree with the memory, cpu and pids controllers) or on
 * cgroup v1 (one directory per controller). Processes are added by pid before they run anything (the sandbox
 * blocks until then), so every descendant is inside the limits from its first instruction.
 */
export class ResourceGroup {
  private constructor(private readonly dirs: { memory: string; cpu: string; pids: string }, private readonly v2: boolean) {}

  /** The cgroup version this host offers writable limits on, or why none. */
  static detect(): { version: 1 | 2 } | { unavailable: string } {
    if (existsSync(join(ROOT, 'cgroup.controllers'))) {
      const have = readFileSync(join(ROOT, 'cgroup.controllers'), 'utf8').split(/\s+/);
      const missing = ['memory', 'cpu', 'pids'].filter((c) => !have.includes(c));
      return missing.length === 0 ? { version: 2 } : { unavailable: `the cgroup v2 tree lacks the ${missing.join(', ')} controller(s)` };
    }
    const missing = ['memory', 'cpu', 'pids'].filter((c) => !existsSync(join(ROOT, c, 'cgroup.procs')));
    return missing.length === 0 ? { version: 1 } : { unavailable: `no cgroup v1 hierarchy for ${missing.join(', ')} under ${ROOT}` };
  }

  /** Creates the group `unikctl/<id>` with the limits applied. Throws (with the OS's message) when the host refuses. */
  static create(id: string, limits: ResourceLimits): ResourceGroup {
    const found = ResourceGroup.detect();
    if ('unavailable' in found) throw new Error(found.unavailable);
    const rel = join('unikctl', id);
    if (found.version === 2) {
      const parent = join(ROOT, 'unikctl');
      mkdirSync(parent, { recursive: true });
      // a child cgroup only gets the controllers its parent delegates
      writeFileSync(join(ROOT, 'cgroup.subtree_control'), '+memory +cpu +pids');
      writeFileSync(join(parent, 'cgroup.subtree_control'), '+memory +cpu +pids');
      const dir = join(ROOT, rel);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'memory.max'), String(limits.memoryBytes));
      if (existsSync(join(dir, 'memory.swap.max'))) writeFileSync(join(dir, 'memory.swap.max'), '0');
      writeFileSync(join(dir, 'cpu.max'), `${Math.round(limits.cpus * CPU_PERIOD_US)} ${CPU_PERIOD_US}`);
      writeFileSync(join(dir, 'pids.max'), String(limits.pids));
      return new ResourceGroup({ memory: dir, cpu: dir, pids: dir }, true);
    }
    const dirs = { memory: join(ROOT, 'memory', rel), cpu: join(ROOT, 'cpu', rel), pids: join(ROOT, 'pids', rel) };
    for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
    writeFileSync(join(dirs.memory, 'memory.limit_in_bytes'), String(limits.memoryBytes));
    // without swap accounting the limit above already covers everything the group can use
    if (existsSync(join(dirs.memory, 'memory.memsw.limit_in_bytes'))) writeFileSync(join(dirs.memory, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
    writeFileSync(join(dirs.cpu, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
    writeFileSync(join(dirs.cpu, 'cpu.cfs_quota_us'), String(Math.round(limits.cpus * CPU_PERIOD_US)));
    writeFileSync(join(dirs.pids, 'pids.max'), String(limits.pids));
    return new ResourceGroup(dirs, false);
  }

  /** The group `unikctl/<id>` as made by create (to remove one a killed process left behind). */
  static existing(id: string): ResourceGroup {
    const rel = join('unikctl', id);
    if (existsSync(join(ROOT, 'cgroup.controllers'))) {
      const dir = join(ROOT, rel);
      return new ResourceGroup({ memory: dir, cpu: dir, pids: dir }, true);
    }
    return new ResourceGroup({ memory: join(ROOT, 'memory', rel), cpu: join(ROOT, 'cpu', rel), pids: join(ROOT, 'pids', rel) }, false);
  }

  add(pid: number): void {
    const targets = this.v2 ? [this.dirs.memory] : [...new Set(Object.values(this.dirs))];
    for (const d of targets) writeFileSync(join(d, 'cgroup.procs'), String(pid));
  }

  /** Times the kernel's OOM killer ended a task of this group. */
  oomKills(): number {
    try {
      const text = readFileSync(join(this.dirs.memory, this.v2 ? 'memory.events' : 'memory.oom_control'), 'utf8');
      return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  /** Peak memory use in bytes (null where the kernel does not report it). */
  peakMemoryBytes(): number | null {
    const file = this.v2 ? 'memory.peak' : 'memory.max_usage_in_bytes';
    try {
      return Number(readFileSync(join(this.dirs.memory, file), 'utf8').trim());
    } catch {
      return null;
    }
  }

  private pids(): number[] {
    try {
      return readFileSync(join(this.dirs.pids, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
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
    for (const d of [...new Set(Object.values(this.dirs))]) {
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
