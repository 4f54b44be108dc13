import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, posix, relative, resolve } from 'node:path';
import { UserError } from '../../errors.js';
import { run, type RunResult } from '../../util/exec.js';
import { DEFAULT_SEARCH_DIRS, libraryClosure } from '../elf.js';
import { fileDigest, treeDigest } from '../inputs.js';
import type { BuildContext, Pack, PackArtifact, PackResult } from '../pack.js';
import type { RootfsBuilder } from '../rootfs.js';
import { addRuntimeFiles } from '../runtime-files.js';
import { compileFailed, hasFile, requireLock, requireTool } from './common.js';
import { findGradle, gradleArgs, gradleDsl, gradleLockProblems, gradleOutput, gradleProjects, gradleTask, type GradleTask } from './java/gradle.js';
import { mavenModelProblems, pomLockProblems, readPom, type PomInfo } from './java/pom.js';
import { chooseModules, DEFAULT_MEMORY_MIB, findJdk, GUEST_APP, GUEST_JAVA_HOME, jdepsArgs, jvmOptions, mavenArgs, parseModuleDeps, pickRunnableJar, type Jdk, type RunnableJar } from './java/plan.js';
import { linkRuntime, treeBytes } from './java/runtime.js';
import { SPRING_BOOT_FALLBACK_MODULES, SPRING_BOOT_MEMORY_MIB, springBootLayout, unpackSpringBoot } from './java/springboot.js';

const MAVEN_HINT = 'install Apache Maven 3.6.1 or newer (Debian/Ubuntu: apt-get install maven; or https://maven.apache.org/download.cgi) and make sure `mvn -v` works';
const GRADLE_HINT = 'add the Gradle wrapper to the project (gradle wrapper; commit gradlew and gradle/wrapper/), or install Gradle (https://gradle.org/install/) and put gradle on PATH';
const PIN_FIX = 'pin exact versions in pom.xml (no version ranges, LATEST/RELEASE or -SNAPSHOT; a <version> on every plugin)';
const GRADLE_PIN_FIX = 'pin exact versions in the build scripts (no 1.+, latest.release, ranges or -SNAPSHOT), or lock them with Gradle dependency locking (gradle.lockfile)';

/**
 * Java (Maven or Gradle) with the host JDK (JAVA_HOME, else the javac on PATH). Maven: `mvn clean package` with
 * the Maven repository in .unikctl/cache/m2; a multi-module build runs from its root and the module whose jar
 * runs is the one that produced a runnable jar (or unik.yaml's module:, built with --projects … --also-make).
 * Gradle: ./gradlew (else gradle on PATH) `clean` + bootJar (Spring Boot plugin), shadowJar, installDist
 * (application plugin) or jar, with the Gradle home in .unikctl/cache/gradle. The runnable jar (Main-Class
 * manifest; fat jars from shade/assembly, Spring Boot's nested jar, or a thin jar plus its manifest Class-Path
 * jars; installDist's lib/ with the start script's main class) goes to /app and a jlinked runtime holding only
 * the modules jdeps reports goes to /opt/java with the shared-library closure of its native code. A Spring Boot
 * jar is unpacked for jdeps (BOOT-INF/classes, BOOT-INF/lib/*.jar) and runs with `java -jar` (Boot's
 * JarLauncher); when jdeps cannot read it the runtime gets a documented fallback set (SPRING_BOOT_FALLBACK_MODULES).
 * JVM flags for a small 1-vCPU VM are baked into the runtime (jlink --add-options).
 * Release: javac's default debug info (-g:source,lines: stack traces keep line numbers; maven.compiler.debug=false),
 * jlink --strip-debug --compress, stripped native libraries. Debug: javac -g, an
 * uncompressed runtime with debug attributes and symbols, plus the JDWP agent module (attach a debugger with
 * `-e JAVA_TOOL_OPTIONS=-agentlib:jdwp=transport=dt_socket,server=y,suspend=n,address=0.0.0.0:5005 -p 5005:5005`).
 * Pom properties: `unikctl.addModules` (extra run-time-only modules: reflection, services), `unikctl.cds`
 * (false: no class data sharing archive; it speeds up JVM start-up but Java < 19 cannot dump it reproducibly).
 */
export const javaPack: Pack = {
  name: 'java',
  markers: 'pom.xml or build.gradle(.kts)',
  detect: (dir) => hasFile(dir, 'pom.xml') || hasFile(dir, 'build.gradle') || hasFile(dir, 'build.gradle.kts') || hasFile(dir, 'settings.gradle') || hasFile(dir, 'settings.gradle.kts'),
  build: (ctx, rootfs) => (hasFile(ctx.dir, 'pom.xml') ? mavenBuild(ctx, rootfs) : gradleBuild(ctx, rootfs)),
};

/** One project of the build that can produce the jar that runs (a Maven module, a Gradle project). */
interface Candidate { rel: string; app: RunnableJar; buildDir: string }

/**
 * The module whose output runs: unik.yaml's module:, else the only one that produced something runnable. Several
 * give E_ENTRY_AMBIGUOUS naming them and the field; none gives E_ARTIFACT_MISSING naming what was looked at.
 */
function chooseCandidate(ctx: BuildContext, tool: string, modules: string[], found: Candidate[], missingHint: string): Candidate {
  const label = (rel: string): string => rel || '. (the root project)';
  const wanted = ctx.config?.module;
  if (wanted !== undefined) {
    const c = found.find((f) => f.rel === wanted);
    if (c) return c;
    throw new UserError('E_ARTIFACT_MISSING', `unik.yaml module: ${wanted} built no runnable jar (a jar whose manifest has Main-Class)`, { hint: missingHint });
  }
  if (found.length === 1 && found[0]) return found[0];
  if (found.length > 1) {
    const list = found.map((f) => `${label(f.rel)} (${relative(ctx.dir, f.app.jar)}, Main-Class ${f.app.mainClass})`).join('; ');
    throw new UserError('E_ENTRY_AMBIGUOUS', `the ${tool} build produced ${found.length} runnable jars: ${list}`, {
      hint: `say which module runs in unik.yaml, e.g. module: ${found[0]?.rel ?? 'app'}`,
    });
  }
  throw new UserError('E_ARTIFACT_MISSING', `the ${tool} build produced no runnable jar (a jar whose manifest has Main-Class); looked in ${modules.map(label).join(', ')}`, { hint: missingHint });
}

/** unik.yaml's module: must name one of the build's modules, or the build would silently run another. */
function checkModule(ctx: BuildContext, modules: string[], tool: string): string | undefined {
  const m = ctx.config?.module;
  if (m === undefined) return undefined;
  if (!modules.includes(m)) {
    throw new UserError('E_UNIKYAML_INVALID', `unik.yaml module: ${m} is not a module of this ${tool} build (its modules: ${modules.filter(Boolean).join(', ') || 'none, it is a single-module build'})`, {
      hint: modules.filter(Boolean).length > 0 ? `set module: to one of ${modules.filter(Boolean).join(', ')}` : 'remove module: from unik.yaml',
    });
  }
  return m;
}

interface MavenModule { rel: string; dir: string; xml: string; pom: PomInfo }

/** The root pom and, through <modules>, every module below it (aggregators included). */
function mavenReactor(root: string): MavenModule[] {
  const out: MavenModule[] = [];
  const visit = (rel: string): void => {
    const dir = rel ? join(root, rel) : root;
    const file = join(dir, 'pom.xml');
    if (!existsSync(file) || out.some((m) => m.rel === rel)) return;
    const xml = readFileSync(file, 'utf8');
    const pom = readPom(xml);
    out.push({ rel, dir, xml, pom });
    for (const child of pom.modules) visit(posix.normalize(rel ? `${rel}/${child}` : child));
  };
  visit('');
  return out;
}

async function mavenBuild(ctx: BuildContext, rootfs: RootfsBuilder): Promise<PackResult> {
  const jdk = findJdk(ctx.env);
  const mvn = requireTool('mvn', ctx.env, MAVEN_HINT);
  const reactor = mavenReactor(ctx.dir);
  const root = reactor[0];
  if (!root) throw new UserError('E_BUILD_FAILED', `cannot read ${join(ctx.dir, 'pom.xml')}`);
  const jarModules = reactor.filter((m) => m.pom.packaging === 'jar');
  if (jarModules.length === 0) {
    const found = reactor.map((m) => `${m.rel || '.'}: <packaging>${m.pom.packaging}</packaging>`).join(', ');
    throw new UserError('E_NOT_IMPLEMENTED', `no module of this Maven build packages a jar (${found}); the java pack builds a project that packages a runnable jar`, {
      hint: 'add a module with <packaging>jar</packaging> that produces the runnable jar, or use a unik.yaml with build.command and artifact.path',
    });
  }
  const module = checkModule(ctx, jarModules.map((m) => m.rel), 'Maven');
  const problems = reactor.flatMap((m) => pomLockProblems(m.xml).map((p) => (m.rel ? `${m.rel}/pom.xml: ${p}` : p)));
  requireLock(ctx, problems.length === 0, `pom.xml does not pin every version: ${problems.join('; ')}`, PIN_FIX);

  // 1. mvn clean package (the whole reactor, or the module unik.yaml names and what it depends on)
  const args = mavenArgs({ mode: ctx.mode, repo: join(ctx.cacheDir, 'm2'), hasOutputTimestamp: root.pom.hasOutputTimestamp, ...(module ? { module } : {}) });
  ctx.log(`mvn ${args.join(' ')}   (JAVA_HOME=${jdk.home})`);
  let r: RunResult;
  try {
    const onLine = (line: string): void => {
      const clean = stripAnsi(line);
      if (clean.trim()) ctx.log(clean);
    };
    r = await run([mvn, ...args], { cwd: ctx.dir, env: { ...ctx.env, JAVA_HOME: jdk.home }, onLine });
    r = { ...r, stdout: stripAnsi(r.stdout), stderr: stripAnsi(r.stderr) };
  } catch (e) {
    throw new UserError('E_TOOLCHAIN_MISSING', `cannot run ${mvn}: ${(e as Error).message}`, { hint: MAVEN_HINT });
  }
  if (r.code !== 0) throw mavenFailed(r);
  const mavenVersion = /Apache Maven (\S+)/.exec(r.stdout)?.[1] ?? 'unknown';
  const modelProblems = mavenModelProblems(r.stdout);
  requireLock(ctx, modelProblems.length === 0, `Maven reports unpinned versions: ${modelProblems.join('; ')}`, PIN_FIX);

  // 2. the runnable jar, and the module that made it
  const found: Candidate[] = [];
  for (const m of jarModules) {
    const buildDir = resolve(m.dir, m.pom.buildDirectory ?? 'target');
    const app = pickRunnableJar(buildDir);
    if (app) found.push({ rel: m.rel, app, buildDir });
  }
  const chosen = chooseCandidate(ctx, 'Maven', jarModules.map((m) => m.rel), found,
    'set <archive><manifest><mainClass>…</mainClass></manifest></archive> in the maven-jar-plugin configuration (or use spring-boot-maven-plugin, maven-shade-plugin or maven-assembly-plugin to bundle dependencies)');
  const chosenPom = jarModules.find((m) => m.rel === chosen.rel)?.pom ?? root.pom;
  if (reactor.length > 1) ctx.log(`module ${chosen.rel || '.'}: ${found.length === 1 && !module ? 'the only module that built a runnable jar' : 'named by unik.yaml module:'}`);

  const image = await imageFromJar(ctx, rootfs, jdk, chosen, {
    addModules: [...new Set([...root.pom.addModules, ...chosenPom.addModules])],
    cds: root.pom.cds && chosenPom.cds,
  });
  return {
    ...image,
    toolchain: { ...image.toolchain, maven: mavenVersion, ...(reactor.length > 1 ? { mavenModule: chosen.rel || '.' } : {}) },
    inputs: {
      'pom.xml': fileDigest(join(ctx.dir, 'pom.xml')) ?? '',
      sources: treeDigest(ctx.dir, (rel) => rel === 'pom.xml' || rel.endsWith('/pom.xml') || /(^|\/)src\//.test(rel) || rel.startsWith('.mvn/')),
    },
  };
}

async function gradleBuild(ctx: BuildContext, rootfs: RootfsBuilder): Promise<PackResult> {
  const gradle = findGradle(ctx.dir, ctx.env);
  if (!gradle) {
    throw new UserError('E_TOOLCHAIN_MISSING', 'this is a Gradle project but it has no ./gradlew wrapper and gradle is not on PATH', { hint: GRADLE_HINT });
  }
  const jdk = findJdk(ctx.env);
  const projects = gradleProjects(ctx.dir);
  const dsl = gradleDsl(ctx.dir, projects);
  const tasks = projects.flatMap((p) => {
    const task = gradleTask(p.text);
    return task ? [{ rel: p.rel, task }] : [];
  });
  if (tasks.length === 0) {
    const seen = projects.map((p) => `${p.rel || '.'}: ${p.script ?? 'no build script'}`).join(', ');
    throw new UserError('E_NO_PACK', `no Gradle project here applies a plugin that builds a jar (java, application, org.springframework.boot, shadow); read ${seen}`, {
      hint: 'apply the application or org.springframework.boot plugin in the build script of the project that runs, or use a unik.yaml with build.command and artifact.path',
    });
  }
  const module = checkModule(ctx, tasks.map((t) => t.rel), 'Gradle');
  const problems = projects.flatMap((p) => gradleLockProblems(p.text).map((x) => `${p.rel ? `${p.rel}/` : ''}${p.script ?? ''}: ${x}`));
  const locked = existsSync(join(ctx.dir, 'gradle.lockfile')) || projects.some((p) => existsSync(join(p.dir, 'gradle.lockfile')));
  requireLock(ctx, locked || problems.length === 0, `the Gradle build does not pin every version: ${problems.join('; ')}`, GRADLE_PIN_FIX);

  // 1. gradle clean <task>: --offline once the same build scripts have resolved into the project's Gradle home
  const gradleHome = join(ctx.cacheDir, 'gradle');
  const scriptsDigest = treeDigest(ctx.dir, (rel) => /(^|\/)(build|settings)\.gradle(\.kts)?$|(^|\/)gradle\.lockfile$|^gradle\/(libs\.versions\.toml|wrapper\/gradle-wrapper\.properties)$|^gradle\.properties$/.test(rel));
  const resolvedMark = join(gradleHome, `.resolved-${scriptsDigest.slice(7, 23)}`);
  const args = gradleArgs({ tasks, ...(module !== undefined ? { module } : {}), offline: existsSync(resolvedMark), gradleHome });
  const taskList = [...new Set(tasks.filter((t) => module === undefined || t.rel === module).map((t) => t.task))];
  ctx.log(`gradle: ${gradle.what}, ${dsl === 'kotlin' ? 'Kotlin' : 'Groovy'} DSL, task ${taskList.join(', ')}${module !== undefined ? ` of ${module}` : ''}`);
  ctx.log(`${basename(gradle.argv[gradle.argv.length - 1] ?? 'gradle')} ${args.join(' ')}   (JAVA_HOME=${jdk.home})`);
  mkdirSync(gradleHome, { recursive: true });
  const gradleEnv = { ...ctx.env, JAVA_HOME: jdk.home, GRADLE_USER_HOME: gradleHome };
  // --version first: a wrapper that cannot fetch its distribution, or a gradle that cannot start, is a missing toolchain
  let r: RunResult;
  try {
    r = await run([...gradle.argv, '--version', '--no-daemon'], { cwd: ctx.dir, env: gradleEnv });
  } catch (e) {
    throw new UserError('E_TOOLCHAIN_MISSING', `cannot run ${gradle.what}: ${(e as Error).message}`, { hint: GRADLE_HINT });
  }
  const gradleVersion = /^Gradle (\d[\w.-]*)/m.exec(r.stdout)?.[1];
  if (r.code !== 0 || !gradleVersion) {
    throw new UserError('E_TOOLCHAIN_MISSING', `${gradle.what} does not run (--version: exit ${r.code ?? r.signal}): ${`${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-3).join(' ')}`, { hint: GRADLE_HINT });
  }
  ctx.log(`Gradle ${gradleVersion}`);
  try {
    r = await run([...gradle.argv, ...args], { cwd: ctx.dir, env: gradleEnv, onLine: (l) => { if (l.trim()) ctx.log(l); } });
  } catch (e) {
    throw new UserError('E_TOOLCHAIN_MISSING', `cannot run ${gradle.what}: ${(e as Error).message}`, { hint: GRADLE_HINT });
  }
  if (r.code !== 0) {
    throw compileFailed(`gradle ${taskList.join(' ')}`, r);
  }
  writeFileSync(resolvedMark, `${tasks.map((t) => t.task).join(' ')}\n`);

  // 2. the runnable output, and the project that made it
  const found: Candidate[] = [];
  for (const t of tasks) {
    const p = projects.find((x) => x.rel === t.rel);
    const app = p ? gradleOutput(p, t.task) : null;
    if (p && app) found.push({ rel: t.rel, app, buildDir: outputDir(p.dir, t.task, app) });
  }
  const chosen = chooseCandidate(ctx, 'Gradle', tasks.map((t) => t.rel), found,
    'apply the application plugin (application { mainClass = … }) or the Spring Boot plugin, or set Main-Class in the jar task\'s manifest');
  if (projects.length > 1) ctx.log(`project ${chosen.rel || '.'}: ${module !== undefined ? 'named by unik.yaml module:' : 'the only project that built a runnable jar'}`);
  const image = await imageFromJar(ctx, rootfs, jdk, chosen, { addModules: [], cds: true });
  return {
    ...image,
    toolchain: { ...image.toolchain, gradle: gradleVersion, gradleDsl: dsl, gradleTask: tasks.find((t) => t.rel === chosen.rel)?.task ?? '' },
    inputs: {
      'gradle scripts': scriptsDigest,
      sources: treeDigest(ctx.dir, (rel) => /(^|\/)src\//.test(rel) || /(^|\/)(build|settings)\.gradle(\.kts)?$/.test(rel) || rel.startsWith('gradle/')),
    },
  };
}

/** installDist's jars sit in build/install/<name>/lib; the others in build/libs. */
function outputDir(projectDir: string, task: GradleTask, app: RunnableJar): string {
  return task === 'installDist' ? resolve(app.jar, '..') : join(projectDir, 'build', 'libs');
}

/**
 * The jar(s) under /app and a runtime linked for them. A jar without Main-Class (installDist's) runs with
 * -cp and the main class; every other one with `java -jar` (the manifest's Class-Path, Boot's JarLauncher).
 */
async function imageFromJar(ctx: BuildContext, rootfs: RootfsBuilder, jdk: Jdk, chosen: Candidate, settings: { addModules: string[]; cds: boolean }): Promise<PackResult> {
  const { app, buildDir } = chosen;
  for (const s of app.skipped) ctx.warn(`the jar's manifest Class-Path entry ${s} is missing or outside ${buildDir}: it is not in the image`);
  const jars = [app.jar, ...app.classPath.map((c) => join(buildDir, c))];
  const boot = springBootLayout(app.manifest);
  ctx.log(`runnable jar: ${relative(ctx.dir, app.jar)} (Main-Class ${app.mainClass}${app.classPath.length > 0 ? `, ${app.classPath.length} Class-Path jars` : ''})`);

  // 3. the modules it needs: jdeps cannot look into nested jars, so a Spring Boot jar is unpacked first
  let inputs = jars;
  const unpacked = join(ctx.workDir, 'spring-boot-jdeps');
  if (boot) {
    rmSync(unpacked, { recursive: true, force: true });
    const u = unpackSpringBoot(app.jar, boot, unpacked);
    inputs = u.inputs;
    ctx.log(`Spring Boot ${boot.version ?? ''} jar: Start-Class ${boot.startClass}, ${u.libs} nested jars in ${boot.lib}; jdeps reads them unpacked`);
  }
  const jd = await run([jdk.jdeps, ...jdepsArgs({ feature: jdk.feature, jars: inputs })], { env: { ...ctx.env, JAVA_HOME: jdk.home } });
  rmSync(unpacked, { recursive: true, force: true });
  let found: string[];
  if (jd.code === 0) {
    found = parseModuleDeps(jd.stdout);
  } else if (boot) {
    found = SPRING_BOOT_FALLBACK_MODULES;
    ctx.warn(`jdeps could not analyse the Spring Boot jar (${`${jd.stdout}\n${jd.stderr}`.trim().split('\n').slice(-1)[0] ?? `exit ${jd.code}`}); linking the fallback module set for Spring Boot apps instead: ${found.join(',')}`);
  } else {
    throw compileFailed('jdeps --print-module-deps', jd);
  }
  const { modules, unknown } = chooseModules({ found, extra: settings.addModules, mode: ctx.mode, available: jdk.modules });
  if (unknown.length > 0) {
    throw new UserError('E_BUILD_FAILED', `the JDK at ${jdk.home} has no module ${unknown.join(', ')} (asked for by jdeps or unikctl.addModules)`, {
      hint: 'fix unikctl.addModules in pom.xml, or build with a JDK that has these modules',
    });
  }
  ctx.log(`jdeps: the app needs ${found.join(',') || 'java.base'}; linking ${modules.join(',')}`);

  // 4. the runtime and the image
  const runtime = await linkRuntime(ctx, jdk, modules, { cds: settings.cds });
  rootfs.addTree(runtime.dir, GUEST_JAVA_HOME);
  const guestJar = `${GUEST_APP}/${basename(app.jar)}`;
  rootfs.addFile(app.jar, guestJar);
  const artifacts: PackArtifact[] = [{ path: guestJar, size: statSync(app.jar).size }];
  const guestClassPath = [guestJar];
  for (const c of app.classPath) {
    const guest = posix.join(GUEST_APP, c.split('\\').join('/'));
    rootfs.addFile(join(buildDir, c), guest);
    artifacts.push({ path: guest, size: statSync(join(buildDir, c)).size });
    guestClassPath.push(guest);
  }
  const libs = addRuntimeClosure(rootfs);
  addRuntimeFiles(ctx, rootfs, GUEST_APP);
  const runtimeBytes = treeBytes(runtime.dir);
  artifacts.push({ path: GUEST_JAVA_HOME, size: runtimeBytes });
  ctx.log(`runtime: ${modules.length} modules, ${(runtimeBytes / 1048576).toFixed(1)} MiB at ${GUEST_JAVA_HOME}` +
    `${runtime.cds ? ' with a class data sharing archive' : ''}${runtime.stripped ? ', native symbols stripped' : ''}; ${libs} shared libraries in its closure`);
  ctx.log(`JVM flags (jlink --add-options): ${jvmOptions(ctx.mode).join(' ')}`);

  const java = `${GUEST_JAVA_HOME}/bin/java`;
  const command = app.manifest['Main-Class'] ? [java, '-jar', guestJar] : [java, '-cp', guestClassPath.join(':'), app.mainClass];
  return {
    run: { command, workdir: GUEST_APP, memoryMiB: boot ? SPRING_BOOT_MEMORY_MIB : DEFAULT_MEMORY_MIB },
    toolchain: { java: `${jdk.vendor} ${jdk.version}`, javaHome: jdk.home, jlinkModules: modules.join(','), ...(boot ? { springBoot: boot.version ?? 'unknown' } : {}) },
    inputs: {},
    artifacts,
    programs: { java: [java] },
    // `java -jar target/app.jar` in a Procfile: the jar sits in /app in the image
    paths: { [posix.relative(ctx.dir, app.jar)]: guestJar },
  };
}

/**
 * The shared-library closure of the runtime's native code. libjava.so & co. name libjvm.so as NEEDED without a
 * path to it (lib/server is not on their RUNPATH: the launcher has loaded libjvm.so by then), so lib/server is
 * searched first; libraries found inside the runtime are already in the tree.
 */
function addRuntimeClosure(rootfs: RootfsBuilder): number {
  const elfs = rootfs.elfFilesUnder(GUEST_JAVA_HOME).map((g) => rootfs.hostPath(g));
  const closure = libraryClosure(elfs, { searchDirs: [rootfs.hostPath(`${GUEST_JAVA_HOME}/lib/server`), ...DEFAULT_SEARCH_DIRS] });
  let added = 0;
  for (const entry of closure) {
    if (entry.guestPath.startsWith(rootfs.stagingDir) || entry.hostPath.startsWith(rootfs.stagingDir)) continue;
    rootfs.addFile(entry.hostPath, entry.guestPath);
    added++;
  }
  return added;
}

/** Debian's Maven prints ESC[0m even in batch mode. */
function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
}

/** Maven prints compiler errors as [ERROR] lines followed by boilerplate; keep the errors for the message. */
function mavenFailed(r: RunResult): UserError {
  const errors = r.stdout.split('\n').filter((l) => l.startsWith('[ERROR]') && !/^\[ERROR\]\s*(-> \[Help|To see the full|Re-run Maven|For more information|\[Help \d|$)/.test(l));
  return compileFailed('mvn package', errors.length > 0 ? { ...r, stdout: errors.join('\n'), stderr: '' } : r);
}
