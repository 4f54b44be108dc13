import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../../errors.js';
import type { BuildContext, BuildMode } from '../pack.js';
import { RootfsBuilder } from '../rootfs.js';
import { javaPack } from './java.js';
import { parseManifest, readJarManifest } from './java/jar.js';
import { chooseModules, findJdk, jdepsArgs, jlinkArgs, jvmOptions, mavenArgs, parseModuleDeps, pickRunnableJar } from './java/plan.js';
import { looseVersion, mavenModelProblems, pomLockProblems, readPom } from './java/pom.js';

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
