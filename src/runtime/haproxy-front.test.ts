import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isUserError } from '../errors.js';
import { which } from '../util/exec.js';
import { isAlive, sleep } from '../util/proc.js';
import type { Front, FrontPort, FrontRequest } from './front.js';
import { haproxyConfig, haproxyFront, maxConnections, parseLogLine, parseStat } from './haproxy-front.js';

const hasHaproxy = which('haproxy') !== null;
if (!hasHaproxy) process.stdout.write('haproxy-front.test: haproxy is not installed (apt-get install haproxy, or make setup): the real-proxy tests are skipped\n');

describe('the HAProxy front: configuration and parsing', () => {
  const ports: FrontPort[] = [{ hostAddress: '0.0.0.0', hostPort: 8080, guestPort: 80, mode: 'http' }, { hostAddress: '127.0.0.1', hostPort: 5432, guestPort: 5432, mode: 'tcp' }];

  it('writes one frontend and one backend of slot servers per port, balanced per request on HTTP and by connections on TCP', () => {
    const cfg = haproxyConfig({ dir: '/run/f', ports, slots: 4, logPort: 5140 });
    expect(cfg).toContain('stats socket /run/f/admin.sock mode 600 level admin expose-fd listeners');
    expect(cfg).toContain('log 127.0.0.1:5140 len 1024 format raw local0 info');
    expect(cfg).toMatch(/frontend f8080\n {2}bind 0\.0\.0\.0:8080\n {2}mode http/);
    expect(cfg).toMatch(/backend b8080\n {2}mode http\n {2}balance roundrobin/);
    expect(cfg).toMatch(/backend b5432\n {2}mode tcp\n {2}balance leastconn/);
    expect(cfg.match(/server-template r 1-4 127\.0\.0\.1:1 disabled/g)).toHaveLength(2);
    // L7 retries (a request sent twice) only for the methods where that is harmless
    expect(cfg).toContain('http-request disable-l7-retry unless METH_GET || METH_OPTIONS');
    expect(cfg).not.toMatch(/^\s*(master-worker|daemon)/m);
  });

  it('bounds the connections by the fd hard limit HAProxy inherits (two descriptors per connection)', () => {
    expect(maxConnections('Max open files            1024                 524288               files')).toBe(20_000);
    expect(maxConnections('Max open files            20000                20000                files')).toBe(9900);
    expect(maxConnections('Max open files            unlimited            unlimited            files')).toBe(20_000);
    expect(maxConnections('')).toBe(20_000);
  });

  it('reads request lines of the log socket and ignores HAProxy\'s own messages', () => {
    expect(parseLogLine('unikf b8080 r2 200 3 103 138 --\n')).toEqual({ slot: 2, port: 8080, status: 200, totalMs: 3, bytesOut: 103 });
    expect(parseLogLine('unikf b5432 r1 - 812 7 0 --')).toEqual({ slot: 1, port: 5432, status: 0, totalMs: 812, bytesOut: 7 });
    expect(parseLogLine('unikf b8080 <NOSRV> 503 0 217 80 SC')).toMatchObject({ slot: null, status: 503 });
    expect(parseLogLine('Server b8080/r1 is UP/READY (leaving forced maintenance).')).toBeNull();
  });

  it('sums show stat per slot over the backends (requests: req_tot on HTTP, sessions on TCP)', () => {
    const head = '# pxname,svname,scur,stot,bin,bout,econ,eresp,hrsp_5xx,req_tot,';
    const csv = [head, 'b8080,r1,1,4,100,200,0,1,2,9,', 'b8080,r2,0,0,0,0,0,0,0,0,', 'b5432,r1,2,3,10,20,1,0,,,', 'other,r1,9,9,9,9,9,9,9,9,', ''].join('\n');
    const c = parseStat(csv, ports);
    expect(c.get(1)).toEqual({ connections: 7, requests: 12, bytesIn: 110, bytesOut: 220, errors: 4, active: 3 });
    expect(c.get(2)).toEqual({ connections: 0, requests: 0, bytesIn: 0, bytesOut: 0, errors: 0, active: 0 });
  });
});

/** A replica stand-in: answers its name after `delayMs`, counts its requests. */
interface Backend { name: string; port: number; hits: number; server: http.Server }
async function backend(name: string, delayMs = 0): Promise<Backend> {
  const b: Backend = { name, port: 0, hits: 0, server: http.createServer() };
  b.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    b.hits++;
    req.resume();
    setTimeout(() => res.end(name), delayMs);
  });
  // longer than any test: the server closing an idle kept-alive connection is not what is tested here
  b.server.keepAliveTimeout = 120_000;
  await new Promise<void>((r) => b.server.listen(0, '127.0.0.1', r));
  b.port = (b.server.address() as net.AddressInfo).port;
  return b;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** One GET on `agent`; resolves the body or an error text (never rejects: the tests count failures). */
function get(agent: http.Agent, port: number): Promise<{ ok: boolean; body: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ ok: res.statusCode === 200, body: res.statusCode === 200 ? body : `HTTP ${res.statusCode}: ${body}` }));
      res.on('error', (e) => resolve({ ok: false, body: e.message }));
    });
    req.on('error', (e) => resolve({ ok: false, body: e.message }));
  });
}

/** `concurrency` keep-alive clients sending requests one after another until stopped; counts answers per body. */
function clientLoop(port: number, concurrency: number): { stop: () => Promise<{ ok: number; failed: string[]; by: Record<string, number> }> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let running = true;
  const result = { ok: 0, failed: [] as string[], by: {} as Record<string, number> };
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      const r = await get(agent, port);
      if (r.ok) { result.ok++; result.by[r.body] = (result.by[r.body] ?? 0) + 1; } else result.failed.push(r.body);
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return result;
    },
  };
}

describe.skipIf(!hasHaproxy)('the HAProxy front: a real proxy in front of real HTTP servers', () => {
  const GUEST = 8080;
  let dir = '';
  let fronts: Front[] = [];
  const servers: http.Server[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'unik-front-'));
    return () => rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const f of fronts.splice(0)) await f.stop();
    for (const s of servers.splice(0)) { s.closeAllConnections(); s.close(); }
  });

  /** a front of one HTTP port with `slots` slots, each pointed at a fresh backend and ready */
  async function setup(n: number, opts: { slots?: number; delayMs?: number; tcp?: boolean } = {}) {
    const hostPort = await freePort();
    const ports: FrontPort[] = [{ hostAddress: '127.0.0.1', hostPort, guestPort: GUEST, mode: 'http' }];
    if (opts.tcp) ports.push({ hostAddress: '127.0.0.1', hostPort: await freePort(), guestPort: 9000, mode: 'tcp' });
    const fdir = mkdtempSync(join(dir, 'f'));
    const front = await haproxyFront.start({ dir: fdir, ports, slots: opts.slots ?? n });
    fronts.push(front);
    const backends: Backend[] = [];
    for (let slot = 1; slot <= n; slot++) {
      const b = await backend(`b${slot}`, opts.delayMs);
      servers.push(b.server);
      backends.push(b);
      await front.setTarget(slot, { address: '127.0.0.1', ports: { [GUEST]: b.port, 9000: b.port }, weight: 1 });
      await front.setState(slot, 'ready');
    }
    return { front, hostPort, ports, fdir, backends };
  }

  it('spreads the requests of one kept-alive connection over two ready slots, one by one', async () => {
    const { hostPort, backends } = await setup(2);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const bodies: string[] = [];
    for (let i = 0; i < 20; i++) bodies.push((await get(agent, hostPort)).body);
    agent.destroy();
    expect(bodies.filter((b) => b === 'b1')).toHaveLength(10);
    expect(bodies.filter((b) => b === 'b2')).toHaveLength(10);
    expect(backends.map((b) => b.hits)).toEqual([10, 10]);
  });

  it('runs detached: its own process group and session, not ours', async () => {
    const { front } = await setup(1);
    const stat = readFileSync(`/proc/${front.record.pid}/stat`, 'utf8');
    const [pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ').slice(2, 4).map(Number);
    expect(pgrp).toBe(front.record.pid);
    expect(session).toBe(front.record.pid);
  });

  it('drain: a kept-alive client gets no new request on the drained slot, and no error', async () => {
    const { front, hostPort, backends } = await setup(2, { delayMs: 2 });
    const loop = clientLoop(hostPort, 1);
    await sleep(300);
    await front.setState(2, 'drain');
    await sleep(50); // a request on b2 when the command arrived ends meanwhile
    const b2 = backends[1]?.hits;
    const b1 = backends[0]?.hits ?? 0;
    await sleep(400);
    const r = await loop.stop();
    expect(r.failed).toEqual([]);
    expect(backends[1]?.hits).toBe(b2);
    expect((backends[0]?.hits ?? 0) - b1).toBeGreaterThan(10);
  });

  it('maint of a slot under 8 concurrent kept-alive clients: no request fails, requests in flight end', async () => {
    const { front, hostPort, backends } = await setup(2, { delayMs: 5 });
    const loop = clientLoop(hostPort, 8);
    await sleep(400);
    await front.setState(1, 'maint');
    await sleep(100);
    const b1 = backends[0]?.hits;
    await sleep(400);
    await front.setState(1, 'ready');
    await front.setState(2, 'maint');
    await sleep(400);
    const r = await loop.stop();
    expect(r.failed).toEqual([]);
    expect(r.ok).toBeGreaterThan(100);
    expect(backends[0]?.hits).toBeGreaterThan(b1 ?? 0); // back in rotation
    expect(r.by.b1).toBeGreaterThan(0);
    expect(r.by.b2).toBeGreaterThan(0);
  });

  it('weights shift the traffic: 0 takes none, 3:1 splits three to one', async () => {
    const { front, hostPort } = await setup(2);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const count = async (n: number): Promise<Record<string, number>> => {
      const by: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const r = await get(agent, hostPort);
        expect(r.ok, r.body).toBe(true);
        by[r.body] = (by[r.body] ?? 0) + 1;
      }
      return by;
    };
    await front.setWeight(1, 0);
    expect(await count(12)).toEqual({ b2: 12 });
    await front.setWeight(1, 3);
    await front.setWeight(2, 1);
    expect(await count(40)).toEqual({ b1: 30, b2: 10 });
    await front.setWeight(2, 0);
    expect(await count(8)).toEqual({ b1: 8 });
    agent.destroy();
    await expect(front.setWeight(1, 257)).rejects.toThrow(/0\.\.256/);
    await expect(front.setState(3, 'ready')).rejects.toThrow(/slot 3/);
  });

  it('counts per slot and reports each request (slot, port, status, latency) on HTTP and TCP ports', async () => {
    const { front, hostPort, ports, backends } = await setup(2, { tcp: true });
    const seen: FrontRequest[] = [];
    front.onRequest((r) => seen.push(r));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 6; i++) expect((await get(agent, hostPort)).ok).toBe(true);
    agent.destroy();
    // the TCP port: one connection carrying one HTTP request to the same servers
    const tcpPort = (ports[1] as FrontPort).hostPort;
    const tcpAgent = new http.Agent({ keepAlive: false });
    expect((await get(tcpAgent, tcpPort)).ok).toBe(true);
    for (let i = 0; i < 40 && seen.length < 7; i++) await sleep(25);
    const httpSeen = seen.filter((r) => r.port === hostPort);
    expect(httpSeen).toHaveLength(6);
    for (const r of httpSeen) {
      expect(r.status).toBe(200);
      expect(r.totalMs).toBeGreaterThanOrEqual(0);
      expect(r.bytesOut).toBeGreaterThan(0);
    }
    expect(httpSeen.map((r) => r.slot).sort()).toEqual([1, 1, 1, 2, 2, 2]);
    expect(seen.filter((r) => r.port === tcpPort)).toEqual([expect.objectContaining({ status: 0, slot: expect.any(Number) as number })]);
    const c = await front.counters();
    expect((c.get(1)?.requests ?? 0) + (c.get(2)?.requests ?? 0)).toBe(7);
    expect((c.get(1)?.connections ?? 0) + (c.get(2)?.connections ?? 0)).toBeGreaterThanOrEqual(3); // kept alive: ≤ 1 per slot + the TCP one
    expect(c.get(1)?.errors).toBe(0);
    expect((c.get(1)?.bytesOut ?? 0) + (c.get(2)?.bytesOut ?? 0)).toBeGreaterThan(0);
    expect(backends[0]!.hits + backends[1]!.hits).toBe(7);
  });

  it('adopt: after the controller side is dropped, a new object drives the same running proxy', async () => {
    const { front, hostPort, ports, fdir, backends } = await setup(2);
    const loop = clientLoop(hostPort, 2);
    await sleep(200);
    await front.detach();
    fronts = fronts.filter((f) => f !== front);
    expect(isAlive({ pid: front.record.pid, startTime: String(front.record.startTime) })).toBe(true);
    const adopted = await haproxyFront.adopt(front.record, { dir: fdir, ports, slots: 2 });
    expect(adopted).not.toBeNull();
    const again = adopted as Front;
    fronts.push(again);
    expect(again.warning).toBeNull();
    const seen: FrontRequest[] = [];
    again.onRequest((r) => seen.push(r));
    await again.setState(1, 'maint');
    await sleep(100);
    const b1 = backends[0]?.hits;
    await sleep(300);
    const r = await loop.stop();
    expect(r.failed).toEqual([]);
    expect(backends[0]?.hits).toBe(b1);
    expect(seen.length).toBeGreaterThan(0); // the log port was bound again
    await again.stop();
    fronts = [];
    expect(await haproxyFront.adopt(front.record, { dir: fdir, ports, slots: 2 })).toBeNull();
  });

  it('adopt with the log port taken: the front is returned, with a warning', async () => {
    const { front, ports, fdir } = await setup(1);
    await front.detach();
    fronts = [];
    const dgram = await import('node:dgram');
    const squatter = dgram.createSocket('udp4');
    await new Promise<void>((r) => squatter.bind(front.record.logPort, '127.0.0.1', r));
    try {
      const adopted = await haproxyFront.adopt(front.record, { dir: fdir, ports, slots: 1 });
      expect(adopted?.warning).toMatch(/log port .* cannot be bound again/);
      if (adopted) fronts.push(adopted);
    } finally {
      squatter.close();
    }
  });

  it('E_PORT_IN_USE naming the port when a host port is taken; no proxy is left running', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as net.AddressInfo).port;
    const free = await freePort();
    try {
      const err = await haproxyFront.start({
        dir: mkdtempSync(join(dir, 'f')), slots: 1,
        ports: [{ hostAddress: '127.0.0.1', hostPort: free, guestPort: 80, mode: 'http' }, { hostAddress: '127.0.0.1', hostPort: port, guestPort: 81, mode: 'tcp' }],
      }).then(() => null, (e: unknown) => e);
      expect(isUserError(err) && err.code).toBe('E_PORT_IN_USE');
      expect((err as Error).message).toContain(String(port));
      // the other port was released with the proxy that failed
      await new Promise<void>((resolve, reject) => {
        const s = net.createServer().once('error', reject).listen(free, '127.0.0.1', () => s.close(() => resolve()));
      });
    } finally {
      taken.close();
    }
  });
});
