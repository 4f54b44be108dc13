/**
 * Real-world Node apps on a real VM: an Express app locked with pnpm and a Fastify app in TypeScript locked with
 * yarn berry (node-modules linker) whose `build` script runs tsc. Each: build (the package manager from
 * "packageManager", frozen), image content (no dev dependency, no package-manager state), deploy with -p,
 * an HTTP answer from a framework route, the request in the logs, destroy.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, httpGet, listImage, ROOT, TestHome } from './helpers.js';

/** The node-http bound: node alone is most of it, the framework adds a few MiB. */
const SIZE_BOUND = 55_000_000;

interface Example {
  dir: string;
  /** build output lines that show the tool and its frozen install */
  buildLines: RegExp[];
  command: string[];
  /** in the image: the framework and the app's start file */
  present: string[];
  /** never in the image: dev dependencies and package-manager state */
  absent: RegExp;
  /** a request line in the logs for GET /hello/<name> */
  logLine: (name: string) => RegExp;
  framework: string;
}

function exampleOnVm(ex: Example): void {
  const home = new TestHome();
  const scratch = mkdtempSync(join(tmpdir(), `unikctl-${ex.dir}-`));
  const app = join(scratch, ex.dir);
  const name = ex.dir.replace(/^node-/, '').slice(0, 20);
  // the committed example only: no node_modules, build output or cache from a local run
  cpSync(join(ROOT, 'examples', ex.dir), app, { recursive: true, filter: (p) => !/\/(node_modules|dist|\.unikctl|\.yarn)(\/|$)/.test(p) });

  afterAll(async () => {
    await home.cleanup();
    rmSync(scratch, { recursive: true, force: true });
    expect(home.qemuProcesses()).toEqual([]);
  });

  it('builds a release image with the project\'s package manager, frozen, production dependencies only', async () => {
    const r = await home.cli(['build', app, '--json']);
    expect(r.code, r.stderr).toBe(0);
    for (const line of ex.buildLines) expect(r.stderr).toMatch(line);
    const out = JSON.parse(r.stdout) as { manifest: { size: number; run: { command: string[]; env: Record<string, string> } } };
    expect(out.manifest.run.command).toEqual(ex.command);
    expect(out.manifest.run.env).toMatchObject({ NODE_ENV: 'production' });
    expect(out.manifest.size).toBeLessThan(SIZE_BOUND);
    console.log(`${ex.dir}: image ${(out.manifest.size / 1048576).toFixed(1)} MiB`);

    const files = listImage(join(app, '.unikctl', 'image', 'rootfs.erofs'));
    expect(files).toEqual(expect.arrayContaining(ex.present));
    expect(files.filter((f) => ex.absent.test(f))).toEqual([]);
  });

  it('deploys with -p, answers on a framework route, logs the request, and destroys', async () => {
    const port = await freePort();
    const t0 = Date.now();
    const r = await home.cli(['deploy', `local/${ex.dir}`, '-p', `${port}:8080`, '--name', name, '--json']);
    expect(r.code, r.stderr).toBe(0);
    // node waits for the guest's entropy pool before it runs any JavaScript: allow for a slow TCG boot
    const body = await httpGet(`http://127.0.0.1:${port}/hello/e2e`, 120_000);
    console.log(`${ex.dir}: deploy → first HTTP response ${((Date.now() - t0) / 1000).toFixed(1)} s (${process.env.UNIKCTL_ACCEL ?? 'tcg'})`);
    expect(JSON.parse(body)).toMatchObject({ hello: 'e2e', framework: ex.framework, host: name, env: 'production' });

    let logs = '';
    for (let i = 0; i < 50 && !ex.logLine('e2e').test(logs); i++) {
      logs = (await home.cli(['logs', name])).stdout;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(logs).toMatch(ex.logLine('e2e'));
    expect(logs).toContain(`${ex.dir} listening on`);

    const d = await home.cli(['destroy', name, '--wait', '--json']);
    expect(d.code, d.stderr).toBe(0);
    expect(JSON.parse(d.stdout)).toMatchObject([{ name, state: 'gone' }]);
    expect(home.qemuProcesses()).toEqual([]);
    await expect(httpGet(`http://127.0.0.1:${port}/`, 1000)).rejects.toThrow();
  });
}

describe('node pack: examples/node-express-pnpm (Express, pnpm-lock.yaml) on a real VM', () => {
  exampleOnVm({
    dir: 'node-express-pnpm',
    buildLines: [/package manager: pnpm@9\.15\.9 \(package\.json packageManager "pnpm@9\.15\.9"\), frozen to pnpm-lock\.yaml/, /pnpm install --frozen-lockfile --prod --config\.node-linker=hoisted/],
    command: ['/usr/bin/node', '/app/server.js'],
    present: ['/app/server.js', '/app/node_modules/express/package.json', '/app/node_modules/router/package.json'],
    absent: /is-number|\/\.npmrc$|unik\.yaml$/,
    logLine: (n) => new RegExp(`request method=GET path=/hello/${n} status=200`),
    framework: 'express',
  });
});

describe('node pack: examples/node-fastify-ts-yarn (Fastify in TypeScript, yarn berry) on a real VM', () => {
  exampleOnVm({
    dir: 'node-fastify-ts-yarn',
    buildLines: [/package manager: yarn@4\.9\.4 .*frozen to yarn\.lock/, /install all dependencies for the build: yarn install --immutable/, /build: tsc -p tsconfig\.json: yarn run build/, /yarn workspaces focus --all --production/],
    command: ['/usr/bin/node', '/app/dist/server.js'],
    present: ['/app/dist/server.js', '/app/node_modules/fastify/package.json'],
    absent: /\/typescript\/|@types|\/\.yarn(\/|$)|\.yarnrc\.yml$|unik\.yaml$/,
    logLine: (n) => new RegExp(`"url":"/hello/${n}"`),
    framework: 'fastify',
  });
});
