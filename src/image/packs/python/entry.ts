/**
 * What the python pack starts (BLD-3). The image has no shell and no PATH lookup: a console script such as
 * `uvicorn` or `gunicorn` (pip would write a wrapper with a host shebang, which the image does not carry) runs as
 * the interpreter with the wrapper's two lines passed by -c, exactly what pip's wrapper does.
 *
 * unik.yaml run.command:
 *   [uvicorn, app:app, ...]           a console script of the installed packages or of pyproject.toml's scripts;
 *   [python3, -m, pkg, ...]           python/python3/python3.X: the image's interpreter;
 *   [/usr/bin/python3, ...] (a path)  used as written.
 * Without run.command, exactly one of: main.py (else app.py) when running it does something, or one script of
 * [project.scripts] / [tool.poetry.scripts]. A file that only defines a web framework's app object (no
 * `if __name__ == "__main__":`, no top-level call) is not an entry point: running it would import it and exit.
 * None or several: E_BUILD_FAILED saying what was found and what to put in unik.yaml.
 */
import { UserError } from '../../../errors.js';

export const GUEST_PYTHON = '/usr/bin/python3';

/** One candidate entry file (main.py, app.py) as helper.py `entry` inspected it. */
export interface EntryFile {
  name: string;
  /** false: it only defines things (and a framework app object): running it does nothing */
  runnable: boolean;
  /** top-level `NAME = Framework(...)` assignments: the app objects a server would serve */
  apps: Array<{ name: string; framework: string }>;
}

export interface EntryFacts {
  /** unik.yaml run.command */
  configured: readonly string[] | null;
  /** main.py then app.py, those present */
  files: EntryFile[];
  /** pyproject.toml [project.scripts] and [tool.poetry.scripts]: name → "module:attr" */
  projectScripts: Readonly<Record<string, string>>;
  /** console_scripts of the installed distributions (dependencies and the project): name → "module:attr" */
  consoleScripts: Readonly<Record<string, string>>;
  /** the interpreter flags of the guest command */
  flags: readonly string[];
  /** project files named like a server entry module, `pkg/wsgi.py` / `pkg/asgi.py` (Django's startproject layout) */
  serverModules?: readonly string[];
}

/** `mysite/wsgi.py` → the dotted module and its kind, for the servers' `module[:application]` targets. */
export function serverModules(appFiles: readonly string[]): string[] {
  return appFiles.filter((f) => /^[A-Za-z_]\w*\/(wsgi|asgi)\.py$/.test(f)).sort();
}

export interface EntryPlan {
  command: string[];
  /** what starts, for the build log */
  describe: string;
  /** the command came from unik.yaml and was rewritten: it replaces run.command */
  rewritten: boolean;
  /** the command runs a module with -m (runpy must stay in the stdlib) */
  usesDashM: boolean;
}

const ASGI = new Set(['FastAPI', 'Starlette', 'Quart', 'Litestar', 'Sanic']);
/** servers to suggest, best first, by the kind of app object found */
const SERVERS: Record<'asgi' | 'wsgi', Array<{ script: string; args: (target: string) => string[] }>> = {
  asgi: [
    { script: 'uvicorn', args: (t) => [t, '--host', '0.0.0.0', '--port', '8080'] },
    { script: 'hypercorn', args: (t) => ['--bind', '0.0.0.0:8080', t] },
    { script: 'granian', args: (t) => ['--interface', 'asgi', '--host', '0.0.0.0', '--port', '8080', t] },
  ],
  wsgi: [
    { script: 'gunicorn', args: (t) => ['--bind', '0.0.0.0:8080', t] },
    { script: 'waitress-serve', args: (t) => ['--listen=0.0.0.0:8080', t] },
  ],
};

const CONSOLE_REF = /^([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)\s*:\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$/;

/** pip's console-script wrapper as one -c line: argv[0] is the script's name, the function's result the exit code. */
export function launcher(name: string, ref: string): string {
  const m = CONSOLE_REF.exec(ref.replace(/\s*\[.*\]\s*$/, '')); // "mod:func [extra]": extras only gate installation
  if (!m?.[1] || !m[2]) {
    throw new UserError('E_BUILD_FAILED', `the console script ${name} = "${ref}" is not of the form "module:function"`, {
      hint: `fix the script's entry in pyproject.toml, or set run.command in unik.yaml (e.g. [python3, -m, ${name}])`,
    });
  }
  const head = m[2].split('.')[0] ?? m[2];
  return `import sys; from ${m[1]} import ${head}; sys.argv[0] = ${JSON.stringify(name)}; sys.exit(${m[2]}())`;
}

const yamlList = (argv: string[]): string => `[${argv.map((a) => (/^[\w./-]+$/.test(a) && !/^\d/.test(a) ? a : JSON.stringify(a))).join(', ')}]`;
const names = (r: Readonly<Record<string, string>>): string => Object.keys(r).sort().join(', ') || 'none';

/** The command that starts the app, or an error saying what was found and what to add to unik.yaml. */
export function planEntry(f: EntryFacts): EntryPlan {
  const scripts: Record<string, string> = { ...f.projectScripts, ...f.consoleScripts };
  const viaScript = (name: string, rest: readonly string[]): string[] => {
    const ref = scripts[name];
    if (ref === undefined) throw new Error(`no console script ${name}`);
    return [GUEST_PYTHON, ...f.flags, '-c', launcher(name, ref), ...rest];
  };

  if (f.configured) {
    const [argv0 = '', ...rest] = f.configured;
    if (argv0.includes('/')) return { command: [...f.configured], describe: 'unik.yaml run.command', rewritten: false, usesDashM: rest.includes('-m') };
    if (/^python(3(\.\d+)?)?$/.test(argv0)) {
      return { command: [GUEST_PYTHON, ...rest], describe: `unik.yaml run.command (${argv0} is ${GUEST_PYTHON})`, rewritten: true, usesDashM: rest.includes('-m') };
    }
    if (scripts[argv0] !== undefined) {
      return { command: viaScript(argv0, rest), describe: `unik.yaml run.command: console script ${argv0} = ${scripts[argv0] ?? ''}`, rewritten: true, usesDashM: false };
    }
    throw new UserError('E_BUILD_FAILED', `unik.yaml run.command starts "${argv0}", which is not a console script of the installed packages (${names(f.consoleScripts)}) nor of pyproject.toml (${names(f.projectScripts)}); the image has no shell and no PATH lookup`, {
      hint: `start an installed console script, python3 (e.g. [python3, -m, ${/^[A-Za-z_]\w*$/.test(argv0) ? argv0 : 'mypkg'}]) or an absolute path; if ${argv0} is a dependency, add it to the lock file`,
    });
  }

  const file = f.files.find((x) => x.runnable);
  const candidates: Array<{ label: string; plan: () => EntryPlan }> = [];
  if (file) {
    candidates.push({ label: file.name, plan: () => ({ command: [GUEST_PYTHON, ...f.flags, `/app/${file.name}`], describe: file.name, rewritten: false, usesDashM: false }) });
  }
  for (const [name, ref] of Object.entries(f.projectScripts).sort(([a], [b]) => a.localeCompare(b))) {
    candidates.push({ label: `script ${name} = "${ref}" (pyproject.toml)`, plan: () => ({ command: viaScript(name, []), describe: `pyproject.toml script ${name} = ${ref}`, rewritten: false, usesDashM: false }) });
  }
  const only = candidates[0];
  if (candidates.length === 1 && only) return only.plan();

  if (candidates.length > 1) {
    throw new UserError('E_BUILD_FAILED', `several entry points: ${candidates.map((c) => c.label).join('; ')}`, {
      hint: `choose one in unik.yaml, e.g. run: { command: ${yamlList(Object.keys(f.projectScripts)[0] !== undefined ? [Object.keys(f.projectScripts).sort()[0] ?? ''] : [GUEST_PYTHON, `/app/${file?.name ?? 'main.py'}`])} }`,
    });
  }
  // nothing to start: say what was found, and the unik.yaml line that would serve it
  const found: string[] = [];
  let suggestion: string[] | null = null;
  let missingServer: string | null = null;
  /** the first app found picks the suggested server: an installed one, else the usual one, said to be missing */
  const suggest = (kind: 'asgi' | 'wsgi', target: string): void => {
    const server = SERVERS[kind].find((s) => f.consoleScripts[s.script] !== undefined);
    if (server && !suggestion) suggestion = [server.script, ...server.args(target)];
    if (!server && !missingServer) missingServer = `${SERVERS[kind][0]?.script ?? 'a server'} (not installed: add it to the dependencies and the lock file)`;
    if (!server && !suggestion) suggestion = [SERVERS[kind][0]?.script ?? 'uvicorn', ...(SERVERS[kind][0]?.args(target) ?? [])];
  };
  for (const x of f.files) {
    const app = x.apps[0];
    if (!app) continue;
    found.push(`${x.name} defines a ${app.framework} app \`${app.name}\` but does not start a server (no \`if __name__ == "__main__":\`, no top-level call)`);
    suggest(ASGI.has(app.framework) ? 'asgi' : 'wsgi', `${x.name.replace(/\.py$/, '')}:${app.name}`);
  }
  for (const m of f.serverModules ?? []) {
    // Django's layout (manage.py + mysite/wsgi.py defining `application`): a server names the module
    const kind = m.endsWith('/asgi.py') ? 'asgi' : 'wsgi';
    found.push(`${m} (a ${kind.toUpperCase()} module, as Django's startproject writes)`);
    suggest(kind, `${m.replace(/\.py$/, '').replace('/', '.')}:application`);
  }
  found.push(`console scripts of the installed packages: ${names(f.consoleScripts)}`);
  if (f.files.length === 0) found.unshift('no main.py or app.py', 'no [project.scripts] or [tool.poetry.scripts] in pyproject.toml');
  throw new UserError('E_BUILD_FAILED', `no entry point: ${found.join('; ')}`, {
    hint: suggestion
      ? `add to unik.yaml: run: { command: ${yamlList(suggestion)} }${missingServer ? ` — ${missingServer}` : ''}`
      : 'add main.py (or app.py), a [project.scripts] entry, or set run.command in unik.yaml (e.g. [python3, -m, mypkg] or [gunicorn, "app:app"])',
  });
}
