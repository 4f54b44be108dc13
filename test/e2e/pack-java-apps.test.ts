/**
 * Real-world Java apps on a real VM: a Spring Boot 3 web app (spring-boot-maven-plugin's nested fat jar, started
 * by Boot's JarLauncher) and a multi-module Maven build (a library + an app that shades it). Each: build (Maven
 * with the Maven repository every java e2e test shares), image content, deploy with -p, an HTTP answer from a
 * framework route, the request in the logs, destroy. The Gradle example runs only where a Gradle can run (the
 * wrapper's distribution and the Gradle plugins come from hosts this machine cannot reach): otherwise it skips
 * and says why; src/image/packs/java.test.ts covers the Gradle invocation with a stand-in.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { which } from '../../src/util/exec.js';
import { deployServeDestroy, exampleCopy, listImage, ROOT } from './helpers.js';

const MiB = 1024 * 1024;
/**
 * One Maven repository for every java e2e test: pack-java.test.ts builds examples/java-http in place, whose
 * .unikctl/cache/m2 this links the copies' cache to, so CI downloads Maven's plugins once.
 */
const SHARED_M2 = join(ROOT, 'examples', 'java-http', '.unikctl', 'cache', 'm2');

interface Example {
  dir: string;
  /** the bound for this image */
  maxBytes: number;
  buildLines: RegExp[];
  command: string[];
  memoryMiB: number;
  present: string[];
  absent: RegExp;
  answer: (body: string, name: string) => void;
  logLine: RegExp;
  timeoutMs: number;
}

function exampleOnVm(ex: Example): void {
  // the committed example only: no Maven output or cache from a local run
  const { home, app } = exampleCopy(ex.dir, new RegExp(`/examples/${ex.dir}/(.*/)?(\\.unikctl|target|build|\\.gradle)(/|$)`));
  const name = ex.dir.replace(/^java-/, '').slice(0, 20);

  it('builds a release image: the runnable jar, a runtime of the modules jdeps found, a CDS archive', async () => {
    mkdirSync(SHARED_M2, { recursive: true });
    mkdirSync(join(app, '.unikctl', 'cache'), { recursive: true });
    symlinkSync(SHARED_M2, join(app, '.unikctl', 'cache', 'm2'));
    const t0 = Date.now();
    const r = await home.cli(['build', app, '--json']);
    expect(r.code, r.stderr).toBe(0);
    for (const line of ex.buildLines) expect(r.stderr).toMatch(line);
    console.log(`${ex.dir}: built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    const out = JSON.parse(r.stdout) as { manifest: { size: number; run: { command: string[]; memoryMiB: number } } };
    expect(out.manifest.run.command).toEqual(ex.command);
    expect(out.manifest.run.memoryMiB).toBe(ex.memoryMiB);
    expect(out.manifest.size).toBeLessThan(ex.maxBytes);
    console.log(`${ex.dir}: image ${(out.manifest.size / MiB).toFixed(1)} MiB`);

    const files = listImage(join(app, '.unikctl', 'image', 'rootfs.erofs'));
    expect(files).toEqual(expect.arrayContaining(['/opt/java/bin/java', '/opt/java/lib/modules', '/opt/java/lib/server/libjvm.so', '/opt/java/lib/server/classes.jsa', ...ex.present]));
    expect(files.filter((f) => ex.absent.test(f) || /\/(javac|jlink|jdeps|sh|bash)$/.test(f) || f.endsWith('.jmod'))).toEqual([]);
  }, 900_000);

  it('deploys with -p, answers on a framework route, logs the request, and destroys', async () => {
    const { body, logs } = await deployServeDestroy(home, { dir: ex.dir, name, route: '/hello/e2e', logLine: ex.logLine, timeoutMs: ex.timeoutMs });
    ex.answer(body, name);
    expect(logs).not.toMatch(/Exception|OutOfMemoryError/);
  }, ex.timeoutMs + 120_000);
}

describe('java pack: examples/java-spring-boot (Spring Boot 3.5, nested fat jar) on a real VM', () => {
  exampleOnVm({
    dir: 'java-spring-boot',
    maxBytes: 80 * 1000 * 1000, // the target for Spring Boot
    buildLines: [
      /runnable jar: target\/java-spring-boot\.jar \(Main-Class org\.springframework\.boot\.loader\.launch\.JarLauncher\)/,
      /Spring Boot 3\.5\.7 jar: Start-Class example\.hello\.Application, \d+ nested jars in BOOT-INF\/lib\/; jdeps reads them unpacked/,
      // Tomcat (JNDI, JMX), Spring (java.beans), Jackson (java.sql types): seen inside the nested jars
      /jdeps: the app needs java\.base,.*java\.desktop,.*java\.management,java\.naming,.*java\.sql,.*jdk\.unsupported;/,
    ],
    command: ['/opt/java/bin/java', '-jar', '/app/java-spring-boot.jar'],
    memoryMiB: 512,
    present: ['/app/java-spring-boot.jar'],
    absent: /\/app\/.*\.jar\.original$|\/BOOT-INF\//,
    answer: (body, name) => expect(JSON.parse(body)).toMatchObject({ hello: 'e2e', framework: 'spring-boot', host: name }),
    logLine: /example\.hello\.HelloController\s+: request method=GET path=\/hello\/e2e status=200/,
    // a Spring context under TCG: minutes on a loaded 2-core host
    timeoutMs: 600_000,
  });
});

describe('java pack: examples/java-maven-multimodule (parent pom, lib + app modules) on a real VM', () => {
  exampleOnVm({
    dir: 'java-maven-multimodule',
    maxBytes: 60 * MiB, // java-http's bound: the same runtime
    buildLines: [/module app: the only module that built a runnable jar/, /runnable jar: app\/target\/multimodule-app\.jar \(Main-Class example\.app\.Main\)/, /jdeps: the app needs java\.base,jdk\.httpserver;/],
    command: ['/opt/java/bin/java', '-jar', '/app/multimodule-app.jar'],
    memoryMiB: 256,
    present: ['/app/multimodule-app.jar'],
    absent: /greeting-lib.*\.jar$/,
    answer: (body, name) => expect(JSON.parse(body)).toEqual({ hello: 'e2e', module: 'greeting-lib', host: name }),
    logLine: /request method=GET path=\/hello\/e2e status=200/,
    timeoutMs: 180_000,
  });
});

/** A Gradle that runs here: `gradle --version` on PATH answers (the example has no wrapper). */
function runnableGradle(): string | null {
  const gradle = which('gradle');
  if (!gradle) return 'gradle is not on PATH and examples/java-gradle-kotlin has no wrapper';
  try {
    execFileSync(gradle, ['--version', '--no-daemon'], { stdio: 'ignore', timeout: 120_000 });
    return null;
  } catch (e) {
    return `${gradle} --version fails: ${(e as Error).message.split('\n')[0] ?? ''}`;
  }
}

const gradleMissing = runnableGradle();
if (gradleMissing) console.log(`skipping the Gradle example: ${gradleMissing} (install Gradle 8 to run it; the Gradle path is unit-tested with a stand-in in src/image/packs/java.test.ts)`);

describe.skipIf(gradleMissing !== null)('java pack: examples/java-gradle-kotlin (Gradle, Kotlin DSL, application plugin) on a real VM', () => {
  exampleOnVm({
    dir: 'java-gradle-kotlin',
    maxBytes: 60 * MiB,
    buildLines: [/gradle: .*gradle on PATH.*, Kotlin DSL, task installDist/, /--no-daemon --console=plain --no-build-cache .* clean installDist/],
    command: ['/opt/java/bin/java', '-cp', '/app/java-gradle-kotlin.jar', 'example.Main'],
    memoryMiB: 256,
    present: ['/app/java-gradle-kotlin.jar'],
    absent: /\/bin\/java-gradle-kotlin$/,
    answer: (body) => expect(JSON.parse(body)).toEqual({ hello: 'e2e', build: 'gradle' }),
    logLine: /request method=GET path=\/hello\/e2e status=200/,
    timeoutMs: 180_000,
  });
});
