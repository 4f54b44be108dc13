import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { expandArgv, expandWord, isPackageStart, mapStartCommand, parseProcfile, procfileStart, renderStart, splitCommand, startCommand } from './procfile.js';

const words = (cmd: string): string[] => splitCommand(cmd, 'Procfile web: (line 1)').words;
const codeOf = (f: () => unknown): string | undefined => {
  try { f(); } catch (e) { return (e as UserError).code; }
  return undefined;
};

describe('parseProcfile', () => {
  it('reads type: command lines, skips comments and blank lines, reports the rest', () => {
    const pf = parseProcfile('# comment\n\nweb: gunicorn app:app\r\nworker:python worker.py\nnot a process line\nrelease: ./migrate\n');
    expect(pf.entries).toEqual([
      { type: 'web', line: 3, command: 'gunicorn app:app' },
      { type: 'worker', line: 4, command: 'python worker.py' },
      { type: 'release', line: 6, command: './migrate' },
    ]);
    expect(pf.ignored).toEqual([5]);
  });
});

describe('splitCommand (POSIX simple words, no shell)', () => {
  it('splits on blanks and honours single quotes, double quotes and backslashes', () => {
    expect(words(`a  'b c' "d e" f\\ g "h\\"i" 'j"k' "" x#y # comment`)).toEqual(['a', 'b c', 'd e', 'f g', 'h"i', 'j"k', '', 'x#y']);
  });

  it('keeps variable references as templates; a literal $ is $$', () => {
    expect(words('--bind 0.0.0.0:$PORT "${A}b" \'$NOT\' ${B:-x y} \\$5 a$')).toEqual(['--bind', '0.0.0.0:${PORT}', '${A}b', '$$NOT', '${B:-x y}', '$$5', 'a$$']);
    expect(splitCommand('a b', 'w').refs).toBe(false);
    expect(splitCommand('a $B', 'w').refs).toBe(true);
  });

  it('refuses what needs a shell, naming the line and run.command as the fix', () => {
    for (const cmd of ['a | b', 'a && b', 'a; b', 'a > log', 'a < in', '(a)', 'a `date`', 'a $(date)', 'a $1', 'a ${X:=y}', 'a "$(x)"', "a 'open"]) {
      expect(codeOf(() => words(cmd)), cmd).toBe('E_PROCFILE_INVALID');
    }
    try {
      words('bundle exec puma && echo done');
    } catch (e) {
      expect((e as UserError).message).toContain('Procfile web: (line 1)');
      expect((e as UserError).hint).toContain('run.command in unik.yaml');
    }
  });
});

describe('expandWord', () => {
  it('expands from the environment like a shell (unset → empty, :- and - defaults), $$ → $', () => {
    const env = { PORT: '8080', EMPTY: '' };
    expect(expandWord('0.0.0.0:${PORT}', env)).toBe('0.0.0.0:8080');
    expect(expandWord('${MISSING}', env)).toBe('');
    expect(expandWord('${EMPTY:-d}|${EMPTY-d}|${MISSING-d}', env)).toBe('d||d');
    expect(expandWord('$$PORT', env)).toBe('$PORT');
    expect(expandArgv(['a', '${PORT}${PORT}'], env)).toEqual(['a', '80808080']);
  });
});

describe('startCommand', () => {
  it('takes leading assignments as environment, drops exec, keeps literal words when nothing is referenced', () => {
    expect(startCommand('NODE_ENV=production exec node server.js', 's')).toEqual({ source: 's', argv: ['node', 'server.js'], env: { NODE_ENV: 'production' }, envTemplates: {}, expand: false });
    expect(startCommand('ROCKET_ADDRESS=0.0.0.0 ROCKET_PORT=$PORT ./target/release/app', 's')).toMatchObject({ argv: ['./target/release/app'], env: { ROCKET_ADDRESS: '0.0.0.0' }, envTemplates: { ROCKET_PORT: '${PORT}' }, expand: false });
    expect(startCommand("node -e 'a$b'", 's').argv).toEqual(['node', '-e', 'a$b']);
    expect(startCommand('node server.js --port $PORT', 's')).toMatchObject({ argv: ['node', 'server.js', '--port', '${PORT}'], expand: true });
  });

  it('refuses shell builtins, shells, a program from a variable, no program', () => {
    for (const cmd of ['cd app', 'sh -c "x"', 'bash start.sh', '$CMD', '', 'X=1']) {
      expect(codeOf(() => startCommand(cmd, 's')), cmd).toBe('E_PROCFILE_INVALID');
    }
  });
});

describe('mapStartCommand', () => {
  const python = { python: ['/usr/bin/python3', '-u'], gunicorn: ['/usr/bin/python3', '-u', '-c', 'run()'] };

  it('maps the first word to the image program (by name or last path element), guest paths stay', () => {
    expect(mapStartCommand(startCommand('gunicorn app:app --bind 0.0.0.0:$PORT', 's'), 'python', python)).toEqual(['/usr/bin/python3', '-u', '-c', 'run()', 'app:app', '--bind', '0.0.0.0:${PORT}']);
    expect(mapStartCommand(startCommand('.venv/bin/gunicorn app:app', 's'), 'python', python)).toEqual(['/usr/bin/python3', '-u', '-c', 'run()', 'app:app']);
    expect(mapStartCommand(startCommand('./target/release/server --x', 's'), 'rust', { server: ['/app/server'] })).toEqual(['/app/server', '--x']);
    expect(mapStartCommand(startCommand('/app/server', 's'), 'rust', {})).toEqual(['/app/server']);
  });

  it('replaces arguments naming a project file the pack moved (java -jar target/x.jar), escaping $ in templates', () => {
    const s = startCommand('java -Dport=$PORT -jar target/x.jar', 's');
    expect(mapStartCommand(s, 'java', { java: ['/opt/java/bin/java'] }, { 'target/x.jar': '/app/x.jar' })).toEqual(['/opt/java/bin/java', '-Dport=${PORT}', '-jar', '/app/x.jar']);
  });

  it('names what the image can start when the program is unknown', () => {
    try {
      mapStartCommand(startCommand('npm start', 'Procfile web: (line 1)'), 'node', { node: ['/usr/bin/node'], nodejs: ['/usr/bin/node'] });
      expect.unreachable();
    } catch (e) {
      expect((e as UserError).code).toBe('E_PROCFILE_INVALID');
      expect((e as UserError).message).toBe('Procfile web: (line 1): the node image has no program "npm" (it can start: node, nodejs)');
    }
  });
});

describe('isPackageStart', () => {
  it('recognizes a bare npm/yarn/pnpm start (the node pack then runs the start script itself)', () => {
    for (const c of ['npm start', 'yarn start', 'pnpm run start', 'exec npm start']) expect(isPackageStart(startCommand(c, 's')), c).toBe(true);
    for (const c of ['npm start -- --port $PORT', 'A=1 npm start', 'npm run dev', 'node start']) expect(isPackageStart(startCommand(c, 's')), c).toBe(false);
  });
});

describe('procfileStart', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'unik-procfile-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('web by default, process: picks another type, release is reported as not run', () => {
    writeFileSync(join(dir, 'Procfile'), 'release: python migrate.py\nweb: python app.py\nworker: python w.py\n');
    const warnings: string[] = [];
    expect(procfileStart(dir, undefined, (m) => warnings.push(m))?.argv).toEqual(['python', 'app.py']);
    expect(warnings).toEqual(['Procfile release: (line 1) is not run: unikctl has no release phase; run "python migrate.py" yourself before deploying']);
    expect(procfileStart(dir, 'worker', () => {})?.source).toBe('Procfile worker: (line 3)');
    expect(codeOf(() => procfileStart(dir, 'clock', () => {}))).toBe('E_PROCFILE_INVALID');
  });

  it('no Procfile, or no web process: the pack decides (process: without a Procfile is an error)', () => {
    expect(procfileStart(dir, undefined, () => {})).toBeNull();
    expect(codeOf(() => procfileStart(dir, 'web', () => {}))).toBe('E_PROCFILE_INVALID');
    writeFileSync(join(dir, 'Procfile'), 'worker: python w.py\n');
    expect(procfileStart(dir, undefined, () => {})).toBeNull();
  });
});

describe('renderStart (render.yaml, without a Procfile)', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'unik-render-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const warnings: string[] = [];
  const warn = (m: string): void => { warnings.push(m); };

  it('takes the startCommand of the one native web service, like a Procfile web line (render-examples/fastapi)', () => {
    writeFileSync(join(dir, 'render.yaml'), 'services:\n  - type: web\n    name: fastapi-example\n    runtime: python\n    buildCommand: pip install -r requirements.txt\n    startCommand: uvicorn main:app --host 0.0.0.0 --port $PORT\n');
    const s = procfileStart(dir, undefined, warn);
    expect(s?.source).toBe('render.yaml service fastapi-example startCommand');
    expect(s?.argv).toEqual(['uvicorn', 'main:app', '--host', '0.0.0.0', '--port', '${PORT}']);
    expect(s?.expand).toBe(true);
  });

  it('a Procfile wins; docker/static services, another rootDir, several web services or a shell command give null', () => {
    writeFileSync(join(dir, 'render.yaml'), 'services:\n  - type: web\n    name: a\n    runtime: node\n    startCommand: node a.js\n');
    writeFileSync(join(dir, 'Procfile'), 'web: node b.js\n');
    expect(procfileStart(dir, undefined, warn)?.argv).toEqual(['node', 'b.js']);
    const only = (yaml: string): unknown => { writeFileSync(join(dir, 'render.yaml'), yaml); return renderStart(dir, warn); };
    expect(only('services:\n  - type: web\n    runtime: docker\n    startCommand: node a.js\n')).toBeNull();
    expect(only('services:\n  - type: web\n    rootDir: api\n    startCommand: node a.js\n')).toBeNull();
    expect(only('services:\n  - type: worker\n    startCommand: node a.js\n')).toBeNull();
    warnings.length = 0;
    expect(only('services:\n  - {type: web, name: a, startCommand: node a.js}\n  - {type: web, name: b, startCommand: node b.js}\n')).toBeNull();
    expect(warnings[0]).toMatch(/2 web services .*a, b/);
    expect(only('services:\n  - type: web\n    startCommand: cd app && node a.js\n')).toBeNull();
    expect(warnings[1]).toMatch(/render\.yaml service web startCommand.*not used/);
    expect(only('services: [\n')).toBeNull();
    expect(only('services:\n  - type: web\n    name: next-js\n    runtime: node\n    startCommand: yarn start\n')).toMatchObject({ argv: ['yarn', 'start'] });
  });
});
