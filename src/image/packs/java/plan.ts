import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { UserError } from '../../../errors.js';
import { which } from '../../../util/exec.js';
import type { BuildMode } from '../../pack.js';
import { readJarManifest } from './jar.js';

/** Where things go in the guest: the jlinked runtime at /opt/java, the jar (and its Class-Path jars) under /app. */
export const GUEST_JAVA_HOME = '/opt/java';
export const GUEST_APP = '/app';
/** A JVM with a small heap, metaspace and C1 code cache, plus the guest kernel, fits comfortably in 256 MiB. */
export const DEFAULT_MEMORY_MIB = 256;

export interface Jdk {
  home: string;
  /** e.g. 17.0.15 */
  version: string;
  /** the feature release, e.g. 17 */
  feature: number;
  vendor: string;
  /** the modules the JDK can link (its release file's MODULES); empty when unknown */
  modules: Set<string>;
  javac: string;
  jlink: string;
  jdeps: string;
}

const JDK_HINT = 'install a JDK 17 or newer that has jlink and its jmods (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless openjdk-17-jmods; or Eclipse Temurin from https://adoptium.net) and put its bin/ on PATH or set JAVA_HOME';

/**
 * The JDK the build uses: $JAVA_HOME when it holds a javac (what Maven itself uses), otherwise the JDK of the
 * `javac` on PATH. jlink and jdeps come from the same JDK, so the runtime matches the compiler.
 */
export function findJdk(env: NodeJS.ProcessEnv): Jdk {
  let home: string | null = null;
  if (env.JAVA_HOME && existsSync(join(env.JAVA_HOME, 'bin', 'javac'))) home = resolve(env.JAVA_HOME);
  if (!home) {
    const javac = which('javac', env);
    if (javac) home = dirname(dirname(realpathSync(javac)));
  }
  if (!home) {
    throw new UserError('E_TOOLCHAIN_MISSING', `a JDK (javac) is not on PATH${env.JAVA_HOME ? ` and JAVA_HOME=${env.JAVA_HOME} has no bin/javac` : ''}`, { hint: JDK_HINT });
  }
  const tool = (name: string): string => {
    const p = join(home, 'bin', name);
    if (!existsSync(p)) throw new UserError('E_TOOLCHAIN_MISSING', `the JDK at ${home} has no ${name}`, { hint: JDK_HINT });
    return p;
  };
  const release = readRelease(home);
  const version = release.JAVA_VERSION ?? 'unknown';
  const feature = Number.parseInt(version.replace(/^1\./, ''), 10);
  if (Number.isFinite(feature) && feature < 11) {
    throw new UserError('E_TOOLCHAIN_MISSING', `the JDK at ${home} is Java ${version}; the java pack needs Java 11 or newer (jlink, jdeps --print-module-deps)`, { hint: JDK_HINT });
  }
  return {
    home, version, feature: Number.isFinite(feature) ? feature : 17, vendor: release.IMPLEMENTOR ?? 'unknown',
    modules: new Set((release.MODULES ?? '').split(/\s+/).filter(Boolean)),
    javac: tool('javac'), jlink: tool('jlink'), jdeps: tool('jdeps'),
  };
}

/** The JDK's `release` file: KEY="value" lines. */
export function readRelease(home: string): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    for (const m of readFileSync(join(home, 'release'), 'utf8').matchAll(/^(\w+)="?([^"\n]*)"?$/gm)) {
      if (m[1] && m[2] !== undefined) out[m[1]] = m[2];
    }
  } catch { /* no release file: versions stay unknown */ }
  return out;
}

/**
 * JVM flags baked into the runtime with jlink --add-options (the launcher applies them before the command
 * line, so run.command or JAVA_TOOL_OPTIONS can still override any of them). Tuned for a 1-vCPU VM with little
 * memory: serial GC, C1 only (fast warm-up, small code cache), a heap sized from the VM's memory, no
 * hsperfdata file in /tmp, class data sharing when the archive is there, IPv4 only (the guest has no IPv6),
 * and exit on OutOfMemoryError so a broken JVM does not linger as a running VM.
 */
export function jvmOptions(_mode: BuildMode): string[] {
  return [
    '-XX:+UseSerialGC',
    '-XX:TieredStopAtLevel=1',
    '-XX:MaxRAMPercentage=60',
    '-XX:-UsePerfData',
    '-Xshare:auto',
    '-XX:+ExitOnOutOfMemoryError',
    '-Djava.net.preferIPv4Stack=true',
  ];
}

/**
 * `mvn … clean package`: batch mode, the Maven version printed (-V) for the toolchain record, the local
 * repository in the project's cache (BLD-5), javac's default -g:source,lines in
 * release (maven.compiler.debug=false) and -g (local variables too) in debug, and a fixed archive
 * timestamp when the pom has none (reproducible jars). `clean` because javac's debug flags are not part of
 * Maven's incremental-build check.
 */
export function mavenArgs(opts: { mode: BuildMode; repo: string; hasOutputTimestamp: boolean; module?: string }): string[] {
  return [
    '-B', '-V', '--no-transfer-progress', '-Dstyle.color=never',
    `-Dmaven.repo.local=${opts.repo}`,
    `-Dmaven.compiler.debug=${opts.mode === 'debug' ? 'true' : 'false'}`,
    ...(opts.hasOutputTimestamp ? [] : ['-Dproject.build.outputTimestamp=1980-01-01T00:00:02Z']),
    // one module of a multi-module build: it and the modules it depends on (--also-make)
    ...(opts.module ? ['--projects', opts.module, '--also-make'] : []),
    'clean', 'package',
  ];
}

/** jlink: only the given modules; release drops debug attributes and compresses, debug keeps everything. */
export function jlinkArgs(opts: { mode: BuildMode; modules: string[]; output: string; feature: number; jvmOptions: string[] }): string[] {
  const args = ['--add-modules', opts.modules.join(','), '--output', opts.output, '--no-header-files', '--no-man-pages'];
  if (opts.mode === 'release') {
    args.push('--strip-debug', opts.feature >= 21 ? '--compress=zip-6' : '--compress=2');
  }
  args.push(`--add-options=${opts.jvmOptions.join(' ')}`);
  return args;
}

/** jdeps over jars and class directories (a Spring Boot jar's unpacked classes). */
export function jdepsArgs(opts: { feature: number; jars: string[] }): string[] {
  return ['--print-module-deps', '--ignore-missing-deps', '--multi-release', String(opts.feature), ...opts.jars];
}

/** The module list from jdeps' output (its last line: `java.base,jdk.httpserver`). */
export function parseModuleDeps(stdout: string): string[] {
  const lines = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  const last = lines[lines.length - 1] ?? '';
  if (!/^[\w.]+(,[\w.]+)*$/.test(last)) return [];
  return last.split(',');
}

/**
 * The modules to link: what jdeps found, java.base always, what the pom asks for (unikctl.addModules),
 * modules used only at run time by what was found (TLS curves for the HTTP client and JNDI/LDAP on Java < 22,
 * where jdk.crypto.ec is separate), and in debug the JDWP agent so a debugger can attach.
 */
export function chooseModules(opts: { found: string[]; extra: string[]; mode: BuildMode; available: Set<string> }): { modules: string[]; unknown: string[] } {
  const want = new Set(['java.base', ...opts.found, ...opts.extra]);
  if ((want.has('java.net.http') || want.has('java.naming')) && opts.available.has('jdk.crypto.ec')) want.add('jdk.crypto.ec');
  if (opts.mode === 'debug' && opts.available.has('jdk.jdwp.agent')) want.add('jdk.jdwp.agent');
  const unknown = opts.available.size > 0 ? [...want].filter((m) => !opts.available.has(m)) : [];
  return { modules: [...want].filter((m) => !unknown.includes(m)).sort(), unknown };
}

export interface RunnableJar {
  jar: string;
  mainClass: string;
  /** Class-Path jars from the manifest that exist, relative to the jar's directory */
  classPath: string[];
  /** Class-Path entries that are missing or point outside the jar's directory */
  skipped: string[];
  manifest: Record<string, string>;
}

/**
 * The runnable jar in the build directory: a jar whose manifest names a Main-Class (sources, javadoc, test and
 * shade's original-* jars are never candidates). When several are runnable the largest wins: a fat jar from
 * maven-shade or maven-assembly holds everything the thin one does.
 */
export function pickRunnableJar(buildDir: string): RunnableJar | null {
  let names: string[];
  try {
    names = readdirSync(buildDir).filter((f) => f.endsWith('.jar') && !f.startsWith('original-') && !/-(sources|javadoc|tests|test-sources|test-javadoc)\.jar$/.test(f)).sort();
  } catch {
    return null;
  }
  const runnable = names
    .map((f) => ({ jar: join(buildDir, f), manifest: readJarManifest(join(buildDir, f)) }))
    .filter((c) => c.manifest?.['Main-Class'])
    .sort((a, b) => statSync(b.jar).size - statSync(a.jar).size || a.jar.localeCompare(b.jar));
  const best = runnable[0];
  if (!best?.manifest) return null;
  const classPath: string[] = [];
  const skipped: string[] = [];
  for (const entry of (best.manifest['Class-Path'] ?? '').split(/\s+/).filter(Boolean)) {
    let rel: string;
    try {
      rel = decodeURIComponent(entry);
    } catch {
      rel = entry;
    }
    const norm = posix.normalize(rel);
    const host = join(buildDir, norm);
    if (norm.startsWith('/') || norm.startsWith('..') || !existsSync(host) || !statSync(host).isFile()) skipped.push(entry);
    else classPath.push(relative(buildDir, host));
  }
  return { jar: best.jar, mainClass: best.manifest['Main-Class'] ?? '', classPath, skipped, manifest: best.manifest };
}
