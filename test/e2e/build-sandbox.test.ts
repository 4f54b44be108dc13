import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, DEPLOYER_TOKEN, JWT_SECRET, NODE_TOKEN, READER_TOKEN, TestServer } from './cp-helpers.js';
import { ROOT, TestHome } from './helpers.js';

/**
 * The hardening issue's critical finding, as the attack: a client with a `deploy` token uploads a project whose
 * build.command tries to read the daemon's secrets, its data directory and other builds, to write outside its work
 * directory and to reach the daemon on loopback — and builds that exceed their memory, time and disk limits.
 * The daemon's data directory lies inside the unikctl installation on purpose (a bound tree), so it must be masked.
 */
const SERVICE_SECRET = 'unik-e2e-service-secret-4242';

describe('remote builds run sandboxed (attack)', () => {
  const work = mkdtempSync(join(ROOT, '.unikctl-e2e-sandbox-'));
  const server = new TestServer({
    runner: 'engine', data: join(work, 'data'),
    extra: ['--build-memory', '256', '--build-timeout', '20', '--build-disk', '200'],
    env: { UNIKCTLD_NODE_TOKEN: NODE_TOKEN, SERVICE_API_TOKEN: SERVICE_SECRET, UNIKCTL_TEST_MARKER: SERVICE_SECRET },
  });
  const home = new TestHome();
  let port = 0;

  const project = (name: string, script: string, extra = ''): string => {
    const dir = join(work, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'build.sh'), script);
    writeFileSync(join(dir, 'unik.yaml'), `name: ${name}\nbuild:\n  command: sh build.sh\nartifact:\n  path: hello\n${extra}`);
    return dir;
  };
  const deploy = async (dir: string, name: string): Promise<void> => {
    const r = await home.cli(['deploy', dir, '--name', name, '--json']);
    expect(r.code, r.stderr).toBe(0);
  };
  const failure = async (name: string): Promise<{ code: string; message: string }> => {
    await home.waitState(name, ['failed', 'exited', 'running'], 240_000);
    const s = await home.status(name);
    const op = s.operations.find((o) => o.kind === 'deploy' && o.target === name && o.state === 'failed') as unknown as { error: { code: string; message: string } } | undefined;
    const d = s.deployments.find((x) => x.name === name);
    return { code: op?.error.code ?? `state ${d?.state}`, message: `${op?.error.message ?? ''}\n${d?.reason ?? ''}` };
  };

  beforeAll(async () => {
    await server.start();
    port = Number(new URL(server.url).port);
    Object.assign(home.env, server.cliEnv(DEPLOYER_TOKEN));
  });
  afterAll(async () => {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
    await home.cleanup();
  });

  it('a hostile build.command sees no secret, no data directory, no daemon, and writes only its work directory', async () => {
    const data = server.data;
    const dir = project('hostile', [
      'say() { printf "%s\\n" "$*"; }',
      `for f in "${data}/jwt.secret" "${data}/auth.yaml" /proc/1/environ /etc/shadow; do if cat "$f" >/dev/null 2>&1; then say "READ $f"; else say "DENIED read $f"; fi; done`,
      `if ls "${data}" 2>/dev/null | grep -q .; then say "LISTED data"; else say "DENIED list data"; fi`,
      `if ls "${data}/node/builds" 2>/dev/null | grep -q .; then say "LISTED builds"; else say "DENIED builds"; fi`,
      `if ls "${data}/artifacts" 2>/dev/null | grep -q .; then say "LISTED artifacts"; else say "DENIED artifacts"; fi`,
      `if touch "${ROOT}/pwned-by-build" 2>/dev/null; then say "WROTE root"; else say "DENIED write root"; fi`,
      'if touch /usr/pwned-by-build 2>/dev/null; then say "WROTE usr"; else say "DENIED write usr"; fi',
      `if curl -s -m 3 -o /dev/null http://127.0.0.1:${port}/healthz; then say "REACHED daemon"; else say "DENIED daemon"; fi`,
      'say "ENV $(env | tr "\\n" " ")"',
      'say "UID $(id -u)"',
      'exit 3',
    ].join('\n'));
    await deploy(dir, 'hostile');
    const f = await failure('hostile');
    expect(f.code).toBe('E_BUILD_FAILED');
    // it ran, as the build user, and every attempt was refused
    expect(f.message).toMatch(/UID [1-9]\d*/);
    expect(f.message).not.toContain('UID 0');
    expect(f.message).not.toMatch(/READ |LISTED |WROTE |REACHED /);
    expect(new Set(f.message.split('\n').filter((l) => l.startsWith('DENIED'))).size).toBe(10);
    // and nothing secret is in what a read token can see
    for (const secret of [JWT_SECRET, NODE_TOKEN, ADMIN_TOKEN, SERVICE_SECRET, 'UNIKCTLD_', 'SERVICE_API_TOKEN']) expect(f.message).not.toContain(secret);
    const asReader = await server.api('/v1/status', { token: READER_TOKEN }).then((r) => r.text());
    for (const secret of [JWT_SECRET, NODE_TOKEN, SERVICE_SECRET]) expect(asReader).not.toContain(secret);
    expect(existsSync(join(ROOT, 'pwned-by-build'))).toBe(false);
  });

  it('the uploaded artifact is never changed by the build (it works on a copy)', async () => {
    const dir = project('tidy', 'printf "int main(){return 0;}" > a.c && cc -static -o hello a.c && mkdir -p .unikctl && echo x > .unikctl/mark\n');
    const digest = (root: string): string => {
      const h = createHash('sha256');
      const walk = (d: string): void => {
        for (const e of readdirSync(d).sort()) {
          const p = join(d, e);
          h.update(relative(root, p));
          if (statSync(p).isDirectory()) walk(p);
          else h.update(readFileSync(p));
        }
      };
      walk(root);
      return h.digest('hex');
    };
    await deploy(dir, 'tidy');
    // hello returns at once, but the VM is `running` while it boots: wait for its end, not its start
    const d = await home.waitState('tidy', ['exited', 'failed'], 240_000);
    expect(d.state, d.reason ?? '').toBe('exited');
    const artifacts = join(server.data, 'artifacts');
    const roots = readdirSync(artifacts).filter((a) => a.startsWith('art_')).map((a) => join(artifacts, a, 'root'));
    const mine = roots.find((r) => existsSync(join(r, 'build.sh')) && readFileSync(join(r, 'build.sh'), 'utf8').includes('.unikctl/mark'));
    expect(mine).toBeDefined();
    expect(existsSync(join(mine!, 'hello'))).toBe(false);
    expect(existsSync(join(mine!, '.unikctl'))).toBe(false);
    const before = digest(mine!);
    expect(digest(mine!)).toBe(before);
    // no work directory of the build is left behind
    expect(readdirSync(join(server.data, 'node', 'builds'))).toEqual([]);
  });

  it('a build is killed at its memory, time and disk limits with E_BUILD_LIMIT', async () => {
    await deploy(project('hog', 'python3 -c "a = bytearray(600 * 1024 * 1024); print(len(a))"\n'), 'hog');
    await deploy(project('slow', 'sleep 600 & sleep 600\n'), 'slow');
    await deploy(project('filler', 'head -c 400M /dev/zero > big; sleep 60\n'), 'filler');
    const [hog, slow, filler] = await Promise.all([failure('hog'), failure('slow'), failure('filler')]);
    expect(hog.code).toBe('E_BUILD_LIMIT');
    expect(hog.message).toContain('memory limit (256 MiB)');
    expect(slow.code).toBe('E_BUILD_LIMIT');
    expect(slow.message).toContain('time limit (20 s)');
    expect(filler.code).toBe('E_BUILD_LIMIT');
    expect(filler.message).toContain('disk limit (200 MiB)');
    // every process of those builds is gone
    const left = (() => {
      try { return execFileSync('pgrep', ['-u', 'unikctl-build'], { encoding: 'utf8' }).trim(); } catch { return ''; }
    })();
    expect(left).toBe('');
  });

  it('rootfs: in unik.yaml cannot name a directory outside the project', async () => {
    const dir = project('escape', 'true\n', 'rootfs: ../../../../../../etc\n');
    const r = await home.cli(['deploy', dir, '--name', 'escape', '--json']);
    expect(r.code).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toContain('E_UNIKYAML_INVALID');
  });
});
