import { join } from 'node:path';
import { extractJar } from './jar.js';

/** A Spring Boot executable jar: the launcher runs Start-Class with BOOT-INF/classes and BOOT-INF/lib/*.jar. */
export interface SpringBootJar {
  startClass: string;
  /** the classes directory inside the jar, e.g. BOOT-INF/classes/ */
  classes: string;
  /** the nested-jar directory inside the jar, e.g. BOOT-INF/lib/ */
  lib: string;
  version: string | null;
}

/**
 * The Spring Boot layout from a jar's manifest (spring-boot-maven-plugin repackage, Gradle bootJar): its
 * Main-Class is one of Boot's launchers (org.springframework.boot.loader.launch.JarLauncher since 3.2,
 * org.springframework.boot.loader.JarLauncher before) and Start-Class the application. null for any other jar.
 */
export function springBootLayout(manifest: Record<string, string>): SpringBootJar | null {
  const main = manifest['Main-Class'] ?? '';
  const start = manifest['Start-Class'];
  if (!start || !main.startsWith('org.springframework.boot.loader.')) return null;
  const dir = (v: string | undefined, fallback: string): string => {
    const d = (v ?? fallback).replace(/^\/+/, '');
    return d.endsWith('/') ? d : `${d}/`;
  };
  return {
    startClass: start,
    classes: dir(manifest['Spring-Boot-Classes'], 'BOOT-INF/classes/'),
    lib: dir(manifest['Spring-Boot-Lib'], 'BOOT-INF/lib/'),
    version: manifest['Spring-Boot-Version'] ?? null,
  };
}

/**
 * jdeps cannot read jars nested in a jar: the application's classes, the nested library jars and Boot's own
 * launcher classes are unpacked into `dest`, and the returned paths are what jdeps analyses (the classes and
 * launcher directories, then each library jar). The nested jars are stored uncompressed, so this is a copy.
 */
export function unpackSpringBoot(jar: string, boot: SpringBootJar, dest: string): { inputs: string[]; libs: number } {
  const classes = join(dest, 'classes');
  const loader = join(dest, 'loader');
  const lib = join(dest, 'lib');
  const libs: string[] = [];
  const written = extractJar(jar, dest, (name) => {
    if (name.startsWith(boot.classes)) return name.endsWith('.class') ? `classes/${name.slice(boot.classes.length)}` : null;
    if (name.startsWith(boot.lib)) {
      const base = name.slice(boot.lib.length);
      if (!name.endsWith('.jar') || base.includes('/')) return null;
      libs.push(join(lib, base));
      return `lib/${base}`;
    }
    // the launcher: classes outside BOOT-INF/ and META-INF/ (module-info and versioned classes stay out)
    if (name.startsWith('BOOT-INF/') || name.startsWith('META-INF/') || !name.endsWith('.class')) return null;
    return `loader/${name}`;
  });
  const has = (d: string): boolean => written.some((w) => w.startsWith(`${d}/`));
  return { inputs: [...(has(classes) ? [classes] : []), ...(has(loader) ? [loader] : []), ...libs.sort()], libs: libs.length };
}

/**
 * When jdeps cannot analyse a Spring Boot app (a library compiled for a newer Java than the JDK's jdeps reads, a
 * broken multi-release jar), the runtime gets this set instead: what jdeps reports for spring-boot-starter-web
 * 3.5 (Tomcat, Jackson, Logback, Spring's JMX/JNDI/java.beans/java.sql support), plus the modules Boot and its
 * starters load by reflection or through services (JMX platform beans, TLS curves, zip file systems). It is a
 * superset for the common starters, not a proof: unikctl.addModules in pom.xml adds more.
 */
export const SPRING_BOOT_FALLBACK_MODULES = [
  'java.base', 'java.compiler', 'java.desktop', 'java.instrument', 'java.logging', 'java.management', 'java.naming',
  'java.net.http', 'java.prefs', 'java.rmi', 'java.scripting', 'java.security.jgss', 'java.sql', 'java.xml',
  'jdk.crypto.ec', 'jdk.jfr', 'jdk.management', 'jdk.unsupported', 'jdk.zipfs',
];

/** A Spring Boot app's JVM (Tomcat, a Spring context, Jackson) wants more than a plain jar's 256 MiB. */
export const SPRING_BOOT_MEMORY_MIB = 512;
