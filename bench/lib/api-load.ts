// Closed-loop HTTP load for bench/api.ts: N clients on keep-alive connections, each sending its next request as
// soon as the previous answer has been read, for a fixed time. Latency is measured per request from just before
// http.request() to the end of the response body, on the load generator's clock (performance.now()).
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { percentile } from './stats.js';

const r2 = (x: number): number | null => (Number.isFinite(x) ? Math.round(x * 100) / 100 : null);

export interface LatencySummary { n: number; min: number | null; p50: number | null; p95: number | null; p99: number | null; max: number | null; mean: number | null }

export function latencySummary(values: readonly number[]): LatencySummary {
  const v = Float64Array.from(values).sort();
  if (v.length === 0) return { n: 0, min: null, p50: null, p95: null, p99: null, max: null, mean: null };
  let sum = 0;
  for (const x of v) sum += x;
  return {
    n: v.length, min: r2(v[0] as number), p50: r2(percentile(v, 50)), p95: r2(percentile(v, 95)), p99: r2(percentile(v, 99)),
    max: r2(v[v.length - 1] as number), mean: r2(sum / v.length),
  };
}

/** One request of the load: method, path, headers, JSON body. */
export interface LoadRequest { method: string; path: string; headers?: Record<string, string>; body?: unknown }

/** One request; resolves { status, ms, error } and never rejects. */
function once(agent: http.Agent, base: string, req: LoadRequest): Promise<{ status: number; ms: number; error: string | null }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const body = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
    const headers = { ...(req.headers ?? {}), ...(body ? { 'content-type': 'application/json', 'content-length': String(body.length) } : {}) };
    const r = http.request(`${base}${req.path}`, { method: req.method, agent, headers }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, error: null }));
      res.on('error', (e: NodeJS.ErrnoException) => resolve({ status: 0, ms: performance.now() - t0, error: e.code ?? e.message }));
    });
    r.setTimeout(30_000, () => r.destroy(new Error('timeout')));
    r.on('error', (e: NodeJS.ErrnoException) => resolve({ status: 0, ms: performance.now() - t0, error: e.code ?? e.message }));
    r.end(body);
  });
}

/** utime + stime of a process in seconds (Linux /proc), or null. */
export function procCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // fields 14 and 15, in clock ticks (USER_HZ = 100 on Linux)
  } catch {
    return null;
  }
}

/**
 * Runs `concurrency` closed loops for `durationMs`. `makeRequest(client, seq)` returns { method, path, headers, body }.
 * A request counts as ok when its status is `okStatus`; anything else (another status or a network error) is an error.
 * Requests still in flight at the deadline are awaited and counted (so the rate uses the real elapsed time).
 */
export async function closedLoop({ base, concurrency, durationMs, makeRequest, okStatus, serverPid }: {
  base: string; concurrency: number; durationMs: number; makeRequest: (client: number, seq: number) => LoadRequest; okStatus: number; serverPid?: number;
}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  const latencies: number[] = [];
  const perSecond: number[] = [];
  const statuses: Record<number, number> = {};
  const errors: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  const cpu0 = process.cpuUsage();
  const srv0 = serverPid ? procCpuSeconds(serverPid) : null;
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  const client = async (c: number): Promise<void> => {
    for (let seq = 0; performance.now() < deadline; seq++) {
      const r = await once(agent, base, makeRequest(c, seq));
      const sec = Math.floor((performance.now() - t0) / 1000);
      perSecond[sec] = (perSecond[sec] ?? 0) + 1;
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status === okStatus) {
        ok++;
        latencies.push(r.ms);
      } else {
        failed++;
        const key = r.error ?? `HTTP ${r.status}`;
        errors[key] = (errors[key] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, c) => client(c)));
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const srv1 = serverPid ? procCpuSeconds(serverPid) : null;
  agent.destroy();
  return {
    concurrency, elapsedS: r2(elapsedS), requests: ok + failed, ok, errors: failed, errorKinds: errors, statuses,
    rps: r2(ok / elapsedS), latencyMs: latencySummary(latencies),
    perSecond: Array.from(perSecond, (n) => n ?? 0),
    cpu: {
      loadGeneratorCores: r2((cpu.user + cpu.system) / 1e6 / elapsedS),
      serverCores: srv0 !== null && srv1 !== null ? r2((srv1 - srv0) / elapsedS) : null,
    },
    rawLatenciesMs: latencies.map((x) => Math.round(x * 1000) / 1000),
  };
}
