/**
 * Real-world Node apps on a real VM: an Express app locked with pnpm and a Fastify app in TypeScript locked with
 * yarn berry (node-modules linker) whose `build` script runs tsc. Each: build (the package manager from
 * "packageManager", frozen), image content (no dev dependency, no package-manager state), deploy with -p,
 * an HTTP answer from a framework route, the request in the logs, destroy.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deployServeDestroy, exampleCopy, listImage } from './helpers.js';

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
  // the committed example only: no node_modules, build output or cache from a local run
  const { home, app } = exampleCopy(ex.dir, /\/(node_modules|dist|\.unikctl|\.yarn)(\/|$)/);
  const name = ex.dir.replace(/^node-/, '').slice(0, 20);

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
    // node waits for the guest's entropy pool before it runs any JavaScript: allow for a slow TCG boot
    const { body, logs } = await deployServeDestroy(home, { dir: ex.dir, name, route: '/hello/e2e', logLine: ex.logLine('e2e'), timeoutMs: 120_000 });
    expect(JSON.parse(body)).toMatchObject({ hello: 'e2e', framework: ex.framework, host: name, env: 'production' });
    expect(logs).toContain(`${ex.dir} listening on`);
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
