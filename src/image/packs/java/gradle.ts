import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { which } from '../../../util/exec.js';
import { looseVersion } from './pom.js';
import { pickRunnableJar, type RunnableJar } from './plan.js';

/**
 * Gradle, without a Gradle model: the build scripts are read as text for what decides the invocation (the
 * DSL, the plugins that make a runnable jar, the included subprojects, dynamic versions), Gradle itself builds,
 * and the output is found where those plugins put it (build/libs, build/install). A script that computes these
 * things is not understood: the build then says what it found and what unik.yaml can say instead.
 */

export type GradleDsl = 'groovy' | 'kotlin';
/** bootJar: the Spring Boot plugin's fat jar; installDist: the application plugin's lib/ + start script; jar: a jar whose manifest has Main-Class (e.g. shadow, or a hand-made fat jar) */
export type GradleTask = 'bootJar' | 'installDist' | 'shadowJar' | 'jar';

export interface GradleProject {
  /** relative to the build root, '' for the root project */
  rel: string;
  dir: string;
  script: string | null;
  dsl: GradleDsl | null;
  text: string;
}

/** The executable that runs Gradle: the project's wrapper first (the version the project pins), else gradle on PATH. */
export function findGradle(dir: string, env: NodeJS.ProcessEnv): { argv: string[]; what: string } | null {
  const wrapper = join(dir, 'gradlew');
  if (existsSync(wrapper)) {
    // a wrapper checked out without its executable bit (Windows, zip downloads) still runs through sh
    const exec = (statSync(wrapper).mode & 0o111) !== 0;
    return { argv: exec ? [wrapper] : [which('sh', env) ?? '/bin/sh', wrapper], what: './gradlew (the project\'s wrapper)' };
  }
  const gradle = which('gradle', env);
  return gradle ? { argv: [gradle], what: `${gradle} (gradle on PATH; the project has no ./gradlew)` } : null;
}

function scriptOf(dir: string): { script: string | null; dsl: GradleDsl | null } {
  if (existsSync(join(dir, 'build.gradle.kts'))) return { script: 'build.gradle.kts', dsl: 'kotlin' };
  if (existsSync(join(dir, 'build.gradle'))) return { script: 'build.gradle', dsl: 'groovy' };
  return { script: null, dsl: null };
}

/** Comments would make a commented-out plugin look applied. */
function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:"'])\/\/.*$/gm, '$1');
}

/** settings.gradle(.kts) `include 'a', ':b:c'` / `include("a")`: the subprojects, as directories (b/c). */
export function gradleIncludes(settings: string): string[] {
  const out: string[] = [];
  for (const m of stripComments(settings).matchAll(/\binclude\s*\(?((?:\s*["'][^"']+["']\s*,?)+)\)?/g)) {
    for (const q of (m[1] ?? '').matchAll(/["']([^"']+)["']/g)) out.push((q[1] ?? '').replace(/^:/, '').split(':').join('/'));
  }
  return [...new Set(out.filter(Boolean))];
}

/** The root project and the subprojects settings.gradle(.kts) includes (those with a directory). */
export function gradleProjects(root: string): GradleProject[] {
  const settingsFile = ['settings.gradle.kts', 'settings.gradle'].map((f) => join(root, f)).find((f) => existsSync(f));
  const includes = settingsFile ? gradleIncludes(readFileSync(settingsFile, 'utf8')) : [];
  const read = (rel: string): GradleProject => {
    const dir = rel ? join(root, rel) : root;
    const { script, dsl } = scriptOf(dir);
    return { rel, dir, script, dsl, text: script ? stripComments(readFileSync(join(dir, script), 'utf8')) : '' };
  };
  return [read(''), ...includes.filter((rel) => existsSync(join(root, rel))).map(read)];
}

/** The DSL of the build: Kotlin when the settings or the root script is .kts. */
export function gradleDsl(root: string, projects: GradleProject[]): GradleDsl {
  if (existsSync(join(root, 'settings.gradle.kts'))) return 'kotlin';
  if (existsSync(join(root, 'settings.gradle'))) return 'groovy';
  return projects.find((p) => p.dsl)?.dsl ?? 'groovy';
}

const plugin = (text: string, ids: string[]): boolean => ids.some((id) => {
  const q = id.replace(/\./g, '\\.');
  // plugins { id 'x' } / id("x") / `x` (Kotlin accessors such as `application`) / apply plugin: 'x'
  return new RegExp(`\\bid\\s*\\(?\\s*["']${q}["']|apply\\s*\\(?\\s*plugin\\s*[:=]\\s*["']${q}["']`).test(text)
    || (!id.includes('.') && new RegExp(`plugins\\s*\\{[^}]*(^|\\s|;)${q}(\\s|;|$)[^}]*\\}`, 'm').test(text));
});

/** The task that makes this project's runnable output, or null for a project that applies no Java plugin. */
export function gradleTask(script: string): GradleTask | null {
  const text = stripComments(script);
  if (plugin(text, ['org.springframework.boot'])) return 'bootJar';
  if (plugin(text, ['com.github.johnrengelman.shadow', 'com.gradleup.shadow', 'io.github.goooler.shadow'])) return 'shadowJar';
  if (plugin(text, ['application'])) return 'installDist';
  if (plugin(text, ['java', 'java-library', 'org.jetbrains.kotlin.jvm']) || /kotlin\s*\(\s*["']jvm["']\s*\)/.test(text)) return 'jar';
  return null;
}

/**
 * `gradle … clean <task>` for the projects that build: no daemon (nothing outlives the build), plain console,
 * the build cache and JDK auto-provisioning off (neither may reach the network, and the JDK is the one jlink
 * uses), the Gradle home in the project's cache (BLD-5), and --offline once a build with the same build
 * scripts has resolved its dependencies into that cache (a rebuild needs no network). A module names task
 * paths (:app:bootJar); otherwise the task names run in every project that has them.
 */
export function gradleArgs(opts: { tasks: Array<{ rel: string; task: GradleTask }>; module?: string; offline: boolean; gradleHome: string }): string[] {
  const path = (rel: string, task: string): string => (rel ? `:${rel.split('/').join(':')}:${task}` : task);
  const chosen = opts.module !== undefined ? opts.tasks.filter((t) => t.rel === opts.module) : opts.tasks;
  const names: string[] = [];
  for (const t of chosen) {
    const scoped = opts.module !== undefined;
    for (const n of [scoped ? path(t.rel, 'clean') : 'clean', scoped ? path(t.rel, t.task) : t.task]) if (!names.includes(n)) names.push(n);
  }
  return [
    '--no-daemon', '--console=plain', '--no-build-cache', ...(opts.offline ? ['--offline'] : []),
    `--gradle-user-home=${opts.gradleHome}`, '-Dorg.gradle.java.installations.auto-download=false',
    ...names,
  ];
}

/** A version in a build script that does not name one artifact: 1.+, latest.release, a range, a SNAPSHOT. */
export function gradleLockProblems(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/["']([\w.-]+):([\w.-]+):([^"'@]+)(?:@\w+)?["']/g)) {
    const v = m[3] ?? '';
    const why = v.includes('+') ? 'a dynamic version' : /^latest\./.test(v) ? v : looseVersion(v);
    if (why) out.push(`${m[1]}:${m[2]} uses ${why} (${v})`);
  }
  return out;
}

/**
 * The application plugin's installDist output: build/install/<name>/lib holds the project's jar and its
 * dependencies; the main class and the class path order come from the Unix start script Gradle wrote
 * (CLASSPATH=$APP_HOME/lib/a.jar:… and the class name after -classpath "$CLASSPATH").
 */
export function installDistApp(projectDir: string, buildScript = ''): RunnableJar | null {
  const installRoot = join(projectDir, 'build', 'install');
  let names: string[];
  try {
    names = readdirSync(installRoot).sort();
  } catch {
    return null;
  }
  for (const name of names) {
    const lib = join(installRoot, name, 'lib');
    const binDir = join(installRoot, name, 'bin');
    if (!existsSync(lib) || !existsSync(binDir)) continue;
    const script = readdirSync(binDir).filter((f) => !f.endsWith('.bat')).sort()[0];
    if (!script) continue;
    const text = readFileSync(join(binDir, script), 'utf8');
    const cp = /^CLASSPATH=(.*)$/m.exec(text)?.[1]?.trim();
    const main = /-classpath\s+"?\$CLASSPATH"?\s*\\?\s*([\w.$]+)/.exec(text)?.[1] ?? scriptMainClass(buildScript);
    if (!cp || !main) continue;
    const jars = cp.split(':').map((e) => e.replace(/^"?\$APP_HOME\/lib\//, '').replace(/"$/, '')).filter((e) => e.endsWith('.jar') && existsSync(join(lib, e)));
    const [first, ...rest] = jars;
    if (!first) continue;
    return { jar: join(lib, first), mainClass: main, classPath: rest.map((j) => relative(lib, join(lib, j))), skipped: [], manifest: {} };
  }
  return null;
}

/** application { mainClass = "x" } / mainClass.set("x") / mainClassName = 'x' in a build script. */
export function scriptMainClass(text: string): string | null {
  return /\bmainClass(?:Name)?\s*(?:=|\.set\s*\()\s*["']([\w.$]+)["']/.exec(text)?.[1] ?? null;
}

/** What a Gradle task left in a project: the runnable jar (bootJar/shadowJar/jar) or the installDist tree. */
export function gradleOutput(p: GradleProject, task: GradleTask): RunnableJar | null {
  if (task === 'installDist') return installDistApp(p.dir, p.text);
  return pickRunnableJar(join(p.dir, 'build', 'libs'));
}
