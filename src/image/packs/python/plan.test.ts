import { describe, expect, it } from 'vitest';
import { UserError } from '../../../errors.js';
import type { BuildMode } from '../../pack.js';
import { importable } from '../python.js';
import { launcher, planEntry, serverModules, type EntryFacts, type EntryFile } from './entry.js';
import { exportFailure, planInstall, PY_TOOLS, type ProjectFacts } from './install.js';
import { planFreezeOmitted } from './requirements.js';

function facts(files: string[], o: Partial<Omit<ProjectFacts, 'present'>> = {}): ProjectFacts {
  return { present: (f) => files.includes(f), declared: [], buildSystem: false, packageMode: true, ...o };
}

function plan(files: string[], mode: BuildMode = 'release', o: Partial<Omit<ProjectFacts, 'present'>> = {}): { p: ReturnType<typeof planInstall>; warnings: string[] } {
  const warnings: string[] = [];
  return { p: planInstall(facts(files, o), mode, (m) => warnings.push(m)), warnings };
}

function thrown(f: () => unknown): UserError {
  try {
    f();
  } catch (e) {
    if (e instanceof UserError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

describe('python pack: which lock, which tool, which command (BLD-4)', () => {
  it('uv.lock: uv export, --locked in release (a stale lock fails), --frozen in debug, no dev groups, no project line', () => {
    const { p } = plan(['pyproject.toml', 'uv.lock']);
    expect(p.source).toBe('uv');
    expect(p.lock).toBe('uv.lock');
    expect(p.tool).toEqual(PY_TOOLS.uv);
    expect(p.tool?.packages).toEqual(['uv==0.13.9']); // pinned, from PyPI
    expect(p.exportArgs('/w/req.txt', '/py/bin/python3')).toEqual(['export', '--locked', '--no-default-groups', '--no-emit-project', '--format', 'requirements-txt',
      '--no-header', '--no-annotate', '--python', '/py/bin/python3', '--output-file', '/w/req.txt']);
    expect(plan(['pyproject.toml', 'uv.lock'], 'debug').p.exportArgs('/o', '/py')[1]).toBe('--frozen');
  });

  it('poetry.lock: poetry export of the main group with the export plugin, both pinned', () => {
    const { p } = plan(['pyproject.toml', 'poetry.lock']);
    expect(p.source).toBe('poetry');
    expect(p.tool?.packages).toEqual(['poetry==2.5.1', 'poetry-plugin-export==1.10.1']);
    expect(p.exportArgs('/w/req.txt', '/py')).toEqual(['export', '--only', 'main', '--format', 'requirements.txt', '--output', '/w/req.txt', '--no-interaction', '--no-ansi']);
  });

  it('a requirements file wins over uv.lock/poetry.lock, and the others are named in a warning', () => {
    const { p, warnings } = plan(['pyproject.toml', 'requirements.lock', 'uv.lock']);
    expect(p).toMatchObject({ source: 'requirements', lock: 'requirements.lock', tool: null });
    expect(warnings.join('\n')).toContain('requirements.lock, uv.lock');
  });

  it('the project itself is installed when pyproject.toml has a build backend, unless poetry package-mode = false', () => {
    expect(plan(['pyproject.toml', 'uv.lock'], 'release', { buildSystem: true }).p.installProject).toBe(true);
    expect(plan(['pyproject.toml', 'uv.lock'], 'release', { buildSystem: false }).p.installProject).toBe(false);
    expect(plan(['pyproject.toml', 'poetry.lock'], 'release', { buildSystem: true, packageMode: false }).p.installProject).toBe(false);
    expect(plan(['pyproject.toml'], 'release', { buildSystem: true }).p).toMatchObject({ source: 'none', installProject: true });
  });

  it('unlocked input: release refuses with E_LOCK_REQUIRED and the fix, debug warns', () => {
    const e = thrown(() => plan(['pyproject.toml'], 'release', { declared: ['fastapi'] }));
    expect(e.code).toBe('E_LOCK_REQUIRED');
    expect(e.hint).toContain('uv lock');
    const { p, warnings } = plan(['pyproject.toml'], 'debug', { declared: ['fastapi'] });
    expect(p.source).toBe('declared');
    expect(warnings.join('\n')).toContain('E_LOCK_REQUIRED');
    const pipenv = thrown(() => plan(['Pipfile.lock', 'main.py']));
    expect(pipenv.code).toBe('E_LOCK_REQUIRED');
    expect(pipenv.hint).toContain('pipenv requirements');
  });

  it('a uv.lock or poetry.lock without pyproject.toml cannot be read', () => {
    const e = thrown(() => plan(['poetry.lock']));
    expect(e.code).toBe('E_BUILD_FAILED');
    expect(e.message).toContain('no pyproject.toml');
  });

  it('a stale lock (the tools\' own words) is E_LOCK_REQUIRED with the re-lock command; other export failures are E_BUILD_FAILED', () => {
    const uv = exportFailure(PY_TOOLS.uv, 'uv.lock', 'Resolved 18 packages in 3ms\nerror: The lockfile at `uv.lock` needs to be updated, but `--locked` was provided. To update the lockfile, run `uv lock`.');
    expect(uv.code).toBe('E_LOCK_REQUIRED');
    expect(uv.hint).toBe('run `uv lock` and commit uv.lock');
    const poetry = exportFailure(PY_TOOLS.poetry, 'poetry.lock', 'pyproject.toml changed significantly since poetry.lock was last generated. Run `poetry lock` to fix the lock file.');
    expect(poetry.code).toBe('E_LOCK_REQUIRED');
    expect(exportFailure(PY_TOOLS.uv, 'uv.lock', 'error: Failed to parse `uv.lock`').code).toBe('E_BUILD_FAILED');
  });
});

const FLAGS = ['-E', '-s', '-u', '-OO'];
const file = (name: string, runnable = true, apps: EntryFile['apps'] = []): EntryFile => ({ name, runnable, apps });
const entry = (o: Partial<EntryFacts>): ReturnType<typeof planEntry> => planEntry({ configured: null, files: [], projectScripts: {}, consoleScripts: {}, flags: FLAGS, ...o });

describe('python pack: entry points (BLD-3)', () => {
  it('a console script runs as pip\'s wrapper does, through -c (no shell, no PATH in the image)', () => {
    expect(launcher('uvicorn', 'uvicorn.main:main')).toBe('import sys; from uvicorn.main import main; sys.argv[0] = "uvicorn"; sys.exit(main())');
    expect(launcher('x', 'pkg.cli:App.run [extra]')).toBe('import sys; from pkg.cli import App; sys.argv[0] = "x"; sys.exit(App.run())');
    expect(thrown(() => launcher('x', 'not a reference')).code).toBe('E_BUILD_FAILED');
  });

  it('unik.yaml run.command naming an installed console script is rewritten (and replaces run.command)', () => {
    const p = entry({ configured: ['gunicorn', 'app:app'], consoleScripts: { gunicorn: 'gunicorn.app.wsgiapp:run', flask: 'flask.cli:main' } });
    expect(p.command).toEqual(['/usr/bin/python3', ...FLAGS, '-c', launcher('gunicorn', 'gunicorn.app.wsgiapp:run'), 'app:app']);
    expect(p.rewritten).toBe(true);
  });

  it('run.command: python3 is the image\'s interpreter; an absolute path is used as written', () => {
    expect(entry({ configured: ['python3', '-m', 'myapp'] })).toMatchObject({ command: ['/usr/bin/python3', '-m', 'myapp'], rewritten: true, usesDashM: true });
    expect(entry({ configured: ['/usr/bin/python3', '/app/serve.py'] })).toMatchObject({ command: ['/usr/bin/python3', '/app/serve.py'], rewritten: false });
  });

  it('run.command naming something that is not installed fails, listing what is', () => {
    const e = thrown(() => entry({ configured: ['uvicorn', 'app:app'], consoleScripts: { flask: 'flask.cli:main' } }));
    expect(e.code).toBe('E_BUILD_FAILED');
    expect(e.message).toContain('"uvicorn"');
    expect(e.message).toContain('(flask)');
    expect(e.hint).toContain('lock file');
  });

  it('without run.command: main.py, or the one pyproject.toml script', () => {
    expect(entry({ files: [file('main.py'), file('app.py')] }).command).toEqual(['/usr/bin/python3', ...FLAGS, '/app/main.py']);
    const s = entry({ projectScripts: { serve: 'svc.main:serve' } });
    expect(s.command).toEqual(['/usr/bin/python3', ...FLAGS, '-c', launcher('serve', 'svc.main:serve')]);
    expect(s.rewritten).toBe(false);
  });

  it('several candidates fail, naming them', () => {
    const e = thrown(() => entry({ files: [file('main.py')], projectScripts: { serve: 'svc:serve' } }));
    expect(e.message).toContain('several entry points: main.py; script serve = "svc:serve"');
    expect(e.hint).toContain('[serve]');
  });

  it('an app.py that only defines a framework app is not run: the error names it and the unik.yaml line that serves it', () => {
    const flask = thrown(() => entry({ files: [file('app.py', false, [{ name: 'app', framework: 'Flask' }])], consoleScripts: { gunicorn: 'gunicorn.app.wsgiapp:run' } }));
    expect(flask.code).toBe('E_BUILD_FAILED');
    expect(flask.message).toContain('app.py defines a Flask app `app` but does not start a server');
    expect(flask.message).toContain('console scripts of the installed packages: gunicorn');
    expect(flask.hint).toBe('add to unik.yaml: run: { command: [gunicorn, --bind, "0.0.0.0:8080", "app:app"] }');
    const api = thrown(() => entry({ files: [file('main.py', false, [{ name: 'api', framework: 'FastAPI' }])] }));
    expect(api.hint).toContain('[uvicorn, "main:api", --host, "0.0.0.0", --port, "8080"]');
    expect(api.hint).toContain('uvicorn (not installed');
    // Django's startproject layout: no app file, a wsgi/asgi module a server names
    expect(serverModules(['manage.py', 'mysite/__init__.py', 'mysite/asgi.py', 'mysite/settings.py', 'mysite/wsgi.py', 'hello/views.py', 'a/b/wsgi.py']))
      .toEqual(['mysite/asgi.py', 'mysite/wsgi.py']);
    const django = thrown(() => entry({ serverModules: ['mysite/wsgi.py'], consoleScripts: { 'django-admin': 'django.core.management:execute_from_command_line', gunicorn: 'gunicorn.app.wsgiapp:run' } }));
    expect(django.message).toContain('mysite/wsgi.py (a WSGI module, as Django\'s startproject writes)');
    expect(django.message).toContain('console scripts of the installed packages: django-admin, gunicorn');
    expect(django.hint).toBe('add to unik.yaml: run: { command: [gunicorn, --bind, "0.0.0.0:8080", "mysite.wsgi:application"] }');
    const asgi = thrown(() => entry({ serverModules: ['mysite/asgi.py'] }));
    expect(asgi.hint).toContain('[uvicorn, "mysite.asgi:application", --host, "0.0.0.0", --port, "8080"] } — uvicorn (not installed');
    const nothing = thrown(() => entry({}));
    expect(nothing.message).toContain('no main.py or app.py');
    expect(nothing.hint).toContain('run.command');
  });

  it('app files no import reaches by name stay sources (gunicorn.conf.py is loaded by path)', () => {
    expect(importable('app.py')).toBe(true);
    expect(importable('pkg/mod.py')).toBe(true);
    expect(importable('gunicorn.conf.py')).toBe(false);
    expect(importable('my-scripts/run.py')).toBe(false);
  });
});

describe('python pack: what `pip freeze` leaves out (fly-apps/python-hellofly-flask)', () => {
  it('installs the build python\'s setuptools/pip/wheel for a pinned dependency that requires them; anything else stays missing', () => {
    const missing = [
      { name: 'setuptools', requiredBy: 'gunicorn' }, { name: 'Setuptools', requiredBy: 'zope.interface' },
      { name: 'wheel', requiredBy: 'x' }, { name: 'click', requiredBy: 'Flask' },
    ];
    const plan = planFreezeOmitted(missing, { setuptools: '65.5.0', pip: '23.2' });
    expect(plan.implicit).toEqual([{ name: 'setuptools', version: '65.5.0', requiredBy: missing.slice(0, 2) }]);
    expect(plan.missing).toEqual([missing[2], missing[3]]); // the host has no wheel: still an E_LOCK_REQUIRED
    expect(planFreezeOmitted(missing, {}).implicit).toEqual([]);
  });
});
