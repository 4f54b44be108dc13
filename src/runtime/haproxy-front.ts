import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import type { FrontRecord } from '../store/service-types.js';
import { which } from '../util/exec.js';
import { isAlive, processStartTime, signalRef, sleep, waitUntilDead, type ProcessRef } from '../util/proc.js';
import type { Front, FrontDriver, FrontPort, FrontRequest, SlotCounters, SlotState, SlotTarget } from './front.js';

/**
 * The traffic front as one HAProxy process (Debian's haproxy 2.6) per service, driven through its runtime API
 * (docs/services.md, "The traffic front"). The configuration is written once at start and never reloaded: every
 * change a rollout makes — which replica a slot points at, its state, its weight — is a runtime command on the admin
 * socket, so connections in flight are never cut by a reload. Per published port: a frontend `f<hostPort>` and a
 * backend `b<hostPort>` whose servers `r1..r<slots>` are the slots (the same slot number in every backend).
 */

const HAPROXY = 'haproxy';
/** the marker that tells our request lines from HAProxy's own messages (server up/down…) on the log socket */
const LOG_TAG = 'unikf';
/** sun_path holds 108 bytes with its NUL: a longer admin socket path cannot be bound by HAProxy */
const MAX_SOCKET_PATH = 107;
const READY_TIMEOUT_MS = 10_000;
const ADMIN_TIMEOUT_MS = 5_000;
const STOP_GRACE_MS = 5_000;
const MAX_WEIGHT = 256; // HAProxy's bound for an absolute server weight
const MAX_CONN = 20_000;

/**
 * The connections one front may hold: HAProxy needs two descriptors per proxied connection and refuses to start
 * when it cannot raise its fd limit that far, so the bound follows the hard limit it inherits from us.
 */
export function maxConnections(limits = readText('/proc/self/limits')): number {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  const hard = m?.[2] === 'unlimited' ? Infinity : Number(m?.[2]);
  if (!Number.isFinite(hard)) return MAX_CONN;
  return Math.max(64, Math.min(MAX_CONN, Math.floor((hard - 200) / 2)));
}

const readText = (file: string): string => {
  try { return readFileSync(file, 'utf8'); } catch { return ''; }
};

const backendName = (p: FrontPort): string => `b${p.hostPort}`;
const serverName = (slot: number): string => `r${slot}`;

/** The configuration of a front; `logPort` is the UDP port on 127.0.0.1 its request lines are sent to. */
export function haproxyConfig(opts: { dir: string; ports: FrontPort[]; slots: number; logPort: number; maxconn?: number }): string {
  const lines = [
    '# written by unikctl (src/runtime/haproxy-front.ts); changed at run time through admin.sock, never reloaded',
    'global',
    // no master process (-W is not given): the front is this one process, whose pid and start time the service
    // record keeps; expose-fd listeners lets a later version hand the listening sockets over without a gap
    `  stats socket ${join(opts.dir, 'admin.sock')} mode 600 level admin expose-fd listeners`,
    '  stats timeout 30s',
    // format raw: only the log-format text in each datagram (no syslog header to strip)
    `  log 127.0.0.1:${opts.logPort} len 1024 format raw local0 info`,
    // an explicit bound: without it HAProxy derives one from the fd limit, which can reserve far more memory
    `  maxconn ${opts.maxconn ?? MAX_CONN}`,
    '',
    'defaults',
    '  log global',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    '  timeout http-request 10s',
    '  timeout http-keep-alive 60s',
    '  timeout client-fin 5s',
    '  timeout server-fin 5s',
  ];
  for (const p of opts.ports) {
    const be = backendName(p);
    lines.push('', `frontend f${p.hostPort}`, `  bind ${p.hostAddress}:${p.hostPort}`, `  mode ${p.mode}`);
    if (p.mode === 'http') {
      // Ta: the request's active time (excludes the idle time of a kept-alive connection); B: bytes to the client
      lines.push('  option http-keep-alive', `  log-format "${LOG_TAG} %b %s %ST %Ta %B %U %ts"`);
    } else {
      lines.push(`  log-format "${LOG_TAG} %b %s - %Tt %B %U %ts"`);
    }
    lines.push(`  default_backend ${be}`, '', `backend ${be}`, `  mode ${p.mode}`);
    if (p.mode === 'http') {
      lines.push(
        // per request, not per connection: a kept-alive client moves off a drained replica at its next request
        '  balance roundrobin',
        '  option http-keep-alive',
        '  http-reuse safe',
        '  option forwardfor',
        // a replica that went away between two requests: QEMU's forward accepts the connection and then closes it
        // (empty response), so that is retried too — but only for methods that are safe to send twice; a POST is
        // retried only when its connection failed (it was never sent)
        '  retries 3',
        '  option redispatch 1',
        '  retry-on conn-failure empty-response response-timeout',
        '  http-request disable-l7-retry unless METH_GET || METH_OPTIONS',
      );
    } else {
      lines.push('  balance leastconn', '  retries 3', '  option redispatch 1');
    }
    // the slots: parked on a dead address in maintenance until the controller points them at replicas
    lines.push(`  server-template r 1-${opts.slots} 127.0.0.1:1 disabled weight 1`);
  }
  return `${lines.join('\n')}\n`;
}

/** One request line of the log socket (see the log-format above), or null for anything else HAProxy logs. */
export function parseLogLine(line: string): FrontRequest | null {
  const f = line.trim().split(' ');
  if (f[0] !== LOG_TAG || f.length < 7) return null;
  const [, be = '', srv = '', st = '', time = '', bytesOut = ''] = f;
  const port = /^b(\d+)$/.exec(be);
  if (!port) return null;
  const slot = /^r(\d+)$/.exec(srv);
  return {
    slot: slot ? Number(slot[1]) : null, // <NOSRV>: no slot could take it (503, or a client that left first)
    port: Number(port[1]),
    status: st === '-' ? 0 : Number(st), // a TCP port has no status
    totalMs: Number(time),
    bytesOut: Number(bytesOut),
  };
}

const num = (s: string | undefined): number => (s === undefined || s === '' ? 0 : Number(s) || 0);

/** `show stat` CSV → counters per slot, summed over the backends of `ports`. */
export function parseStat(csv: string, ports: FrontPort[]): Map<number, SlotCounters> {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = lines.shift();
  if (!header?.startsWith('# ')) throw new Error(`unexpected answer to show stat: ${csv.slice(0, 200)}`);
  const col = new Map(header.slice(2).split(',').map((name, i) => [name, i]));
  const mode = new Map(ports.map((p) => [backendName(p), p.mode]));
  const out = new Map<number, SlotCounters>();
  for (const line of lines) {
    const v = line.split(',');
    const get = (name: string): number => num(v[col.get(name) ?? -1]);
    const m = mode.get(v[0] ?? '');
    const slot = /^r(\d+)$/.exec(v[1] ?? '');
    if (!m || !slot) continue;
    const n = Number(slot[1]);
    const c = out.get(n) ?? { connections: 0, requests: 0, bytesIn: 0, bytesOut: 0, errors: 0, active: 0 };
    c.connections += get('stot');
    c.requests += m === 'http' ? get('req_tot') : get('stot');
    c.bytesIn += get('bin');
    c.bytesOut += get('bout');
    c.errors += get('eresp') + get('econ') + (m === 'http' ? get('hrsp_5xx') : 0);
    c.active += get('scur');
    out.set(n, c);
  }
  return out;
}

/**
 * One command on the admin socket: HAProxy answers and closes (non-interactive mode), so a connection per command
 * keeps no state to get out of step; the answer is everything read until the close.
 */
export function adminCommand(socket: string, command: string, timeoutMs = ADMIN_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = net.connect({ path: socket });
    let answer = '';
    const timer = setTimeout(() => conn.destroy(new Error(`HAProxy did not answer "${command}" within ${timeoutMs} ms`)), timeoutMs);
    conn.setEncoding('utf8');
    conn.on('data', (c: string) => { answer += c; });
    conn.on('end', () => { clearTimeout(timer); resolve(answer); });
    conn.on('error', (e) => { clearTimeout(timer); reject(e); });
    conn.end(`${command}\n`);
  });
}

/** The answer of a `set server` command that did what was asked (anything else is HAProxy saying why not). */
const setOk = (answer: string): boolean => {
  const a = answer.trim();
  return a === '' || /changed from|no need to change/.test(a);
};

function checkSlot(slot: number, slots: number): void {
  if (!Number.isInteger(slot) || slot < 1 || slot > slots) throw new Error(`front: slot ${slot} is not one of 1..${slots}`);
}

function checkWeight(weight: number): void {
  if (!Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) throw new Error(`front: weight ${weight} is not an integer in 0..${MAX_WEIGHT}`);
}

/** Binds the log socket; rejects (EADDRINUSE…) instead of emitting an error later. */
function bindLogSocket(port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const fail = (e: Error): void => { sock.close(); reject(e); };
    sock.once('error', fail);
    sock.bind(port, '127.0.0.1', () => {
      sock.off('error', fail);
      sock.unref(); // the log socket alone must not keep a controller's event loop alive
      resolve(sock);
    });
  });
}

class HaproxyFront implements Front {
  private readonly listeners: Array<(r: FrontRequest) => void> = [];
  /** admin commands run one after another: a rollout's steps must reach HAProxy in the order they were decided */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly record: FrontRecord,
    private readonly ports: FrontPort[],
    private readonly slots: number,
    private log: dgram.Socket | null,
    readonly warning: string | null,
  ) {
    this.log?.on('message', (msg) => this.ingest(msg));
    // a bad datagram or a socket error must not crash the controller: the log is for figures only
    this.log?.on('error', () => {});
  }

  private ingest(msg: Buffer): void {
    for (const line of msg.toString('utf8').split('\n')) {
      const r = parseLogLine(line);
      if (!r) continue;
      for (const l of this.listeners) {
        try { l(r); } catch { /* a listener's failure is its own */ }
      }
    }
  }

  private command(cmd: string): Promise<string> {
    const next = this.chain.then(() => adminCommand(this.record.control, cmd));
    this.chain = next.catch(() => {});
    return next;
  }

  private async set(slot: number, what: string): Promise<void> {
    for (const p of this.ports) {
      const cmd = `set server ${backendName(p)}/${serverName(slot)} ${what}`;
      const answer = await this.command(cmd);
      if (!setOk(answer)) throw new Error(`front: HAProxy refused "${cmd}": ${answer.trim()}`);
    }
  }

  async setTarget(slot: number, target: SlotTarget | null): Promise<void> {
    checkSlot(slot, this.slots);
    if (target) {
      checkWeight(target.weight);
      for (const p of this.ports) {
        if (target.ports[p.guestPort] === undefined) throw new Error(`front: the target of slot ${slot} has no forward for guest port ${p.guestPort}`);
      }
    }
    // out of rotation first, on every port, before the address changes under it
    await this.set(slot, 'state maint');
    if (!target) return;
    for (const p of this.ports) {
      const cmd = `set server ${backendName(p)}/${serverName(slot)} addr ${target.address} port ${target.ports[p.guestPort]}`;
      const answer = await this.command(cmd);
      if (!setOk(answer)) throw new Error(`front: HAProxy refused "${cmd}": ${answer.trim()}`);
    }
    await this.set(slot, `weight ${target.weight}`);
  }

  async setState(slot: number, state: SlotState): Promise<void> {
    checkSlot(slot, this.slots);
    await this.set(slot, `state ${state}`);
  }

  async setWeight(slot: number, weight: number): Promise<void> {
    checkSlot(slot, this.slots);
    checkWeight(weight);
    await this.set(slot, `weight ${weight}`);
  }

  async counters(): Promise<Map<number, SlotCounters>> {
    // -1 4 -1: every proxy, servers only
    return parseStat(await this.command('show stat -1 4 -1'), this.ports);
  }

  onRequest(listener: (r: FrontRequest) => void): void {
    this.listeners.push(listener);
  }

  async stop(): Promise<void> {
    await this.detach();
    const ref: ProcessRef = { pid: this.record.pid, startTime: String(this.record.startTime) };
    // SIGTERM is HAProxy's hard stop: listeners and connections close at once (a service being removed)
    signalRef(ref, 'SIGTERM');
    if (!(await waitUntilDead(ref, STOP_GRACE_MS))) {
      signalRef(ref, 'SIGKILL');
      await waitUntilDead(ref, STOP_GRACE_MS);
    }
    rmSync(this.record.control, { force: true });
  }

  async detach(): Promise<void> {
    const log = this.log;
    this.log = null;
    if (log) await new Promise<void>((r) => log.close(() => r()));
  }
}

/** What HAProxy's output says about a start that failed, as the error to report. */
function startFailure(output: string, ports: FrontPort[]): UserError {
  // [ALERT] … Binding [haproxy.cfg:12] for frontend f8080: cannot bind socket (Address already in use) for [0.0.0.0:8080]
  const bind = /cannot bind socket \(([^)]*)\) for \[([^\]]*):(\d+)\]/.exec(output);
  if (bind) {
    const [, why = '', addr = '', port = ''] = bind;
    if (/in use/i.test(why)) {
      return new UserError('E_PORT_IN_USE', `host port ${port} (${addr}) is already in use`, {
        hint: `free port ${port} or publish the service on another host port`, details: { port: Number(port) },
      });
    }
    return new UserError('E_INVALID_PORT', `the front cannot listen on ${addr}:${port}: ${why}`, {
      hint: /permission/i.test(why) ? 'ports below 1024 need root' : 'check the host address and port', details: { port: Number(port) },
    });
  }
  const alerts = output.split('\n').filter((l) => l.includes('[ALERT]')).join('\n');
  return new UserError('E_FRONT_UNAVAILABLE', `HAProxy did not start the front of ports ${ports.map((p) => p.hostPort).join(', ')}: ${alerts || output.trim().slice(-500) || 'no output'}`, {
    hint: 'see haproxy.log next to haproxy.cfg in the front\'s directory',
  });
}


function validate(opts: { dir: string; ports: FrontPort[]; slots: number }): void {
  if (!Number.isInteger(opts.slots) || opts.slots < 1) throw new Error(`front: slots must be a positive integer, got ${opts.slots}`);
  if (opts.ports.length === 0) throw new Error('front: no port to publish');
  const seen = new Set<number>();
  for (const p of opts.ports) {
    if (seen.has(p.hostPort)) throw new Error(`front: host port ${p.hostPort} is listed twice`);
    seen.add(p.hostPort);
  }
  const control = join(opts.dir, 'admin.sock');
  if (Buffer.byteLength(control) > MAX_SOCKET_PATH) {
    throw new UserError('E_FRONT_UNAVAILABLE', `the front's admin socket path is ${Buffer.byteLength(control)} bytes, more than a unix socket path can hold (${MAX_SOCKET_PATH}): ${control}`, {
      hint: 'use a shorter UNIKCTL_HOME',
    });
  }
}

async function start(opts: { dir: string; ports: FrontPort[]; slots: number }): Promise<Front> {
  validate(opts);
  if (which(HAPROXY) === null) {
    throw new UserError('E_FRONT_UNAVAILABLE', 'HAProxy is not installed: services need it for their traffic front', {
      hint: 'install it with apt-get install haproxy (or run make setup)',
    });
  }
  mkdirSync(opts.dir, { recursive: true });
  const control = join(opts.dir, 'admin.sock');
  const cfg = join(opts.dir, 'haproxy.cfg');
  const outFile = join(opts.dir, 'haproxy.log');
  const log = await bindLogSocket(0);
  const logPort = (log.address()).port;
  let child: ChildProcess | null = null;
  try {
    writeFileSync(cfg, haproxyConfig({ ...opts, logPort, maxconn: maxConnections() }));
    rmSync(control, { force: true }); // a stale socket of an earlier front must not answer for this one
    writeFileSync(outFile, '');
    const out = openSync(outFile, 'a');
    try {
      // detached: its own session and process group, so the controller's death (or a Ctrl-C to its group) leaves
      // the traffic flowing; HAProxy stays in the foreground (no -D), so this pid is the proxy itself
      child = spawn(HAPROXY, ['-f', cfg], { detached: true, stdio: ['ignore', out, out] });
    } finally {
      closeSync(out);
    }
    const proc = child;
    let exited = false;
    let spawnError: Error | null = null;
    proc.on('exit', () => { exited = true; });
    proc.on('error', (e) => { spawnError = e; exited = true; });
    proc.unref();
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (spawnError) throw new UserError('E_FRONT_UNAVAILABLE', `HAProxy could not be started: ${(spawnError as Error).message}`, { hint: 'install it with apt-get install haproxy (or run make setup)' });
      if (exited) throw startFailure(readText(outFile), opts.ports);
      try {
        if ((await adminCommand(control, 'show info', 1000)).includes('Name: HAProxy')) break;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) throw new UserError('E_FRONT_UNAVAILABLE', `HAProxy did not answer on ${control} within ${READY_TIMEOUT_MS / 1000} s`, { hint: `see ${outFile}` });
      await sleep(25);
    }
    const pid = proc.pid as number;
    const startTime = processStartTime(pid);
    if (startTime === null) throw startFailure(readText(outFile), opts.ports);
    const record: FrontRecord = { pid, startTime: Number(startTime), control, logPort, slots: {} };
    return new HaproxyFront(record, opts.ports, opts.slots, log, null);
  } catch (e) {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    log.close();
    throw e;
  }
}

async function adopt(record: FrontRecord, opts: { dir: string; ports: FrontPort[]; slots: number }): Promise<Front | null> {
  validate(opts);
  if (!isAlive({ pid: record.pid, startTime: String(record.startTime) })) return null;
  try {
    // the pid is the one recorded, and the socket is that process's (not a stale file answered by another front)
    const info = await adminCommand(record.control, 'show info', 2000);
    if (!new RegExp(`^Pid: ${record.pid}$`, 'm').test(info)) return null;
  } catch {
    return null;
  }
  let log: dgram.Socket | null = null;
  let warning: string | null = null;
  try {
    log = await bindLogSocket(record.logPort);
  } catch (e) {
    // the proxy keeps serving; only the request figures are lost until the front is restarted
    warning = `the front's log port 127.0.0.1:${record.logPort} cannot be bound again (${(e as Error).message}): its request log is lost until the front restarts`;
  }
  return new HaproxyFront(record, opts.ports, opts.slots, log, warning);
}

export const haproxyFront: FrontDriver = { name: 'haproxy', start, adopt };
