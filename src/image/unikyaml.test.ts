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

