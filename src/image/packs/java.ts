import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, posix, resolve } from 'node:path';
import { UserError } from '../../errors.js';
import { run, which, type RunResult } from '../../util/exec.js';
import { DEFAULT_SEARCH_DIRS, libraryClosure } from '../elf.js';
import { fileDigest, treeDigest } from '../inputs.js';
import type { BuildContext, Pack, PackArtifact } from '../pack.js';
import type { RootfsBuilder } from '../rootfs.js';
import { addRuntimeFiles } from '../runtime-files.js';
import { compileFailed, hasFile, requireLock, requireTool } from './common.js';
import { mavenModelProblems, pomLockProblems, readPom } from './java/pom.js';
import { chooseModules, DEFAULT_MEMORY_MIB, findJdk, GUEST_APP, GUEST_JAVA_HOME, jdepsArgs, jvmOptions, mavenArgs, parseModuleDeps, pickRunnableJar } from './java/plan.js';
import { linkRuntime, treeBytes } from './java/runtime.js';

const MAVEN_HINT = 'install Apache Maven 3.6.1 or newer (Debian/Ubuntu: apt-get install maven; or https://maven.apache.org/download.cgi) and make sure `mvn -v` works';
const PIN_FIX = 'pin exact versions in pom.xml (no version ranges, LATEST/RELEASE or -SNAPSHOT; a <version> on every plugin)';

/**
 * Java (Maven): `mvn clean package` with the host JDK (JAVA_HOME, else the javac on PATH) and the Maven
 * repository in .unikctl/cache/m2, then the runnable jar (Main-Class manifest; fat jars from shade/assembly,
 * or a thin jar plus its manifest Class-Path jars) goes to /app and a jlinked runtime holding only the modules
 * jdeps reports goes to /opt/java with the shared-library closure of its native code. JVM flags for a small
 * 1-vCPU VM are baked into the runtime (jlink --add-options), so run.command stays `java -jar`.
 * Release: javac's default debug info (-g:source,lines: stack traces keep line numbers; maven.compiler.debug=false),
 * jlink --strip-debug --compress, stripped native libraries. Debug: javac -g, an
 * uncompressed runtime with debug attributes and symbols, plus the JDWP agent module (attach a debugger with
 * `-e JAVA_TOOL_OPTIONS=-agentlib:jdwp=transport=dt_socket,server=y,suspend=n,address=0.0.0.0:5005 -p 5005:5005`).
 * Pom properties: `unikctl.addModules` (extra run-time-only modules: reflection, services), `unikctl.cds`
 * (false: no class data sharing archive; it speeds up JVM start-up but Java < 19 cannot dump it reproducibly).
 * Gradle projects are detected but not built yet.
 */
export const javaPack: Pack = {
  name: 'java',
  markers: 'pom.xml or build.gradle(.kts)',
  detect: (dir) => hasFile(dir, 'pom.xml') || hasFile(dir, 'build.gradle') || hasFile(dir, 'build.gradle.kts'),
  async build(ctx, rootfs) {
    if (!hasFile(ctx.dir, 'pom.xml')) return gradleProject(ctx);
    const jdk = findJdk(ctx.env);
    const mvn = requireTool('mvn', ctx.env, MAVEN_HINT);
    const pomFile = join(ctx.dir, 'pom.xml');
    const pomXml = readFileSync(pomFile, 'utf8');
    const pom = readPom(pomXml);
    if (pom.packaging !== 'jar') {
      throw new UserError('E_NOT_IMPLEMENTED', `pom.xml has <packaging>${pom.packaging}</packaging>; the java pack builds a project that packages a runnable jar`, {
        hint: 'build the module that produces the runnable jar (unikctl build path/to/module), or use a unik.yaml with build.command and artifact.path',
      });
    }
    const problems = pomLockProblems(pomXml);
    requireLock(ctx, problems.length === 0, `pom.xml does not pin every version: ${problems.join('; ')}`, PIN_FIX);

    // 1. mvn clean package
    const args = mavenArgs({ mode: ctx.mode, repo: join(ctx.cacheDir, 'm2'), hasOutputTimestamp: pom.hasOutputTimestamp });
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

    // 2. the runnable jar
    const buildDir = resolve(ctx.dir, pom.buildDirectory ?? 'target');
    const app = pickRunnableJar(buildDir);
    if (!app) {
      throw new UserError('E_ARTIFACT_MISSING', `mvn package built no runnable jar (a jar whose manifest has Main-Class) in ${posix.relative(ctx.dir, buildDir) || '.'}`, {
        hint: 'set <archive><manifest><mainClass>…</mainClass></manifest></archive> in the maven-jar-plugin configuration (or use maven-shade-plugin / maven-assembly-plugin to bundle dependencies)',
      });
    }
    for (const s of app.skipped) ctx.warn(`the jar's manifest Class-Path entry ${s} is missing or outside ${buildDir}: it is not in the image`);
    const jars = [app.jar, ...app.classPath.map((c) => join(buildDir, c))];
    ctx.log(`runnable jar: ${basename(app.jar)} (Main-Class ${app.mainClass}${app.classPath.length > 0 ? `, ${app.classPath.length} Class-Path jars` : ''})`);

    // 3. the modules it needs
    const jd = await run([jdk.jdeps, ...jdepsArgs({ feature: jdk.feature, jars })], { env: { ...ctx.env, JAVA_HOME: jdk.home } });
    if (jd.code !== 0) throw compileFailed('jdeps --print-module-deps', jd);
    const found = parseModuleDeps(jd.stdout);
    const { modules, unknown } = chooseModules({ found, extra: pom.addModules, mode: ctx.mode, available: jdk.modules });
    if (unknown.length > 0) {
      throw new UserError('E_BUILD_FAILED', `the JDK at ${jdk.home} has no module ${unknown.join(', ')} (asked for by jdeps or unikctl.addModules)`, {
        hint: 'fix unikctl.addModules in pom.xml, or build with a JDK that has these modules',
      });
    }
    ctx.log(`jdeps: the app needs ${found.join(',') || 'java.base'}; linking ${modules.join(',')}`);

    // 4. the runtime and the image
    const runtime = await linkRuntime(ctx, jdk, modules, { cds: pom.cds });
    rootfs.addTree(runtime.dir, GUEST_JAVA_HOME);
    const guestJar = `${GUEST_APP}/${basename(app.jar)}`;
    rootfs.addFile(app.jar, guestJar);
    const artifacts: PackArtifact[] = [{ path: guestJar, size: statSync(app.jar).size }];
    for (const c of app.classPath) {
      const guest = posix.join(GUEST_APP, c.split('\\').join('/'));
      rootfs.addFile(join(buildDir, c), guest);
      artifacts.push({ path: guest, size: statSync(join(buildDir, c)).size });
    }
    const libs = addRuntimeClosure(rootfs);
    addRuntimeFiles(ctx, rootfs, GUEST_APP);
    const runtimeBytes = treeBytes(runtime.dir);
    artifacts.push({ path: GUEST_JAVA_HOME, size: runtimeBytes });
    ctx.log(`runtime: ${modules.length} modules, ${(runtimeBytes / 1048576).toFixed(1)} MiB at ${GUEST_JAVA_HOME}` +
      `${runtime.cds ? ' with a class data sharing archive' : ''}${runtime.stripped ? ', native symbols stripped' : ''}; ${libs} shared libraries in its closure`);
    ctx.log(`JVM flags (jlink --add-options): ${jvmOptions(ctx.mode).join(' ')}`);

    return {
      run: { command: [`${GUEST_JAVA_HOME}/bin/java`, '-jar', guestJar], workdir: GUEST_APP, memoryMiB: DEFAULT_MEMORY_MIB },
      toolchain: { java: `${jdk.vendor} ${jdk.version}`, javaHome: jdk.home, maven: mavenVersion, jlinkModules: modules.join(',') },
      inputs: {
        'pom.xml': fileDigest(pomFile) ?? '',
        sources: treeDigest(ctx.dir, (rel) => rel === 'pom.xml' || rel.startsWith('src/') || rel.startsWith('.mvn/')),
      },
      artifacts,
      programs: { java: [`${GUEST_JAVA_HOME}/bin/java`] },
      // `java -jar target/app.jar` in a Procfile: the jar sits in /app in the image
      paths: { [posix.relative(ctx.dir, app.jar)]: guestJar },
    };
  },
};

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

/** Gradle: named when missing; with a Gradle available the build is still not implemented (untested here). */
function gradleProject(ctx: BuildContext): never {
  const wrapper = existsSync(join(ctx.dir, 'gradlew'));
  if (!wrapper && !which('gradle', ctx.env)) {
    throw new UserError('E_TOOLCHAIN_MISSING', 'this is a Gradle project but Gradle (gradle) is not on PATH and the project has no ./gradlew wrapper', {
      hint: 'install Gradle (https://gradle.org/install/) or add the Gradle wrapper to the project; note the java pack builds Maven projects (pom.xml) only so far',
    });
  }
  throw new UserError('E_NOT_IMPLEMENTED', `the java pack does not build Gradle projects yet (found ${wrapper ? './gradlew' : 'gradle on PATH'})`, {
    hint: 'add a pom.xml (Maven), or a unik.yaml with build.command (e.g. ./gradlew jar) and artifact.path',
  });
}
