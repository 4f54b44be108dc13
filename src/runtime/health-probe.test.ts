import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { CheckSpec } from '../store/service-types.js';
import { BOOT_ALLOWANCE_MS, HealthTracker, graceEndsAt, probe } from './health-probe.js';

const servers: (Server | HttpServer)[] = [];
const sockets = new Set<Socket>();

afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

async function listen<T extends Server | HttpServer>(server: T): Promise<number> {
  servers.push(server);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A loopback port nothing listens on (bound, then closed). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

const tcp = (timeoutMs = 1000): CheckSpec => ({ kind: 'tcp', port: 8080, intervalMs: 2000, timeoutMs, graceMs: 5000, failures: 3 });
const http = (path = '/healthz', timeoutMs = 1000): CheckSpec => ({ ...tcp(timeoutMs), kind: 'http', path });
const at = (port: number): { address: string; port: number } => ({ address: '127.0.0.1', port });

describe('probe: tcp', () => {
  it('passes when a connection opens', async () => {
    const port = await listen(createServer((s) => s.end()));
    const r = await probe(tcp(), at(port));
    expect(r).toMatchObject({ ok: true, detail: 'connected' });
    expect(r.ms).toBeGreaterThanOrEqual(0);
  });

  it('fails with "connection refused" when nothing listens', async () => {
    const r = await probe(tcp(), at(await freePort()));
    expect(r).toMatchObject({ ok: false, detail: 'connection refused' });
  });
});

describe('probe: http', () => {
  it('passes on 2xx and 3xx, sending GET path with the Host header and no keep-alive', async () => {
    const seen: IncomingMessage[] = [];
    const port = await listen(createHttpServer((req, res) => {
      seen.push(req);
      res.writeHead(req.url === '/moved' ? 302 : 204, req.url === '/moved' ? { location: '/elsewhere' } : {}).end();
    }));
    expect(await probe(http('/healthz'), at(port))).toMatchObject({ ok: true, detail: 'HTTP 204' });
    expect(await probe(http('/moved'), at(port))).toMatchObject({ ok: true, detail: 'HTTP 302' });
    expect(seen.map((r) => [r.method, r.url, r.headers.host, r.headers.connection])).toEqual([
      ['GET', '/healthz', 'localhost:8080', 'close'],
      ['GET', '/moved', 'localhost:8080', 'close'],
    ]);
  });

  it('fails on a 500 with "HTTP 500"', async () => {
    const port = await listen(createHttpServer((_req, res) => res.writeHead(500).end('boom')));
    expect(await probe(http(), at(port))).toMatchObject({ ok: false, detail: 'HTTP 500' });
  });

  it('fails on a 404 (a wrong path is not healthy)', async () => {
    const port = await listen(createHttpServer((_req, res) => res.writeHead(404).end()));
    expect(await probe(http('/nope'), at(port))).toMatchObject({ ok: false, detail: 'HTTP 404' });
  });

  it('gives up after the timeout on a server that never answers', async () => {
    const port = await listen(createHttpServer(() => { /* hangs */ }));
    const started = Date.now();
    const r = await probe(http('/healthz', 200), at(port));
    expect(r).toMatchObject({ ok: false, detail: 'timeout after 200ms' });
    expect(r.ms).toBeGreaterThanOrEqual(190);
    expect(Date.now() - started).toBeLessThan(2000);
    // the probe closed its connection: the server has none left open
    for (let i = 0; i < 100 && sockets.size > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sockets.size).toBe(0);
  });

  it('fails with "connection refused" when nothing listens', async () => {
    expect(await probe(http(), at(await freePort()))).toMatchObject({ ok: false, detail: 'connection refused' });
  });

  it('fails when the server closes the connection without answering', async () => {
    const port = await listen(createServer((s) => s.destroy()));
    const r = await probe(http(), at(port));
    expect(r.ok).toBe(false);
    expect(['connection closed before an answer', 'connection reset']).toContain(r.detail);
  });

  it('answers "aborted" at once when its signal aborts', async () => {
    const port = await listen(createHttpServer(() => { /* hangs */ }));
    const ac = new AbortController();
    const pending = probe(http('/healthz', 5000), at(port), ac.signal);
    setTimeout(() => ac.abort(), 50);
    const r = await pending;
    expect(r).toMatchObject({ ok: false, detail: 'aborted' });
    expect(r.ms).toBeLessThan(2000);
    expect((await probe(tcp(), at(port), AbortSignal.abort())).detail).toBe('aborted');
  });
});

describe('HealthTracker', () => {
  const pass = { ok: true, detail: 'HTTP 200' };
  const fail = { ok: false, detail: 'HTTP 500' };
  const start = 10_000;
  const fresh = (graceMs: number, failures: number): [HealthTracker, { graceEndsAt: number; failures: number }] =>
    [new HealthTracker({ health: 'starting', since: start, detail: null }), { graceEndsAt: start + graceMs, failures }];

  it('stays starting while failures fall in the grace time, then counts them', () => {
    const [t, grace] = fresh(5000, 3);
    expect(t.feed(fail, start + 1000, grace)).toBe('starting');
    expect(t.feed(fail, start + 3000, grace)).toBe('starting');
    expect(t.consecutiveFailures).toBe(0);
    expect(t.detail).toBe('HTTP 500'); // shown in status while starting
    expect(t.feed(fail, start + 5000, grace)).toBe('starting');
    expect(t.feed(fail, start + 7000, grace)).toBe('starting');
    expect(t.feed(fail, start + 9000, grace)).toBe('unhealthy');
    expect(t.since).toBe(start + 9000);
    expect(t.detail).toBe('HTTP 500');
  });

  it('a pass in the grace time makes the replica healthy at once', () => {
    const [t, grace] = fresh(5000, 3);
    expect(t.feed(fail, start + 500, grace)).toBe('starting');
    expect(t.since).toBe(start);
    expect(t.feed(pass, start + 1000, grace)).toBe('healthy');
    expect(t).toMatchObject({ since: start + 1000, detail: null });
  });

  it('after a pass, grace no longer shields: consecutive failures make it unhealthy, a pass heals it', () => {
    const [t, grace] = fresh(5000, 2);
    t.feed(pass, start + 1000, grace);
    expect(t.feed(fail, start + 2000, grace)).toBe('healthy');
    expect(t.feed(pass, start + 3000, grace)).toBe('healthy'); // not consecutive
    expect(t.feed(fail, start + 4000, grace)).toBe('healthy');
    expect(t.feed({ ok: false, detail: 'timeout after 1s' }, start + 4500, grace)).toBe('unhealthy');
    expect(t).toMatchObject({ since: start + 4500, detail: 'timeout after 1s', consecutiveFailures: 2 });
    expect(t.feed(fail, start + 6000, grace)).toBe('unhealthy');
    expect(t.since).toBe(start + 4500);
    expect(t.feed(pass, start + 8000, grace)).toBe('healthy');
    expect(t).toMatchObject({ since: start + 8000, consecutiveFailures: 0, detail: null });
  });

  it('with no grace, failures count from the first', () => {
    const [t, grace] = fresh(0, 1);
    expect(t.feed(fail, start, grace)).toBe('unhealthy');
  });

  it('ignores a result older than the last one fed', () => {
    const [t, grace] = fresh(0, 1);
    t.feed(pass, start + 2000, grace);
    expect(t.feed(fail, start + 1000, grace)).toBe('healthy');
  });

  it('seeded healthy (a restarted controller): grace does not shield it, and its since is kept until it changes', () => {
    const t = new HealthTracker({ health: 'healthy', since: 500, detail: null });
    const graceEndsLater = { graceEndsAt: start + 60_000, failures: 2 };
    expect(t.feed(fail, start, graceEndsLater)).toBe('healthy');
    expect(t.since).toBe(500);
    expect(t.feed(fail, start + 1000, graceEndsLater)).toBe('unhealthy');
    expect(t.since).toBe(start + 1000);
  });

  it('set() decides without a probe and keeps since while the health stays', () => {
    const [t] = fresh(0, 1);
    t.set('starting', start + 100, 'not listening on 8080 yet');
    expect(t).toMatchObject({ health: 'starting', since: start, detail: 'not listening on 8080 yet' });
    t.set('healthy', start + 200, null);
    expect(t).toMatchObject({ health: 'healthy', since: start + 200, detail: null });
  });
});

describe('graceEndsAt', () => {
  it('counts the grace from the app start the guest reported, not from the VM start', () => {
    // a 7 s boot (TCG on a loaded host) and a 2 s grace: failures count from 9 s after the VM started
    expect(graceEndsAt({ vmStartedAt: 1000, appStartMs: 7000, graceMs: 2000 })).toBe(10_000);
  });
  it('without a report of the app start, the VM gets the boot allowance on top of the grace', () => {
    expect(graceEndsAt({ vmStartedAt: 1000, appStartMs: null, graceMs: 2000 })).toBe(1000 + BOOT_ALLOWANCE_MS + 2000);
  });
});
