import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../../errors.js';
import type { BuildContext, BuildMode } from '../pack.js';
import { RootfsBuilder } from '../rootfs.js';
import { javaPack } from './java.js';
import { gradleIncludes, gradleLockProblems, gradleTask, scriptMainClass } from './java/gradle.js';
import { extractJar, parseManifest, readJarManifest } from './java/jar.js';
import { chooseModules, findJdk, jdepsArgs, jlinkArgs, jvmOptions, mavenArgs, parseModuleDeps, pickRunnableJar } from './java/plan.js';
import { looseVersion, mavenModelProblems, pomLockProblems, readPom } from './java/pom.js';
import { SPRING_BOOT_FALLBACK_MODULES, springBootLayout, unpackSpringBoot } from './java/springboot.js';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'unik-java-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function project(files: Record<string, string>, name = 'proj'): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}

function ctxFor(dir: string, mode: BuildMode, env: NodeJS.ProcessEnv): BuildContext & { logs: string[]; warnings: string[] } {
  const logs: string[] = [];
  const warnings: string[] = [];
  const cacheDir = join(dir, '.unikctl', 'cache');
  const workDir = join(dir, '.unikctl', 'work');
  mkdirSync(cacheDir, { recursive: true });
  mkdirSync(workDir, { recursive: true });
  return { dir, mode, cacheDir, workDir, config: null, env, log: (l) => logs.push(l), warn: (m) => warnings.push(m), logs, warnings };
}

async function errorOf(p: Promise<unknown>): Promise<UserError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof UserError) return e;
    throw e;
  }
  throw new Error('expected a UserError');
}

function script(path: string, body: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

/** A fake JDK (javac/jlink/jdeps that do nothing) and a bin dir with a fake mvn that prints a compiler error. */
function fakeToolchain(opts: { mvn?: boolean } = {}): NodeJS.ProcessEnv {
  const jdk = join(tmp, 'jdk');
  for (const t of ['javac', 'jlink', 'jdeps']) script(join(jdk, 'bin', t), 'exit 0');
  writeFileSync(join(jdk, 'release'), 'IMPLEMENTOR="Test"\nJAVA_VERSION="17.0.99"\nMODULES="java.base jdk.httpserver"\n');
  const bin = join(tmp, 'bin');
  mkdirSync(bin, { recursive: true });
  if (opts.mvn !== false) {
    script(join(bin, 'mvn'), 'echo "Apache Maven 3.9.9"\necho "[ERROR] /p/src/main/java/Main.java:[3,1] class, interface, enum, or record expected"\necho "[ERROR] -> [Help 1]"\nexit 1');
  }
  return { PATH: `${bin}:/usr/bin:/bin`, JAVA_HOME: jdk };
}

const POM = (deps = '', plugins = '<plugin><artifactId>maven-jar-plugin</artifactId><version>3.4.1</version></plugin>', extra = ''): string => `<?xml version="1.0"?>
<project>
  <modelVersion>4.0.0</modelVersion>
  <groupId>example</groupId>
  <artifactId>app</artifactId>
  <version>1.0-SNAPSHOT</version>
  ${extra}
  <properties><slf4j.version>2.0.13</slf4j.version><project.build.outputTimestamp>2024-01-01T00:00:00Z</project.build.outputTimestamp></properties>
  <dependencies>${deps}</dependencies>
  <build><finalName>app</finalName><plugins>${plugins}</plugins></build>
</project>`;

const dep = (a: string, v: string): string => `<dependency><groupId>g</groupId><artifactId>${a}</artifactId><version>${v}</version></dependency>`;

/** A jar (zip) with the given entries; deflated unless `stored`. */
function zip(path: string, entries: Record<string, string>, stored = false): void {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, content] of Object.entries(entries)) {
    const raw = Buffer.from(content);
    const data = stored ? raw : deflateRawSync(raw);
    const n = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(stored ? 0 : 8, 8);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(n.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(stored ? 0 : 8, 10);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(raw.length, 24);
    central.writeUInt16LE(n.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, n, data);
    centrals.push(central, n);
    offset += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(Object.keys(entries).length, 8);
  eocd.writeUInt16LE(Object.keys(entries).length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, Buffer.concat([...locals, cd, eocd]));
}

describe('java pack: detection', () => {
  it('detects pom.xml, build.gradle and build.gradle.kts', () => {
    expect(javaPack.detect(project({ 'pom.xml': POM() }, 'm'), null)).toBe(true);
    expect(javaPack.detect(project({ 'build.gradle': '' }, 'g'), null)).toBe(true);
    expect(javaPack.detect(project({ 'build.gradle.kts': '' }, 'k'), null)).toBe(true);
    expect(javaPack.detect(project({ 'Main.java': 'class Main {}' }, 'n'), null)).toBe(false);
    expect(javaPack.name).toBe('java');
  });
});

describe('java pack: pinned versions (BLD-4)', () => {
  it('accepts exact versions, property-resolved versions and a SNAPSHOT version of the project itself', () => {
    expect(pomLockProblems(POM(dep('a', '1.2.3') + dep('slf4j-api', '${slf4j.version}')))).toEqual([]);
  });

  it('reports ranges, LATEST/RELEASE and SNAPSHOT dependencies, also through properties', () => {
    const problems = pomLockProblems(POM(dep('r', '[1.0,2.0)') + dep('l', 'LATEST') + dep('s', '2.0-SNAPSHOT') + dep('p', '${v}'), undefined, '<properties><v>RELEASE</v></properties>'));
    expect(problems).toEqual([
      'dependency g:r uses a version range ([1.0,2.0))',
      'dependency g:l uses LATEST (LATEST)',
      'dependency g:s uses a SNAPSHOT (2.0-SNAPSHOT)',
      'dependency g:p uses RELEASE (RELEASE)',
    ]);
  });

  it('reports plugins without a version unless pluginManagement pins them; a parent defers to Maven', () => {
    const plugins = '<plugin><artifactId>maven-shade-plugin</artifactId></plugin><plugin><groupId>org.codehaus.mojo</groupId><artifactId>exec-maven-plugin</artifactId>'
      + '<dependencies><dependency><groupId>x</groupId><artifactId>y</artifactId><version>1</version></dependency></dependencies></plugin>';
    expect(pomLockProblems(POM('', plugins))).toEqual([
      'plugin org.apache.maven.plugins:maven-shade-plugin has no <version>',
      'plugin org.codehaus.mojo:exec-maven-plugin has no <version>',
    ]);
    const managed = `<pluginManagement><plugins><plugin><artifactId>maven-shade-plugin</artifactId><version>3.5.3</version></plugin></plugins></pluginManagement><plugins><plugin><artifactId>maven-shade-plugin</artifactId></plugin></plugins>`;
    expect(pomLockProblems(POM().replace(/<plugins>[\s\S]*<\/plugins>/, managed))).toEqual([]);
    const withParent = POM('', plugins, '<parent><groupId>org.springframework.boot</groupId><artifactId>spring-boot-starter-parent</artifactId><version>3.3.0</version></parent>');
    expect(pomLockProblems(withParent)).toEqual([]);
    expect(pomLockProblems(withParent.replace('3.3.0', '3.3.0-SNAPSHOT'))).toEqual(['parent org.springframework.boot:spring-boot-starter-parent uses a SNAPSHOT (3.3.0-SNAPSHOT)']);
  });

  it('ignores commented-out dependencies', () => {
    expect(pomLockProblems(POM(`<!-- ${dep('r', '[1,)')} -->`))).toEqual([]);
  });

  it('reads Maven\'s effective-model warnings', () => {
    expect(mavenModelProblems("[WARNING] 'build.plugins.plugin.version' for org.apache.maven.plugins:maven-jar-plugin is missing. @ line 40")).toEqual([
      'plugin org.apache.maven.plugins:maven-jar-plugin has no <version> (in the effective pom)',
    ]);
    expect(mavenModelProblems('[INFO] BUILD SUCCESS')).toEqual([]);
  });

  it('classifies versions', () => {
    expect(looseVersion('1.0')).toBeNull();
    expect(looseVersion('[1.0]')).toBe('a version range');
    expect(looseVersion('1.0-SNAPSHOT')).toBe('a SNAPSHOT');
    expect(looseVersion('RELEASE')).toBe('RELEASE');
  });

  it('release refuses an unpinned pom before running Maven (E_LOCK_REQUIRED); debug warns and builds', async () => {
    const env = fakeToolchain();
    const dir = project({ 'pom.xml': POM(dep('r', '[1.0,2.0)')) });
    const rel = ctxFor(dir, 'release', env);
    const e = await errorOf(javaPack.build(rel, new RootfsBuilder(join(tmp, 'stage1'))));
    expect(e.code).toBe('E_LOCK_REQUIRED');
    expect(e.message).toContain('g:r uses a version range');
    expect(rel.logs.some((l) => l.startsWith('mvn '))).toBe(false);

    const dbg = ctxFor(dir, 'debug', env);
    const e2 = await errorOf(javaPack.build(dbg, new RootfsBuilder(join(tmp, 'stage2'))));
    expect(dbg.warnings.join('\n')).toMatch(/version range.*E_LOCK_REQUIRED/);
    // the fake mvn fails like a compile error: the compiler's words are in the message, Maven's boilerplate is not
    expect(e2.code).toBe('E_BUILD_FAILED');
    expect(e2.message).toContain('Main.java:[3,1] class, interface, enum, or record expected');
    expect(e2.message).not.toContain('[Help 1]');
  });
});

describe('java pack: missing toolchains', () => {
  it('no JDK: E_TOOLCHAIN_MISSING naming the JDK', async () => {
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    const dir = project({ 'pom.xml': POM() });
    const e = await errorOf(javaPack.build(ctxFor(dir, 'release', { PATH: empty }), new RootfsBuilder(join(tmp, 'stage'))));
    expect(e.code).toBe('E_TOOLCHAIN_MISSING');
    expect(e.message).toContain('JDK (javac)');
    expect(e.hint).toContain('openjdk-17-jdk-headless');
  });

  it('a JDK without jlink: E_TOOLCHAIN_MISSING', () => {
    const env = fakeToolchain();
    rmSync(join(tmp, 'jdk', 'bin', 'jlink'));
    expect(() => findJdk(env)).toThrow(/has no jlink/);
  });

  it('no mvn: E_TOOLCHAIN_MISSING naming Maven', async () => {
    const env = fakeToolchain({ mvn: false });
    env.PATH = join(tmp, 'bin');
    const dir = project({ 'pom.xml': POM() });
    const e = await errorOf(javaPack.build(ctxFor(dir, 'release', env), new RootfsBuilder(join(tmp, 'stage'))));
    expect(e.code).toBe('E_TOOLCHAIN_MISSING');
    expect(e.message).toContain('mvn');
    expect(e.hint).toContain('Maven');
  });

  it('a Gradle project without gradle or ./gradlew: E_TOOLCHAIN_MISSING naming both', async () => {
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    const dir = project({ 'build.gradle': "plugins { id 'application' }\n" });
    const e = await errorOf(javaPack.build(ctxFor(dir, 'release', { PATH: empty }), new RootfsBuilder(join(tmp, 'stage'))));
    expect(e.code).toBe('E_TOOLCHAIN_MISSING');
    expect(e.message).toContain('./gradlew');
    expect(e.message).toContain('gradle is not on PATH');
    expect(e.hint).toContain('wrapper');
  });
});

describe('java pack: the build plan', () => {
  it('mvn: batch, cache in .unikctl/cache/m2, -g only in debug, a fixed jar timestamp when the pom has none', () => {
    expect(mavenArgs({ mode: 'release', repo: '/p/.unikctl/cache/m2', hasOutputTimestamp: false })).toEqual([
      '-B', '-V', '--no-transfer-progress', '-Dstyle.color=never', '-Dmaven.repo.local=/p/.unikctl/cache/m2', '-Dmaven.compiler.debug=false',
      '-Dproject.build.outputTimestamp=1980-01-01T00:00:02Z', 'clean', 'package',
    ]);
    const debug = mavenArgs({ mode: 'debug', repo: '/r', hasOutputTimestamp: true });
    expect(debug).toContain('-Dmaven.compiler.debug=true');
    expect(debug.some((a) => a.startsWith('-Dproject.build.outputTimestamp'))).toBe(false);
  });

  it('jlink: release strips and compresses (zip-6 from Java 21), debug keeps debug attributes; JVM flags baked in', () => {
    const flags = jvmOptions('release');
    expect(flags).toEqual(expect.arrayContaining(['-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-XX:-UsePerfData', '-Djava.net.preferIPv4Stack=true']));
    const rel = jlinkArgs({ mode: 'release', modules: ['java.base', 'jdk.httpserver'], output: '/o', feature: 17, jvmOptions: flags });
    expect(rel).toEqual(['--add-modules', 'java.base,jdk.httpserver', '--output', '/o', '--no-header-files', '--no-man-pages', '--strip-debug', '--compress=2', `--add-options=${flags.join(' ')}`]);
    expect(jlinkArgs({ mode: 'release', modules: ['java.base'], output: '/o', feature: 25, jvmOptions: [] })).toContain('--compress=zip-6');
    const dbg = jlinkArgs({ mode: 'debug', modules: ['java.base'], output: '/o', feature: 17, jvmOptions: [] });
    expect(dbg).not.toContain('--strip-debug');
    expect(dbg.some((a) => a.startsWith('--compress'))).toBe(false);
  });

  it('jdeps and the module set', () => {
    expect(jdepsArgs({ feature: 17, jars: ['/a.jar', '/lib/b.jar'] })).toEqual(['--print-module-deps', '--ignore-missing-deps', '--multi-release', '17', '/a.jar', '/lib/b.jar']);
    expect(parseModuleDeps('Warning: split package\njava.base,jdk.httpserver\n')).toEqual(['java.base', 'jdk.httpserver']);
    expect(parseModuleDeps('')).toEqual([]);
    const available = new Set(['java.base', 'java.net.http', 'jdk.crypto.ec', 'jdk.httpserver', 'jdk.jdwp.agent', 'java.sql']);
    expect(chooseModules({ found: ['jdk.httpserver'], extra: [], mode: 'release', available })).toEqual({ modules: ['java.base', 'jdk.httpserver'], unknown: [] });
    expect(chooseModules({ found: ['java.net.http'], extra: ['java.sql'], mode: 'debug', available }).modules).toEqual(['java.base', 'java.net.http', 'java.sql', 'jdk.crypto.ec', 'jdk.jdwp.agent']);
    expect(chooseModules({ found: [], extra: ['jdk.nope'], mode: 'release', available }).unknown).toEqual(['jdk.nope']);
  });

  it('reads pom settings: finalName, build directory, packaging, unikctl.* properties', () => {
    const pom = readPom(POM('', undefined, '<packaging>jar</packaging>').replace('<properties>', '<properties><unikctl.addModules>java.sql, jdk.zipfs</unikctl.addModules><unikctl.cds>false</unikctl.cds>'));
    expect(pom.finalName).toBe('app');
    expect(pom.packaging).toBe('jar');
    expect(pom.hasOutputTimestamp).toBe(true);
    expect(pom.addModules).toEqual(['java.sql', 'jdk.zipfs']);
    expect(pom.cds).toBe(false);
    expect(readPom('<project><artifactId>x</artifactId><packaging>pom</packaging></project>').packaging).toBe('pom');
    expect(readPom('<project><artifactId>x</artifactId></project>').cds).toBe(true);
  });
});

describe('java pack: the runnable jar', () => {
  it('parses manifests, continuation lines included', () => {
    expect(parseManifest('Manifest-Version: 1.0\r\nMain-Class: a.B\r\nClass-Path: lib/x.jar lib/\r\n y.jar\r\n\r\nName: foo\r\nMain-Class: no\r\n')).toEqual({
      'Manifest-Version': '1.0', 'Main-Class': 'a.B', 'Class-Path': 'lib/x.jar lib/y.jar',
    });
  });

  it('reads the manifest of stored and deflated jars; null for a jar without one or a non-zip', () => {
    zip(join(tmp, 'a.jar'), { 'META-INF/MANIFEST.MF': 'Main-Class: a.Main\n', 'a/Main.class': 'x' });
    zip(join(tmp, 'b.jar'), { 'b/B.class': 'x', 'META-INF/MANIFEST.MF': 'Main-Class: b.Main\n' }, true);
    zip(join(tmp, 'c.jar'), { 'c/C.class': 'x' });
    writeFileSync(join(tmp, 'd.jar'), 'not a zip');
    expect(readJarManifest(join(tmp, 'a.jar'))?.['Main-Class']).toBe('a.Main');
    expect(readJarManifest(join(tmp, 'b.jar'))?.['Main-Class']).toBe('b.Main');
    expect(readJarManifest(join(tmp, 'c.jar'))).toBeNull();
    expect(readJarManifest(join(tmp, 'd.jar'))).toBeNull();
  });

  it('picks the largest runnable jar (the fat one), never sources/javadoc/original-*, and resolves its Class-Path', () => {
    const t = join(tmp, 'target');
    zip(join(t, 'app.jar'), { 'META-INF/MANIFEST.MF': 'Main-Class: a.Main\nClass-Path: lib/dep.jar lib/missing.jar ../outside.jar\n' });
    zip(join(t, 'app-jar-with-dependencies.jar'), { 'META-INF/MANIFEST.MF': 'Main-Class: a.Main\n', 'big/Blob.class': 'x'.repeat(5000) });
    zip(join(t, 'original-app.jar'), { 'META-INF/MANIFEST.MF': 'Main-Class: a.Main\n', 'big/Blob.class': 'y'.repeat(90000) });
    zip(join(t, 'app-sources.jar'), { 'META-INF/MANIFEST.MF': 'Main-Class: a.Main\n', 'big/Blob.java': 'z'.repeat(90000) });
    expect(pickRunnableJar(t)?.jar).toBe(join(t, 'app-jar-with-dependencies.jar'));
    rmSync(join(t, 'app-jar-with-dependencies.jar'));
    zip(join(t, 'lib', 'dep.jar'), { 'd/D.class': 'x' });
    const thin = pickRunnableJar(t);
    expect(thin).toMatchObject({ jar: join(t, 'app.jar'), mainClass: 'a.Main', classPath: ['lib/dep.jar'], skipped: ['lib/missing.jar', '../outside.jar'] });
    expect(pickRunnableJar(join(tmp, 'nope'))).toBeNull();
  });

  it('no runnable jar after a successful mvn: E_ARTIFACT_MISSING naming mainClass', async () => {
    const env = fakeToolchain();
    script(join(tmp, 'bin', 'mvn'), 'echo "Apache Maven 3.9.9"; mkdir -p target; exit 0');
    const dir = project({ 'pom.xml': POM() });
    zip(join(dir, 'target', 'app.jar'), { 'a/A.class': 'x' });
    const e = await errorOf(javaPack.build(ctxFor(dir, 'release', env), new RootfsBuilder(join(tmp, 'stage'))));
    expect(e.code).toBe('E_ARTIFACT_MISSING');
    expect(e.hint).toContain('mainClass');
  });
});

/**
 * A fake JDK whose jlink makes a runtime directory (bin/java that exits 0, so the CDS dump finds no archive)
 * and whose jdeps prints `modules` (or fails with `jdepsError`), and a bin dir for the build tool stand-ins.
 */
function linkingToolchain(opts: { modules?: string; jdepsError?: string } = {}): NodeJS.ProcessEnv {
  const env = fakeToolchain({ mvn: false });
  const jdk = join(tmp, 'jdk');
  script(join(jdk, 'bin', 'jdeps'), opts.jdepsError ? `echo "${opts.jdepsError}" >&2; exit 1` : `echo "${opts.modules ?? 'java.base'}"`);
  script(join(jdk, 'bin', 'jlink'), 'out=""; prev=""; for a in "$@"; do [ "$prev" = "--output" ] && out="$a"; prev="$a"; done\nmkdir -p "$out/bin" "$out/lib"\nprintf "#!/bin/sh\\nexit 0\\n" > "$out/bin/java"; chmod +x "$out/bin/java"');
  writeFileSync(join(jdk, 'release'), 'IMPLEMENTOR="Test"\nJAVA_VERSION="17.0.99"\nMODULES="java.base java.desktop java.logging java.management java.naming java.sql java.xml jdk.crypto.ec jdk.httpserver jdk.unsupported java.compiler java.instrument java.net.http java.prefs java.rmi java.scripting java.security.jgss jdk.jfr jdk.management jdk.zipfs"\n');
  return env;
}

const MANIFEST = (main: string, extra = ''): string => `Manifest-Version: 1.0\nMain-Class: ${main}\n${extra}`;
const BOOT_MANIFEST = MANIFEST('org.springframework.boot.loader.launch.JarLauncher', 'Start-Class: example.App\nSpring-Boot-Version: 3.5.7\nSpring-Boot-Classes: BOOT-INF/classes/\nSpring-Boot-Lib: BOOT-INF/lib/\n');

/** The parent pom of a two-module build (lib + app). */
const PARENT_POM = (modules: string[]): string => `<project><modelVersion>4.0.0</modelVersion><groupId>example</groupId><artifactId>parent</artifactId><version>1</version>
  <packaging>pom</packaging><modules>${modules.map((m) => `<module>${m}</module>`).join('')}</modules>
  <properties><project.build.outputTimestamp>2024-01-01T00:00:00Z</project.build.outputTimestamp></properties>
  <profiles><profile><id>extra</id><modules><module>not-built</module></modules></profile></profiles></project>`;
const MODULE_POM = (a: string): string => `<project><parent><groupId>example</groupId><artifactId>parent</artifactId><version>1</version></parent><artifactId>${a}</artifactId></project>`;

describe('java pack: Spring Boot nested jars', () => {
  it('reads the Boot layout from the manifest; other jars are not Boot jars', () => {
    expect(springBootLayout(parseManifest(BOOT_MANIFEST))).toEqual({ startClass: 'example.App', classes: 'BOOT-INF/classes/', lib: 'BOOT-INF/lib/', version: '3.5.7' });
    // Boot before 3.2: the launcher's old package, default directories
    expect(springBootLayout({ 'Main-Class': 'org.springframework.boot.loader.JarLauncher', 'Start-Class': 'a.B' })).toMatchObject({ lib: 'BOOT-INF/lib/', version: null });
    expect(springBootLayout({ 'Main-Class': 'a.Main' })).toBeNull();
  });

  it('unpacks the app classes, the launcher and the nested jars for jdeps; refuses entries escaping the directory', () => {
    const jar = join(tmp, 'boot.jar');
    zip(jar, {
      'META-INF/MANIFEST.MF': BOOT_MANIFEST, 'BOOT-INF/classes/example/App.class': 'app', 'BOOT-INF/classes/application.properties': 'x=1',
      'BOOT-INF/lib/spring-core.jar': 'core', 'BOOT-INF/lib/tomcat.jar': 'tc', 'BOOT-INF/classpath.idx': '-', 'org/springframework/boot/loader/launch/JarLauncher.class': 'l',
    }, true);
    const out = join(tmp, 'unpacked');
    const layout = springBootLayout(parseManifest(BOOT_MANIFEST));
    if (!layout) throw new Error('not a Boot manifest');
    const u = unpackSpringBoot(jar, layout, out);
    expect(u).toEqual({ inputs: [join(out, 'classes'), join(out, 'loader'), join(out, 'lib', 'spring-core.jar'), join(out, 'lib', 'tomcat.jar')], libs: 2 });
    expect(readFileSync(join(out, 'lib', 'tomcat.jar'), 'utf8')).toBe('tc');
    expect(existsSync(join(out, 'classes', 'application.properties'))).toBe(false);
    zip(join(tmp, 'evil.jar'), { 'META-INF/MANIFEST.MF': BOOT_MANIFEST, 'BOOT-INF/classes/../../../x.class': 'x' });
    expect(() => extractJar(join(tmp, 'evil.jar'), join(tmp, 'e'), (n) => n.slice('BOOT-INF/classes/'.length))).toThrow(/outside the archive root/);
  });

  it('builds a Boot jar: jdeps over the unpacked jar, java -jar through JarLauncher, 512 MiB', async () => {
    const env = linkingToolchain({ modules: 'java.base,java.desktop,java.sql' });
    script(join(tmp, 'bin', 'mvn'), 'echo "Apache Maven 3.9.9"; exit 0');
    const dir = project({ 'pom.xml': POM() });
    zip(join(dir, 'target', 'app.jar'), { 'META-INF/MANIFEST.MF': BOOT_MANIFEST, 'BOOT-INF/classes/example/App.class': 'a', 'BOOT-INF/lib/x.jar': 'x' });
    const ctx = ctxFor(dir, 'release', env);
    const rootfs = new RootfsBuilder(join(tmp, 'stage'));
    const r = await javaPack.build(ctx, rootfs);
    expect(r.run).toMatchObject({ command: ['/opt/java/bin/java', '-jar', '/app/app.jar'], memoryMiB: 512 });
    expect(r.toolchain).toMatchObject({ springBoot: '3.5.7', jlinkModules: 'java.base,java.desktop,java.sql' });
    expect(ctx.logs.join('\n')).toContain('Spring Boot 3.5.7 jar: Start-Class example.App, 1 nested jars in BOOT-INF/lib/');
    expect(existsSync(rootfs.hostPath('/app/app.jar'))).toBe(true);
  });

  it('a Boot jar jdeps cannot read gets the documented fallback set, with a warning; a plain jar fails', async () => {
    const env = linkingToolchain({ jdepsError: 'Error: unsupported class file major version 69' });
    script(join(tmp, 'bin', 'mvn'), 'echo "Apache Maven 3.9.9"; exit 0');
    const dir = project({ 'pom.xml': POM() });
    zip(join(dir, 'target', 'app.jar'), { 'META-INF/MANIFEST.MF': BOOT_MANIFEST, 'BOOT-INF/lib/x.jar': 'x' });
    const ctx = ctxFor(dir, 'release', env);
    const r = await javaPack.build(ctx, new RootfsBuilder(join(tmp, 'stage')));
    expect(r.toolchain.jlinkModules?.split(',')).toEqual([...SPRING_BOOT_FALLBACK_MODULES].sort());
    expect(ctx.warnings.join('\n')).toMatch(/jdeps could not analyse the Spring Boot jar \(Error: unsupported class file major version 69\); linking the fallback/);

    const plain = project({ 'pom.xml': POM() }, 'plain');
    zip(join(plain, 'target', 'app.jar'), { 'META-INF/MANIFEST.MF': MANIFEST('a.Main') });
    const e = await errorOf(javaPack.build(ctxFor(plain, 'release', env), new RootfsBuilder(join(tmp, 'stage2'))));
    expect(e.code).toBe('E_BUILD_FAILED');
    expect(e.message).toContain('unsupported class file major version 69');
  });
});

describe('java pack: multi-module Maven', () => {
  /** A fake mvn that records its argv and leaves the jars of `jars` (module → manifest) in module/target. */
  function mvnMaking(jars: Record<string, string | null>): string {
    const lines = Object.entries(jars).map(([m, manifest]) => {
      const src = join(tmp, 'fixtures', `${m}.jar`);
      zip(src, manifest ? { 'META-INF/MANIFEST.MF': manifest, 'x/X.class': m } : { 'x/X.class': m });
      return `mkdir -p ${m}/target && cp ${src} ${m}/target/${m}.jar`;
    });
    script(join(tmp, 'bin', 'mvn'), `echo "$@" > ${join(tmp, 'mvn-argv')}\necho "Apache Maven 3.9.9"\n${lines.join('\n')}`);
    return join(tmp, 'mvn-argv');
  }

  it('reads <modules> (not the profiles\' ones)', () => {
    expect(readPom(PARENT_POM(['lib', 'app/'])).modules).toEqual(['lib', 'app']);
    expect(readPom(POM()).modules).toEqual([]);
  });

  it('builds the whole reactor and runs the only module that made a runnable jar', async () => {
    const env = linkingToolchain();
    mvnMaking({ lib: null, app: MANIFEST('example.app.Main') });
    const dir = project({ 'pom.xml': PARENT_POM(['lib', 'app']), 'lib/pom.xml': MODULE_POM('lib'), 'app/pom.xml': MODULE_POM('app') });
    const ctx = ctxFor(dir, 'release', env);
    const r = await javaPack.build(ctx, new RootfsBuilder(join(tmp, 'stage')));
    expect(r.run.command).toEqual(['/opt/java/bin/java', '-jar', '/app/app.jar']);
    expect(r.toolchain).toMatchObject({ mavenModule: 'app' });
    expect(r.paths).toEqual({ 'app/target/app.jar': '/app/app.jar' });
    expect(ctx.logs).toContain('module app: the only module that built a runnable jar');
    expect(readFileSync(join(tmp, 'mvn-argv'), 'utf8')).not.toContain('--projects');
  });

  it('several runnable jars: E_ENTRY_AMBIGUOUS naming them and unik.yaml module:; module: picks one and builds only it', async () => {
    const env = linkingToolchain();
    mvnMaking({ tool: MANIFEST('example.tool.Main'), app: MANIFEST('example.app.Main') });
    const dir = project({ 'pom.xml': PARENT_POM(['tool', 'app']), 'tool/pom.xml': MODULE_POM('tool'), 'app/pom.xml': MODULE_POM('app') });
    const e = await errorOf(javaPack.build(ctxFor(dir, 'release', env), new RootfsBuilder(join(tmp, 'stage'))));
    expect(e.code).toBe('E_ENTRY_AMBIGUOUS');
    expect(e.message).toBe('the Maven build produced 2 runnable jars: tool (tool/target/tool.jar, Main-Class example.tool.Main); app (app/target/app.jar, Main-Class example.app.Main)');
    expect(e.hint).toBe('say which module runs in unik.yaml, e.g. module: tool');

    const ctx = { ...ctxFor(dir, 'release', env), config: { run: { env: {} }, module: 'app' } };
    const r = await javaPack.build(ctx, new RootfsBuilder(join(tmp, 'stage2')));
    expect(r.run.command).toEqual(['/opt/java/bin/java', '-jar', '/app/app.jar']);
    expect(readFileSync(join(tmp, 'mvn-argv'), 'utf8')).toContain('--projects app --also-make clean package');

    const wrong = { ...ctxFor(dir, 'release', env), config: { run: { env: {} }, module: 'nope' } };
    const e2 = await errorOf(javaPack.build(wrong, new RootfsBuilder(join(tmp, 'stage3'))));
    expect(e2.code).toBe('E_UNIKYAML_INVALID');
    expect(e2.message).toContain('module: nope is not a module of this Maven build (its modules: tool, app)');
  });

  it('no module made a runnable jar: E_ARTIFACT_MISSING naming the modules looked at; unpinned module poms are refused', async () => {
    const env = linkingToolchain();
    mvnMaking({ lib: null, app: null });
    const dir = project({ 'pom.xml': PARENT_POM(['lib', 'app']), 'lib/pom.xml': MODULE_POM('lib'), 'app/pom.xml': MODULE_POM('app') });
    const e = await errorOf(javaPack.build(ctxFor(dir, 'release', env), new RootfsBuilder(join(tmp, 'stage'))));
    expect(e.code).toBe('E_ARTIFACT_MISSING');
    expect(e.message).toContain('looked in lib, app');
    writeFileSync(join(dir, 'app', 'pom.xml'), MODULE_POM('app').replace('</artifactId></project>', `</artifactId><dependencies>${dep('r', '[1,2)')}</dependencies></project>`));
    const e2 = await errorOf(javaPack.build(ctxFor(dir, 'release', env), new RootfsBuilder(join(tmp, 'stage2'))));
    expect(e2.code).toBe('E_LOCK_REQUIRED');
    expect(e2.message).toContain('app/pom.xml: dependency g:r uses a version range');
  });
});

describe('java pack: Gradle (a stand-in gradle records its argv and leaves the output the real one would)', () => {
  /**
   * A fake Gradle at `path`: `--version` prints a version; a build records its argv (one line per call) and
   * copies `outputs` (fixture file → project-relative path) into place, as the task would.
   */
  function fakeGradle(path: string, outputs: Record<string, string>): string {
    const log = join(tmp, 'gradle-argv');
    const copies = Object.entries(outputs).map(([src, dst]) => `mkdir -p "$(dirname ${dst})" && cp ${src} ${dst}`).join('\n');
    script(path, `case "$*" in *--version*) echo; echo "------"; echo "Gradle 8.10.2"; exit 0;; esac\necho "$@" >> ${log}\necho "GRADLE_USER_HOME=$GRADLE_USER_HOME JAVA_HOME=$JAVA_HOME" >> ${log}\n${copies}`);
    return log;
  }
  const fixtureJar = (name: string, entries: Record<string, string>): string => {
    const p = join(tmp, 'fixtures', name);
    zip(p, entries);
    return p;
  };

  it('reads includes, plugins and the task from Groovy and Kotlin scripts', () => {
    expect(gradleIncludes("rootProject.name = 'x'\ninclude 'lib', ':app'\n// include 'old'\ninclude(\":services:api\")\n")).toEqual(['lib', 'app', 'services/api']);
    expect(gradleTask("plugins {\n  id 'java'\n  id 'org.springframework.boot' version '3.5.7'\n}")).toBe('bootJar');
    expect(gradleTask('plugins {\n    id("org.springframework.boot") version "3.5.7"\n    kotlin("jvm") version "2.2.0"\n}')).toBe('bootJar');
    expect(gradleTask('plugins {\n    application\n}\napplication { mainClass.set("a.Main") }')).toBe('installDist');
    expect(gradleTask("apply plugin: 'application'")).toBe('installDist');
    expect(gradleTask('plugins { id("com.gradleup.shadow") version "8.3.0"\n application }')).toBe('shadowJar');
    expect(gradleTask("plugins { id 'java-library' }")).toBe('jar');
    expect(gradleTask("// id 'application'\nplugins { id 'base' }")).toBeNull();
    expect(scriptMainClass('application { mainClass = "a.B" }')).toBe('a.B');
    expect(scriptMainClass("mainClassName = 'c.D'")).toBe('c.D');
  });

  it('flags dynamic versions', () => {
    expect(gradleLockProblems(`implementation 'a:b:1.+'\nimplementation("c:d:latest.release")\nimplementation 'e:f:[1,2)'\nimplementation 'g:h:1.0-SNAPSHOT'\nimplementation 'i:j:1.2.3'`)).toEqual([
      'a:b uses a dynamic version (1.+)', 'c:d uses latest.release (latest.release)', 'e:f uses a version range ([1,2))', 'g:h uses a SNAPSHOT (1.0-SNAPSHOT)',
    ]);
  });

  it('Kotlin DSL + Spring Boot plugin, wrapper present: ./gradlew --no-daemon … clean bootJar; --offline once resolved; the Boot jar runs', async () => {
    const env = linkingToolchain({ modules: 'java.base,java.sql' });
    script(join(tmp, 'bin', 'gradle'), 'echo "the wrapper must win"; exit 1');
    const dir = project({
      'settings.gradle.kts': 'rootProject.name = "demo"\n',
      'build.gradle.kts': 'plugins {\n    java\n    id("org.springframework.boot") version "3.5.7"\n    id("io.spring.dependency-management") version "1.1.7"\n}\n',
      'src/main/java/example/App.java': 'class App {}',
    });
    const log = fakeGradle(join(dir, 'gradlew'), { [fixtureJar('boot.jar', { 'META-INF/MANIFEST.MF': BOOT_MANIFEST, 'BOOT-INF/lib/x.jar': 'x' })]: 'build/libs/demo-0.0.1.jar' });
    zip(join(dir, 'build', 'libs', 'demo-0.0.1-plain.jar'), { 'x/X.class': 'plain' }); // Boot's plain jar: no Main-Class
    const ctx = ctxFor(dir, 'release', env);
    const r = await javaPack.build(ctx, new RootfsBuilder(join(tmp, 'stage')));
    const gradleHome = join(dir, '.unikctl', 'cache', 'gradle');
    expect(readFileSync(log, 'utf8').split('\n')).toEqual([
      `--no-daemon --console=plain --no-build-cache --gradle-user-home=${gradleHome} -Dorg.gradle.java.installations.auto-download=false clean bootJar`,
      `GRADLE_USER_HOME=${gradleHome} JAVA_HOME=${join(tmp, 'jdk')}`, '',
    ]);
    expect(ctx.logs).toContain('gradle: ./gradlew (the project\'s wrapper), Kotlin DSL, task bootJar');
    expect(r.run).toMatchObject({ command: ['/opt/java/bin/java', '-jar', '/app/demo-0.0.1.jar'], memoryMiB: 512 });
    expect(r.toolchain).toMatchObject({ gradle: '8.10.2', gradleDsl: 'kotlin', gradleTask: 'bootJar', springBoot: '3.5.7' });

    // the same build scripts again: the dependencies are in the project's Gradle home, so no network is needed
    await javaPack.build(ctxFor(dir, 'release', env), new RootfsBuilder(join(tmp, 'stage2')));
    expect(readFileSync(log, 'utf8').split('\n')[2]).toContain('--no-build-cache --offline --gradle-user-home=');
  });

  it('Groovy DSL + application plugin, gradle on PATH, no wrapper: installDist, run with -cp and the start script\'s main class', async () => {
    const env = linkingToolchain({ modules: 'java.base,jdk.httpserver' });
    const log = fakeGradle(join(tmp, 'bin', 'gradle'), {
      [fixtureJar('app.jar', { 'x/Main.class': 'm' })]: 'build/install/demo/lib/demo.jar',
      [fixtureJar('dep.jar', { 'd/D.class': 'd' })]: 'build/install/demo/lib/dep-1.0.jar',
      [join(tmp, 'fixtures', 'start')]: 'build/install/demo/bin/demo',
    });
    writeFileSync(join(tmp, 'fixtures', 'start'), '#!/bin/sh\nCLASSPATH=$APP_HOME/lib/demo.jar:$APP_HOME/lib/dep-1.0.jar\nset -- \\\n        "-Dorg.gradle.appname=$APP_BASE_NAME" \\\n        -classpath "$CLASSPATH" \\\n        example.Main \\\n        "$@"\n');
    const dir = project({ 'build.gradle': "plugins {\n  id 'application'\n}\napplication {\n  mainClass = 'example.Main'\n}\ndependencies { implementation 'g:dep:1.0' }\n" });
    const ctx = ctxFor(dir, 'release', env);
    const r = await javaPack.build(ctx, new RootfsBuilder(join(tmp, 'stage')));
    expect(readFileSync(log, 'utf8').split('\n')[0]).toMatch(/^--no-daemon --console=plain --no-build-cache --gradle-user-home=\S+ -Dorg\.gradle\.java\.installations\.auto-download=false clean installDist$/);
    expect(ctx.logs.some((l) => l.startsWith(`gradle: ${join(tmp, 'bin', 'gradle')} (gradle on PATH; the project has no ./gradlew), Groovy DSL, task installDist`))).toBe(true);
    expect(r.run.command).toEqual(['/opt/java/bin/java', '-cp', '/app/demo.jar:/app/dep-1.0.jar', 'example.Main']);
    expect(r.artifacts.map((a) => a.path)).toEqual(['/app/demo.jar', '/app/dep-1.0.jar', '/opt/java']);
  });

  it('multi-project: the task path of unik.yaml\'s module; several runnable projects without it are ambiguous; dynamic versions refused', async () => {
    const env = linkingToolchain();
    const appJar = fixtureJar('a.jar', { 'META-INF/MANIFEST.MF': MANIFEST('example.App'), 'a/A.class': 'a' });
    const toolJar = fixtureJar('t.jar', { 'META-INF/MANIFEST.MF': MANIFEST('example.Tool'), 't/T.class': 't' });
    const log = fakeGradle(join(tmp, 'bin', 'gradle'), { [appJar]: 'app/build/libs/app.jar', [toolJar]: 'tools/cli/build/libs/cli.jar' });
    const withMain = "plugins { id 'java' }\njar { manifest { attributes 'Main-Class': 'x' } }\n";
    const dir = project({ 'settings.gradle': "include 'app', 'tools:cli'\n", 'build.gradle': '', 'app/build.gradle': withMain, 'tools/cli/build.gradle': withMain });
    const e = await errorOf(javaPack.build(ctxFor(dir, 'release', env), new RootfsBuilder(join(tmp, 'stage'))));
    expect(e.code).toBe('E_ENTRY_AMBIGUOUS');
    expect(e.message).toContain('the Gradle build produced 2 runnable jars: app (app/build/libs/app.jar, Main-Class example.App); tools/cli (');
    expect(e.hint).toContain('module: app');
    expect(readFileSync(log, 'utf8').split('\n')[0]).toMatch(/ clean jar$/);

    const ctx = { ...ctxFor(dir, 'release', env), config: { run: { env: {} }, module: 'tools/cli' } };
    const r = await javaPack.build(ctx, new RootfsBuilder(join(tmp, 'stage2')));
    expect(r.run.command).toEqual(['/opt/java/bin/java', '-jar', '/app/cli.jar']);
    expect(readFileSync(log, 'utf8').split('\n')[2]).toMatch(/ :tools:cli:clean :tools:cli:jar$/);

    writeFileSync(join(dir, 'app', 'build.gradle'), `${withMain}dependencies { implementation 'g:a:2.+' }\n`);
    const e2 = await errorOf(javaPack.build(ctxFor(dir, 'release', env), new RootfsBuilder(join(tmp, 'stage3'))));
    expect(e2.code).toBe('E_LOCK_REQUIRED');
    expect(e2.message).toContain('app/build.gradle: g:a uses a dynamic version (2.+)');
    writeFileSync(join(dir, 'gradle.lockfile'), 'g:a:2.1=runtimeClasspath\n'); // Gradle dependency locking pins it
    expect((await javaPack.build(ctx, new RootfsBuilder(join(tmp, 'stage4')))).run.command).toEqual(['/opt/java/bin/java', '-jar', '/app/cli.jar']);
  });

  it('a wrapper that cannot run (no distribution reachable) is a missing toolchain; no Java plugin says what was read', async () => {
    const env = linkingToolchain();
    const dir = project({ 'build.gradle.kts': 'plugins { application }\n' });
    script(join(dir, 'gradlew'), 'echo "Exception in thread main java.net.UnknownHostException: services.example" >&2; exit 1');
    const e = await errorOf(javaPack.build(ctxFor(dir, 'release', env), new RootfsBuilder(join(tmp, 'stage'))));
    expect(e.code).toBe('E_TOOLCHAIN_MISSING');
    expect(e.message).toMatch(/\.\/gradlew \(the project's wrapper\) does not run \(--version: exit 1\): .*UnknownHostException/);

    const none = project({ 'build.gradle': "plugins { id 'base' }\n", gradlew: '' }, 'none');
    const e2 = await errorOf(javaPack.build(ctxFor(none, 'release', env), new RootfsBuilder(join(tmp, 'stage2'))));
    expect(e2.code).toBe('E_NO_PACK');
    expect(e2.message).toContain('read .: build.gradle');
  });
});
