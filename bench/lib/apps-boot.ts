// bench:boot --apps: deploy → first HTTP response of every framework example (bench/lib/apps.ts), under the
// same accelerator as the main series. Each app is built once with the CLI, then deployed N times in a row with
// -p; the time runs from the deploy command's start to the first answer of the framework route that holds the
// expected text (so a listening socket that answers 404 does not count), then the deployment is destroyed.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { hostname, loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { FRAMEWORK_APPS, type FrameworkApp, unavailable } from './apps.js';
import { CLI, fileStamp, privateHome, RESULTS_DIR, ROOT } from './harness.js';
import { freePort, killByEnv, onExit, runSync, sleep } from './proc.js';
import { summarize, type Summary } from './stats.js';

// Spring Boot under TCG on a loaded host took up to 414 s to answer (the e2e measured it)
const FIRST_HTTP_TIMEOUT_MS = 600_000;

interface Sample { ok: boolean; deployToFirstHttpMs: number | null; error?: string }
/** `skipped`: the example's build tool is missing here (not a failure); `loadAvg`: the host's 1-minute load before and after */
interface AppResult { example: string; framework: string; imageBytes: number | null; samples: Sample[]; summary: Summary; error?: string; skipped?: true; loadAvg?: { before: number; after: number } }

/** GET until the body holds `expect` or the deadline passes; the time of the first good answer, or null. */
async function firstHttp(url: string, expect: string, t0: number): Promise<number | null> {
  const deadline = t0 + FIRST_HTTP_TIMEOUT_MS;
  while (performance.now() < deadline) {
    try {
      // one attempt may be long: a first server-side render (Next) or a worker still importing Django under TCG
      // would be aborted by a short bound and asked for again, forever
      const r = await fetch(url, { signal: AbortSignal.timeout(90_000) });
      const body = await r.text();
      if (r.ok && body.includes(expect)) return performance.now() - t0;
    } catch { /* not listening yet */ }
    await sleep(100);
  }
  return null;
}

export async function runApps(o: { runs: number; accel: string; only: string[] | null; say: (m: string) => void }): Promise<{ file: string; results: AppResult[] }> {
  const { home, env, cli } = privateHome('unikctl-bench-apps-', o.accel);
  const live = new Set<string>();
  onExit(() => { killByEnv('UNIKCTL_HOME', home); });
  onExit(() => { for (const n of live) runSync([process.execPath, CLI, 'destroy', n, '--wait'], { env }); });
  const started = new Date();
  const results: AppResult[] = [];
  // --apps=a,b: in the order given (the ones that matter most first on a slow host), unknown names refused
  const unknown = (o.only ?? []).filter((n) => !FRAMEWORK_APPS.some((a) => a.example === n));
  if (unknown.length) throw new Error(`not a framework example (bench/lib/apps.ts): ${unknown.join(', ')}`);
  const chosen = o.only ? o.only.map((n) => FRAMEWORK_APPS.find((a) => a.example === n) as FrameworkApp) : FRAMEWORK_APPS;
  const apps = chosen.filter((a) => existsSync(join(ROOT, 'examples', a.example)));
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `boot-apps-${fileStamp(started)}-${hostname()}.json`);
  // rewritten after every app: a run stopped part-way (a long TCG run on a busy host) keeps what it measured
  const save = (): void => writeFileSync(file, `${JSON.stringify({ schema: 'unikctl.bench.boot-apps/v1', startedAt: started.toISOString(), finishedAt: new Date().toISOString(), accel: o.accel, runs: o.runs, results }, null, 2)}\n`);
  for (const app of apps) { results.push(await oneApp(app)); save(); }

  async function oneApp(app: FrameworkApp): Promise<AppResult> {
    const dir = join(ROOT, 'examples', app.example);
    const why = unavailable(app, dir);
    if (why) {
      o.say(`bench: examples/${app.example} skipped: ${why}`);
      return { example: app.example, framework: app.framework, imageBytes: null, samples: [], summary: summarize([]), error: why, skipped: true };
    }
    o.say(`bench: unikctl build ${relative(ROOT, dir)}`);
    const b = await cli(['build', dir, '--json']);
    if (b.code !== 0) return { example: app.example, framework: app.framework, imageBytes: null, samples: [], summary: summarize([]), error: b.stderr.trim().split('\n').at(-1) ?? `exit ${b.code}` };
    const manifest = (JSON.parse(b.stdout) as { manifest: { size: number } }).manifest;
    const samples: Sample[] = [];
    const before = loadavg()[0] ?? NaN;
    for (let i = 1; i <= o.runs; i++) {
      const name = `${app.example.slice(0, 16)}-${i}`.replace(/-+$/, '');
      const port = await freePort();
      live.add(name);
      const t0 = performance.now();
      const d = await cli(['deploy', `local/${app.example}`, '-p', `${port}:${app.guestPort ?? 8080}`, '--name', name, '--json']);
      const ms = d.code === 0 ? await firstHttp(`http://127.0.0.1:${port}${app.route}`, app.expect, t0) : null;
      const s: Sample = ms === null ? { ok: false, deployToFirstHttpMs: null, error: d.code !== 0 ? d.stderr.trim().split('\n').at(-1) ?? 'deploy failed' : `no answer holding ${JSON.stringify(app.expect)} within ${FIRST_HTTP_TIMEOUT_MS} ms` } : { ok: true, deployToFirstHttpMs: Math.round(ms) };
      samples.push(s);
      o.say(`bench: ${app.example} ${i}/${o.runs}: ${s.ok ? `deploy → first HTTP ${s.deployToFirstHttpMs} ms` : `FAILED: ${s.error}`}`);
      const x = await cli(['destroy', name, '--wait']);
      if (x.code === 0) live.delete(name);
    }
    const round = (x: number): number => Math.round(x * 100) / 100;
    return { example: app.example, framework: app.framework, imageBytes: manifest.size, samples, summary: summarize(samples.map((s) => s.deployToFirstHttpMs)), loadAvg: { before: round(before), after: round(loadavg()[0] ?? NaN) } };
  }

  save();
  return { file, results };
}
