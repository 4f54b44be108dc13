import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../../errors.js';
import type { BuildContext, BuildMode } from '../pack.js';
import { RootfsBuilder } from '../rootfs.js';
import { nodePack, pruneForeignPrebuilds } from './node.js';
import { installSteps, lockState, planInstall, type InstallPlan } from './node/managers.js';
import { guestCommand, parseStartScript, resolveEntry, type PackageJson } from './node/plan.js';
import { npmEnv, stageApp } from './node/runtime.js';

let tmp: string;
let proj: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'unik-node-pack-'));
  proj = join(tmp, 'proj');
  mkdirSync(proj);
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function write(rel: string, content: string): void {
  const p = join(proj, rel);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, content);
}

function pkg(p: PackageJson): void {
  write('package.json', JSON.stringify(p));
}

function ctx(mode: BuildMode, env: NodeJS.ProcessEnv = process.env): BuildContext & { warnings: string[]; lines: string[] } {
  const warnings: string[] = [];
  const lines: string[] = [];
  const workDir = join(proj, '.unikctl', 'work');
  mkdirSync(workDir, { recursive: true });
  return {
    dir: proj, mode, cacheDir: join(proj, '.unikctl', 'cache'), workDir, config: null, env,
    log: (l) => lines.push(l), warn: (m) => warnings.push(m), warnings, lines,
  };
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return e instanceof UserError ? e.code : `not a UserError: ${String(e)}`;
  }
  return 'no error';
}

describe('node pack detection', () => {
  it('recognizes package.json and nothing else', () => {
    expect(nodePack.detect(proj, null)).toBe(false);
    pkg({ name: 'x' });
    expect(nodePack.detect(proj, null)).toBe(true);
  });
});

describe('lock enforcement (BLD-4)', () => {
  const withDeps: PackageJson = { dependencies: { ms: '2.1.3' }, devDependencies: { 'is-number': '7.0.0' } };

  it('npm ci from package-lock.json, npm-shrinkwrap.json preferred like npm does', () => {
    pkg(withDeps);
    write('package-lock.json', '{}');
    expect(planInstall(withDeps, lockState(proj), 'release', () => {})).toMatchObject({ tool: { name: 'npm', pkg: null }, lock: 'package-lock.json', production: true, build: null });
    write('npm-shrinkwrap.json', '{}');
    expect(planInstall(withDeps, lockState(proj), 'release', () => {})).toMatchObject({ lock: 'npm-shrinkwrap.json' });
  });

  it('release without a lock fails with E_LOCK_REQUIRED; debug warns and installs unlocked', async () => {
    pkg(withDeps);
    expect(() => planInstall(withDeps, lockState(proj), 'release', () => {})).toThrow(expect.objectContaining({ code: 'E_LOCK_REQUIRED' }));
    const warnings: string[] = [];
    expect(planInstall(withDeps, lockState(proj), 'debug', (m) => warnings.push(m))).toMatchObject({ lock: null, production: true });
    expect(warnings.join('\n')).toMatch(/no package-lock\.json.*E_LOCK_REQUIRED/);
    // and through the pack itself, before anything is installed
    expect(await code(nodePack.build(ctx('release'), new RootfsBuilder(join(tmp, 'root'))))).toBe('E_LOCK_REQUIRED');
  });

  it('no production dependencies: nothing to install, no lock needed (dev dependencies never reach the image)', () => {
    const devOnly: PackageJson = { devDependencies: { 'is-number': '7.0.0' } };
    expect(planInstall(devOnly, lockState(proj), 'release', () => {})).toMatchObject({ lock: null, production: false, build: null, fullInstall: false });
  });
});

describe('the npm command', () => {
  it('installs production dependencies only, with the cache in .unikctl/cache/npm', () => {
    const npm = { name: 'npm', berry: false, pkg: null, source: 'package-lock.json' } as const;
    const plan: InstallPlan = { tool: npm, lock: 'package-lock.json', production: true, build: null, fullInstall: false };
    const [args, ...rest] = installSteps(plan, '/p/.unikctl/cache', {}).map((s) => s.args);
    expect(rest).toEqual([]);
    expect(args?.[0]).toBe('ci');
    expect(args).toEqual(expect.arrayContaining(['--omit=dev', '--ignore-scripts=false', '--no-audit', '--no-fund', '--cache=/p/.unikctl/cache/npm']));
    expect(installSteps({ ...plan, lock: null }, '/c', {})[0]?.args).toEqual(expect.arrayContaining(['install', '--omit=dev', '--no-package-lock']));
  });

  it('drops npm_* variables inherited from an enclosing npm run and puts node first on PATH', () => {
    const env = npmEnv({ PATH: '/bin', npm_config_omit: '', NPM_CONFIG_CACHE: '/elsewhere', HOME: '/root' }, '/opt/node/bin/node');
    expect(env.npm_config_omit).toBeUndefined();
    expect(env.NPM_CONFIG_CACHE).toBeUndefined();
    expect(env.PATH).toBe('/opt/node/bin:/bin');
    expect(env.HOME).toBe('/root');
  });

  it('stages the app without node_modules, .git and .unikctl', () => {
    write('server.js', '');
    write('lib/a.js', '');
    write('node_modules/dev-only/index.js', '');
    write('lib/node_modules/x/index.js', '');
    write('.git/HEAD', '');
    write('extra-root/etc/x', '');
    mkdirSync(join(proj, '.unikctl', 'work'), { recursive: true });
    const dest = join(proj, '.unikctl', 'work', 'app');
    stageApp(proj, dest, ['extra-root']);
    expect(existsSync(join(dest, 'server.js'))).toBe(true);
    expect(existsSync(join(dest, 'lib', 'a.js'))).toBe(true);
    for (const gone of ['node_modules', 'lib/node_modules', '.git', '.unikctl', 'extra-root']) expect(existsSync(join(dest, gone)), gone).toBe(false);
  });
});

describe('native addons', () => {
  it('keeps only linux-x64 glibc prebuilds (prebuildify layout)', () => {
    for (const d of ['linux-x64/node.napi.node', 'linux-x64/node.napi.musl.node', 'linux-arm64/node.napi.node', 'darwin-x64+arm64/node.napi.node', 'win32-x64/node.napi.node', 'linux-arm64+x64/node.napi.node']) {
      write(`node_modules/@scope/addon/prebuilds/${d}`, 'bin');
    }
    const removed = pruneForeignPrebuilds(join(proj, 'node_modules'));
    expect(removed).toEqual([
      '@scope/addon/prebuilds/darwin-x64+arm64', '@scope/addon/prebuilds/linux-arm64', '@scope/addon/prebuilds/linux-x64/node.napi.musl.node', '@scope/addon/prebuilds/win32-x64',
    ]);
    expect(existsSync(join(proj, 'node_modules/@scope/addon/prebuilds/linux-x64/node.napi.node'))).toBe(true);
    expect(existsSync(join(proj, 'node_modules/@scope/addon/prebuilds/linux-arm64+x64/node.napi.node'))).toBe(true);
  });
});

describe('the start command', () => {
  it('parses simple `node file` start scripts', () => {
    expect(parseStartScript('node server.js')).toEqual({ env: {}, nodeArgs: [], file: 'server.js', args: [] });
    expect(parseStartScript('PORT=3000 node --max-old-space-size=128 -r ./tracing.js src/index.js --verbose')).toEqual({
      env: { PORT: '3000' }, nodeArgs: ['--max-old-space-size=128', '-r', './tracing.js'], file: 'src/index.js', args: ['--verbose'],
    });
    for (const s of ['nodemon server.js', 'npm run build && node dist/index.js', 'node -e "go()"', 'node $ENTRY', 'ts-node src/index.ts', 'cross-env NODE_ENV=production node s.js', 'node --watch s.js', 'node']) {
      expect(parseStartScript(s), s).toBeNull();
    }
  });

  it('prefers a simple start script, then main, then server.js / index.js', () => {
    write('server.js', '');
    write('src/main.js', '');
    const warn: string[] = [];
    expect(resolveEntry(proj, { scripts: { start: 'node server' }, main: 'src/main.js' }, (m) => warn.push(m)).script).toBe('server.js');
    expect(resolveEntry(proj, { main: 'src/main' }, () => {}).script).toBe('src/main.js');
    expect(resolveEntry(proj, {}, () => {}).script).toBe('server.js');
    expect(warn).toEqual([]);
    const e = resolveEntry(proj, { scripts: { start: 'nodemon src/main.js' }, main: 'src/main.js' }, (m) => warn.push(m));
    expect(e.script).toBe('src/main.js');
    expect(warn[0]).toContain('not a simple');
  });

  it('fails clearly when it cannot tell how to start the app', () => {
    expect(() => resolveEntry(proj, {}, () => {})).toThrow(expect.objectContaining({ code: 'E_ARTIFACT_MISSING' }));
    expect(() => resolveEntry(proj, { scripts: { start: 'node missing.js' } }, () => {})).toThrow(expect.objectContaining({ code: 'E_ARTIFACT_MISSING' }));
    try {
      resolveEntry(proj, { scripts: { start: 'tsx src/index.ts' } }, () => {});
      expect.unreachable();
    } catch (e) {
      expect((e as UserError).hint).toContain('unik.yaml:  run: { command: [/usr/bin/node, /app/server.js] }');
    }
    // Next.js without output: 'standalone' (`next start` would need the compiler and the whole next package in the image)
    try {
      resolveEntry(proj, { scripts: { build: 'next build', start: 'next start' }, dependencies: { next: '16.4.6' } }, () => {});
      expect.unreachable();
    } catch (e) {
      expect((e as UserError).message).toContain('the start script "next start" is not a simple `node file.js` command and package.json has no "main"');
      expect((e as UserError).hint).toMatch(/^set output: 'standalone' in next\.config\.js .*\.next\/standalone\/server\.js/);
    }
  });

  it('an app it cannot start: the message says what package.json and the tree hold, the hint the unik.yaml line', () => {
    write('dist/server.js', '');
    const e = (() => {
      try {
        resolveEntry(proj, { scripts: { build: 'tsc', dev: 'tsx src/server.ts' } }, () => {});
      } catch (err) {
        return err as UserError;
      }
      throw new Error('no error');
    })();
    expect(e.code).toBe('E_ARTIFACT_MISSING');
    expect(e.message).toContain('package.json has scripts build, dev, no main, no "start" script');
    expect(e.message).toContain('found dist/server.js');
    expect(e.hint).toContain('"start": "node dist/server.js"');
    expect(e.hint).toContain('unik.yaml:  run: { command: [/usr/bin/node, /app/dist/server.js] }');
    // a start file the build should have written
    expect(() => resolveEntry(proj, { scripts: { build: 'tsc', start: 'node dist/main.js' } }, () => {})).toThrow(/dist\/main\.js, which is not in the project \(after the build script ran\); found dist\/server\.js/);
  });

  it('release runs plain node with NODE_ENV=production; debug adds source maps with NODE_ENV=development', () => {
    const entry = { script: 'server.js', nodeArgs: ['-r', './t.js'], args: ['x'], env: { PORT: '3000' }, source: '' };
    expect(guestCommand(entry, 'release')).toEqual({ command: ['/usr/bin/node', '-r', './t.js', '/app/server.js', 'x'], env: { NODE_ENV: 'production', PORT: '3000' } });
    const dbg = guestCommand(entry, 'debug');
    expect(dbg.command.slice(0, 2)).toEqual(['/usr/bin/node', '--enable-source-maps']);
    expect(dbg.command).not.toContain('--inspect');
    expect(dbg.env.NODE_ENV).toBe('development');
  });
});

describe('toolchain', () => {
  // a PATH with nothing but a shell (which() asks sh for `command -v`), plus whatever the case needs
  function bareBin(tools: string[]): string {
    const bare = join(tmp, `bare-${tools.join('-')}`);
    mkdirSync(bare);
    symlinkSync('/bin/sh', join(bare, 'sh'));
    for (const t of tools) symlinkSync(process.execPath, join(bare, t));
    return bare;
  }

  it('a PATH without node and npm gives E_TOOLCHAIN_MISSING naming both', async () => {
    pkg({ main: 'server.js' });
    try {
      await nodePack.build(ctx('release', { ...process.env, PATH: bareBin([]) }), new RootfsBuilder(join(tmp, 'root')));
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ code: 'E_TOOLCHAIN_MISSING' });
      expect((e as UserError).message).toMatch(/node and npm are not on PATH/);
      expect((e as UserError).hint).toMatch(/install Node\.js/);
    }
  });

  it('node without npm names npm', async () => {
    pkg({ main: 'server.js' });
    try {
      await nodePack.build(ctx('release', { ...process.env, PATH: bareBin(['node']) }), new RootfsBuilder(join(tmp, 'root')));
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ code: 'E_TOOLCHAIN_MISSING' });
      expect((e as UserError).message).toMatch(/: npm is not on PATH/);
    }
  });
});

describe('a build without dependencies (no network)', () => {
  it('puts node, its library closure and the app into the root, and reports what went in', async () => {
    pkg({ name: 'tiny', main: 'server.js' });
    write('server.js', 'console.log("hi")\n');
    write('node_modules/left-over/index.js', 'dev junk');
    const root = new RootfsBuilder(join(tmp, 'root'));
    const c = ctx('release');
    const r = await nodePack.build(c, root);
    expect(r.run).toMatchObject({ command: ['/usr/bin/node', '/app/server.js'], env: { NODE_ENV: 'production' }, workdir: '/app', memoryMiB: 256 });
    expect(existsSync(root.hostPath('/usr/bin/node'))).toBe(true);
    expect(existsSync(root.hostPath('/lib64/ld-linux-x86-64.so.2'))).toBe(true);
    expect(readFileSync(root.hostPath('/app/server.js'), 'utf8')).toContain('hi');
    expect(existsSync(root.hostPath('/app/node_modules'))).toBe(false);
    expect(r.toolchain.node).toMatch(/^v\d+\./);
    expect(r.inputs['package.json']).toMatch(/^sha256:/);
    expect(r.inputs.node).toMatch(/^sha256:/);
    expect(r.artifacts.map((a) => a.path)).toEqual(expect.arrayContaining(['/usr/bin/node', '/app']));
    expect(c.lines.join('\n')).toMatch(/image content: node .*shared libraries/);
  });

  it('a syntax error in the entry fails the build with node\'s own message (E_BUILD_FAILED)', async () => {
    pkg({ name: 'broken', scripts: { start: 'node server.js' } });
    write('server.js', 'const x = ;\n');
    try {
      await nodePack.build(ctx('release'), new RootfsBuilder(join(tmp, 'root')));
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ code: 'E_BUILD_FAILED' });
      expect((e as UserError).message).toContain('node --check server.js');
      expect((e as UserError).message).toContain('SyntaxError');
    }
  });
});
