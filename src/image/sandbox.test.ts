import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { insideProject } from './project-path.js';
import { checkRun, sandboxEnv, toolchainDirs } from './sandbox.js';

const tmp = mkdtempSync(join(tmpdir(), 'unikctl-sandbox-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('sandboxEnv', () => {
  const env = sandboxEnv({
    PATH: '/root/.cargo/bin:/secret/bin:/usr/bin', HOME: '/root', LANG: 'C.UTF-8', GOFLAGS: '-buildvcs=false', PIP_FIND_LINKS: '/opt/wheels',
    UNIKCTLD_NODE_TOKEN: 'n', UNIKCTL_TOKEN: 't', JWT_SECRET: 's', AWS_SECRET_ACCESS_KEY: 'k', GITHUB_TOKEN: 'g', CARGO_REGISTRY_TOKEN: 'c',
    npm_config_registry: 'https://registry.example', npm_config__authToken: 'a', npm_config_cache: '/root/.npm', DATABASE_URL: 'postgres://u:p@h/db', SSH_AUTH_SOCK: '/tmp/ssh',
  }, (d) => d.startsWith('/usr') || d.startsWith('/root/.cargo'));

  it('keeps the toolchains\' own variables', () => {
    expect(env).toMatchObject({ LANG: 'C.UTF-8', GOFLAGS: '-buildvcs=false', PIP_FIND_LINKS: '/opt/wheels', npm_config_registry: 'https://registry.example' });
  });
  it('drops the daemon\'s variables and anything named like a credential', () => {
    for (const k of ['UNIKCTLD_NODE_TOKEN', 'UNIKCTL_TOKEN', 'JWT_SECRET', 'AWS_SECRET_ACCESS_KEY', 'GITHUB_TOKEN', 'CARGO_REGISTRY_TOKEN', 'npm_config__authToken', 'npm_config_cache', 'DATABASE_URL', 'SSH_AUTH_SOCK']) {
      expect(env[k], k).toBeUndefined();
    }
  });
  it('keeps only PATH entries the sandbox can see, and gives the build its own HOME', () => {
    expect(env.PATH?.split(':')).toEqual(['/root/.cargo/bin', '/usr/bin', '/usr/local/bin', '/bin']);
    expect(env.HOME).toBe('/build/home');
  });
});

describe('toolchainDirs', () => {
  it('binds the home directories that PATH names, with rustup and pyenv homes', () => {
    const home = join(tmp, 'home');
    for (const d of ['.cargo/bin', '.rustup', '.pyenv/shims', '.ssh']) mkdirSync(join(home, d), { recursive: true });
    const dirs = toolchainDirs({ HOME: home, PATH: `${home}/.cargo/bin:${home}/.pyenv/shims:/usr/bin` });
    expect(dirs.sort()).toEqual([join(home, '.cargo'), join(home, '.pyenv'), join(home, '.rustup')].sort());
  });
});

describe('checkRun (the run configuration a sandboxed build reports)', () => {
  const good = { command: ['/app/x'], env: { A: 'b' }, workdir: '/app', memoryMiB: 64, ports: [8080] };
  it('accepts a well-formed one', () => expect(checkRun(good)).toEqual(good));
  it('keeps expand (a Procfile command the host expands at boot)', () => expect(checkRun({ ...good, expand: true })).toEqual({ ...good, expand: true }));
  it.each([
    ['no command', { ...good, command: [] }],
    ['a non-string argument', { ...good, command: ['/app/x', 1] }],
    ['a relative workdir', { ...good, workdir: 'app' }],
    ['a non-string env value', { ...good, env: { A: 1 } }],
    ['absurd memory', { ...good, memoryMiB: 1e12 }],
    ['a bad port', { ...good, ports: [70000] }],
    ['a non-boolean expand', { ...good, expand: 'yes' }],
    ['null', null],
  ])('refuses %s', (_what, v) => {
    expect(() => checkRun(v)).toThrow(expect.objectContaining({ code: 'E_BUILD_FAILED' }));
  });
});

describe('insideProject (rootfs: and other unik.yaml paths)', () => {
  const project = join(tmp, 'project');
  mkdirSync(join(project, 'root'), { recursive: true });
  writeFileSync(join(tmp, 'outside'), 'host file');
  symlinkSync('../outside', join(project, 'link-out'));
  symlinkSync('root', join(project, 'link-in'));

  it('accepts a directory of the project, also through a symlink that stays inside', () => {
    expect(insideProject(project, 'root', 'rootfs')).toBe(join(project, 'root'));
    expect(insideProject(project, 'link-in', 'rootfs')).toBe(join(project, 'link-in'));
  });
  it.each(['../outside', '../../etc', '/etc', 'root/../../outside', 'link-out'])('refuses %s', (rel) => {
    expect(() => insideProject(project, rel, 'rootfs')).toThrow(expect.objectContaining({ code: 'E_UNIKYAML_INVALID' }));
  });
});
