// The Python side of the python pack: runs on the host with the interpreter that goes into the image
// (written to the build work dir and run with -I). Kept as text so the TypeScript build needs no asset copying.
export const HELPER_PY = String.raw`# unikctl python pack helper (src/image/packs/python/helper.ts): runs on the host with the interpreter that
# goes into the image.
# usage: python3 -I helper.py COMMAND CONFIG.json  -> one JSON document on stdout
import ast
import json
import os
import re
import subprocess
import sys
import sysconfig


def info(cfg):
    import importlib.util
    cv = sysconfig.get_config_var
    stdlib = sysconfig.get_paths()['stdlib']
    dynload = cv('DESTSHARED') or os.path.join(stdlib, 'lib-dynload')
    shared = bool(cv('Py_ENABLE_SHARED'))
    libpython = None
    if shared:
        for name in (cv('INSTSONAME'), cv('LDLIBRARY')):
            if name and os.path.isfile(os.path.join(cv('LIBDIR') or '', name)):
                libpython = os.path.realpath(os.path.join(cv('LIBDIR'), name))
                break
    pip = None
    if importlib.util.find_spec('pip') is not None:
        try:
            from pip import __version__ as pip_version
            pip = pip_version
        except Exception:
            pip = None
    out = {
        'executable': os.path.realpath(sys.executable),
        'version': '.'.join(str(v) for v in sys.version_info[:3]),
        'implementation': sys.implementation.name,
        'major_minor': '%d.%d' % sys.version_info[:2],
        'stdlib': os.path.realpath(stdlib),
        'dynload': os.path.realpath(dynload),
        'shared': shared,
        'libpython': libpython,
        'pip': pip,
        'pyproject': None,
        # where zoneinfo looks for the system time zone database (compiled in; PYTHONTZPATH is not set in the guest)
        'tzpath': [p for p in (cv('TZPATH') or '').split(os.pathsep) if p],
    }
    # the image puts the interpreter under /usr: where would this interpreter look for its files there?
    import site
    prefix = os.path.realpath(sys.base_prefix)
    rel = lambda p, d: os.path.relpath(p, prefix) if p.startswith(prefix + os.sep) else d
    out['stdlibRel'] = rel(out['stdlib'], '%s/python%s' % (sys.platlibdir, out['major_minor']))
    out['dynloadRel'] = rel(out['dynload'], out['stdlibRel'] + '/lib-dynload')
    out['siteGuest'] = site.getsitepackages(['/usr'])[0]
    pyproject = os.path.join(cfg.get('dir', ''), 'pyproject.toml')
    if cfg.get('dir') and os.path.isfile(pyproject):
        try:
            import tomllib
            with open(pyproject, 'rb') as f:
                data = tomllib.load(f)
            out['pyproject'] = pyproject_facts(data)
        except Exception as e:  # a broken pyproject.toml is the user's to fix
            out['pyproject'] = {'error': str(e)}
    return out


def pyproject_facts(data):
    """What the pack plans with: declared dependencies, scripts, is the project a package to install."""
    tools = data.get('tool', {})
    poetry = tools.get('poetry', {})
    project = data.get('project', {})
    deps = list(project.get('dependencies', []) or [])
    # poetry 1.x style: [tool.poetry.dependencies], where python is the interpreter constraint, not a package
    deps += [n for n in (poetry.get('dependencies', {}) or {}) if n.lower() != 'python']
    scripts = {}
    for name, ref in (poetry.get('scripts', {}) or {}).items():
        # poetry allows a table {reference = "mod:fn", type = "console"}; other types are not console scripts
        if isinstance(ref, dict):
            ref = ref.get('reference') if ref.get('type', 'console') == 'console' else None
        if isinstance(ref, str):
            scripts[name] = ref
    scripts.update({k: v for k, v in (project.get('scripts', {}) or {}).items() if isinstance(v, str)})
    build = data.get('build-system', {})
    return {
        'dependencies': deps,
        'scripts': scripts,
        'buildSystem': bool(build.get('build-backend')),
        'packageMode': poetry.get('package-mode', True) is not False,
        'unikctl': tools.get('unikctl', {}).get('python', {}),
    }


FRAMEWORKS = {'Flask', 'FastAPI', 'Starlette', 'Quart', 'Litestar', 'Sanic', 'Bottle', 'Falcon', 'App'}


def inspect_entry(path):
    """Does running this file do anything? And which framework app objects does it define at top level?"""
    with open(path, 'rb') as fh:
        try:
            tree = ast.parse(fh.read(), path)
        except SyntaxError:  # the compile step reports it with the compiler's message
            return {'runnable': True, 'apps': []}
    apps, acts = [], False
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            call = node.value
            if isinstance(call, ast.Call):
                fn = call.func
                cls = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else None
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                framework = cls if cls in FRAMEWORKS else None
                if cls == 'App':  # falcon.App(); any other App() is not known to be a web app
                    framework = 'Falcon' if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) and fn.value.id == 'falcon' else None
                if framework:
                    apps += [{'name': t.id, 'framework': framework} for t in targets if isinstance(t, ast.Name)]
            continue  # an assignment defines; a call inside one may act, but that is not the case this check is for
        acts = True  # a top-level call, loop, if __name__ == "__main__": ...
    return {'runnable': acts or not apps, 'apps': apps}


def entry(cfg):
    """Console scripts of the installed distributions, and what the candidate entry files do when run."""
    from importlib import metadata
    scripts = {}
    if cfg.get('target') and os.path.isdir(cfg['target']):
        for d in metadata.distributions(path=[cfg['target']]):
            for ep in d.entry_points:
                if ep.group == 'console_scripts':
                    scripts[ep.name] = ep.value
    files = [dict(inspect_entry(os.path.join(cfg['dir'], f)), name=f) for f in cfg.get('files', [])]
    return {'consoleScripts': scripts, 'files': files}


def module_name(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] == '__init__':
        rel = rel[:-1]
    if not rel or not all(p.isidentifier() for p in rel):
        return None
    return '.'.join(rel)


def py_files(root, skip_dirs=()):
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in skip_dirs and x != '__pycache__' and not x.endswith(('.dist-info', '.egg-info', '.data')))
        out.extend(os.path.join(d, f) for f in sorted(files) if f.endswith('.py'))
    return out


def direct_imports(files):
    """Absolute module names a set of source files imports directly (and their parents)."""
    names = set()
    for f in files:
        try:
            with open(f, 'rb') as fh:
                tree = ast.parse(fh.read(), f)
        except Exception:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = [node.module] + [node.module + '.' + a.name for a in node.names]
            else:
                continue
            for n in found:
                parts = n.split('.')
                names.update('.'.join(parts[:i]) for i in range(1, len(parts) + 1))
    return names


def startup_trace(flags):
    """Modules the interpreter imports on its own before running the app (with the guest's flags)."""
    probe = (
        'import sys\n'
        'import site\n'
        'site.PREFIXES[:] = []\n'
        'site.ENABLE_USER_SITE = False\n'
        'site.main()\n'
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    env = {'PATH': '/usr/bin:/bin'}
    r = subprocess.run([sys.executable, *flags, '-S', '-c', probe], env=env, capture_output=True, text=True, check=True)
    return [l for l in r.stdout.splitlines() if l]


def analyze(cfg):
    import modulefinder
    stdlib = os.path.realpath(cfg['stdlib'])
    dynload = os.path.realpath(cfg['dynload'])
    app_dir = cfg['appDir']
    deps_dir = cfg.get('depsDir')
    app_files = [os.path.join(app_dir, f) for f in cfg['appFiles']]
    dep_files = py_files(deps_dir, ('bin',)) if deps_dir and os.path.isdir(deps_dir) else []
    direct = direct_imports(app_files + dep_files) | set(cfg.get('include', []))
    excludes = [e for e in cfg.get('excludes', []) if e not in direct]
    if '_pydecimal' in excludes and '_decimal' not in sys.builtin_module_names and not any(os.path.isfile(os.path.join(dynload, f)) for f in os.listdir(dynload) if f.startswith('_decimal.')):
        excludes.remove('_pydecimal')  # no C decimal in this build: decimal falls back to _pydecimal
    exclude_re = [re.compile(x) for x in cfg.get('excludePatterns', [])]
    path = [app_dir] + ([deps_dir] if deps_dir else []) + [stdlib, dynload]
    mf = modulefinder.ModuleFinder(path=path, excludes=excludes)
    failed = []

    def hook(name, report=True):
        if name in mf.modules or name in excludes:
            return
        try:
            mf.import_hook(name)
        except Exception as e:  # a module that does not import (syntax error, missing parent): report, go on
            if report:
                failed.append('%s: %s' % (name, e.__class__.__name__))

    def expand(name):
        if name == '@sysconfigdata':
            return [sysconfig._get_sysconfigdata_name()]
        if name.endswith('.*'):
            pkg = name[:-2]
            d = os.path.join(stdlib, *pkg.split('.'))
            if not os.path.isdir(d):
                return []
            subs = sorted(f[:-3] for f in os.listdir(d) if f.endswith('.py') and f != '__init__.py')
            return [pkg + '.' + s for s in subs if not any(r.search(pkg + '.' + s) for r in exclude_re)]
        return [name]

    trace = startup_trace(cfg['flags'])
    for name in trace:
        if name not in sys.builtin_module_names and name != '__main__':
            hook(name, report=False)
    seeds = list(cfg.get('include', [])) + list(cfg.get('always', []))
    app_modules = []
    for f in app_files:
        n = module_name(app_dir, f)
        if n:
            app_modules.append(n)
    dep_modules = [n for n in (module_name(deps_dir, f) for f in dep_files) if n]
    for name in seeds:
        for n in expand(name):
            hook(n)
    for n in app_modules + dep_modules:
        hook(n)
    implied = cfg.get('implied', {})
    while True:
        have = set(mf.modules)
        todo = [n for trig, adds in sorted(implied.items()) if trig in have for a in adds for n in expand(a) if n not in have and n not in excludes]
        todo = [n for n in todo if n not in failed_names(failed)]
        if not todo:
            break
        for n in todo:
            hook(n)
        if set(mf.modules) == have:
            break
    modules = []
    for name, m in sorted(mf.modules.items()):
        f = m.__file__
        if f:
            f = os.path.realpath(f)
        modules.append({'name': name, 'file': f, 'package': m.__path__ is not None})
    missing, _maybe = mf.any_missing_maybe()
    app_set = set(app_modules)
    # a submodule of an installed dependency or of the app is created at run time (e.g. six.moves): not missing
    provided = {n.split('.')[0] for n in dep_modules + app_modules}
    app_missing = sorted(n for n in missing if n.split('.')[0] not in provided and any(c in app_set for c in mf.badmodules.get(n, {})))
    return {'modules': modules, 'trace': trace, 'appMissing': app_missing, 'failed': failed, 'excluded': excludes}


def failed_names(failed):
    return {f.split(':', 1)[0] for f in failed}


def check_deps(cfg):
    """Every Requires-Dist of the installed distributions (markers evaluated) is installed too."""
    from importlib import metadata
    try:
        from pip._vendor.packaging.requirements import Requirement
        from pip._vendor.packaging.utils import canonicalize_name
    except Exception:
        return {'missing': [], 'skipped': 'pip._vendor.packaging is not available'}
    dists = list(metadata.distributions(path=[cfg['target']]))
    installed = {canonicalize_name(d.metadata['Name']) for d in dists}
    missing = []
    for d in dists:
        for spec in d.requires or []:
            try:
                req = Requirement(spec)
            except Exception:
                continue
            if req.marker is not None and not req.marker.evaluate({'extra': ''}):
                continue
            if canonicalize_name(req.name) not in installed:
                missing.append({'name': req.name, 'requiredBy': d.metadata['Name'], 'spec': spec})
    return {'missing': sorted(missing, key=lambda m: (m['name'], m['requiredBy']))}


def compile_tree(cfg):
    """Byte-compiles files deterministically; co_filename is the guest path (root stripped).
    strict groups (the app's own code) report errors in full; the others keep what does not compile as source."""
    import importlib.util
    import py_compile
    root = cfg['root']
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    compiled, failed, errors, removed = 0, [], [], 0
    for group in cfg['groups']:
        for f in group['files']:
            src = os.path.join(root, f.lstrip('/'))
            guest = '/' + f.lstrip('/')
            try:
                if group.get('checkOnly'):  # a script run by path: compiled at start, only checked here
                    with open(src, 'rb') as fh:
                        compile(fh.read(), guest, 'exec', dont_inherit=True, optimize=group['optimize'])
                    continue
                if group['legacy']:  # sourceless: x.pyc next to where x.py was, loaded whatever the -O level
                    cfile = src + 'c'
                else:
                    cfile = importlib.util.cache_from_source(src, optimization=group['optimize'] or '')
                py_compile.compile(src, cfile=cfile, dfile=guest, doraise=True, optimize=group['optimize'], invalidation_mode=mode, quiet=0)
                compiled += 1
            except Exception as e:
                if group.get('strict'):
                    if isinstance(e, SyntaxError):
                        import traceback
                        errors.append(''.join(traceback.format_exception_only(e)).rstrip())
                    else:
                        errors.append(str(e).rstrip() or '%s: %s' % (guest, e.__class__.__name__))
                else:  # keep the source of what does not compile (e.g. Python 2 files in a dependency)
                    failed.append('%s: %s' % (guest, (str(e).strip().splitlines() or [e.__class__.__name__])[-1]))
                continue
            if group['removeSources']:
                os.remove(src)
                removed += 1
    return {'compiled': compiled, 'failed': failed, 'errors': errors, 'removed': removed}


COMMANDS = {'info': info, 'analyze': analyze, 'check-deps': check_deps, 'compile': compile_tree, 'entry': entry}

if __name__ == '__main__':
    with open(sys.argv[2]) as fh:
        config = json.load(fh)
    json.dump(COMMANDS[sys.argv[1]](config), sys.stdout)
`;
