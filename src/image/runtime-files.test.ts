import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { UserError } from '../errors.js';
import type { BuildContext } from './pack.js';
import { addRuntimeFiles, DEFAULT_RUNTIME_FILES_LIMIT, referencedDirs } from './runtime-files.js';
import { RootfsBuilder } from './rootfs.js';
import type { UnikYaml } from './unikyaml.js';

let tmp: string;
let proj: string;
let rootfs: RootfsBuilder;
let warnings: string[];
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'unik-runtime-files-'));
  proj = join(tmp, 'proj');
  mkdirSync(proj);
  rootfs = new RootfsBuilder(join(tmp, 'stage'));
  warnings = [];
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

const put = (rel: string, content: string | Buffer = 'x'): void => {
  mkdirSync(join(proj, rel, '..'), { recursive: true });
  writeFileSync(join(proj, rel), content);
};
const ctx = (include?: string[]): BuildContext => ({
  dir: proj, mode: 'release', cacheDir: join(tmp, 'cache'), workDir: join(tmp, 'work'), env: {},
  config: include ? ({ run: { env: {} }, include } satisfies UnikYaml) : null, log: () => {}, warn: (m) => warnings.push(m),
});
const guest = (p: string): string => rootfs.hostPath(p);

describe('addRuntimeFiles', () => {
  it('copies the known framework files and directories next to the binary by default, never .env or sources', () => {
    put('Rocket.toml', 'port = 8000');
    put('config.toml');
    put('templates/index.html.tera', '<h1>');
    put('static/css/site.css');
    put('.env', 'SECRET=1');
    put('src/main.rs');
    put('Cargo.toml');
    expect(addRuntimeFiles(ctx(), rootfs)).toEqual(['Rocket.toml', 'config.toml', 'templates', 'static']);
    expect(readFileSync(guest('/app/Rocket.toml'), 'utf8')).toBe('port = 8000');
    expect(readFileSync(guest('/app/templates/index.html.tera'), 'utf8')).toBe('<h1>');
    expect(existsSync(guest('/app/static/css/site.css'))).toBe(true);
    for (const p of ['/app/.env', '/app/src', '/app/Cargo.toml']) expect(existsSync(guest(p)), p).toBe(false);
  });

  it('leaves out a default directory above the size limit with a warning; include: ships it', () => {
    put('public/big.bin', Buffer.alloc(DEFAULT_RUNTIME_FILES_LIMIT + 1));
    expect(addRuntimeFiles(ctx(), rootfs)).toEqual([]);
    expect(warnings[0]).toMatch(/^public is 16\.0 MiB, above the 16 MiB limit .* include: in unik\.yaml/);
    expect(addRuntimeFiles(ctx(['public']), rootfs)).toEqual(['public']);
    expect(existsSync(guest('/app/public/big.bin'))).toBe(true);
  });

  it('include: replaces the defaults, keeps sub-paths, and must name existing paths inside the project', () => {
    put('config.toml');
    put('conf/app/settings.ini', 'a=1');
    put('conf/db.ini');
    expect(addRuntimeFiles(ctx(['conf/app/settings.ini', 'conf/db.ini']), rootfs)).toEqual(['conf/app/settings.ini', 'conf/db.ini']);
    expect(readFileSync(guest('/app/conf/app/settings.ini'), 'utf8')).toBe('a=1');
    expect(existsSync(guest('/app/config.toml'))).toBe(false);
    const code = (include: string[]): string | undefined => { try { addRuntimeFiles(ctx(include), rootfs); } catch (e) { return (e as UserError).code; } return undefined; };
    expect(code(['missing.toml'])).toBe('E_UNIKYAML_INVALID');
    symlinkSync('/etc', join(proj, 'etc-link'));
    expect(code(['etc-link'])).toBe('E_UNIKYAML_INVALID');
  });

  it('never overwrites what the pack placed (a binary named like a default directory)', () => {
    put('static/a.css');
    put('config.toml');
    rootfs.addBytes('/app/static', 'ELF…', 0o755);
    expect(addRuntimeFiles(ctx(), rootfs)).toEqual(['config.toml']);
    expect(warnings).toEqual(['static would overwrite /app/static, which the pack already put in the image (the binary): not copied']);
    expect(() => addRuntimeFiles(ctx(['static']), rootfs)).toThrow(expect.objectContaining({ code: 'E_UNIKYAML_INVALID' }));
  });

  it('does not follow a symlink inside an included directory out of the project', () => {
    put('templates/a.html');
    symlinkSync('/etc/passwd', join(proj, 'templates', 'passwd'));
    symlinkSync('a.html', join(proj, 'templates', 'b.html'));
    addRuntimeFiles(ctx(), rootfs);
    expect(existsSync(guest('/app/templates/passwd'))).toBe(false);
    expect(lstatSync(guest('/app/templates/b.html')).isSymbolicLink()).toBe(true); // the same file twice: one copy, a link in the guest
    expect(warnings).toEqual(['templates/passwd is a symlink that leaves the project (or dangles): not copied into the image']);
  });

  it('also copies the top-level directories the source names as relative paths (render-examples/go-gin-web-server), never code', () => {
    put('go.mod', 'module example.com/chat');
    put('main.go', 'router.LoadHTMLGlob("resources/*.templ.html")\nrouter.Static("/static", "resources/static")\nhttp.Dir(`./web`)\nimport "example.com/chat/handlers"\nx := "data"');
    put('resources/room.templ.html', '<h1>');
    put('resources/static/app.js');
    put('web/index.html');
    put('data/words.txt'); // named only as a bare word: not a path
    put('handlers/h.go'); // a Go package
    put('lib/deep/x.go'); put('main_test.go', '"lib/fixture.json"');
    put('vendor/a.txt'); put('internal/util.txt');
    expect(referencedDirs(proj, ['.go'])).toEqual(['resources', 'web']);
    put('templates/a.html');
    expect(addRuntimeFiles(ctx(), rootfs, '/app', ['.go'])).toEqual(['templates', 'resources', 'web']);
    expect(readFileSync(guest('/app/resources/room.templ.html'), 'utf8')).toBe('<h1>');
    for (const p of ['/app/data', '/app/handlers', '/app/vendor', '/app/lib']) expect(existsSync(guest(p)), p).toBe(false);
    // without source extensions (java) or with include:, nothing is guessed
    const other = new RootfsBuilder(join(tmp, 'stage2'));
    expect(addRuntimeFiles(ctx(), other)).toEqual(['templates']);
    expect(addRuntimeFiles(ctx(['web']), other)).toEqual(['web']);
  });
});
