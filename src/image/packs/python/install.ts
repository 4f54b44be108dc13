/**
 * How the python pack installs a project's dependencies (BLD-4). Decisions only: python.ts runs the commands.
 *
 * Inputs, in this order (the first found wins; the others are named in a warning):
 *   requirements.lock / requirements.txt  pinned pip requirements (requirements.ts), installed as they are;
 *   uv.lock (+ pyproject.toml)            exported by uv (`uv export`, --locked in release: a pyproject.toml that
 *                                         changed since `uv lock` is refused) to a pinned, hashed requirements file;
 *   poetry.lock (+ pyproject.toml)        exported by poetry (`poetry export --only main`; poetry itself refuses a
 *                                         lock older than pyproject.toml) the same way.
 * The exported file then goes through the same pip install as a requirements file (release: --no-deps, so the
 * lock is the whole dependency tree, checked afterwards), so there is one install path whatever the lock tool.
 * uv and poetry are installed from PyPI at pinned versions into a virtualenv under the pack's cache directory
 * (never whatever `uv`/`poetry` is on PATH: the export must not depend on the host).
 * A pyproject.toml with a [build-system] (and not poetry's package-mode = false) is a package: the project
 * itself is built and installed too (pip, no dependencies: they come from the lock), so its console scripts
 * exist (python/entry.ts).
 */
import { UserError } from '../../../errors.js';
import type { BuildMode } from '../../pack.js';
import { FOREIGN_LOCKS, LOCK_FILES } from './requirements.js';

export interface PyTool {
  name: 'uv' | 'poetry';
  version: string;
  /** pip requirements of the tool's virtualenv */
  packages: string[];
  /** run as `python -m MODULE` from the virtualenv (console-script shebangs would name a temporary path) */
  module: string;
}

/** Pinned exporters (the versions that wrote the examples' lock files). poetry 2 has no built-in export command. */
export const PY_TOOLS: Readonly<Record<PyTool['name'], PyTool>> = {
  uv: { name: 'uv', version: '0.13.9', packages: ['uv==0.13.9'], module: 'uv' },
  poetry: { name: 'poetry', version: '2.5.1', packages: ['poetry==2.5.1', 'poetry-plugin-export==1.10.1'], module: 'poetry' },
};

/** What the pack knows about the project before installing anything (from helper.py `info`). */
export interface ProjectFacts {
  /** files present at the top of the project (lock files and pyproject.toml are what matters) */
  present: (name: string) => boolean;
  /** dependencies pyproject.toml declares ([project] or [tool.poetry]) */
  declared: string[];
  /** a [build-system] table with a build-backend */
  buildSystem: boolean;
  /** [tool.poetry] package-mode (default true) */
  packageMode: boolean;
}

export interface InstallPlan {
  source: 'requirements' | 'uv' | 'poetry' | 'declared' | 'none';
  /** the lock file read (project-relative); null without one */
  lock: string | null;
  /** the exporter, for uv.lock / poetry.lock */
  tool: PyTool | null;
  /** the exporter's arguments (after `python -m MODULE`), writing the requirements file `out` */
  exportArgs: (out: string, python: string) => string[];
  /** pip installs the project itself (a package with a build backend) */
  installProject: boolean;
}

const EXPORT_FIX: Record<PyTool['name'], string> = {
  uv: 'run `uv lock` and commit uv.lock',
  poetry: 'run `poetry lock` and commit poetry.lock',
};

/** Which input pins the dependencies, and with which tool it is exported. */
export function planInstall(facts: ProjectFacts, mode: BuildMode, warn: (m: string) => void): InstallPlan {
  const installProject = facts.present('pyproject.toml') && facts.buildSystem && facts.packageMode;
  const none: InstallPlan = { source: 'none', lock: null, tool: null, exportArgs: () => [], installProject };
  const locks = [...LOCK_FILES, 'uv.lock', 'poetry.lock'].filter((f) => facts.present(f));
  const lock = locks[0];
  if (locks.length > 1) warn(`several lock files: ${locks.join(', ')}; installing from ${lock ?? ''} only (remove the others, or re-export them from the one you maintain)`);
  if (lock === 'uv.lock' || lock === 'poetry.lock') {
    if (!facts.present('pyproject.toml')) {
      throw new UserError('E_BUILD_FAILED', `found ${lock} but no pyproject.toml, which ${lock === 'uv.lock' ? 'uv' : 'poetry'} needs to read it`, {
        hint: 'commit pyproject.toml next to the lock file',
      });
    }
  }
  if (lock === 'uv.lock') {
    return {
      ...none, source: 'uv', lock, tool: PY_TOOLS.uv,
      // --locked: fail when pyproject.toml no longer matches uv.lock (release); --frozen: read uv.lock as it is (debug)
      exportArgs: (out, python) => ['export', mode === 'release' ? '--locked' : '--frozen', '--no-default-groups', '--no-emit-project',
        '--format', 'requirements-txt', '--no-header', '--no-annotate', '--python', python, '--output-file', out],
    };
  }
  if (lock === 'poetry.lock') {
    return {
      ...none, source: 'poetry', lock, tool: PY_TOOLS.poetry,
      exportArgs: (out) => ['export', '--only', 'main', '--format', 'requirements.txt', '--output', out, '--no-interaction', '--no-ansi'],
    };
  }
  if (lock) return { ...none, source: 'requirements', lock };
  const foreign = Object.keys(FOREIGN_LOCKS).find((f) => facts.present(f));
  if (foreign) {
    lockRequired(mode, warn, `found ${foreign}, which the python pack does not read`, `export it: ${FOREIGN_LOCKS[foreign] ?? ''}`);
  }
  if (facts.declared.length > 0) {
    lockRequired(mode, warn, 'pyproject.toml declares dependencies but there is no lock file (uv.lock, poetry.lock, requirements.lock or requirements.txt)',
      'lock them: `uv lock` (or `poetry lock`, or `uv pip compile pyproject.toml -o requirements.lock`) and commit the lock file');
    return { ...none, source: 'declared' };
  }
  return none;
}

/** BLD-4: release refuses, debug warns and goes on with what is declared. */
function lockRequired(mode: BuildMode, warn: (m: string) => void, what: string, fix: string): void {
  if (mode === 'release') throw new UserError('E_LOCK_REQUIRED', `${what}: a release build needs pinned dependencies`, { hint: `${fix}, or build with --debug` });
  warn(`${what}; a release build will refuse this (E_LOCK_REQUIRED)`);
}

/**
 * The exporter failed: a lock file that no longer matches pyproject.toml is the user's to refresh
 * (E_LOCK_REQUIRED with the tool's own words); anything else is a build failure.
 */
export function exportFailure(tool: PyTool, lock: string, output: string): UserError {
  const tail = output.trim().split('\n').slice(-8).join('\n');
  if (/needs to be updated|changed significantly|--locked|not consistent|run `?(uv|poetry) lock/i.test(output)) {
    return new UserError('E_LOCK_REQUIRED', `${lock} does not match pyproject.toml (${tool.name} ${tool.version} export):\n${tail}`, { hint: EXPORT_FIX[tool.name] });
  }
  return new UserError('E_BUILD_FAILED', `${tool.name} ${tool.version} could not export ${lock}:\n${tail}`, {
    hint: `check ${lock} with \`${tool.name} ${tool.name === 'uv' ? 'lock --check' : 'check --lock'}\`; ${EXPORT_FIX[tool.name]}`,
  });
}

/** Environment of the exporters: caches under the pack's cache dir, no prompts, no interpreter downloads. */
export function toolEnv(tool: PyTool, cacheDir: string): Record<string, string> {
  if (tool.name === 'uv') return { UV_CACHE_DIR: `${cacheDir}/uv`, UV_PYTHON_DOWNLOADS: 'never', UV_NO_PROGRESS: '1', NO_COLOR: '1' };
  return { POETRY_CACHE_DIR: `${cacheDir}/poetry`, POETRY_NO_INTERACTION: '1', POETRY_VIRTUALENVS_CREATE: 'false', NO_COLOR: '1' };
}
