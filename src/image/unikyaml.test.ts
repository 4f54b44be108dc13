import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { loadUnikYaml } from './unikyaml.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'unik-yaml-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const write = (text: string, file = 'unik.yaml'): void => writeFileSync(join(dir, file), text);

function invalidMessage(text: string): string {
  write(text);
  try {
    loadUnikYaml(dir);
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    expect((e as UserError).code).toBe('E_UNIKYAML_INVALID');
    expect((e as UserError).message).toContain(join(dir, 'unik.yaml'));
    return (e as UserError).message;
  }
  throw new Error('loadUnikYaml accepted an invalid unik.yaml');
}

const FULL = `
name: hello
build:
  command: make hello
  env: { CC: gcc, OPT: 2 }
artifact:
  path: out/hello
run:
  command: [/app/hello, --port, "8080"]
  env: { GREETING: hi, DEBUG: true }
  workdir: /app
  ports: [8080, 9090]
  memory: 64M
rootfs: extra-root/
`;

describe('loadUnikYaml', () => {
  it('returns null without a unik.yaml', () => {
    expect(loadUnikYaml(dir)).toBeNull();
  });

  it('loads a full example', () => {
    write(FULL);
    expect(loadUnikYaml(dir)).toEqual({
      name: 'hello',
      build: { command: 'make hello', env: { CC: 'gcc', OPT: '2' } },
      artifact: { path: 'out/hello' },
      run: { command: ['/app/hello', '--port', '8080'], env: { GREETING: 'hi', DEBUG: 'true' }, workdir: '/app', ports: [8080, 9090], memoryMiB: 64 },
      rootfs: 'extra-root/',
    });
  });

  it('reads main: (the program of a Go or Cargo workspace) and refuses paths leaving the project', () => {
    write('main: ./cmd/api\n');
    expect(loadUnikYaml(dir)).toEqual({ run: { env: {} }, main: './cmd/api' });
    expect(invalidMessage('main: ../other\n')).toContain('main: "../other" must name a program of the project');
    expect(invalidMessage('main: /abs\n')).toContain('must name a program');
    expect(invalidMessage('main: [a, b]\n')).toContain('must name a program');
    expect(invalidMessage('main: ""\n')).toContain('must name a program');
  });

  it('reads process: (a Procfile type) and include: (run-time files for compiled packs)', () => {
    write('process: worker\ninclude: [config.toml, templates/]\n');
    expect(loadUnikYaml(dir)).toEqual({ run: { env: {} }, process: 'worker', include: ['config.toml', 'templates/'] });
    expect(invalidMessage('include: [/etc/passwd]\n')).toContain('include: "/etc/passwd" must be a path inside the project');
    expect(invalidMessage('include: [../x]\n')).toContain('inside the project');
    expect(invalidMessage('process: "web && x"\n')).toContain('process must be a Procfile process type');
  });

  it('reads module: (the Maven module / Gradle subproject that runs)', () => {
    write('module: services/api/\n');
    expect(loadUnikYaml(dir)).toEqual({ run: { env: {} }, module: 'services/api' });
    expect(invalidMessage('module: ../other\n')).toContain('module must be a directory inside the project');
    expect(invalidMessage('module: [a, b]\n')).toContain('module must be a directory inside the project');
  });

  it('reads unik.yml as well', () => {
    write('name: alt\n', 'unik.yml');
    expect(loadUnikYaml(dir)).toEqual({ name: 'alt', run: { env: {} } });
  });

  it('accepts build.command as a list and run.command as a string', () => {
    write('build:\n  command: [go, build, -o, app]\nartifact: { path: app }\nrun:\n  command: /app/app\n');
    const y = loadUnikYaml(dir);
    expect(y?.build).toEqual({ command: ['go', 'build', '-o', 'app'], env: {} });
    expect(y?.run.command).toEqual(['/app/app']);
  });

  it('accepts a run-only file (settings on top of a native pack)', () => {
    write('run:\n  memory: 1G\n');
    expect(loadUnikYaml(dir)).toEqual({ run: { env: {}, memoryMiB: 1024 } });
  });

  it.each([
    ['an unknown top-level key', 'name: x\nbuidl: {}\n', 'buidl'],
    ['build without artifact', 'build:\n  command: make\n', 'artifact.path'],
    ['build without a command', 'build:\n  env: {}\nartifact: { path: x }\n', 'build.command'],
    ['an empty build command', 'build:\n  command: "  "\nartifact: { path: x }\n', 'build.command'],
    ['an artifact path with ..', 'build: { command: make }\nartifact: { path: ../outside }\n', 'artifact.path'],
    ['an artifact path with .. inside', 'build: { command: make }\nartifact: { path: out/../../x }\n', 'artifact.path'],
    ['an absolute artifact path', 'build: { command: make }\nartifact: { path: /etc/passwd }\n', 'artifact.path'],
    ['a bad memory size', 'run:\n  memory: 12X\n', 'run.memory'],
    ['a zero memory size', 'run:\n  memory: 0\n', 'run.memory'],
    ['ports that are not numbers', 'run:\n  ports: ["8080"]\n', 'run.ports'],
    ['an out-of-range port', 'run:\n  ports: [70000]\n', 'run.ports'],
    ['ports that are not a list', 'run:\n  ports: 8080\n', 'run.ports'],
    ['an invalid env key', 'run:\n  env: { "1BAD": x }\n', '1BAD'],
    ['an env key with a dash', 'run:\n  env: { BAD-KEY: x }\n', 'BAD-KEY'],
    ['a nested env value', 'run:\n  env: { A: { b: 1 } }\n', 'run.env.A'],
    ['a relative workdir', 'run:\n  workdir: app\n', 'run.workdir'],
    ['an empty run.command list', 'run:\n  command: []\n', 'run.command'],
    ['an invalid name', 'name: Hello_World\n', 'name'],
    ['a YAML syntax error', 'name: [unclosed\n', 'not valid YAML'],
    ['a list document', '- a\n- b\n', 'mapping'],
    ['a scalar document', 'just a string\n', 'mapping'],
    ['an empty document', '', 'mapping'],
  ])('rejects %s with E_UNIKYAML_INVALID', (_what, text, mentions) => {
    expect(invalidMessage(text)).toContain(mentions);
  });

  it('rejects run: given as a list', () => {
    invalidMessage('run:\n  - /app/hello\n');
  });
});

describe('run.memory', () => {
  it('takes a size (the one size parser, src/util/size.ts)', () => {
    write('run:\n  memory: 1G\n');
    expect(loadUnikYaml(dir)?.run.memoryMiB).toBe(1024);
  });
  it('refuses what is not a size, naming the file and the field', () => {
    expect(invalidMessage('run:\n  memory: 1.5G\n')).toContain('run.memory must be a size');
  });
});


describe('service settings: deploy:, check:, restart:', () => {
  it('reads every key, typed (durations in ms), nothing defaulted', () => {
    write(`
deploy:
  replicas: 3
  strategy: canary
  max_surge: 25%
  max_unavailable: 1
  canary: 2
  min_healthy: 10s
  healthy_deadline: 5m
  auto_revert: false
check: http:8080/healthz,interval=2s
restart: always
`);
    expect(loadUnikYaml(dir)).toEqual({
      run: { env: {} },
      deploy: {
        replicas: 3, strategy: 'canary', maxSurge: '25%', maxUnavailable: 1, canary: 2, minHealthyMs: 10_000, healthyDeadlineMs: 300_000,
        autoRevert: false, check: 'http:8080/healthz,interval=2s', restart: 'always',
      },
    });
  });

  it('reads the map form of check:', () => {
    write('check: { http: 8080, path: /healthz, interval: 500ms, timeout: 250ms, grace: 10s, failures: 5 }\n');
    expect(loadUnikYaml(dir)?.deploy).toEqual({ check: { kind: 'http', port: 8080, path: '/healthz', intervalMs: 500, timeoutMs: 250, graceMs: 10_000, failures: 5 } });
    write('check:\n  tcp: 5432\n');
    expect(loadUnikYaml(dir)?.deploy).toEqual({ check: { kind: 'tcp', port: 5432 } });
  });

  it('has no deploy settings when none of the keys is written', () => {
    write('name: x\n');
    expect(loadUnikYaml(dir)?.deploy).toBeUndefined();
    write('restart: never\n');
    expect(loadUnikYaml(dir)?.deploy).toEqual({ restart: 'never' });
  });

  it.each([
    ['an unknown deploy key', 'deploy:\n  replica: 3\n', 'unknown key "deploy.replica"'],
    ['deploy as a list', 'deploy: [1]\n', 'deploy must be a mapping'],
    ['replicas as a string', 'deploy:\n  replicas: "3"\n', 'deploy.replicas must be an integer'],
    ['fractional replicas', 'deploy:\n  replicas: 1.5\n', 'deploy.replicas must be an integer'],
    ['an unknown strategy', 'deploy:\n  strategy: blue-green\n', 'deploy.strategy must be one of rolling, canary, immediate'],
    ['a max surge that is no count', 'deploy:\n  max_surge: lots\n', 'deploy.max_surge must be an integer or a percentage'],
    ['a fractional percentage', 'deploy:\n  max_unavailable: 2.5%\n', 'deploy.max_unavailable'],
    ['a duration without a unit', 'deploy:\n  min_healthy: 10\n', 'deploy.min_healthy must be a duration'],
    ['a bad duration', 'deploy:\n  healthy_deadline: 5 minutes\n', 'deploy.healthy_deadline must be a duration'],
    ['auto_revert as a string', 'deploy:\n  auto_revert: "yes"\n', 'deploy.auto_revert must be true or false'],
    ['an unknown restart policy', 'restart: sometimes\n', 'restart must be one of always, on-failure, never'],
    ['an empty check', 'check: ""\n', 'check is empty'],
    ['check: false', 'check: false\n', 'check must be a string like http:8080/healthz'],
    ['a check map with both kinds', 'check: { tcp: 1, http: 2 }\n', 'exactly one of tcp: PORT or http: PORT'],
    ['a check map with no kind', 'check: { path: /x }\n', 'exactly one of tcp: PORT or http: PORT'],
    ['a check port that is a string', 'check: { http: "8080" }\n', 'check.http must be an integer'],
    ['a tcp check with a path', 'check: { tcp: 8080, path: /x }\n', 'check.path is for http checks'],
    ['a bad check interval', 'check: { tcp: 8080, interval: soon }\n', 'check.interval must be a duration'],
    ['an unknown check key', 'check: { tcp: 8080, retries: 3 }\n', 'unknown key "check.retries"'],
  ])('rejects %s with E_UNIKYAML_INVALID', (_what, text, mentions) => {
    expect(invalidMessage(text)).toContain(mentions);
  });
});
