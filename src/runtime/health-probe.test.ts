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

  it('stays starting while failures fall in the grace time, then counts them', () => {
    const t = new HealthTracker({ graceMs: 5000, failures: 3 });
    expect(t.feed(fail, start + 1000, start)).toBe('starting');
    expect(t.feed(fail, start + 3000, start)).toBe('starting');
    expect(t.consecutiveFailures).toBe(0);
    expect(t.feed(fail, start + 5000, start)).toBe('starting');
    expect(t.feed(fail, start + 7000, start)).toBe('starting');
    expect(t.feed(fail, start + 9000, start)).toBe('unhealthy');
    expect(t.since).toBe(start + 9000);
    expect(t.lastDetail).toBe('HTTP 500');
  });

  it('a pass in the grace time makes the replica healthy at once', () => {
    const t = new HealthTracker({ graceMs: 5000, failures: 3 });
    expect(t.feed(fail, start + 500, start)).toBe('starting');
    expect(t.feed(pass, start + 1000, start)).toBe('healthy');
    expect(t.since).toBe(start + 1000);
  });

  it('after a pass, grace no longer shields: consecutive failures make it unhealthy, a pass heals it', () => {
    const t = new HealthTracker({ graceMs: 5000, failures: 2 });
    t.feed(pass, start + 1000, start);
    expect(t.feed(fail, start + 2000, start)).toBe('healthy');
    expect(t.feed(pass, start + 3000, start)).toBe('healthy'); // not consecutive
    expect(t.feed(fail, start + 4000, start)).toBe('healthy');
    expect(t.feed({ ok: false, detail: 'timeout after 1s' }, start + 4500, start)).toBe('unhealthy');
    expect(t).toMatchObject({ since: start + 4500, lastDetail: 'timeout after 1s', consecutiveFailures: 2 });
    expect(t.feed(fail, start + 6000, start)).toBe('unhealthy');
    expect(t.since).toBe(start + 4500);
    expect(t.feed(pass, start + 8000, start)).toBe('healthy');
    expect(t).toMatchObject({ since: start + 8000, consecutiveFailures: 0, lastDetail: 'HTTP 200' });
  });

  it('with no grace, failures count from the first', () => {
    const t = new HealthTracker({ graceMs: 0, failures: 1 });
    expect(t.feed(fail, start, start)).toBe('unhealthy');
  });

  it('ignores a result older than the last one fed', () => {
    const t = new HealthTracker({ graceMs: 0, failures: 1 });
    t.feed(pass, start + 2000, start);
    expect(t.feed(fail, start + 1000, start)).toBe('healthy');
  });

  it('starts over when the app was restarted (a new startedAt)', () => {
    const t = new HealthTracker({ graceMs: 5000, failures: 1 });
    t.feed(pass, start + 1000, start);
    t.feed(fail, start + 2000, start);
    expect(t.health).toBe('unhealthy');
    const restarted = start + 30_000;
    expect(t.feed(fail, restarted + 1000, restarted)).toBe('starting');
    expect(t).toMatchObject({ since: restarted, consecutiveFailures: 0 });
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
