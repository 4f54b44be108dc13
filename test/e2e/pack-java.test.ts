import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, httpGet, ROOT, TestHome } from './helpers.js';

const JAVA_HTTP = join(ROOT, 'examples', 'java-http');
const MiB = 1024 * 1024;

interface BuildJson { ref: string; manifest: { size: number; rootfs: { sha256: string; size: number }; kernel: { size: number; variant: string }; run: { command: string[]; memoryMiB: number } } }

/** The java pack on a real VM: mvn package → jar + jlinked runtime → erofs image → HTTP through -p. */
describe('java pack: examples/java-http on a real VM', () => {
  const home = new TestHome();
  const scratch = mkdtempSync(join(tmpdir(), 'unikctl-java-'));
  let port = 0;
  let built: BuildJson;

  beforeAll(async () => {
    port = await freePort();
  });
  afterAll(async () => {
    await home.cleanup();
    rmSync(scratch, { recursive: true, force: true });
    expect(home.qemuProcesses()).toEqual([]);
  });

  it('builds a release image with a jlinked runtime, reports its size (< 60 MiB) and rebuilds to the same digest', async () => {
    rmSync(join(JAVA_HTTP, '.unikctl', 'cache', 'jlink'), { recursive: true, force: true }); // link afresh (the Maven repository stays cached)
    const r = await home.cli(['build', JAVA_HTTP, '--json']);
    expect(r.code, r.stderr).toBe(0);
    built = JSON.parse(r.stdout) as BuildJson;
    expect(built.ref).toBe('local/java-http:latest');
    expect(built.manifest.kernel.variant).toBe('release');
    expect(built.manifest.run.command).toEqual(['/opt/java/bin/java', '-jar', '/app/java-http.jar']);
    expect(built.manifest.run.memoryMiB).toBe(256);
    expect(built.manifest.size).toBe(built.manifest.kernel.size + built.manifest.rootfs.size);
    expect(built.manifest.size).toBeLessThan(60 * MiB);
    expect(r.stderr).toContain('mvn ');
    expect(r.stderr).toContain('jdeps: the app needs java.base,jdk.httpserver');
    expect(r.stderr).toMatch(/--strip-debug --compress=(2|zip-6)/);

    const meta = JSON.parse(readFileSync(join(JAVA_HTTP, '.unikctl', 'native', 'pack-metadata.json'), 'utf8')) as {
      pack: string; mode: string; toolchain: Record<string, string>; inputs: Record<string, string>; artifacts: Array<{ path: string; size: number }>;
    };
    expect(meta.pack).toBe('java');
    expect(meta.mode).toBe('release');
    expect(meta.toolchain.java).toMatch(/\d+\.\d+/);
    expect(meta.toolchain.maven).toMatch(/^3\./);
    expect(meta.toolchain.jlinkModules).toBe('java.base,jdk.httpserver');
    expect(meta.inputs['pom.xml']).toMatch(/^sha256:/);
    expect(meta.inputs.sources).toMatch(/^sha256:/);
    expect(meta.artifacts.map((a) => a.path)).toEqual(['/app/java-http.jar', '/opt/java']);
    // the Maven repository is the project's cache (BLD-5)
    expect(existsSync(join(JAVA_HTTP, '.unikctl', 'cache', 'm2', 'org', 'apache', 'maven', 'plugins', 'maven-jar-plugin'))).toBe(true);

    // the human output reports the size; the same inputs give the same rootfs (the linked runtime is reused)
    const again = await home.cli(['build', JAVA_HTTP]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('reusing the linked runtime');
    expect(again.stdout).toMatch(/total\s+\d+(\.\d+)? MiB/);
    const m = JSON.parse(readFileSync(join(JAVA_HTTP, '.unikctl', 'image', 'manifest.json'), 'utf8')) as BuildJson['manifest'];
    expect(m.rootfs.sha256).toBe(built.manifest.rootfs.sha256);
  });

  it('the image holds the jar, a runtime with only the needed modules and its library closure: no JDK tools, no shell', () => {
    const root = join(scratch, 'root');
    execFileSync('fsck.erofs', [`--extract=${root}`, join(JAVA_HTTP, '.unikctl', 'image', 'rootfs.erofs')]);
    const files: string[] = [];
    const walk = (d: string, rel: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const r = `${rel}/${e.name}`;
        if (e.isDirectory()) walk(join(d, e.name), r);
        else files.push(r);
      }
    };
    walk(root, '');
    expect(files).toEqual(expect.arrayContaining(['/init', '/app/java-http.jar', '/opt/java/bin/java', '/opt/java/lib/modules', '/opt/java/lib/server/libjvm.so', '/opt/java/lib/server/classes.jsa', '/opt/java/lib/libjli.so']));
    expect(files.filter((f) => f.startsWith('/app/'))).toEqual(['/app/java-http.jar']);
    expect(files.some((f) => /\/(javac|jlink|jdeps|jar|sh|bash|busybox)$/.test(f) || f.endsWith('.jmod') || f.includes('/include/'))).toBe(false);
    expect(readFileSync(join(root, 'opt', 'java', 'release'), 'utf8')).toContain('MODULES="java.base jdk.httpserver"');
    // the JVM's native code finds its C/C++ runtime in the image
    expect(files.filter((f) => /lib(c|stdc\+\+|m|gcc_s|z)\.so/.test(f)).length).toBeGreaterThanOrEqual(4);
    // release: native symbol tables stripped
    expect(execFileSync('readelf', ['-S', '-W', join(root, 'opt', 'java', 'lib', 'server', 'libjvm.so')], { encoding: 'utf8' })).not.toContain('.symtab');
  });

  it('deploys with -p, serves HTTP, logs the request, reports running; the CDS archive maps in the guest', async () => {
    // -Xshare:on makes the JVM refuse to start unless the class data sharing archive maps
    const r = await home.cli(['deploy', 'local/java-http', '-p', `${port}:8080`, '--name', 'jweb', '-e', 'GREETING=hi from the java e2e', '-e', 'JAVA_TOOL_OPTIONS=-Xshare:on', '--json']);
    expect(r.code, r.stderr).toBe(0);
    await home.waitState('jweb', ['running']);
    const body = await httpGet(`http://127.0.0.1:${port}/e2e-path`, 90_000);
    expect(body).toContain('hi from the java e2e');
    expect(body).toContain('host jweb');
    expect(body).toContain('path /e2e-path');

    const s = await home.status('jweb');
    expect(s.deployments[0]?.state).toBe('running');
    expect(s.deployments[0]?.ports).toEqual([`${port}->8080/tcp`]);

    let logs = '';
    for (let i = 0; i < 50 && !logs.includes('path=/e2e-path'); i++) {
      logs = (await home.cli(['logs', 'jweb'])).stdout;
      await new Promise((res) => setTimeout(res, 200));
    }
    expect(logs).toContain('java-http listening on 0.0.0.0:8080');
    expect(logs).toContain('request method=GET path=/e2e-path remote=10.0.2.2');
    expect(logs).not.toMatch(/Error|Exception/);
  });

  it('destroy stops the VM and frees the port', async () => {
    const r = await home.cli(['destroy', 'jweb', '--wait', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject([{ name: 'jweb', state: 'gone' }]);
    expect(home.qemuProcesses()).toEqual([]);
    expect((await home.status()).deployments).toEqual([]);
    await expect(httpGet(`http://127.0.0.1:${port}/`, 1000)).rejects.toThrow();
  });

  it('a compile error shows javac\'s message and leaves the previous image intact', async () => {
    const proj = join(scratch, 'broken');
    cpSync(JAVA_HTTP, proj, { recursive: true, filter: (src) => !src.includes(`${JAVA_HTTP}/target`) && !src.includes(`${JAVA_HTTP}/.unikctl/image`) });
    const ok = await home.cli(['build', proj, '--json']); // reuses the copied Maven repository and runtime caches
    expect(ok.code, ok.stderr).toBe(0);
    const image = readFileSync(join(proj, '.unikctl', 'image', 'manifest.json'), 'utf8');
    const main = join(proj, 'src', 'main', 'java', 'example', 'Main.java');
    writeFileSync(main, readFileSync(main, 'utf8').replace('int port = ', 'int port = = '));
    const r = await home.cli(['build', proj]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('E_BUILD_FAILED');
    expect(r.stderr).toMatch(/Main\.java:\[\d+,\d+\] illegal start of expression/);
    expect(readFileSync(join(proj, '.unikctl', 'image', 'manifest.json'), 'utf8')).toBe(image);
  });
});
