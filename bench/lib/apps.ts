// The framework examples the benchmarks cover (issue 16): bench:size checks each image against the ≥ 3× target,
// bench:boot --apps measures deploy → first HTTP response of each. One entry per example, so adding an example
// (another engineer's Spring Boot or Django app) is one line and merges stay simple.

export interface FrameworkApp {
  /** the directory under examples/ */
  example: string;
  framework: string;
  /** a framework route (GET) and a substring its answer holds: the framework really served it */
  route: string;
  expect: string;
  /** the port the app listens on in the guest (PORT is set to it) */
  guestPort?: number;
}

export const FRAMEWORK_APPS: readonly FrameworkApp[] = [
  { example: 'node-express-pnpm', framework: 'Express', route: '/hello/bench', expect: '"framework":"express"' },
  { example: 'node-fastify-ts-yarn', framework: 'Fastify', route: '/hello/bench', expect: '"framework":"fastify"' },
  { example: 'python-fastapi-uv', framework: 'FastAPI', route: '/items/42?q=bench', expect: '"item_id":42' },
  { example: 'python-flask-poetry', framework: 'Flask', route: '/hello/bench', expect: 'hello, bench!' },
  { example: 'python-django', framework: 'Django + gunicorn (Procfile)', route: '/hello/bench/', expect: '<h1>Hello, Bench!</h1>' },
  { example: 'python-numpy', framework: 'Starlette + numpy (bundled OpenBLAS)', route: '/solve', expect: '"check":true' },
  { example: 'node-next', framework: 'Next.js (standalone output)', route: '/api/hello/bench', expect: '"framework":"next"' },
  { example: 'go-gin-sqlite', framework: 'Gin + cgo (libsqlite3)', route: '/hello/bench', expect: '"framework":"gin"' },
  { example: 'go-workspace', framework: 'chi (go.work)', route: '/hello/bench', expect: '"framework":"chi"' },
  { example: 'java-spring-boot', framework: 'Spring Boot (nested fat jar)', route: '/hello/bench', expect: '"framework":"spring-boot"' },
  { example: 'rust-axum-workspace', framework: 'axum + tokio (Cargo workspace)', route: '/hello/bench', expect: '"framework":"axum"' },
];

/** The size target: the unikctl image is at least this many times smaller than the naive image. */
export const SIZE_RATIO_TARGET = 3;
