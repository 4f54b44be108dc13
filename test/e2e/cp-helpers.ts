import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { homeLayout } from '../../src/paths.js';
import { freePort, ROOT } from './helpers.js';

export const ADMIN_TOKEN = 'unik_test_admin_0123456789abcdef';
export const READER_TOKEN = 'unik_test_reader_0123456789abcdef';
export const DEPLOYER_TOKEN = 'unik_test_deployer_0123456789abcdef';
/** an operator token with the `nodes` scope (cordon, drain, remove) */
export const NODE_TOKEN = 'unik_test_node_0123456789abcdef';
/** what a new agent presents once to join (`unikctld serve --join-token`) */
export const JOIN_TOKEN = 'unik_test_join_0123456789abcdef';
export const JWT_SECRET = 'test-secret-for-hs256-jwt-0123456789abcdef';
/**
 * Tenant credentials in every test server's auth file (docs/tenants.md): they act for their tenant only when the
 * server runs with --tenants (`ghost` is never declared: E_TENANT_UNKNOWN); without it the tenant is ignored.
 */
export const TENANT_TOKENS = {
  acme: 'unik_test_tenant_acme_0123456789abcdef',
  beta: 'unik_test_tenant_beta_0123456789abcdef',
  gamma: 'unik_test_tenant_gamma_0123456789abcdef',
  delta: 'unik_test_tenant_delta_0123456789abcdef',
  ghost: 'unik_test_tenant_ghost_0123456789abcdef',
} as const;
export type TestTenant = keyof typeof TENANT_TOKENS;

/** An HS256 JWT as the test servers accept it (issuer, audience, subject, 5 minutes); `secret` to sign with another key. */
export function signJwt(claims: Record<string, unknown>, o: { exp?: string | number; secret?: string } = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer('unikctl-tests').setAudience('unikctld').setSubject('tester').setIssuedAt()
    .setExpirationTime(o.exp ?? '5m').sign(new TextEncoder().encode(o.secret ?? JWT_SECRET));
}

export interface ServerOptions {
  runner?: 'engine' | 'fake'; workers?: number; tls?: { cert: string; key: string }; data?: string; extra?: string[]; env?: Record<string, string>;
  /** the text of a tenants file (YAML): written to the data dir and given as --tenants */
  tenants?: string;
}

/** A real unikctld process on loopback with a throw-away data directory and a known auth file. */
export class TestServer {
  readonly data: string;
  readonly port: Promise<number>;
  proc: ChildProcess | null = null;
  url = '';
  log = '';

  constructor(private readonly o: ServerOptions = {}) {
    this.data = o.data ?? mkdtempSync(join(tmpdir(), 'unikctld-e2e-'));
    this.port = freePort();
    mkdirSync(this.data, { recursive: true });
    writeFileSync(join(this.data, 'jwt.secret'), JWT_SECRET);
    writeFileSync(join(this.data, 'auth.yaml'), [
      'tokens:',
      `  - { name: admin, token: ${ADMIN_TOKEN}, scopes: [admin] }`,
      `  - { name: reader, token: ${READER_TOKEN}, scopes: [read, logs] }`,
      `  - { name: deployer, token: ${DEPLOYER_TOKEN}, scopes: [deploy, read, logs] }`,
      `  - { name: nodes, token: ${NODE_TOKEN}, scopes: [nodes] }`,
      ...Object.entries(TENANT_TOKENS).map(([tenant, token]) => `  - { name: ${tenant}-ci, token: ${token}, scopes: [deploy, destroy, read, logs], tenant: ${tenant} }`),
      'jwt:',
      '  secret_file: jwt.secret',
      '  issuer: unikctl-tests',
      '  audience: unikctld',
      '',
    ].join('\n'));
    if (o.tenants !== undefined) this.writeTenants(o.tenants);
  }

  get tenantsFile(): string { return join(this.data, 'tenants.yaml'); }

  /** Replaces the tenants file (the server picks it up on its own within about a second, or at once on hup()). */
  writeTenants(text: string): void {
    writeFileSync(this.tenantsFile, text);
  }

  hup(): void {
    this.proc?.kill('SIGHUP');
  }

  async start(): Promise<void> {
    const port = await this.port;
    const args = [join(ROOT, 'bin', 'unikctld.js'), 'serve', '--listen', `127.0.0.1:${port}`, '--data', this.data, '--auth', join(this.data, 'auth.yaml'),
      '--runner', this.o.runner ?? 'engine', '--workers', String(this.o.workers ?? 2), '--retry-base-ms', '100', '--log-level', 'warn',
      ...(this.o.tls ? ['--tls-cert', this.o.tls.cert, '--tls-key', this.o.tls.key] : []), ...(this.o.tenants !== undefined ? ['--tenants', this.tenantsFile] : []),
      ...(this.o.extra ?? [])];
    const env = { ...process.env, UNIKCTL_KERNEL_DIR: homeLayout(process.env).kernels, UNIKCTL_ACCEL: process.env.UNIKCTL_ACCEL ?? 'tcg', UNIKCTL_STOP_GRACE_MS: '3000', ...(this.o.env ?? {}) };
    this.proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout?.on('data', (c: Buffer) => { this.log += c.toString(); });
    this.proc.stderr?.on('data', (c: Buffer) => { this.log += c.toString(); });
    this.url = `${this.o.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (this.proc.exitCode !== null) throw new Error(`unikctld exited (${this.proc.exitCode}):\n${this.log}`);
      if (this.o.tls ? this.log.includes('unikctld ready') || (await this.tcpUp(port)) : await fetch(`${this.url}/healthz`).then((r) => r.ok, () => false)) return;
      if (Date.now() > deadline) throw new Error(`unikctld did not come up:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async tcpUp(port: number): Promise<boolean> {
    const { connect } = await import('node:net');
    return new Promise((res) => {
      const s = connect(port, '127.0.0.1', () => { s.destroy(); res(true); });
      s.on('error', () => res(false));
    });
  }

  /** The CLI environment for remote mode against this server. */
  cliEnv(token = ADMIN_TOKEN): Record<string, string> {
    return { UNIKCTL_CONTROL_PLANE_URL: this.url, UNIKCTL_TOKEN: token };
  }

  api(path: string, init: { method?: string; token?: string | null; json?: unknown; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    const token = init.token === undefined ? ADMIN_TOKEN : init.token;
    if (token) headers.authorization = `Bearer ${token}`;
    if (init.json !== undefined) headers['content-type'] = 'application/json';
    return fetch(`${this.url}${path}`, { method: init.method ?? (init.json === undefined ? 'GET' : 'POST'), headers, ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}) });
  }

  async kill9(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }

  /** Sends SIGTERM and measures how long the process takes to exit (`hung` when it is still there after `waitMs`). */
  async sigterm(waitMs: number): Promise<{ code: number | null | 'hung'; ms: number }> {
    const p = this.proc;
    if (!p || p.exitCode !== null) throw new Error('unikctld is not running');
    const gone = new Promise<number | null>((res) => p.once('exit', (c) => res(c)));
    const t0 = Date.now();
    p.kill('SIGTERM');
    const code = await Promise.race([gone, new Promise<'hung'>((res) => setTimeout(() => res('hung'), waitMs))]);
    return { code, ms: Date.now() - t0 };
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  }

  cleanup(): void {
    rmSync(this.data, { recursive: true, force: true });
  }
}

/** A package the node's store accepts without booting anything: enough for --runner fake. */
export function writeFakePackage(data: string, name: string): void {
  const dir = join(data, 'node', 'packages', 'local', name, 'latest');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'vmlinux.gz'), 'not a kernel');
  writeFileSync(join(dir, 'rootfs.erofs'), 'not a rootfs');
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({
    schema: 'unikctl.image/v1', name, pack: 'binary', mode: 'release',
    kernel: { file: 'vmlinux.gz', encoding: 'gzip', sha256: '0'.repeat(64), size: 12, rawSha256: '0'.repeat(64), rawSize: 12, variant: 'release', configHash: 'x' },
    rootfs: { file: 'rootfs.erofs', sha256: '0'.repeat(64), size: 12, format: 'erofs' },
    run: { command: ['/app/x'], env: {}, workdir: '/app', memoryMiB: 64, ports: [] }, size: 24,
  }));
}
