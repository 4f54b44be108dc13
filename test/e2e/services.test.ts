/**
 * Services on real VMs (issue 13): an app deployed with replicas behind a front on the published port, a health
 * check, a restart policy and a rollout policy. examples/go-service is built once; every test deploys it as its own
 * app, drives real HTTP through the published host port, and destroys it (nothing may be left: no QEMU, no front,
 * the port free, the controller gone). Rollout invariants are checked on status samples taken every ~100 ms (in
 * process through the built engine: spawning the CLI that often is too slow under TCG load).
 */
import { existsSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { which } from '../../src/util/exec.js';
import { exampleCopy, freePort, httpGet, shareBuildCache, type TestHome } from './helpers.js';
import {
  boundViolations, brief, describeFailures, destroyService, existing, healthy, isAlive, removeServices, sameVersion, Sampler, sleep, startLoad,
  StatusReader, waitDead, waitService, type LoadReport, type ServiceDeployJson, type ServiceStatusJson, type ServiceView,
} from './service-helpers.js';

const PKG = 'local/go-service:latest';
const CHECK = 'http:8080/healthz,interval=2s,timeout=2s,grace=2s,failures=3';
const ENDED = ['succeeded', 'failed', 'reverted'];
const BOUNDS = { desired: 3, maxSurge: 1, maxUnavailable: 0 };
/** a cold Go build on a loaded CI host */
const BUILD_TIMEOUT = 900_000;
/** three replicas boot in parallel on 2 cores under TCG, then a rollout replaces them one by one */
const T = 420_000;

const front = which('haproxy') ?? (existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : null);
if (!front) console.log('services e2e skipped: haproxy (the services\' front) is not installed (apt-get install haproxy)');

const { home, app } = exampleCopy('go-service', /\/\.unikctl(\/|$)/);
shareBuildCache(app, 'go-http');

interface DeployOpts { replicas?: number; env?: string[]; extra?: string[]; wait?: boolean; }

/** `deploy local/go-service:latest --name NAME -p PORT:8080 …` with the check and the rolling bounds of the issue. */
async function deploy(h: TestHome, name: string, port: number, o: DeployOpts = {}): Promise<{ code: number; out: ServiceDeployJson; text: string }> {
  const args = [
    'deploy', PKG, '--name', name, '-p', `${port}:8080`, '--replicas', String(o.replicas ?? 3), '--check', CHECK,
    '--max-surge', String(BOUNDS.maxSurge), '--max-unavailable', String(BOUNDS.maxUnavailable), '--min-healthy', '1s',
    ...(o.env ?? []).flatMap((e) => ['-e', e]), ...(o.extra ?? []), ...(o.wait === false ? [] : ['--wait']), '--json',
  ];
  const t0 = Date.now();
  const r = await h.cli(args);
  const text = `unikctl ${args.join(' ')} → exit ${r.code} in ${((Date.now() - t0) / 1000).toFixed(1)} s\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  console.log(text.split('\n')[0]);
  let out: ServiceDeployJson;
  try {
    out = JSON.parse(r.stdout) as ServiceDeployJson;
  } catch {
    throw new Error(`deploy did not print JSON:\n${text}`);
  }
  return { code: r.code, out, text };
}

/** A deploy that must succeed: exit 0 and, when the answer carries a rollout, it succeeded. */
async function deployOk(h: TestHome, name: string, port: number, o: DeployOpts = {}): Promise<ServiceDeployJson> {
  const r = await deploy(h, name, port, o);
  expect(r.code, r.text).toBe(0);
  expect(r.out.name, r.text).toBe(name);
  if (o.wait !== false && r.out.rollout) expect(r.out.rollout.phase, r.text).toBe('succeeded');
  return r.out;
}

/** A version that never becomes healthy: exit 1, E_ROLLOUT_FAILED, reverted. */
async function deployReverted(h: TestHome, name: string, port: number, o: DeployOpts): Promise<ServiceDeployJson> {
  const r = await deploy(h, name, port, o);
  expect(r.code, r.text).toBe(1);
  expect(r.out.code, r.text).toBe('E_ROLLOUT_FAILED');
  expect(r.out.rollout?.phase, r.text).toBe('reverted');
  return r.out;
}

function expectNoFailures(load: LoadReport): void {
  expect(load.failures.length, `failed requests:\n${describeFailures(load.failures)}`).toBe(0);
}

describe.skipIf(!front)('services: replicas, health checks, rollouts and restarts on real VMs (examples/go-service)', () => {
  const reader = new StatusReader(home);
  const allHealthy = (name: string, n: number, timeoutMs = 120_000): Promise<ServiceView> =>
    waitService(reader, name, `${n} healthy replicas of one version`, (s) => healthy(s).length === n && existing(s).length === n && (!s.rollout || ENDED.includes(s.rollout.phase)), timeoutMs);

  beforeAll(async () => {
    const t0 = Date.now();
    const r = await home.cli(['build', app, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { pack: string }).pack).toBe('go');
    console.log(`go-service: built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }, BUILD_TIMEOUT);

  // a failed test's services go at once: the next test checks that no VM of this home outlives its own destroy
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') await removeServices(home);
  });

  afterAll(async () => {
    reader.close();
    await removeServices(home); // what a failed test left; exampleCopy's afterAll then checks that no QEMU is left
  });

  // a and b: one app, `web`; b goes on from the v2 that a rolled out
  const webPort = freePort();

  it('a: a rolling update 3 × v1 → v2 under load loses no request; healthy ≥ 3 and VMs ≤ 4 at every sample; logs merge the replicas', async () => {
    const port = await webPort;
    const t0 = Date.now();
    await deployOk(home, 'web', port, { env: ['VERSION=v1'] });
    const v1 = await allHealthy('web', 3);
    console.log(`web: 3 × v1 healthy ${((Date.now() - t0) / 1000).toFixed(1)} s after the deploy`);
    expect(v1.desired).toBe(3);
    expect(v1.controller?.pid, brief(v1)).toBeGreaterThan(0);
    const names = v1.replicas.map((r) => r.name).sort();
    for (const n of names) expect(n).toMatch(/^web\.\d+$/);

    // the front spreads requests over the replicas; each answers with its own name
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const body = await httpGet(`http://127.0.0.1:${port}/`, 10_000);
      const m = /^version=v1 replica=(web\.\d+)$/.exec(body.trim());
      expect(m, body).not.toBeNull();
      seen.add(m?.[1] ?? '');
    }
    for (const r of seen) expect(names).toContain(r);
    expect(seen.size, `answered by ${[...seen].join(', ')}`).toBeGreaterThanOrEqual(2);

    // logs: `logs web` merges the replicas' lines, each prefixed with its replica; `logs web.N` is one replica
    let merged = '';
    for (let i = 0; i < 40 && !names.every((n) => merged.includes(`[${n}] go-service v1 listening`)); i++) {
      merged = (await home.cli(['logs', 'web'])).stdout;
      await sleep(250);
    }
    for (const n of names) expect(merged).toContain(`[${n}] go-service v1 listening on 0.0.0.0:8080 (replica ${n}`);
    const one = names[0] ?? '';
    const single = await home.cli(['logs', one]);
    expect(single.code, single.stderr).toBe(0);
    expect(single.stdout).toContain(`go-service v1 listening on 0.0.0.0:8080 (replica ${one}`);
    for (const n of names.slice(1)) expect(single.stdout).not.toContain(`replica ${n},`);

    const sampler = new Sampler(reader, 'web');
    const load = startLoad(port);
    await sleep(1000);
    const out = await deployOk(home, 'web', port, { env: ['VERSION=v2'] });
    const doneAt = Date.now();
    await sleep(1500);
    const report = await load.stop();
    const samples = await sampler.stop();

    expect(out.rollout, 'a new version is a rollout').not.toBeNull();
    expect(sameVersion(out.rollout?.from, v1.current), JSON.stringify(out.rollout)).toBe(true);
    expectNoFailures(report);
    expect(report.answers.filter((a) => a.version !== 'v1' && a.version !== 'v2').map((a) => a.version)).toEqual([]);
    expect(report.answers.some((a) => a.version === 'v1')).toBe(true);
    const after = report.answers.filter((a) => a.start > doneAt);
    expect(after.length, 'requests after the rollout finished').toBeGreaterThan(5);
    expect(after.filter((a) => a.version !== 'v2').map((a) => `${a.version} from ${a.replica}`), 'answers after the rollout finished').toEqual([]);
    expect(sampler.errors).toEqual([]);
    expect(samples.length).toBeGreaterThan(10);
    expect(boundViolations(samples, BOUNDS)).toEqual([]);
    // a v2 replica existed beside the v1 ones at some point: the samples saw the rollout, not only its ends
    expect(samples.some((s) => s.svc && existing(s.svc).some((r) => sameVersion(r.version, out.rollout?.to)) && existing(s.svc).some((r) => sameVersion(r.version, v1.current)))).toBe(true);

    const end = await allHealthy('web', 3, 60_000);
    expect(sameVersion(end.current, out.rollout?.to), brief(end)).toBe(true);
    expect(end.replicas.filter((r) => r.health !== 'stopped').every((r) => sameVersion(r.version, end.current)), brief(end)).toBe(true);
    expect(end.versions.find((v) => sameVersion(v.version, v1.current))?.state, JSON.stringify(end.versions)).toBe('retired');
    expect(await httpGet(`http://127.0.0.1:${port}/`, 10_000)).toMatch(/^version=v2 replica=web\.\d+$/);
  }, T);

  it('b: a version whose health check fails (HTTP 500) is reverted: deploy exits 1 E_ROLLOUT_FAILED, v2 serves every request meanwhile', async () => {
    const port = await webPort;
    // goes on from a's v2; if a failed before it, start from a fresh v2
    const now = await httpGet(`http://127.0.0.1:${port}/`, 2000).catch(() => '');
    if (!/^version=v2 /.test(now)) {
      console.log(`b: web does not serve v2 (${JSON.stringify(now)}): deploying it afresh`);
      if (await reader.service('web').catch(() => undefined)) await home.cli(['destroy', 'web', '--wait']);
      await deployOk(home, 'web', port, { env: ['VERSION=v2'] });
    }
    const v2 = await allHealthy('web', 3);
    const v2pids = new Map(v2.replicas.map((r) => [r.name, r.pid]));

    const sampler = new Sampler(reader, 'web');
    const load = startLoad(port);
    await sleep(500);
    const out = await deployReverted(home, 'web', port, { env: ['VERSION=v3', 'FAIL_HEALTH=1'], extra: ['--healthy-deadline', '60s'] });
    await sleep(1000);
    const report = await load.stop();
    const samples = await sampler.stop();

    expectNoFailures(report);
    expect([...new Set(report.answers.map((a) => a.version))]).toEqual(['v2']);
    expect(sampler.errors).toEqual([]);
    expect(boundViolations(samples, BOUNDS)).toEqual([]);
    // the bad version really ran (and was kept out of rotation)
    expect(samples.some((s) => s.svc?.replicas.some((r) => sameVersion(r.version, out.rollout?.to)))).toBe(true);

    const s = await waitService(reader, 'web', 'back to 3 × v2 only', (x) => existing(x).length === 3 && existing(x).every((r) => sameVersion(r.version, v2.current)) && healthy(x).length === 3, 60_000);
    expect(sameVersion(s.current, v2.current), brief(s)).toBe(true);
    const bad = s.versions.find((v) => sameVersion(v.version, out.rollout?.to));
    expect(bad, JSON.stringify(s.versions)).toBeDefined();
    expect(['failed', 'reverted']).toContain(bad?.state);
    expect(bad?.reason ?? '', JSON.stringify(bad)).toMatch(/500/);
    expect(s.rollout?.phase, brief(s)).toBe('reverted');
    // the v2 replicas were never touched
    for (const r of existing(s)) expect(r.pid, `${r.name} was restarted or replaced`).toBe(v2pids.get(r.name));

    await destroyService(home, 'web', [port], s.controller?.pid ?? null);
  }, T);

  it('c: canary 1: a bad canary never replaces an old replica and is reverted; a good one is promoted to every replica', async () => {
    const port = await freePort();
    await deployOk(home, 'can', port, { env: ['VERSION=v1'] });
    const v1 = await allHealthy('can', 3);
    const oldPids = new Map(v1.replicas.map((r) => [r.name, r.pid]));

    // the bad canary: FAIL_HEALTH=1 answers /healthz with 500
    let sampler = new Sampler(reader, 'can');
    let load = startLoad(port);
    const bad = await deployReverted(home, 'can', port, { env: ['VERSION=v2', 'FAIL_HEALTH=1'], extra: ['--strategy', 'canary', '--canary', '1', '--healthy-deadline', '30s'] });
    await sleep(500);
    let report = await load.stop();
    let samples = await sampler.stop();
    expectNoFailures(report);
    expect([...new Set(report.answers.map((a) => a.version))]).toEqual(['v1']);
    expect(sampler.errors).toEqual([]);
    expect(samples.some((s) => s.svc?.replicas.some((r) => sameVersion(r.version, bad.rollout?.to) && r.health !== 'stopped')), 'a canary replica ran').toBe(true);
    const touched: string[] = [];
    for (const { t, svc } of samples) {
      const old = svc ? existing(svc).filter((r) => sameVersion(r.version, v1.current)) : [];
      if (old.length < 3) touched.push(`${new Date(t).toISOString()} ${old.length} old replicas: ${brief(svc)}`);
      for (const [name, pid] of oldPids) {
        if (!old.some((r) => r.name === name && r.pid === pid)) touched.push(`${new Date(t).toISOString()} ${name} (pid ${pid}) changed: ${brief(svc)}`);
      }
    }
    expect(touched.slice(0, 10)).toEqual([]);
    const reverted = await waitService(reader, 'can', 'back to 3 × v1 only', (x) => existing(x).length === 3 && existing(x).every((r) => sameVersion(r.version, v1.current)), 60_000);
    expect(['failed', 'reverted']).toContain(reverted.versions.find((v) => sameVersion(v.version, bad.rollout?.to))?.state);

    // the good canary: promoted, then every replica runs it
    sampler = new Sampler(reader, 'can');
    load = startLoad(port);
    const good = await deployOk(home, 'can', port, { env: ['VERSION=v2'], extra: ['--strategy', 'canary', '--canary', '1'] });
    await sleep(1000);
    report = await load.stop();
    samples = await sampler.stop();
    expect(good.rollout?.phase).toBe('succeeded');
    expectNoFailures(report);
    expect(report.answers.filter((a) => a.version !== 'v1' && a.version !== 'v2').map((a) => a.version)).toEqual([]);
    expect(sampler.errors).toEqual([]);
    expect(samples.some((s) => s.svc?.replicas.some((r) => sameVersion(r.version, good.rollout?.to) && r.health !== 'stopped')), 'the canary ran').toBe(true);
    const promoted = await allHealthy('can', 3, 60_000);
    expect(sameVersion(promoted.current, good.rollout?.to), brief(promoted)).toBe(true);
    expect(existing(promoted).every((r) => sameVersion(r.version, good.rollout?.to)), brief(promoted)).toBe(true);
    expect(await httpGet(`http://127.0.0.1:${port}/`, 10_000)).toMatch(/^version=v2 replica=can\.\d+$/);
    // the front counts traffic per version: the new one served some of the load
    expect(promoted.traffic[String(good.rollout?.to)]?.requests ?? 0, JSON.stringify(promoted.traffic)).toBeGreaterThan(0);

    await destroyService(home, 'can', [port], promoted.controller?.pid ?? null);
  }, T);

  it('d: a replica that exits 1 is restarted (on-failure, the default) until the crash loop shows; with --restart never it stays exited(1)', async () => {
    const [crashPort, oncePort] = [await freePort(), await freePort()];
    const t0 = Date.now();
    // no --wait: a version that crashes every 2 s never finishes a rollout
    const plain = (name: string, port: number, extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      home.cli(['deploy', PKG, '--name', name, '-p', `${port}:8080`, '--replicas', '1', '-e', 'EXIT_AFTER=2s', ...extra, '--json']);
    const [c, o] = await Promise.all([plain('crash', crashPort, []), plain('once', oncePort, ['--restart', 'never'])]);
    expect(c.code, c.stderr).toBe(0);
    expect(o.code, o.stderr).toBe(0);

    const restarts = (s: ServiceView): number => s.restarts;
    const looping = await waitService(reader, 'crash', 'restarted twice and in a crash loop', (s) => restarts(s) >= 2 && s.crashLoop !== null, 90_000);
    console.log(`crash: ${restarts(looping)} restarts and crashLoop after ${((Date.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(looping.crashLoop)}`);
    expect(looping.crashLoop?.reason ?? '').toMatch(/exit(ed)?\W*(with\W*)?(code|status)?\W*1\b/i);
    const logs = (await home.cli(['logs', 'crash'])).stdout;
    expect(logs).toMatch(/\[crash\.\d+\] go-service: exiting with code 1 after 2s \(EXIT_AFTER\)/);

    const exited = await waitService(reader, 'once', 'exited', (s) => s.replicas.some((r) => r.state === 'exited'), 60_000);
    const r = exited.replicas.find((x) => x.state === 'exited');
    expect(r?.exitCode, brief(exited)).toBe(1);
    await sleep(5000); // a restart would have begun by now
    const later = await reader.service('once');
    expect(later?.replicas.map((x) => `${x.name} ${x.state} ${x.exitCode}`)).toEqual([`${r?.name} exited 1`]);
    expect(later?.restarts).toBe(0);

    await destroyService(home, 'crash', [crashPort], looping.controller?.pid ?? null);
    await destroyService(home, 'once', [oncePort], later?.controller?.pid ?? null);
  }, T);

  it('e: the controller killed (-9) mid-rollout: status restarts it, the rollout ends (succeeded or reverted), the bounds hold throughout', async () => {
    const port = await freePort();
    await deployOk(home, 'ctl', port, { env: ['VERSION=v1'] });
    const v1 = await allHealthy('ctl', 3);
    const sampler = new Sampler(reader, 'ctl');
    const load = startLoad(port);
    const accepted = await deploy(home, 'ctl', port, { env: ['VERSION=v2'], wait: false });
    expect(accepted.code, accepted.text).toBe(0);

    const started = await waitService(reader, 'ctl', 'rolling out with a v2 replica', (s) => s.rollout?.phase === 'progressing' && !sameVersion(s.rollout.to, v1.current)
      && existing(s).some((r) => sameVersion(r.version, s.rollout?.to)), 120_000);
    const killed = started.controller?.pid;
    expect(killed, brief(started)).toBeGreaterThan(0);
    sampler.pause(); // the CLI, not the sampler, must be what brings the controller back
    process.kill(killed ?? 0, 'SIGKILL');
    expect(await waitDead(killed ?? 0, 5000)).toBe(true);
    const t0 = Date.now();
    // `unikctl status ctl` starts a new controller; its pid may take a moment to be recorded
    let afterKill: ServiceView | undefined;
    for (;;) {
      const viaCli = await home.json<ServiceStatusJson>(['status', 'ctl']);
      afterKill = viaCli.services.find((s) => s.name === 'ctl');
      sampler.add(afterKill);
      const pid = afterKill?.controller?.pid;
      if ((pid && pid !== killed && isAlive(pid)) || Date.now() - t0 > 15_000) break;
      await sleep(300);
    }
    sampler.resume();
    console.log(`ctl: controller ${killed} killed; status started ${afterKill?.controller?.pid} in ${Date.now() - t0} ms`);
    expect(afterKill?.controller?.pid, brief(afterKill)).toBeGreaterThan(0);
    expect(afterKill?.controller?.pid).not.toBe(killed);
    expect(isAlive(afterKill?.controller?.pid ?? 0)).toBe(true);

    const end = await waitService(reader, 'ctl', 'done rolling out', (s) => s.rollout?.phase === 'succeeded' || s.rollout?.phase === 'reverted', 240_000);
    console.log(`ctl: the rollout ${end.rollout?.phase} ${((Date.now() - t0) / 1000).toFixed(1)} s after the controller was killed`);
    await sleep(500);
    const report = await load.stop();
    const samples = await sampler.stop();
    expect(sampler.errors).toEqual([]);
    expect(boundViolations(samples, BOUNDS)).toEqual([]);
    // not asserted (the issue asks for the bounds only): requests failed while the controller was down
    if (report.failures.length > 0) console.log(`ctl: ${report.failures.length} failed requests during the kill:\n${describeFailures(report.failures)}`);

    const settled = await allHealthy('ctl', 3, 60_000);
    const winner = end.rollout?.phase === 'succeeded' ? end.rollout.to : v1.current;
    expect(existing(settled).every((r) => sameVersion(r.version, winner)), brief(settled)).toBe(true);
    expect(sameVersion(settled.current, winner), brief(settled)).toBe(true);
    expect(await httpGet(`http://127.0.0.1:${port}/`, 10_000)).toMatch(end.rollout?.phase === 'succeeded' ? /^version=v2 / : /^version=v1 /);

    await destroyService(home, 'ctl', [port], settled.controller?.pid ?? null);
  }, T);

  it('f: scale 1 → 3 → 1 is no new version: the replica that stays keeps its VM (same pid)', async () => {
    const port = await freePort();
    await deployOk(home, 'sc', port, { replicas: 1, env: ['VERSION=v1'] });
    const one = await allHealthy('sc', 1);
    const first = one.replicas.find((r) => r.health === 'healthy');
    expect(first?.pid, brief(one)).toBeGreaterThan(0);

    await deployOk(home, 'sc', port, { replicas: 3, env: ['VERSION=v1'] });
    const three = await allHealthy('sc', 3);
    expect(three.desired).toBe(3);
    expect(three.versions.length, JSON.stringify(three.versions)).toBe(1);
    expect(three.replicas.find((r) => r.name === first?.name)?.pid, brief(three)).toBe(first?.pid);
    const pidsAt3 = new Map(three.replicas.map((r) => [r.name, r.pid]));

    await deployOk(home, 'sc', port, { replicas: 1, env: ['VERSION=v1'] });
    const back = await waitService(reader, 'sc', 'down to 1 replica', (s) => existing(s).length === 1 && healthy(s).length === 1, 60_000);
    expect(back.desired).toBe(1);
    expect(back.versions.length, JSON.stringify(back.versions)).toBe(1);
    const survivor = existing(back)[0];
    expect(survivor?.pid, brief(back)).toBe(pidsAt3.get(survivor?.name ?? ''));
    expect(isAlive(survivor?.pid ?? 0)).toBe(true);
    console.log(`sc: the survivor is ${survivor?.name} (pid ${survivor?.pid}); the first replica was ${first?.name} (pid ${first?.pid})`);
    expect(await httpGet(`http://127.0.0.1:${port}/`, 10_000)).toBe(`version=v1 replica=${survivor?.name}`);

    await destroyService(home, 'sc', [port], back.controller?.pid ?? null);
  }, T);
});
