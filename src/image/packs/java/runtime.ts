import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../../errors.js';
import { run, which } from '../../../util/exec.js';
import { isElfFile } from '../../elf.js';
import type { BuildContext } from '../../pack.js';
import { compileFailed } from '../common.js';
import { jlinkArgs, jvmOptions, type Jdk } from './plan.js';

export interface JavaRuntime {
  /** host directory of the linked runtime (bin/java, lib/modules, lib/server/libjvm.so, …) */
  dir: string;
  modules: string[];
  cds: boolean;
  stripped: boolean;
  reused: boolean;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out;
}

export function treeBytes(dir: string): number {
  return filesUnder(dir).reduce((n, f) => n + statSync(f).size, 0);
}

/**
 * A jlinked runtime with exactly `modules`, kept in DIR/.unikctl/cache/jlink keyed by the JDK build, the modules
 * and the options, so an unchanged app does not re-link (jlink's own output is reproducible). After jlink:
 * release strips the symbol tables of the runtime's native libraries (libjvm.so alone carries ~4 MB), then the
 * default class data sharing archive (lib/server/classes.jsa) is dumped with the runtime's own flags: it maps
 * the pre-parsed JDK classes instead of loading them, ~1-2 s less JVM start-up under TCG. The dump runs at a
 * path of fixed length, with a fixed environment and address randomization off; Java 19+ then writes the same
 * bytes every time, Java 17 still does not (its dump is racy), which the runtime cache papers over.
 */
export async function linkRuntime(ctx: BuildContext, jdk: Jdk, modules: string[], opts: { cds: boolean }): Promise<JavaRuntime> {
  const options = jvmOptions(ctx.mode);
  const strip = ctx.mode === 'release' ? which('strip', ctx.env) : null;
  const setarch = which('setarch', ctx.env);
  const libjvm = join(jdk.home, 'lib', 'server', 'libjvm.so');
  const jvmStamp = existsSync(libjvm) ? `${statSync(libjvm).size}:${statSync(libjvm).mtimeMs}` : 'none';
  const args = jlinkArgs({ mode: ctx.mode, modules, output: 'OUT', feature: jdk.feature, jvmOptions: options });
  const key = createHash('sha256').update(JSON.stringify({ v: 1, home: jdk.home, version: jdk.version, jvmStamp, args, strip: Boolean(strip), setarch: Boolean(setarch), cds: opts.cds })).digest('hex').slice(0, 16);
  const root = join(ctx.cacheDir, 'jlink');
  const dir = join(root, `${ctx.mode}-${key}`);
  const meta = `${dir}.json`; // written last: its presence marks a complete runtime
  if (existsSync(meta) && existsSync(join(dir, 'bin', 'java'))) {
    ctx.log(`reusing the linked runtime (${modules.join(',')}) from .unikctl/cache/jlink`);
    return { dir, modules, cds: existsSync(join(dir, 'lib', 'server', 'classes.jsa')), stripped: Boolean(strip), reused: true };
  }

  mkdirSync(root, { recursive: true });
  // Linked and dumped at a path of fixed length (/tmp/unikctl-jlink-XXXXXX/rt): the CDS archive depends on the
  // length of the JVM's path and environment (they shift the initial stack and the C heap), so both are fixed.
  const work = mkdtempSync(join(existsSync('/tmp') ? '/tmp' : tmpdir(), 'unikctl-jlink-'));
  const out = join(work, 'rt');
  const tmp = join(root, `tmp-${process.pid}-${Date.now()}`);
  try {
    const linkArgs = jlinkArgs({ mode: ctx.mode, modules, output: out, feature: jdk.feature, jvmOptions: options });
    ctx.log(`jlink ${linkArgs.map((a) => (a === out ? '<runtime>' : a)).join(' ')}`);
    const r = await run([jdk.jlink, ...linkArgs], { env: { ...ctx.env, JAVA_HOME: jdk.home } });
    if (r.code !== 0) {
      const text = `${r.stdout}\n${r.stderr}`;
      if (/module-path|jmods|Module java\.base not found/i.test(text)) {
        throw new UserError('E_TOOLCHAIN_MISSING', `jlink of the JDK at ${jdk.home} cannot link a runtime: ${text.trim().split('\n').slice(-3).join(' ')}`, {
          hint: 'install the JDK\'s jmods (Debian/Ubuntu: apt-get install openjdk-17-jmods), or use a JDK whose jlink can link from its run-time image',
        });
      }
      throw compileFailed('jlink', r);
    }

    let stripped = false;
    if (strip) {
      for (const f of filesUnder(out).filter((p) => isElfFile(p))) {
        chmodSync(f, statSync(f).mode | 0o200);
        const s = await run([strip, '--strip-unneeded', f], { env: ctx.env });
        if (s.code !== 0) throw compileFailed(`strip ${f}`, s);
      }
      stripped = true;
    } else if (ctx.mode === 'release') {
      ctx.log('strip (binutils) is not on PATH: the runtime keeps its native symbol tables');
    }

    let cds = false;
    if (opts.cds) {
      const java = join(out, 'bin', 'java');
      // a fixed small heap: compressed oops (the guest's mode) whatever the host's memory, and the same archive
      const dump = [java, '-Xmx128m', '-Xshare:dump'];
      const dumpArgv = setarch ? [setarch, process.arch === 'arm64' ? 'aarch64' : 'x86_64', '-R', ...dump] : dump;
      ctx.log('java -Xshare:dump (class data sharing archive for faster start-up)');
      const d = await run(dumpArgv, { cwd: '/', env: { LANG: 'C' } });
      const jsa = join(out, 'lib', 'server', 'classes.jsa');
      cds = d.code === 0 && existsSync(jsa);
      if (!cds) {
        ctx.warn(`the class data sharing archive could not be created (exit ${d.code ?? d.signal}); the JVM will start without it`);
        rmSync(jsa, { force: true });
      } else if (jdk.feature < 19) {
        ctx.log(`note: Java ${jdk.feature}'s CDS dump is not byte-for-byte reproducible; rebuilds reuse the runtime cached in .unikctl/cache/jlink (set the pom property unikctl.cds=false for images reproducible from a clean cache)`);
      }
    }
    // keep one runtime per mode: older links of this project are dead weight
    for (const old of readdirSync(root)) {
      if (old.startsWith(`${ctx.mode}-`)) rmSync(join(root, old), { recursive: true, force: true });
    }
    cpSync(out, tmp, { recursive: true, verbatimSymlinks: true });
    renameSync(tmp, dir);
    writeFileSync(meta, `${JSON.stringify({ jdk: jdk.home, version: jdk.version, modules, args: linkArgs.filter((a) => a !== out), stripped, cds }, null, 2)}\n`);
    return { dir, modules, cds, stripped, reused: false };
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  }
}
