import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

/**
 * Lock inputs of the python pack (BLD-4). Supported: `requirements.lock` (preferred) or `requirements.txt`
 * in pip's requirements format where every requirement is pinned to one version (`name==version` or
 * `name===version`, extras, environment markers and `--hash=` options allowed; `-r`/`-c` includes are followed
 * and must be pinned too). That is what `pip freeze`, `pip-compile`, `uv pip compile`, `uv export`,
 * `poetry export` and `pipenv requirements` produce. uv.lock and poetry.lock are exported to this format by the
 * pinned tools (install.ts); Pipfile.lock and pdm.lock are not read: export them to requirements.lock.
 */
export const LOCK_FILES = ['requirements.lock', 'requirements.txt'] as const;
export const FOREIGN_LOCKS: Record<string, string> = {
  'Pipfile.lock': 'pipenv requirements > requirements.lock',
  'pdm.lock': 'pdm export -f requirements -o requirements.lock',
};

export interface Requirement { name: string; version: string; line: string; }
export interface RequirementsCheck {
  /** every file read (the lock file and its -r/-c includes), absolute paths */
  files: string[];
  pinned: Requirement[];
  /** requirement lines that do not pin one version (or cannot be checked), with file:line */
  unpinned: string[];
}

const PINNED = /^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*===?\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*)\s*(?:;.*)?$/;
/** global options that do not name a requirement */
const OPTION = /^--?(index-url|extra-index-url|find-links|trusted-host|only-binary|no-binary|prefer-binary|require-hashes|pre|no-index|i|f)\b/;

/** Joins continuation lines and drops comments (pip's rules: ` #` starts a comment, `\` continues). */
export function logicalLines(text: string): Array<{ no: number; text: string }> {
  const out: Array<{ no: number; text: string }> = [];
  let buf = '';
  let start = 0;
  text.split(/\r?\n/).forEach((raw, i) => {
    if (buf === '') start = i + 1;
    const line = raw.replace(/(^|\s)#.*$/, '');
    if (line.endsWith('\\')) {
      buf += `${line.slice(0, -1)} `;
      return;
    }
    buf += line;
    if (buf.trim() !== '') out.push({ no: start, text: buf.trim() });
    buf = '';
  });
  if (buf.trim() !== '') out.push({ no: start, text: buf.trim() });
  return out;
}

/** Checks a requirements file (and its includes): are all requirements pinned to exactly one version? */
export function checkRequirements(file: string, root = dirname(file), seen = new Set<string>()): RequirementsCheck {
  const result: RequirementsCheck = { files: [], pinned: [], unpinned: [] };
  if (seen.has(file)) return result;
  seen.add(file);
  result.files.push(file);
  const base = dirname(file);
  const where = (no: number): string => `${relative(root, file)}:${no}`;
  for (const { no, text } of logicalLines(readFileSync(file, 'utf8'))) {
    const include = /^(-r|--requirement|-c|--constraint)(?:\s+|=)(\S+)$/.exec(text);
    if (include?.[2]) {
      const inc = join(base, include[2]);
      if (!existsSync(inc)) {
        result.unpinned.push(`${where(no)}: ${text} (file not found)`);
        continue;
      }
      const sub = checkRequirements(inc, root, seen);
      result.files.push(...sub.files);
      result.pinned.push(...sub.pinned);
      result.unpinned.push(...sub.unpinned);
      continue;
    }
    if (OPTION.test(text)) continue;
    // per-requirement options (hashes) follow the requirement itself
    const spec = text.replace(/\s--hash[=\s]\S+/g, '').replace(/\s--(global-option|config-settings?)[=\s]\S+/g, '').trim();
    const m = PINNED.exec(spec);
    if (m?.[1] && m[2] && !m[2].includes('*')) result.pinned.push({ name: m[1], version: m[2], line: spec });
    else result.unpinned.push(`${where(no)}: ${text}`);
  }
  return result;
}

/**
 * The distributions `pip freeze` leaves out of its output (they belong to the environment, not the app): a
 * requirements file made the way the error hints (`pip freeze > requirements.txt`) never pins them, even when a
 * pinned dependency requires one (gunicorn < 22 requires setuptools, for pkg_resources).
 */
export const FREEZE_OMITS = ['setuptools', 'pip', 'wheel', 'distribute'] as const;

/**
 * Splits what check-deps found missing from a release install: the FREEZE_OMITS names the host interpreter has
 * (`hostVersions`, canonical name → version) are installed at that version — what a virtualenv of that interpreter,
 * where `pip freeze` ran, holds too — and the rest is really not pinned.
 */
export function planFreezeOmitted<M extends { name: string }>(missing: readonly M[], hostVersions: Readonly<Record<string, string>>): { implicit: Array<{ name: string; version: string; requiredBy: M[] }>; missing: M[] } {
  const implicit = new Map<string, { name: string; version: string; requiredBy: M[] }>();
  const rest: M[] = [];
  for (const m of missing) {
    const name = m.name.toLowerCase().replace(/[-_.]+/g, '-');
    const version = (FREEZE_OMITS as readonly string[]).includes(name) ? hostVersions[name] : undefined;
    if (!version) { rest.push(m); continue; }
    const e = implicit.get(name) ?? { name, version, requiredBy: [] };
    e.requiredBy.push(m);
    implicit.set(name, e);
  }
  return { implicit: [...implicit.values()], missing: rest };
}
