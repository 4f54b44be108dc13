import { posix, relative, sep } from 'node:path';

/**
 * Stdlib pruning (BLD-9): the image carries only the standard-library modules the app can import.
 *
 * The set is computed on the host by helper.ts (`analyze`) with the interpreter that goes into the image:
 *   1. a startup trace: the modules the interpreter imports by itself with the guest's flags (encodings,
 *      encodings.utf_8, site and what site imports...), then
 *   2. modulefinder's static closure of those, of every module of the app and of every module of the
 *      installed dependencies (all their files, not only the ones the app reaches: dependencies import lazily),
 *   3. plus the modules the stdlib imports *dynamically* (by name, from C or through importlib), given as
 *      IMPLIED_IMPORTS rules applied to a fixpoint, plus `include` from pyproject.toml [tool.unikctl.python].
 * modulefinder over-approximates (it follows imports inside functions and in untaken branches); that is the
 * safe direction. The one place we cut is EXCLUDED_UNLESS_IMPORTED: development-only packages that normal
 * modules only reach through rarely-used functions (pydoc via help(), unittest via doctest...); they stay in
 * when the app or a dependency imports them itself.
 */

/** Stdlib packages left out unless the app or a dependency imports them directly. */
export const EXCLUDED_UNLESS_IMPORTED: readonly string[] = [
  'test', 'idlelib', 'tkinter', '_tkinter', 'turtle', 'turtledemo', 'lib2to3', 'ensurepip', 'venv', 'distutils',
  'pydoc', 'pydoc_data', 'doctest', 'unittest', 'pdb', 'readline', 'rlcompleter', '_pydecimal',
];

/**
 * Modules the stdlib imports at run time by a computed name, which no static analysis sees.
 * trigger module → modules to add (`pkg.*`: every submodule; `@sysconfigdata`: the platform's _sysconfigdata_*).
 */
export const IMPLIED_IMPORTS: Readonly<Record<string, readonly string[]>> = {
  // codecs are looked up by name (str.encode('latin-1'), open(encoding=...), email charsets)
  encodings: ['encodings.*'],
  // the socket module encodes non-ASCII host names with the idna codec from C
  _socket: ['encodings.idna'],
  // time.strptime and datetime.strptime import _strptime from C
  time: ['_strptime'],
  _datetime: ['_strptime'],
  // sysconfig loads its build-time data module by a computed name
  sysconfig: ['@sysconfigdata'],
  // dbm.whichdb/open import the backends by name; xml.sax.make_parser and xml.dom.domreg do the same
  dbm: ['dbm.dumb', 'dbm.gnu', 'dbm.ndbm'],
  'xml.sax': ['xml.sax.expatreader'],
  'xml.dom.domreg': ['xml.dom.minidom'],
  // _pickle (C) imports these itself
  _pickle: ['copyreg', '_compat_pickle'],
};

/** encodings.* members not added by the `encodings.*` rule: the CJK codecs (≈1 MB of C tables) and Windows-only ones. */
export const ENCODINGS_EXCLUDED = /^encodings\.(big5|big5hkscs|cp932|cp949|cp950|euc_jis_2004|euc_jisx0213|euc_jp|euc_kr|gb18030|gb2312|gbk|hz|iso2022_\w+|johab|shift_jis|shift_jis_2004|shift_jisx0213|mbcs|oem|cp65001)$/;

/** One module found by the analysis. */
export interface FoundModule { name: string; file: string | null; package: boolean; }

export interface StdlibPlan {
  /** pure-Python stdlib files, relative to the stdlib directory (posix separators), sorted */
  files: string[];
  /** extension modules, relative to lib-dynload, sorted */
  extensions: string[];
  /** names of the stdlib modules kept (sources or extensions), sorted */
  modules: string[];
}

function under(file: string, dir: string): string | null {
  const rel = relative(dir, file);
  if (rel === '' || rel.startsWith('..') || rel.startsWith(sep)) return null;
  return rel.split(sep).join(posix.sep);
}

/**
 * Maps the analysis result to the files to copy: modules whose file lives in the host's stdlib directory
 * (site-packages / dist-packages excluded: dependencies come from the pip install, never from the host) or in
 * lib-dynload. Builtin and frozen-only modules have no file and need none. `os.py` is always kept: it is the
 * landmark the interpreter uses to find its prefix.
 */
export function planStdlib(found: readonly FoundModule[], stdlibDir: string, dynloadDir: string): StdlibPlan {
  const files = new Set<string>(['os.py']);
  const extensions = new Set<string>();
  const modules = new Set<string>();
  for (const m of found) {
    if (!m.file) continue;
    const ext = under(m.file, dynloadDir);
    if (ext !== null) {
      extensions.add(ext);
      modules.add(m.name);
      continue;
    }
    const rel = under(m.file, stdlibDir);
    if (rel === null) continue;
    const top = rel.split('/')[0] ?? '';
    if (top === 'site-packages' || top === 'dist-packages' || !rel.endsWith('.py')) continue;
    files.add(rel);
    modules.add(m.name);
  }
  return { files: [...files].sort(), extensions: [...extensions].sort(), modules: [...modules].sort() };
}

/** The analysis config for helper.ts `analyze`. */
export interface AnalyzeConfig {
  stdlib: string;
  dynload: string;
  appDir: string;
  appFiles: string[];
  depsDir: string | null;
  /** interpreter flags of the guest command (for the startup trace) */
  flags: string[];
  include: string[];
  always: string[];
  excludes: string[];
  excludePatterns: string[];
  implied: Record<string, readonly string[]>;
}

export function analyzeConfig(opts: {
  stdlib: string; dynload: string; appDir: string; appFiles: string[]; depsDir: string | null; flags: string[];
  include?: string[]; usesDashM?: boolean;
}): AnalyzeConfig {
  return {
    stdlib: opts.stdlib,
    dynload: opts.dynload,
    appDir: opts.appDir,
    appFiles: [...opts.appFiles].sort(),
    depsDir: opts.depsDir,
    flags: opts.flags,
    include: opts.include ?? [],
    always: opts.usesDashM ? ['runpy'] : [],
    excludes: [...EXCLUDED_UNLESS_IMPORTED],
    excludePatterns: [ENCODINGS_EXCLUDED.source],
    implied: { ...IMPLIED_IMPORTS },
  };
}
