import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { completeStandalone, findStandalone } from './standalone.js';

let app: string;
beforeEach(() => { app = mkdtempSync(join(tmpdir(), 'unik-standalone-')); });
afterEach(() => { rmSync(app, { recursive: true, force: true }); });

function write(rel: string, content = ''): void {
  mkdirSync(dirname(join(app, rel)), { recursive: true });
  writeFileSync(join(app, rel), content);
}

describe('node pack: a Next.js standalone build output', () => {
  it('is found after the build: server.js, with .next/static and public/ to copy next to it', () => {
    write('.next/required-server-files.json', JSON.stringify({ version: 1, relativeAppDir: '' }));
    write('.next/standalone/server.js', 'require("next")');
    write('.next/standalone/node_modules/next/package.json', '{}');
    write('.next/static/chunks/a.js', 'a');
    write('public/robots.txt', 'User-agent: *');
    const out = findStandalone(app);
    expect(out).toEqual({
      dir: '.next/standalone', server: 'server.js',
      copies: [{ from: '.next/static', to: '.next/static' }, { from: 'public', to: 'public' }],
      describe: 'Next.js standalone output .next/standalone/server.js',
    });
    const root = completeStandalone(app, out!);
    expect(root).toBe(join(app, '.next/standalone'));
    expect(readFileSync(join(root, '.next/static/chunks/a.js'), 'utf8')).toBe('a');
    expect(readFileSync(join(root, 'public/robots.txt'), 'utf8')).toBe('User-agent: *');
  });

  it('in a monorepo, the server sits at relativeAppDir inside the traced tree; a custom distDir is read from next.config', () => {
    write('next.config.js', "module.exports = { output: 'standalone', distDir: 'build' }");
    write('build/required-server-files.json', JSON.stringify({ relativeAppDir: 'apps/web' }));
    write('build/standalone/apps/web/server.js');
    write('build/static/x.js');
    expect(findStandalone(app)).toMatchObject({ dir: 'build/standalone', server: 'apps/web/server.js', copies: [{ from: 'build/static', to: 'apps/web/build/static' }] });
  });

  it('is not there without output: "standalone" (no standalone directory), or when the server is missing or outside the tree', () => {
    write('.next/required-server-files.json', '{}');
    write('.next/server/app/page.js');
    expect(findStandalone(app)).toBeNull();
    write('.next/standalone/node_modules/next/package.json', '{}');
    expect(findStandalone(app)).toBeNull();
    write('.next/required-server-files.json', JSON.stringify({ relativeAppDir: '../elsewhere' }));
    write('.next/standalone/server.js');
    expect(findStandalone(app)).toBeNull();
    expect(existsSync(join(app, 'public'))).toBe(false);
  });
});
