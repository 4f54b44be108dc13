import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, expect } from 'vitest';
import { homeLayout } from '../../src/paths.js';

export const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin', 'unikctl.js');

export interface CliResult { code: number; stdout: string; stderr: string; }

/** An isolated unikctl home for one test file; kernels come from the machine's set-up cache. */
export class TestHome {
  readonly dir = mkdtempSync(join(tmpdir(), 'unikctl-e2e-'));
  readonly env: NodeJS.ProcessEnv;

  constructor() {
    this.env = {
      ...process.env,
      UNIKCTL_HOME: this.dir,
      UNIKCTL_KERNEL_DIR: homeLayout(process.env).kernels,
      UNIKCTL_ACCEL: process.env.UNIKCTL_ACCEL ?? 'tcg',
      UNIKCTL_STOP_GRACE_MS: '3000',
      NO_COLOR: '1',
    };
  }

  cli(args: string[], opts: { cwd?: string } = {}): Promise<CliResult> {
    return new Promise((res) => {
      execFile(process.execPath, [BIN, ...args], { env: this.env, cwd: opts.cwd ?? ROOT, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        res({ code, stdout, stderr });
      });
    });
  }

  async json<T>(args: string[]): Promise<T> {
    const r = await this.cli([...args, '--json']);
    try {
      return JSON.parse(r.stdout) as T;
    } catch {
      throw new Error(`unikctl ${args.join(' ')} --json did not print JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    }
  }

  async status(name?: string): Promise<StatusJson> {
    return this.json<StatusJson>(['status', ...(name ? [name] : [])]);
  }

  async waitState(name: string, states: string[], timeoutMs = 120_000): Promise<DeploymentJson> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.status();
      const d = s.deployments.find((x) => x.name === name);
      if (d && states.includes(d.state)) return d;
      if (Date.now() > deadline) throw new Error(`${name} did not reach ${states.join('|')} in ${timeoutMs} ms: ${JSON.stringify(d)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** QEMU processes whose command line mentions this home (every VM's rootfs lives under it). */
  qemuProcesses(): string[] {
    return qemuUnder(this.dir);
  }

  async cleanup(): Promise<void> {
    const s = await this.status().catch(() => null);
    const names = s?.deployments?.map((d) => d.name) ?? [];
    if (names.length > 0) await this.cli(['destroy', ...names, '--wait', '--timeout', '1']);
    for (const line of this.qemuProcesses()) {
      const pid = Number(line.split(' ')[0]);
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** QEMU processes whose command line mentions `dir` (a home, or a node agent's data dir: every VM's rootfs lives under it). */
export function qemuUnder(dir: string): string[] {
  // a tenant's QEMU gets its kernel and rootfs as file descriptors, so its own command line names no path: it
  // belongs to `dir` when its command line names the directory, or its parent (the supervisor) runs with a
  // UNIKCTL_HOME inside it
  const homeOf = (pid: string): string => {
    try {
      return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').find((e) => e.startsWith('UNIKCTL_HOME='))?.slice(13) ?? '';
    } catch {
      return ''; // gone meanwhile
    }
  };
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' }).split('\n').map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l)).filter((m): m is RegExpExecArray => m !== null);
  return rows.filter((m) => /(^|\/)qemu-system/.test((m[3] ?? '').split(' ')[0] ?? '') && ((m[3] ?? '').includes(dir) || homeOf(m[2] ?? '').startsWith(dir)))
    .map((m) => `${m[1]} ${m[3]}`);
}

/**
 * After a cluster test killed its agents: their VMs outlive them (the supervisors are detached), so each node's local
 * engine destroys what is left; then no QEMU may remain and the data dirs are removed.
 */
export async function removeNodeDirs(dirs: string[]): Promise<void> {
  const local = new TestHome();
  try {
    for (const dir of dirs) {
      local.env.UNIKCTL_HOME = dir;
      const left = ((await local.status().catch(() => null))?.deployments ?? []).map((d) => d.name);
      if (left.length) await local.cli(['destroy', ...left, '--wait', '--timeout', '1']);
      expect(qemuUnder(dir)).toEqual([]);
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    rmSync(local.dir, { recursive: true, force: true });
  }
}

export interface DeploymentJson {
  name: string; state: string; exitCode: number | null; code: string | null; reason: string | null; ports: string[]; imageBytes: number | null;
  bootMs: number | null; accel: string | null; boot: Record<string, number>;
  metrics?: { cpuSeconds: number | null; rssBytes: number | null; supervisorRssBytes: number | null };
}
export interface StatusJson { deployments: DeploymentJson[]; operations: Array<{ id: string; kind: string; target: string; state: string; error: { code: string } | null }>; }

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

/**
 * GET with retries: `running` means the app process started, not that it already listens. `requestMs` bounds one
 * attempt: raise it for an app whose first answer is slow work (a server-side render under TCG), which a short
 * bound would abort and ask for again, forever.
 */
export async function httpGet(url: string, timeoutMs = 30_000, requestMs = 3000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(Math.min(requestMs, Math.max(1, deadline - Date.now()))) });
      if (r.ok) return await r.text();
      last = new Error(`HTTP ${r.status}`);
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`GET ${url} failed for ${timeoutMs} ms: ${String(last)}`);
}

/**
 * A scratch copy of examples/<dir> with a home of its own, both removed after the file's tests (no VM may be
 * left). `skip` matches what a local run leaves in the example (node_modules, .unikctl, …): the committed files only.
 */
export function exampleCopy(dir: string, skip: RegExp): { home: TestHome; app: string } {
  const home = new TestHome();
  const scratch = mkdtempSync(join(tmpdir(), `unikctl-${dir}-`));
  const app = join(scratch, dir);
  cpSync(join(ROOT, 'examples', dir), app, { recursive: true, filter: (p) => !skip.test(p) });
  afterAll(async () => {
    await home.cleanup();
    rmSync(scratch, { recursive: true, force: true });
    expect(home.qemuProcesses()).toEqual([]);
  });
  return { home, app };
}

/**
 * Points a scratch copy's build cache (BLD-5: .unikctl/cache) at the cache of an example the other e2e tests
 * build in place (examples/go-http, examples/rust-http): the Go build and module caches, the cargo home and
 * target directory are safe to share, so CI compiles the standard library and downloads each module once.
 */
export function shareBuildCache(app: string, example: string): void {
  const shared = join(ROOT, 'examples', example, '.unikctl', 'cache');
  mkdirSync(shared, { recursive: true });
  mkdirSync(join(app, '.unikctl'), { recursive: true });
  if (!existsSync(join(app, '.unikctl', 'cache'))) symlinkSync(shared, join(app, '.unikctl', 'cache'));
}

/**
 * Deploys the built example with -p, waits for `route` to answer (prints deploy → first HTTP response), waits for
 * `logLine` in the logs, runs `whileUp` (more requests, given the base URL), destroys and checks that nothing answers
 * any more. The body and logs are for the caller.
 */
export async function deployServeDestroy(home: TestHome, o: {
  dir: string; name: string; route: string; logLine: RegExp; timeoutMs: number; requestMs?: number; whileUp?: (base: string) => Promise<void>;
}): Promise<{ body: string; logs: string }> {
  const port = await freePort();
  const t0 = Date.now();
  const r = await home.cli(['deploy', `local/${o.dir}`, '-p', `${port}:8080`, '--name', o.name, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const body = await httpGet(`http://127.0.0.1:${port}${o.route}`, o.timeoutMs, o.requestMs);
  console.log(`${o.dir}: deploy → first HTTP response ${((Date.now() - t0) / 1000).toFixed(1)} s (${process.env.UNIKCTL_ACCEL ?? 'tcg'})`);

  let logs = '';
  for (let i = 0; i < 50 && !o.logLine.test(logs); i++) {
    logs = (await home.cli(['logs', o.name])).stdout;
    await new Promise((res) => setTimeout(res, 200));
  }
  expect(logs).toMatch(o.logLine);
  await o.whileUp?.(`http://127.0.0.1:${port}`);

  const d = await home.cli(['destroy', o.name, '--wait', '--json']);
  expect(d.code, d.stderr).toBe(0);
  expect(JSON.parse(d.stdout)).toMatchObject([{ name: o.name, state: 'gone' }]);
  expect(home.qemuProcesses()).toEqual([]);
  await expect(httpGet(`http://127.0.0.1:${port}/`, 1000)).rejects.toThrow();
  return { body, logs };
}

export function compileFixture(src: string, out: string, flags: string[]): string {
  execFileSync('gcc', ['-O2', '-Wall', ...flags, '-o', out, join(ROOT, 'test', 'fixtures', src)]);
  return out;
}

/** Every file path in an erofs image (extracted with fsck.erofs), sorted. */
export function listImage(erofs: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'unikctl-list-'));
  try {
    execFileSync('fsck.erofs', [`--extract=${join(dir, 'root')}`, erofs]);
    const files: string[] = [];
    const walk = (d: string, rel: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const r = `${rel}/${e.name}`;
        if (e.isDirectory()) walk(join(d, e.name), r);
        else files.push(r);
      }
    };
    walk(join(dir, 'root'), '');
    return files.sort();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
