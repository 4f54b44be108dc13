// The framework examples the benchmarks cover (issue 16): bench:size checks each image against the ≥ 3× target
// (and the absolute size target where it names one), bench:boot --apps measures deploy → first HTTP
// response of each. One entry per example, so adding an example is one line and merges stay simple.
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { spawnSync } from 'node:child_process';

export interface FrameworkApp {
  /** the directory under examples/ */
  example: string;
  framework: string;
  /** a framework route (GET) and a substring its answer holds: the framework really served it */
  route: string;
  expect: string;
  /** the port the app listens on in the guest (PORT is set to it) */
  guestPort?: number;
  /** the absolute bound for the image (kernel + rootfs as stored), in bytes (MB = 10^6) */
  maxBytes?: number;
  /** a build tool that must run on this host; without it the example is skipped with the reason printed */
  needs?: 'gradle' | 'dotnet';
}

const MB = 1_000_000;

export const FRAMEWORK_APPS: readonly FrameworkApp[] = [
  { example: 'node-express-pnpm', framework: 'Express', route: '/hello/bench', expect: '"framework":"express"', maxBytes: 45 * MB },
  { example: 'node-fastify-ts-yarn', framework: 'Fastify', route: '/hello/bench', expect: '"framework":"fastify"' },
  { example: 'python-fastapi-uv', framework: 'FastAPI', route: '/items/42?q=bench', expect: '"item_id":42', maxBytes: 30 * MB },
  { example: 'python-flask-poetry', framework: 'Flask', route: '/hello/bench', expect: 'hello, bench!' },
  { example: 'python-django', framework: 'Django + gunicorn (Procfile)', route: '/hello/bench/', expect: '<h1>Hello, Bench!</h1>' },
  { example: 'python-numpy', framework: 'Starlette + numpy (bundled OpenBLAS)', route: '/solve', expect: '"check":true' },
  { example: 'node-next', framework: 'Next.js (standalone output)', route: '/api/hello/bench', expect: '"framework":"next"' },
  { example: 'go-gin-sqlite', framework: 'Gin + cgo (libsqlite3)', route: '/hello/bench', expect: '"framework":"gin"' },
  { example: 'go-workspace', framework: 'chi (go.work)', route: '/hello/bench', expect: '"framework":"chi"' },
  { example: 'java-spring-boot', framework: 'Spring Boot (nested fat jar)', route: '/hello/bench', expect: '"framework":"spring-boot"', maxBytes: 80 * MB },
  { example: 'java-maven-multimodule', framework: 'Maven multi-module (shaded jar)', route: '/hello/bench', expect: '"module":"greeting-lib"' },
  { example: 'java-gradle-kotlin', framework: 'Gradle (Kotlin DSL, application plugin)', route: '/hello/bench', expect: '"build":"gradle"', needs: 'gradle' },
  { example: 'rust-axum-workspace', framework: 'axum + tokio (Cargo workspace)', route: '/hello/bench', expect: '"framework":"axum"', maxBytes: 5 * MB },
  { example: 'dotnet-http', framework: '.NET (HttpListener, self-contained publish)', route: '/hello/bench', expect: '(dotnet, path /hello/bench)', needs: 'dotnet' },
];

/** The size target: the unikctl image is at least this many times smaller than the naive image. */
export const SIZE_RATIO_TARGET = 3;

/** The size verdict of a framework example: ≥ SIZE_RATIO_TARGET× smaller than the naive image and within maxBytes. */
export function sizeVerdict(app: FrameworkApp, imageBytes: number, ratio: number | null): { target: 'PASS' | 'MISS'; why: string[] } {
  const why: string[] = [];
  if (ratio === null || !(ratio >= SIZE_RATIO_TARGET)) why.push(ratio === null ? 'no naive baseline' : `ratio ${ratio}× < ${SIZE_RATIO_TARGET}×`);
  if (app.maxBytes !== undefined && !(imageBytes <= app.maxBytes)) why.push(`${(imageBytes / MB).toFixed(1)} MB > ${app.maxBytes / MB} MB`);
  return { target: why.length === 0 ? 'PASS' : 'MISS', why };
}

/** An executable named `name` on PATH, or null. */
function onPath(name: string, path = process.env.PATH ?? ''): string | null {
  for (const d of path.split(delimiter).filter(Boolean)) {
    const f = join(d, name);
    try { accessSync(f, constants.X_OK); return f; } catch { /* not here */ }
  }
  return null;
}

/**
 * Why this example cannot be built on this host (its build tool is missing or does not run), or null. The
 * benchmarks skip such an example with this reason printed instead of reporting a failed build.
 */
export function unavailable(app: FrameworkApp, dir: string, path = process.env.PATH ?? ''): string | null {
  if (app.needs === 'gradle') {
    if (existsSync(join(dir, 'gradlew'))) return null;
    const gradle = onPath('gradle', path);
    if (!gradle) return 'gradle is not on PATH and the example has no gradlew (install Gradle 8 to measure it)';
    const r = spawnSync(gradle, ['--version', '--no-daemon'], { stdio: 'ignore', timeout: 120_000 });
    return r.status === 0 ? null : `${gradle} --version fails (exit ${r.status ?? r.signal})`;
  }
  if (app.needs === 'dotnet') {
    return onPath('dotnet', path) ? null : 'the .NET SDK (dotnet) is not on PATH (install the .NET 8 SDK to measure it)';
  }
  return null;
}
