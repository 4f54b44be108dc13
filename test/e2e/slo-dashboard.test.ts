import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, TestServer } from './cp-helpers.js';
import { which } from '../../src/util/exec.js';
import { exampleCopy, freePort, ROOT, shareBuildCache, TestHome } from './helpers.js';
import type { ServiceStatusJson } from './service-helpers.js';

/**
 * The SLO page (docs/slo.md) in Debian's Chromium, driven by playwright-core, against a real unikctld with tenants
 * that ran a real VM (c-hello, as tenant acme), a build failure (as tenant bolt, a user error) and a real service
 * (examples/go-service, two replicas behind its HAProxy front, deployed by the admin: tenants' services are refused)
 * through whose front the test sends a known number of requests. The daemon reads the fronts' counts every second
 * (--slo-request-feed-ms 1000 instead of 10 s), so /v1/slo and the page must show exactly those requests.
 */
const CHROMIUM = '/usr/bin/chromium';
const ACME = 'unik_test_acme_0123456789abcdef';
const BOLT = 'unik_test_bolt_0123456789abcdef';
const REPORT = join(process.env.UNIKCTL_TEST_REPORT_DIR ?? join(ROOT, '.ci', 'reports'), 'slo.png');
const NUMBERS: Array<[string, (s: Slo) => number | null]> = [
  ['boot-p50', (s) => s.boot.p50Ms], ['boot-p95', (s) => s.boot.p95Ms], ['boot-objective', (s) => s.boot.objective.p95Ms],
  ['boot-budget', (s) => s.boot.budgetRemaining], ['boot-burn-1h', (s) => s.boot.burnRate['1h']], ['boot-burn-5m', (s) => s.boot.burnRate['5m']],
  ['deploy-rate', (s) => s.deploys.successRate], ['deploy-objective', (s) => s.deploys.objective], ['deploy-succeeded', (s) => s.deploys.succeeded],
  ['deploy-platform', (s) => s.deploys.platformFailures], ['deploy-user', (s) => s.deploys.userErrors], ['deploy-budget', (s) => s.deploys.budgetRemaining],
  ['deploy-burn-1h', (s) => s.deploys.burnRate['1h']], ['deploy-burn-5m', (s) => s.deploys.burnRate['5m']],
  ['cost-total', (s) => s.cost.total], ['cost-vm-seconds', (s) => s.cost.vmSeconds], ['cost-per-request', (s) => s.cost.perRequest], ['rps', (s) => s.requests.perSecond],
];
const CHARTS = ['chart-boot', 'chart-deploys', 'chart-requests'];
/** the colour of each chart's first series (ui/app.js): a drawn line, not only axes and grid */
const SERIES_RGB: Record<string, [number, number, number]> = { 'chart-boot': [74, 163, 255], 'chart-requests': [199, 146, 234] };
/** the service and what is sent through its front */
const SVC = 'sloweb';
const PKG = 'local/go-service:latest';
const CHECK = 'http:8080/healthz,interval=1s,timeout=1s,grace=2s,failures=2';
const SENT = 40;
const FEED_MS = 1000;

const haproxy = which('haproxy') ?? (existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : null);
if (!haproxy) console.warn('slo-dashboard: skipped — haproxy (the services\' front) is not installed (apt-get install haproxy)');
const svc = exampleCopy('go-service', /\/\.unikctl(\/|$)/);
shareBuildCache(svc.app, 'go-http');

/** Processes whose command line names the server's data directory (its VMs' and fronts' files live under it). */
function processesOf(dir: string, pattern: string): string[] {
  try {
    return execFileSync('pgrep', ['-af', `${pattern}.*${dir}`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

interface Slo {
  filter: { tenant: string | null };
  boot: { count: number; p50Ms: number | null; p95Ms: number | null; objective: { p95Ms: number }; budgetRemaining: number | null; burnRate: Record<'1h' | '5m', number | null> };
  deploys: { succeeded: number; platformFailures: number; userErrors: number; successRate: number | null; objective: number; budgetRemaining: number | null; burnRate: Record<'1h' | '5m', number | null>; userByCode: Array<{ code: string }> };
  cost: { total: number; vmSeconds: number; perRequest: number | null; requests: number | null; perApp: Array<{ tenant: string; app: string; vmSeconds: number }> };
  requests: { total: number | null; perSecond: number | null; note: string | null; series: Array<{ t: number; requests: number | null; perSecond: number | null }> };
  apps: Array<{ tenant: string; name: string; bootMs?: number | null }>;
}

const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`slo-dashboard: skipped — ${CHROMIUM} is missing (scripts/ci-tools.sh installs Debian's chromium)`);

describe.skipIf(!hasChromium || !haproxy)('the SLO page at /ui/ in Chromium', () => {
  const data = mkdtempSync(join(tmpdir(), 'unikctld-slo-'));
  const server = new TestServer({
    runner: 'engine', data,
    extra: ['--tenants', join(data, 'tenants.yaml'), '--slo-config', join(data, 'slo.yaml'), '--slo-request-feed-ms', String(FEED_MS)],
  });
  const home = new TestHome();
  let browser: Browser;
  let origin = '';
  /** every URL any page asked for, and those that left the origin (aborted) */
  const requested: string[] = [];
  const foreign: string[] = [];

  const api = async (token: string, query = 'window=1h'): Promise<Slo> => {
    const r = await server.api(`/v1/slo?${query}`, { token });
    expect(r.status).toBe(200);
    return (await r.json()) as Slo;
  };

  async function open(viewport = { width: 1280, height: 800 }): Promise<{ ctx: BrowserContext; page: Page }> {
    const ctx = await browser.newContext({ viewport });
    await ctx.route('**/*', async (route) => {
      const url = route.request().url();
      requested.push(url);
      if (new URL(url).origin !== origin) {
        foreign.push(url);
        return route.abort();
      }
      return route.continue();
    });
    const page = await ctx.newPage();
    watch(page);
    await page.goto(`${origin}/ui/`);
    return { ctx, page };
  }

  /** Signs in; returns the /v1/slo answer the page rendered after it. */
  async function signIn(page: Page, token: string): Promise<Slo> {
    const answer = page.waitForResponse((r) => r.url().includes('/v1/slo') && r.status() === 200);
    await page.fill('#token', token);
    await page.click('#signin-form button');
    const body = (await (await answer).json()) as Slo;
    await page.waitForSelector('#dashboard:not(.hidden)');
    return body;
  }

  /** What the page shows: every number's raw value (data-value) and text, and which answer (its `to`) it shows. */
  const shown = (page: Page): Promise<Record<string, { value: string; text: string }>> =>
    page.evaluate((ids) => Object.fromEntries([...ids.map((id) => {
      const el = document.getElementById(id) as HTMLElement;
      return [id, { value: el.dataset.value ?? '', text: el.textContent ?? '' }];
    }), ['to', { value: document.body.dataset.updated ?? '', text: '' }]]), NUMBERS.map(([id]) => id));

  /** Every /v1/slo answer a page received (the page polls: the one it shows is found by its `to`). */
  const answers = new Map<string, Slo>();
  const watch = (page: Page): void => {
    page.on('response', (r) => {
      if (r.url().includes('/v1/slo') && r.status() === 200) void r.json().then((b: Slo & { to: number }) => answers.set(String(b.to), b), () => undefined);
    });
  };

  let port = 0;
  /** the front's own count of what it served (status, summed over versions), read after the requests */
  let frontCount = -1;

  beforeAll(async () => {
    // the service's image, built in its CLI home before the daemon starts (the first build of Go takes minutes)
    const t0 = Date.now();
    const b = await svc.home.cli(['build', svc.app, '--json']);
    expect(b.code, b.stderr).toBe(0);
    console.log(`go-service: built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    port = await freePort();
    writeFileSync(join(server.data, 'auth.yaml'), [
      'tokens:',
      `  - { name: admin, token: ${ADMIN_TOKEN}, scopes: [admin] }`,
      `  - { name: acme, token: ${ACME}, scopes: [deploy, read, logs, destroy], tenant: acme }`,
      `  - { name: bolt, token: ${BOLT}, scopes: [deploy, read, logs, destroy], tenant: bolt }`,
      '',
    ].join('\n'));
    writeFileSync(join(server.data, 'tenants.yaml'), 'tenants:\n  acme: {}\n  bolt: {}\n');
    // the prices: 1e-5 per vCPU-second, 2e-6 per GiB-second
    writeFileSync(join(server.data, 'slo.yaml'), 'prices: { vcpuSecond: 0.00001, gibSecond: 0.000002, request: 0 }\nobjectives: { bootP95Ms: 1500, deploySuccess: 0.995 }\n');
    await server.start();
    origin = server.url;

    // acme: a real VM (c-hello boots, prints, exits); bolt: a build that fails (a user error, apart from the rate)
    Object.assign(home.env, server.cliEnv(ACME));
    const r = await home.cli(['deploy', join(ROOT, 'examples', 'c-hello'), '--name', 'hello', '-m', '128M']);
    expect(r.code, r.stderr).toBe(0);
    const d = await home.waitState('hello', ['running', 'exited', 'failed'], 300_000);
    expect(d.state, JSON.stringify(d)).not.toBe('failed');
    const broken = mkdtempSync(join(tmpdir(), 'slo-broken-'));
    writeFileSync(join(broken, 'unik.yaml'), 'name: broken\nbuild:\n  command: "false"\nartifact:\n  path: broken\n');
    const boltHome = new TestHome();
    Object.assign(boltHome.env, server.cliEnv(BOLT));
    expect((await boltHome.cli(['deploy', broken, '--name', 'broken'])).code).toBe(0);
    await boltHome.waitState('broken', ['failed'], 300_000);

    // the admin's service: two replicas behind the front; then exactly SENT requests through the published port
    Object.assign(svc.home.env, server.cliEnv(ADMIN_TOKEN));
    const args = ['deploy', PKG, '--name', SVC, '-p', `${port}:8080`, '--replicas', '2', '--check', CHECK, '--min-healthy', '1s', '--wait', '--timeout', '420', '--json'];
    const dep = await svc.home.cli(args);
    expect(dep.code, `${dep.stdout}\n${dep.stderr}`).toBe(0);
    const bodies = new Set<string>();
    for (let i = 0; i < SENT; i++) {
      // one attempt each (no retry: every request sent is one the front must count)
      const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(20_000) });
      const body = (await r.text()).trim();
      expect(r.status, body).toBe(200);
      expect(body).toMatch(new RegExp(`^version=v1 replica=${SVC}\\.\\d+$`));
      bodies.add(body);
    }
    expect(bodies.size, [...bodies].join(', ')).toBe(2); // both replicas served: the count spans the front's slots
    // the service controller adds the front's counters to the service's traffic every few hundred ms
    for (let i = 0; ; i++) {
      const st = await svc.home.json<ServiceStatusJson>(['status', SVC]);
      const v = st.services.find((x) => x.name === SVC);
      frontCount = Object.values(v?.traffic ?? {}).reduce((n, t) => n + t.requests, 0);
      if (frontCount >= SENT) break;
      if (i > 60) throw new Error(`the front counted ${frontCount} of ${SENT} requests`);
      await new Promise((res) => setTimeout(res, 500));
    }
    // the samples are written when the queue finishes the operations: wait until both are in
    for (let i = 0; ; i++) {
      const s = await api(ADMIN_TOKEN);
      if (s.boot.count >= 3 && s.deploys.userErrors >= 1 && s.deploys.succeeded >= 2 && (s.requests.total ?? 0) >= SENT) break;
      if (i > 300) throw new Error(`samples did not arrive: ${JSON.stringify({ boots: s.boot.count, deploys: s.deploys, requests: s.requests })}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    // a few more feed periods: nothing else may be counted (health checks go to the replicas, not through the front)
    await new Promise((res) => setTimeout(res, 3 * FEED_MS + 500));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 1_800_000);

  afterAll(async () => {
    await browser?.close();
    await home.cli(['destroy', 'hello', '--wait']).catch(() => undefined);
    await svc.home.cli(['destroy', SVC, '--wait']).catch(() => undefined);
    await server.stop();
    const left = [...processesOf(server.data, 'qemu-system'), ...processesOf(server.data, 'haproxy')];
    for (const line of left) {
      try { process.kill(Number(line.split(' ')[0]), 'SIGKILL'); } catch { /* gone */ }
    }
    server.cleanup();
    await home.cleanup();
    expect(left).toEqual([]);
  }, 120_000);

  it('/v1/slo has the real boots (hello and both replicas), the deploys, and exactly the requests sent through the front', async () => {
    const s = await api(ADMIN_TOKEN);
    expect(s.boot.count).toBe(3);
    expect(s.boot.p50Ms).toBeGreaterThan(0);
    expect([s.deploys.succeeded, s.deploys.platformFailures, s.deploys.userErrors, s.deploys.successRate]).toEqual([2, 0, 1, 1]);
    expect(s.deploys.userByCode.map((c) => c.code)).toEqual(['E_BUILD_FAILED']);
    expect(s.cost.perApp.map((a) => `${a.tenant}/${a.app}`).sort()).toEqual(['/sloweb', 'acme/hello']);
    // the replicas' VMs count: two of them since they came up
    expect(s.cost.perApp.find((a) => a.app === SVC)?.vmSeconds).toBeGreaterThan(2);
    expect(s.cost.total).toBeGreaterThan(0);
    console.log(`slo: ${SENT} requests sent, the front counted ${frontCount}, /v1/slo ${JSON.stringify({ requests: s.requests, cost: { total: s.cost.total, requests: s.cost.requests, perRequest: s.cost.perRequest } })}`);
    // exactly what was sent: health checks go to each replica's own port, not through the front
    expect(frontCount).toBe(SENT);
    expect([s.requests.total, s.cost.requests, s.requests.note]).toEqual([SENT, SENT, null]);
    expect(s.requests.perSecond).toBe(SENT / 3600);
    expect(s.cost.perRequest).toBe(s.cost.total / SENT);
    // the chart's series: the same requests, in the buckets they were counted in
    expect(s.requests.series.reduce((n, b) => n + (b.requests ?? 0), 0)).toBe(SENT);
    // per app: the service's own requests and cost; an app without a front has none
    const one = await api(ADMIN_TOKEN, `window=1h&app=${SVC}`);
    expect(one.requests.total).toBe(SENT);
    expect(one.cost.perRequest).toBeGreaterThan(0);
    expect((await api(ADMIN_TOKEN, 'window=1h&app=hello')).requests.total).toBe(0);
  });

  it('a wrong token is refused and nothing is shown', async () => {
    const { ctx, page } = await open();
    await page.fill('#token', 'unik_wrong_token_0123456789abcdef');
    await page.click('#signin-form button');
    await page.waitForFunction(() => (document.getElementById('signin-error')?.textContent ?? '') !== '');
    expect(await page.textContent('#signin-error')).toBe('the token was refused');
    expect(await page.isVisible('#dashboard')).toBe(false);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await ctx.close();
  });

  it('an admin signs in: every chart draws within 2 s, the numbers (requests/s, cost per request …) equal /v1/slo, a screenshot is written', async () => {
    const { ctx, page } = await open();
    const rendered = await signIn(page, ADMIN_TOKEN);
    // drawn: each chart's canvas has painted pixels, and the boot and requests charts pixels of their first series'
    // colour (#4aa3ff, #c792ea): a line, not only axes
    const drawn = ({ ids, colours }: { ids: string[]; colours: Record<string, [number, number, number]> }): Record<string, { painted: number; series: number }> => Object.fromEntries(ids.map((id) => {
      const c = document.querySelector(`#${id} canvas`) as HTMLCanvasElement | null;
      if (!c || c.width === 0) return [id, { painted: 0, series: 0 }];
      const px = (c.getContext('2d') as CanvasRenderingContext2D).getImageData(0, 0, c.width, c.height).data;
      let painted = 0;
      let series = 0;
      const rgb = colours[id];
      for (let i = 0; i < px.length; i += 4) {
        if ((px[i + 3] as number) > 0) painted++;
        if (rgb && Math.abs((px[i] as number) - rgb[0]) < 40 && Math.abs((px[i + 1] as number) - rgb[1]) < 40 && Math.abs((px[i + 2] as number) - rgb[2]) < 40) series++;
      }
      return [id, { painted, series }];
    }));
    const ok = (d: Record<string, { painted: number; series: number }>): boolean => CHARTS.every((id) => (d[id]?.painted ?? 0) > 500 && (!SERIES_RGB[id] || (d[id]?.series ?? 0) > 0));
    const t0 = Date.now();
    let last: Record<string, { painted: number; series: number }> = {};
    while (Date.now() - t0 < 2000 && !ok(last)) {
      last = await page.evaluate(drawn, { ids: CHARTS, colours: SERIES_RGB });
      if (!ok(last)) await new Promise((r) => setTimeout(r, 50));
    }
    expect(ok(last), JSON.stringify(last)).toBe(true);

    const values = await shown(page);
    const showing = answers.get(values.to?.value ?? '') ?? rendered;
    for (const [id, pick] of NUMBERS) {
      const v = pick(showing);
      expect(values[id]?.value, id).toBe(v === null ? 'null' : String(v));
      expect(values[id]?.text, id).not.toBe('');
    }
    // the same figures as an independent call (cost grows with the VM's life: compared loosely)
    const now = await api(ADMIN_TOKEN);
    for (const [id, pick] of NUMBERS.filter(([id]) => !id.startsWith('cost-'))) expect(values[id]?.value, id).toBe(String(pick(now)));
    expect(Number(values['cost-total']?.value)).toBeGreaterThan(0);
    // the request figures: the page shows the requests sent, per second over the hour, and cost ÷ those requests
    expect(values.rps?.value).toBe(String(SENT / 3600));
    expect(values['cost-per-request']?.value).toBe(String(showing.cost.total / SENT));
    expect(await page.textContent('#requests-note')).toBe('');
    expect(await page.textContent('#apps')).toContain('hello');

    mkdirSync(join(REPORT, '..'), { recursive: true });
    await page.screenshot({ path: REPORT, fullPage: false });
    expect(existsSync(REPORT)).toBe(true);
    // the token stays in the tab's session storage, never in a URL
    expect(await page.evaluate(() => sessionStorage.getItem('unikctl.token'))).toBe(ADMIN_TOKEN);
    await ctx.close();
  });

  it("tenant acme's page shows nothing of tenant bolt (and the other way round)", async () => {
    for (const [token, mine, other] of [[ACME, 'acme', 'bolt'], [BOLT, 'bolt', 'acme']] as const) {
      const { ctx, page } = await open();
      const rendered = await signIn(page, token);
      expect(rendered.filter.tenant).toBe(mine);
      expect(rendered.apps.every((a) => a.tenant === mine)).toBe(true);
      const text = (await page.textContent('body')) ?? '';
      expect(text).not.toContain(other);
      // the admin's service and its requests are not a tenant's: none of them on its page
      expect(text).not.toContain(SVC);
      expect([rendered.requests.total, rendered.cost.perRequest]).toEqual([0, null]);
      if (mine === 'acme') {
        expect(text).toContain('hello');
        expect(text).not.toContain('E_BUILD_FAILED');
        expect(rendered.deploys.userErrors).toBe(0);
      } else {
        expect(text).not.toContain('hello');
        expect(text).toContain('E_BUILD_FAILED');
        expect(rendered.boot.count).toBe(0);
      }
      const values = await shown(page);
      for (const [id, pick] of NUMBERS.filter(([id]) => !id.startsWith('cost-'))) expect(values[id]?.value, id).toBe(String(pick(await api(token))));
      ctx.close().catch(() => undefined);
    }
    // asking for another tenant's figures is refused
    expect((await server.api('/v1/slo?tenant=bolt', { token: ACME })).status).toBe(403);
  });

  it('fits a phone width without sideways scrolling', async () => {
    const { ctx, page } = await open({ width: 390, height: 844 });
    await signIn(page, ADMIN_TOKEN);
    await page.waitForSelector('#chart-boot canvas');
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await ctx.close();
  });

  it('no request left the page\'s origin and no URL carried a token', () => {
    expect(requested.length).toBeGreaterThan(10);
    expect(foreign).toEqual([]);
    for (const u of requested) for (const t of [ADMIN_TOKEN, ACME, BOLT]) expect(u).not.toContain(t);
  });
});

describe('local mode: unikctl status --slo', () => {
  const home = new TestHome();
  afterAll(async () => { await home.cleanup(); }, 120_000);

  it('the same figures for this host\'s deployments: a real boot, the deploy, VM-seconds; a bad build apart', async () => {
    const r = await home.cli(['deploy', join(ROOT, 'examples', 'c-hello'), '--name', 'hello', '-m', '128M']);
    expect(r.code, r.stderr).toBe(0);
    const d = await home.waitState('hello', ['running', 'exited', 'failed'], 300_000);
    expect(d.state).not.toBe('failed');
    const broken = mkdtempSync(join(tmpdir(), 'slo-broken-'));
    writeFileSync(join(broken, 'unik.yaml'), 'name: broken\nbuild:\n  command: "false"\nartifact:\n  path: broken\n');
    await home.cli(['deploy', broken, '--name', 'broken']);
    await home.waitState('broken', ['failed'], 300_000);

    const s = await home.json<Slo>(['status', '--slo', '1h']);
    expect(s.boot.count).toBe(1);
    expect(s.boot.p50Ms).toBe(s.apps.find((a) => a.name === 'hello')?.bootMs);
    expect([s.deploys.succeeded, s.deploys.platformFailures, s.deploys.userErrors, s.deploys.successRate]).toEqual([1, 0, 1, 1]);
    expect(s.deploys.userByCode.map((c) => c.code)).toEqual(['E_BUILD_FAILED']);
    expect(s.cost.perApp.map((a) => a.app)).toEqual(['hello']);
    expect(s.requests.note).toBe('no request data (requests are counted by the fronts of services: deploy with --replicas)');
    const text = await home.cli(['status', '--slo']);
    expect(text.stdout).toMatch(/boot p50 \/ p95\s+\S+/);
    expect(text.stdout).toContain('E_BUILD_FAILED 1');
  }, 600_000);
});
