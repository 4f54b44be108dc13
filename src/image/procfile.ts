import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { UserError } from '../errors.js';

/**
 * Procfile (Heroku, Render, Fly, foreman): `type: command` lines. The guest has no shell, so a command is split
 * into argv here, with the quoting rules of a POSIX shell's simple words ('…', "…", backslash), and its
 * variable references ($VAR, ${VAR}, ${VAR:-default}, ${VAR-default}) kept as a template that the host expands
 * from the guest's final environment when it boots the VM (expandArgv: runtime/cmdline.ts). Anything that needs
 * a real shell (pipes, &&, ;, redirections, subshells, command substitution) is refused with E_PROCFILE_INVALID.
 *
 * Template words: `${NAME}`, `${NAME:-default}`, `${NAME-default}` are references, `$$` is a literal `$`
 * (templateWord / expandWord are the only writer and reader of that form).
 */

export interface ProcfileEntry { type: string; line: number; command: string; }

export interface Procfile {
  file: string;
  entries: ProcfileEntry[];
  /** lines that are neither `type: command`, a comment nor blank (foreman ignores them too) */
  ignored: number[];
}

/** A start command from a Procfile, ready for a pack: argv template words plus leading `KEY=value` assignments. */
export interface StartCommand {
  /** where it came from, for messages: "Procfile web (line 1)" */
  source: string;
  /** argv in template form when `expand`, else literal words */
  argv: string[];
  env: Record<string, string>;
  /** leading assignments whose values reference variables (template form), expanded at boot */
  envTemplates: Record<string, string>;
  /** some word references a variable: the host expands argv at boot */
  expand: boolean;
}

const TYPE_LINE = /^([A-Za-z0-9_-]+):\s*(.*)$/;

export function parseProcfile(text: string, file = 'Procfile'): Procfile {
  const entries: ProcfileEntry[] = [];
  const ignored: number[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = TYPE_LINE.exec(line);
    if (!m || !m[2]) {
      ignored.push(i + 1);
      return;
    }
    entries.push({ type: m[1]!, line: i + 1, command: m[2] });
  });
  return { file, entries, ignored };
}

export function loadProcfile(dir: string): Procfile | null {
  const file = join(dir, 'Procfile');
  if (!existsSync(file)) return null;
  return parseProcfile(readFileSync(file, 'utf8'), file);
}

const SHELL_ONLY: Record<string, string> = {
  '|': 'a pipe (|)', '&': '&& or a background job (&)', ';': 'a command list (;)', '<': 'a redirection (<)', '>': 'a redirection (>)',
  '(': 'a subshell ( )', ')': 'a subshell ( )', '`': 'command substitution (`…`)',
};
const SHELL_WORDS = new Set(['if', 'then', 'for', 'while', 'until', 'case', 'do', 'done', 'fi', '{', '}', '!', '[[', 'cd', 'export', 'source', '.', 'set', 'ulimit', 'trap', 'eval']);
const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', '/bin/sh', '/bin/bash', '/usr/bin/env']);

function shellNeeded(where: string, what: string): UserError {
  return new UserError('E_PROCFILE_INVALID', `${where} needs a shell for ${what}; the image has no shell`, {
    hint: 'put one plain command in the Procfile (e.g. web: gunicorn app:app --bind 0.0.0.0:$PORT), or set run.command in unik.yaml to the argv to start',
  });
}

/** A literal fragment in template form. */
const literal = (s: string): string => s.replace(/\$/g, '$$$$');

/**
 * Splits one command line into words (template form). `where` names the line in errors.
 * Globs and `~` are kept literally (as a shell does when nothing matches); expansions are never field-split.
 */
export function splitCommand(cmd: string, where: string): { words: string[]; refs: boolean } {
  const words: string[] = [];
  let refs = false;
  let word: string | null = null;
  let i = 0;
  const add = (s: string): void => { word = (word ?? '') + s; };
  const reference = (): void => {
    // at cmd[i] === '$'
    const rest = cmd.slice(i + 1);
    if (rest.startsWith('(')) throw shellNeeded(where, 'command substitution ($(…))');
    if (rest.startsWith('{')) {
      const end = rest.indexOf('}');
      const body = end < 0 ? '' : rest.slice(1, end);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^$`"'\\{}]*))?$/.exec(body);
      if (!m) throw shellNeeded(where, `the expansion \${${body}} (only \${VAR}, \${VAR:-default} and \${VAR-default} are supported)`);
      add(`\${${body}}`);
      refs = true;
      i += end + 2;
      return;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest);
    if (m) {
      add(`\${${m[0]}}`);
      refs = true;
      i += m[0].length + 1;
      return;
    }
    if (/^[0-9@*#?$!-]/.test(rest)) throw shellNeeded(where, `the special parameter $${rest[0]}`);
    add('$$'); // a lone $ is literal, as in a shell
    i += 1;
  };
  while (i < cmd.length) {
    const c = cmd[i]!;
    if (c === ' ' || c === '\t') {
      if (word !== null) words.push(word);
      word = null;
      i++;
    } else if (c === '#' && word === null) {
      break; // a comment
    } else if (c === '\\') {
      if (i + 1 < cmd.length) add(literal(cmd[i + 1]!));
      i += 2;
    } else if (c === "'") {
      const end = cmd.indexOf("'", i + 1);
      if (end < 0) throw new UserError('E_PROCFILE_INVALID', `${where} has an unterminated ' quote`, { hint: 'close the quote' });
      add(literal(cmd.slice(i + 1, end)));
      i = end + 1;
    } else if (c === '"') {
      add('');
      i++;
      for (;;) {
        if (i >= cmd.length) throw new UserError('E_PROCFILE_INVALID', `${where} has an unterminated " quote`, { hint: 'close the quote' });
        const d = cmd[i]!;
        if (d === '"') { i++; break; }
        if (d === '\\' && i + 1 < cmd.length && '$`"\\'.includes(cmd[i + 1]!)) { add(literal(cmd[i + 1]!)); i += 2; continue; }
        if (d === '`') throw shellNeeded(where, SHELL_ONLY['`']!);
        if (d === '$') { reference(); continue; }
        add(literal(d));
        i++;
      }
    } else if (c === '$') {
      reference();
    } else if (SHELL_ONLY[c]) {
      throw shellNeeded(where, SHELL_ONLY[c]);
    } else {
      add(c);
      i++;
    }
  }
  if (word !== null) words.push(word);
  return { words, refs };
}

/** Expands one template word with `env` (an unset variable is empty, as in a shell). */
export function expandWord(word: string, env: Record<string, string>): string {
  return word.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}/g, (all, name: string | undefined, op: string | undefined, def: string | undefined) => {
    if (all === '$$' || name === undefined) return '$';
    const v = env[name];
    if (op === ':-') return v === undefined || v === '' ? (def ?? '') : v;
    if (op === '-') return v === undefined ? (def ?? '') : v;
    return v ?? '';
  });
}

export const expandArgv = (argv: string[], env: Record<string, string>): string[] => argv.map((w) => expandWord(w, env));

/** The template form of a literal word (a guest path put in place of a project path). */
export const templateWord = literal;

/**
 * One Procfile command → a StartCommand: leading KEY=value words become environment, `exec` is dropped,
 * shell builtins and keywords are refused.
 */
export function startCommand(cmd: string, source: string): StartCommand {
  const { words, refs } = splitCommand(cmd, source);
  const env: Record<string, string> = {};
  const envTemplates: Record<string, string> = {};
  let k = 0;
  for (; k < words.length; k++) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(words[k]!);
    if (!m) break;
    // ROCKET_PORT=$PORT ./server: expanded at boot like the arguments (envTemplates)
    if (m[2]!.includes('${')) envTemplates[m[1]!] = m[2]!;
    else env[m[1]!] = expandWord(m[2]!, {});
  }
  let argv = words.slice(k);
  if (argv[0] === 'exec') argv = argv.slice(1);
  const first = argv[0];
  if (first === undefined) throw new UserError('E_PROCFILE_INVALID', `${source} has no command`, { hint: 'write the command after `web:`' });
  if (SHELL_WORDS.has(first)) throw shellNeeded(source, `the shell word "${first}"`);
  if (SHELLS.has(first)) throw shellNeeded(source, `${first}`);
  if (first.includes('${')) {
    throw new UserError('E_PROCFILE_INVALID', `${source}: the program to start cannot come from a variable (${first})`, { hint: 'name the program in the Procfile, or set run.command in unik.yaml' });
  }
  const anyRef = refs && argv.some((w) => w.includes('${'));
  return { source, argv: anyRef ? argv : argv.map((w) => expandWord(w, {})), env, envTemplates, expand: anyRef };
}

/**
 * The start command from the project's Procfile: the `web` process type (or `process:` from unik.yaml), or null
 * when it has no web process and none was asked for; without a Procfile, render.yaml's web startCommand (renderStart). `release` types are reported as not run.
 */
export function procfileStart(dir: string, processType: string | undefined, warn: (m: string) => void): StartCommand | null {
  const pf = loadProcfile(dir);
  if (!pf) {
    if (processType) throw new UserError('E_PROCFILE_INVALID', `unik.yaml names process: ${processType} but the project has no Procfile`, { hint: 'add a Procfile, or remove process: from unik.yaml' });
    return renderStart(dir, warn);
  }
  if (pf.ignored.length > 0) warn(`Procfile: line(s) ${pf.ignored.join(', ')} are not "type: command" and are ignored`);
  const wanted = processType ?? 'web';
  for (const e of pf.entries) {
    if (e.type === 'release') warn(`Procfile release: (line ${e.line}) is not run: unikctl has no release phase; run "${e.command}" yourself before deploying`);
  }
  const entry = pf.entries.find((e) => e.type === wanted);
  if (!entry) {
    if (!processType) return null;
    throw new UserError('E_PROCFILE_INVALID', `the Procfile has no "${processType}:" process (it has: ${pf.entries.map((e) => e.type).join(', ') || 'none'})`, {
      hint: 'fix process: in unik.yaml, or add the process type to the Procfile',
    });
  }
  return startCommand(entry.command, `Procfile ${entry.type}: (line ${entry.line})`);
}

/**
 * Render's Blueprint (render.yaml at the project root) when there is no Procfile: the `startCommand` of its one
 * web service that builds from this directory with a native runtime (not `runtime: docker`/`image`, no `rootDir`
 * elsewhere), read like a Procfile web line. Several such services, or none, give null (a warning names them);
 * a file that is not YAML is ignored with a warning — render.yaml is Render's, unik.yaml is the place to be precise.
 */
export function renderStart(dir: string, warn: (m: string) => void): StartCommand | null {
  const file = join(dir, 'render.yaml');
  if (!existsSync(file)) return null;
  let doc: unknown;
  try { doc = parseYaml(readFileSync(file, 'utf8')); } catch (e) {
    warn(`render.yaml is not valid YAML (${(e as Error).message.split('\n')[0]}): its startCommand is not used`);
    return null;
  }
  const services = (doc as { services?: unknown } | null)?.services;
  if (!Array.isArray(services)) return null;
  const here = (root: unknown): boolean => root === undefined || root === null || ['', '.', './'].includes(String(root).trim());
  const web = services.filter((x): x is Record<string, unknown> => typeof x === 'object' && x !== null
    && x.type === 'web' && typeof x.startCommand === 'string' && x.startCommand.trim() !== ''
    && !['docker', 'image', 'static'].includes(String(x.runtime ?? x.env ?? '')) && here(x.rootDir));
  if (web.length === 0) return null;
  if (web.length > 1) {
    warn(`render.yaml has ${web.length} web services with a startCommand (${web.map((x) => String(x.name ?? '?')).join(', ')}): none is used; set run.command in unik.yaml`);
    return null;
  }
  const svc = web[0]!;
  const source = `render.yaml service ${String(svc.name ?? 'web')} startCommand`;
  try {
    return startCommand(String(svc.startCommand).trim(), source);
  } catch (e) {
    // Render runs it with a shell; without one the pack's own detection is the better guess than a failed build
    if (!(e instanceof UserError)) throw e;
    warn(`${e.message}: not used (the pack detects the start command; set run.command in unik.yaml)`);
    return null;
  }
}

/** `npm start`, `yarn start`, `pnpm start` (or `… run start`) with nothing else: "run package.json's start script". */
export function isPackageStart(start: StartCommand): boolean {
  const a = start.argv;
  return Object.keys(start.env).length === 0 && Object.keys(start.envTemplates).length === 0 && ['npm', 'yarn', 'pnpm'].includes(a[0] ?? '')
    && ((a.length === 2 && a[1] === 'start') || (a.length === 3 && a[1] === 'run' && a[2] === 'start'));
}

/**
 * Maps a start command's program to the image: a guest path stays; otherwise the word (or its last path element:
 * ./server, bin/server, target/release/server, .venv/bin/gunicorn) must be a program the pack put in the image.
 * Arguments naming a project file the pack moved (a jar under target/) get its guest path.
 */
export function mapStartCommand(start: StartCommand, pack: string, programs: Record<string, string[]>, paths: Record<string, string> = {}): string[] {
  const [first, ...args] = start.argv;
  if (first === undefined) return [];
  const word = start.expand ? expandWord(first, {}) : first;
  let prefix: string[] | undefined;
  if (word.startsWith('/')) prefix = [word];
  else prefix = programs[word] ?? programs[posix.basename(word)];
  if (!prefix) {
    const known = Object.keys(programs).sort();
    throw new UserError('E_PROCFILE_INVALID', `${start.source}: the ${pack} image has no program "${word}"${known.length ? ` (it can start: ${known.join(', ')})` : ''}`, {
      hint: known.length ? `start one of them (e.g. web: ${known[0]} …), or set run.command in unik.yaml to the argv in the guest` : 'set run.command in unik.yaml to the argv in the guest',
    });
  }
  const enc = (w: string): string => (start.expand ? templateWord(w) : w);
  const mapped = args.map((a) => {
    const plain = start.expand ? expandWord(a, {}) : a;
    const guest = paths[posix.normalize(plain)];
    return guest !== undefined && (!start.expand || !a.includes('${')) ? enc(guest) : a;
  });
  return [...prefix.map(enc), ...mapped];
}
