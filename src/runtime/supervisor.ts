import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { BuildProgress } from '../image/build.js';
import { materializeKernel, readImage, type ImageManifest } from '../image/image.js';
import { copyImageDir } from '../image/package-store.js';
import { buildInto } from './build-into.js';
import { checkImage, OFF_RULE } from '../image/trust.js';
import { toUserError, UserError, type ErrorCode } from '../errors.js';
import { deploymentDir, type HomeLayout } from '../paths.js';
import type { Deployment, ImageSummary, ListenStatus, Listener, Store } from '../store/types.js';
import { envMs, processRef, sleep } from '../util/proc.js';
import { accelRequest, planAccel, recordKvmVerdict } from './accel.js';
import { guestRun, kernelCmdline } from './cmdline.js';
import { ConsoleParser, type ConsoleEvent } from './console.js';
import { assessListen, formatListener, listenTimeoutMs, parseListeners, sameListen } from './listen.js';
import { LogWriter, type LogEntry } from './logstore.js';
import { kvmAccessible, qemuVmm } from './qemu.js';
import { prepareTenant, type TenantNode } from './tenant.js';
import type { Accel, Vmm, VmmHandle } from './vmm.js';

const SIGNAL_NAMES: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 4: 'SIGILL', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE', 9: 'SIGKILL', 11: 'SIGSEGV', 13: 'SIGPIPE', 15: 'SIGTERM' };
/** How long the supervisor reads the console after QEMU exited, at most (it stops at the pipe's end, normally at once). */
const CONSOLE_DRAIN_MAX_MS = 3000;

export const consoleLogFile = (layout: HomeLayout, name: string): string => join(deploymentDir(layout, name), 'console.log');

export interface SupervisorOptions {
  layout: HomeLayout;
  store: Store;
  name: string;
  operationId: string;
  vmm?: Vmm;
  env?: NodeJS.ProcessEnv;
}

type Outcome =
  | { kind: 'exited'; code: number }
  | { kind: 'failed'; reason: string; code: ErrorCode }
  | { kind: 'stopped' }
  | { kind: 'kvm-unusable'; why: string };

/**
 * The per-deployment supervisor: runs detached from the CLI, builds (if needed), boots the VM, turns the
 * serial console into the log stream and keeps the store's state true (RT-3, RT-4, RT-7).
 */
export class Supervisor {
  private readonly dir: string;
  private readonly log: LogWriter;
  private readonly vmm: Vmm;
  private stopRequested = false;
  private readonly buildAbort = new AbortController();
  private current: { handle: VmmHandle; nonce: string } | null = null;
  /** a tenant's deployment: its user and cgroup on this node (null in local mode) */
  private tenant: TenantNode | null = null;

  constructor(private readonly o: SupervisorOptions) {
    this.dir = deploymentDir(o.layout, o.name);
    mkdirSync(this.dir, { recursive: true });
    this.log = new LogWriter(join(this.dir, 'console.log'));
    this.vmm = o.vmm ?? qemuVmm;
  }

  private diag(msg: string): void {
    try {
      appendFileSync(join(this.dir, 'supervisor.log'), `${new Date().toISOString()} ${msg}\n`);
    } catch {
      // a diagnostic that cannot be written (full disk) must not end the supervisor and its VM
    }
  }

  private logLine(s: LogEntry['s'], m: string): void {
    this.log.append({ t: Date.now(), s, m });
  }

  /** True once a VM runs (false while the image is built or prepared). */
  get vmRunning(): boolean {
    return this.current !== null;
  }

  /** Graceful stop (destroy): SIGTERM the app through the guest init, then kill QEMU after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    if (this.stopRequested) return;
    this.stopRequested = true;
    this.buildAbort.abort();
    const cur = this.current;
    if (!cur) return;
    cur.handle.consoleInput.write(`\x1eUNIK:${cur.nonce}:stop\n`);
    const timer = setTimeout(() => this.vmm.kill(cur.handle), graceMs);
    await cur.handle.exited;
    clearTimeout(timer);
  }

  async run(): Promise<void> {
    const { store, name, operationId } = this.o;
    const d = store.getDeployment(name);
    if (!d) throw new Error(`deployment ${name} vanished before its supervisor started`);
    store.patchDeployment(name, { supervisor: processRef(process.pid) });
    try {
      // first, before any of the tenant's files exist: a node that cannot isolate the tenant fails fast
      if (d.spec.tenant) {
        this.tenant = prepareTenant(d.spec.tenant, this.o.layout, this.dir);
        this.diag(`tenant ${d.spec.tenant.name}: user ${this.tenant.user.name} (uid ${this.tenant.user.uid}), cgroup ${this.tenant.group.procsFiles().join(' ')}`);
      }
      const manifest = await this.prepareImage(d);
      if (this.stopRequested) return;
      if (!store.transition(name, ['pending', 'building'], 'starting')) return;
      await this.boot(d, manifest);
    } catch (e) {
      const err = toUserError(e);
      this.diag(`failed: ${err.code} ${err.message}\n${(e as Error).stack ?? ''}`);
      if (this.stopRequested) return;
      // the code is its own field: readers (deploy --wait, the control plane's runner) never parse it out of the text
      store.transition(name, ['pending', 'building', 'starting', 'running'], 'failed', { code: err.code, reason: err.message, endedAt: Date.now() });
      const op = store.getOperation(operationId);
      if (op && op.state !== 'succeeded') store.updateOperation(operationId, 'failed', { code: err.code, message: err.message });
    } finally {
      this.log.close();
    }
  }

  private async prepareImage(d: Deployment): Promise<ImageManifest> {
    const { store, layout, name } = this.o;
    const imageDir = join(this.dir, 'image');
    const src = d.spec.source;
    const started = Date.now();
    if (src.kind === 'package') {
      readImage(src.dir, { verify: true });
      rmSync(imageDir, { recursive: true, force: true });
      // the deployment keeps its own copy (a rebuild never changes a running VM), a real copy: the trust check
      // below reads the very bytes QEMU opens, and nothing outside the deployment can change them afterwards
      copyImageDir(src.dir, imageDir, { private: true });
    } else {
      store.transition(name, ['pending'], 'building');
      const progress: BuildProgress = {
        step: (m) => this.logLine('build', `==> ${m}`),
        line: (l) => this.logLine('build', l),
        warn: (m) => this.logLine('build', `warning: ${m}`),
      };
      await buildInto({ layout, spec: d.spec, name, imageDir, workDir: join(this.dir, 'work'), copyDir: join(this.dir, 'project'), progress, signal: this.buildAbort.signal, env: this.o.env });
    }
    // right before boot: the private copy against the rule the deploy was admitted under and the digest it accepted
    const trust = d.spec.trust;
    const checked = checkImage(imageDir, trust?.rule ?? OFF_RULE('local'), trust?.manifestSha256 ?? null);
    if (checked.warning) {
      this.logLine('init', `unikctl: warning: the image fails the trust policy (warn mode, booting anyway): ${checked.warning.code}: ${checked.warning.message}`);
      store.addEvent(name, 'trust', `trust policy (warn): ${checked.warning.code}: ${checked.warning.message}`);
    }
    const manifest = readImage(imageDir);
    const image: ImageSummary = {
      dir: imageDir, name: manifest.name, pack: manifest.pack, mode: manifest.mode, sizeBytes: manifest.size,
      kernelBytes: manifest.kernel.size, rootfsBytes: manifest.rootfs.size, rootfsSha256: manifest.rootfs.sha256,
      kernelSha256: manifest.kernel.sha256, ...(src.kind === 'package' && src.ref ? { ref: src.ref } : {}),
      signedBy: checked.verified?.keyid ?? null, builderId: checked.verified?.builderId ?? null,
    };
    store.patchDeployment(name, { image, boot: { ...d.boot, buildMs: src.kind === 'package' ? 0 : Date.now() - started } });
    return manifest;
  }

  private async boot(d: Deployment, manifest: ImageManifest): Promise<void> {
    const { layout, store, name } = this.o;
    const env = this.o.env ?? process.env;
    // a tenant's QEMU opens /dev/kvm as the tenant's user: KVM only where the device's group lets it
    const plan = planAccel(layout, accelRequest(env), this.tenant ? this.tenant.kvm && kvmAccessible() : undefined, env);
    this.vmm.check(plan.accel);
    if (this.tenant && plan.accel === 'kvm' && !this.tenant.kvm) {
      throw new UserError('E_KVM_UNAVAILABLE', `/dev/kvm is not usable by the tenant user ${this.tenant.user.name}`, {
        hint: 'give /dev/kvm to a kvm group (mode 0660; tenant users are added to it), or use UNIKCTL_ACCEL=auto or tcg',
      });
    }
    let outcome = await this.attempt(d, manifest, plan.accel, plan.probeTimeoutMs);
    if (outcome.kind === 'kvm-unusable') {
      recordKvmVerdict(layout, 'hangs');
      this.logLine('init', `unikctl: KVM is unusable here (${outcome.why}); using TCG (software emulation) from now on`);
      store.addEvent(name, 'accel', `KVM unusable (${outcome.why}); fell back to TCG`);
      outcome = await this.attempt(d, manifest, 'tcg', null);
    } else if (plan.probeTimeoutMs !== null && plan.accel === 'kvm') {
      recordKvmVerdict(layout, 'works');
    }
    this.finish(outcome);
  }

  private finish(outcome: Outcome): void {
    const { store, name, operationId } = this.o;
    const endedAt = Date.now();
    const live = ['pending', 'building', 'starting', 'running'] as const;
    if (outcome.kind === 'stopped' || this.stopRequested) return; // destroy owns the record now
    if (outcome.kind === 'exited') {
      // RT-3: an app that ran and exited is `exited` with its code; a non-zero one also carries E_APP_EXITED
      store.transition(name, live, 'exited', { exitCode: outcome.code, endedAt, ...(outcome.code !== 0 ? { code: 'E_APP_EXITED' as const } : {}) });
    } else if (outcome.kind === 'failed') {
      store.transition(name, live, 'failed', { code: outcome.code, reason: outcome.reason, endedAt });
      const op = store.getOperation(operationId);
      if (op && op.state === 'running') store.updateOperation(operationId, 'failed', { code: outcome.code, message: outcome.reason });
    }
  }

  private listenCheck(d: Deployment, manifest: ImageManifest): ListenCheck {
    const { store, name } = this.o;
    const deadlineMs = listenTimeoutMs(this.o.env ?? process.env);
    const ports = d.spec.ports.map((p) => p.guestPort);
    let listeners: Listener[] | null = null;
    let pastDeadline = false;
    let last: ListenStatus | null = null;
    let timer: NodeJS.Timeout | undefined;
    const assess = (at: number): ListenStatus => {
      const next = assessListen({ ports, listeners, pastDeadline, deadlineMs, pack: manifest.pack }, at);
      return last && last.health === next.health ? { ...next, since: last.since } : next;
    };
    const note = (prev: ListenStatus | null, next: ListenStatus, at: number): void => {
      // lines from unikctl, not the app: the `unikctl:` prefix on the init stream, as the KVM fallback's
      if (next.warning && next.warning.message !== prev?.warning?.message) {
        this.log.append({ t: at, s: 'init', m: `unikctl: warning ${next.warning.code}: ${next.warning.message}` });
        this.log.append({ t: at, s: 'init', m: `unikctl: fix: ${next.warning.fix}` });
      } else if (next.health === 'listening' && prev?.warning) {
        this.log.append({ t: at, s: 'init', m: `unikctl: the app now listens on ${(next.listeners ?? []).map(formatListener).join(', ')}: published guest port ${next.ports.join(', ')} reachable` });
      } else if (next.health === 'unknown') {
        this.log.append({ t: at, s: 'init', m: "unikctl: the image's guest init does not report listening sockets (built by an older unikctl): rebuild the image to check its ports" });
      }
      if (next.health !== prev?.health) store.addEvent(name, 'listen', next.warning ? `${next.health}: ${next.warning.code}` : next.health);
    };
    const update = (at: number): void => {
      if (last === null) return; // not started
      const next = assess(at);
      if (sameListen(last, next)) return;
      const prev = last;
      last = next;
      store.patchDeployment(name, { listen: next });
      note(prev, next, at);
    };
    return {
      start: (at) => {
        last = assess(at);
        if (ports.length > 0) {
          timer = setTimeout(() => { pastDeadline = true; update(Date.now()); }, deadlineMs);
          timer.unref();
        }
        note(null, last, at);
        return last;
      },
      report: (l, at) => {
        listeners = l;
        update(at);
      },
      stop: () => clearTimeout(timer),
    };
  }

  /** One boot: spawn the VMM, parse the console, wait for it to end. */
  private async attempt(d: Deployment, manifest: ImageManifest, accel: Accel, probeTimeoutMs: number | null): Promise<Outcome> {
    const { store, name, operationId } = this.o;
    const nonce = randomBytes(8).toString('hex');
    const imageDir = join(this.dir, 'image');
    const debug = d.spec.debug || manifest.mode === 'debug';
    const cmdline = kernelCmdline({
      accel, debug, network: true, env: this.o.env ?? process.env,
      guest: {
        ...guestRun(manifest.run, d.spec), workdir: manifest.run.workdir, nonce,
        hostname: name, hostTimeMs: Date.now(), debug, listenPorts: d.spec.ports.map((p) => p.guestPort),
      },
    });
    const kernel = materializeKernel(imageDir, manifest, this.o.layout.cache);
    this.tenant?.fitMemory(1);
    const spawnedAt = Date.now();
    const handle = this.vmm.start({
      name, accel, cmdline, kernel, rootfs: join(imageDir, manifest.rootfs.file),
      memoryMiB: d.spec.memoryMiB ?? manifest.run.memoryMiB, cpus: d.spec.cpus, ports: d.spec.ports,
      ...(this.tenant ? { isolation: this.tenant.isolation() } : {}),
    });
    this.current = { handle, nonce };
    store.patchDeployment(name, { vmm: processRef(handle.pid), accel });
    this.diag(`qemu pid ${handle.pid} (${accel}) started`);
    if (this.tenant) {
      // the new QEMU counts once it is in the group; the count is then checked again (VMs of the tenant start elsewhere too)
      await this.tenant.joined(handle.pid);
      this.tenant.fitMemory(0);
    }

    let started = false;
    let firstOutput = false;
    const listen = this.listenCheck(d, manifest);
    let exitEvent: ConsoleEvent | null = null;
    let initError: string | null = null;
    const kernelTail: string[] = [];
    let qemuStderr = '';
    handle.stderr.setEncoding('utf8').on('data', (c: string) => { qemuStderr = (qemuStderr + c).slice(-4000); });

    const parser = new ConsoleParser(nonce, {
      line: (l, at) => {
        if (l.stream === 'kernel') {
          kernelTail.push(l.text);
          if (kernelTail.length > 20) kernelTail.shift();
        }
        this.log.append({ t: at, s: l.stream, m: l.text });
        if (l.stream === 'app' && started && !firstOutput) {
          firstOutput = true;
          const cur = store.getDeployment(name);
          store.patchDeployment(name, { boot: { ...(cur?.boot ?? {}), deployToFirstOutputMs: at - d.createdAt, vmmStartToFirstOutputMs: at - spawnedAt } });
        }
      },
      event: (e, at) => {
        if (e.event === 'start') {
          started = true;
          const cur = store.getDeployment(name);
          const boot = { ...(cur?.boot ?? {}), vmmStartToAppStartMs: at - spawnedAt, guestUptimeAtAppStartMs: Number(e.fields.uptime_ms ?? NaN) };
          store.transition(name, ['starting'], 'running', { startedAt: at, boot, listen: listen.start(at) });
          const op = store.getOperation(operationId);
          if (op && op.state === 'running') store.updateOperation(operationId, 'succeeded');
        } else if (e.event === 'listen') {
          listen.report(parseListeners(e.fields.addrs ?? ''), at);
        } else if (e.event === 'exit') {
          exitEvent = e;
        } else if (e.event === 'error') {
          initError = e.message;
          this.log.append({ t: at, s: 'init', m: `unik-init: ${e.message}` });
        } else if (e.event === 'warn') {
          this.log.append({ t: at, s: 'init', m: `unik-init: ${e.message}` });
        }
      },
    });
    handle.console.on('data', (c: Buffer) => parser.push(c));
    const consoleEnded = finished(handle.console).catch(() => undefined); // an error or early close ends it too

    let timedOut = false;
    const bootTimeoutMs = probeTimeoutMs ?? envMs(this.o.env ?? process.env, 'UNIKCTL_BOOT_TIMEOUT_MS', 120_000);
    const bootTimer = setTimeout(() => {
      if (started) return;
      timedOut = true;
      this.vmm.kill(handle);
    }, bootTimeoutMs);

    const result = await handle.exited;
    clearTimeout(bootTimer);
    listen.stop();
    // QEMU's exit can be seen before the console pipe is read to its end, and the guest's last lines (the app's exit
    // report among them) may still be in it: under load a fixed 20 ms was not enough, and a VM whose app exited 0
    // was failed E_GUEST_CRASHED. Read to the pipe's end; the bound is for a pipe something else still holds open.
    await Promise.race([consoleEnded, sleep(CONSOLE_DRAIN_MAX_MS)]);
    parser.flush();
    parser.close();
    this.current = null;
    this.diag(`qemu exited code=${result.code} signal=${result.signal}`);
    try {
      this.tenant?.fitMemory(0); // one VM fewer in the tenant's group
    } catch (e) {
      this.diag(`tenant memory limit not lowered: ${(e as Error).message}`);
    }

    if (this.stopRequested) return { kind: 'stopped' };
    if (probeTimeoutMs !== null && !started) {
      // an unproven KVM that hangs or crashes QEMU before the app starts: retry under TCG
      const why = timedOut ? `no app start within ${probeTimeoutMs} ms` : `QEMU exited early: ${qemuStderr.trim().split('\n').at(-1) ?? result.code}`;
      return { kind: 'kvm-unusable', why };
    }
    if (timedOut) return { kind: 'failed', code: 'E_BOOT_TIMEOUT', reason: `the app did not start within ${bootTimeoutMs} ms${kernelTail.length ? ` (kernel: ${kernelTail.at(-1)})` : ''}` };
    const ev = exitEvent as ConsoleEvent | null;
    if (ev?.fields.code !== undefined) return { kind: 'exited', code: Number(ev.fields.code) };
    if (ev?.fields.signal !== undefined) {
      const sig = Number(ev.fields.signal);
      return { kind: 'failed', code: 'E_APP_CRASHED', reason: `the app was killed by signal ${sig}${SIGNAL_NAMES[sig] ? ` (${SIGNAL_NAMES[sig]})` : ''}` };
    }
    if (initError) return { kind: 'failed', code: 'E_APP_START_FAILED', reason: `guest init: ${initError}` };
    const panic = kernelTail.find((l) => /Kernel panic|BUG:|Oops|general protection/.test(l));
    if (panic) return { kind: 'failed', code: 'E_GUEST_CRASHED', reason: `guest kernel crashed: ${panic.replace(/^\[\s*[\d.]+\]\s*/, '')}` };
    if (result.code !== 0 || result.signal) {
      const msg = qemuStderr.trim().split('\n').slice(-3).join(' ');
      return { kind: 'failed', code: 'E_QEMU_FAILED', reason: `QEMU exited (${result.signal ?? `code ${result.code}`})${msg ? `: ${msg}` : ''}` };
    }
    return { kind: 'failed', code: started ? 'E_GUEST_CRASHED' : 'E_QEMU_FAILED', reason: started ? 'the guest reset or powered off without reporting the app exit (guest crash)' : 'the VM stopped before the app started' };
  }
}

/** The listener check of one boot (see listen.ts): the app's health in the store, and unikctl's own lines in its log. */
interface ListenCheck {
  /** the app started: the first assessment (stored with the `running` transition) and the deadline timer */
  start(at: number): ListenStatus;
  /** the guest init reported what the app listens on */
  report(listeners: Listener[], at: number): void;
  stop(): void;
}

export function describeMissingDeployment(name: string): UserError {
  return new UserError('E_UNKNOWN_APP', `no deployment named "${name}"`, { hint: 'see the deployments with unikctl status' });
}

export const supervisorExists = (layout: HomeLayout, name: string): boolean => existsSync(deploymentDir(layout, name));
