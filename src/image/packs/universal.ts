import { existsSync, statSync } from 'node:fs';
import { basename, posix } from 'node:path';
import { UserError } from '../../errors.js';
import { run } from '../../util/exec.js';
import { treeDigest } from '../inputs.js';
import type { Pack } from '../pack.js';
import { compileFailed } from './common.js';
import { insideProject } from '../project-path.js';

/** unik.yaml with build.command + artifact.path: any language, any build tool on the host. */
export const universalPack: Pack = {
  name: 'unik.yaml',
  markers: 'unik.yaml with build.command and artifact.path',
  detect: (_dir, config) => Boolean(config?.build && config.artifact),
  async build(ctx, rootfs) {
    const cfg = ctx.config;
    if (!cfg?.build || !cfg.artifact) throw new UserError('E_UNIKYAML_INVALID', 'unik.yaml needs build.command and artifact.path');
    const { command } = cfg.build;
    // build.command is the project's own build script (like an npm script): a string goes through sh -c.
    const argv = typeof command === 'string' ? ['/bin/sh', '-c', command] : command;
    ctx.log(`$ ${typeof command === 'string' ? command : command.join(' ')}`);
    const env = { ...ctx.env, ...cfg.build.env, UNIKCTL_BUILD_MODE: ctx.mode };
    let r;
    try {
      r = await run(argv, { cwd: ctx.dir, env, onLine: ctx.log });
    } catch (e) {
      throw new UserError('E_TOOLCHAIN_MISSING', `cannot run the build command ${argv[0]}: ${(e as Error).message}`, { hint: 'install the tool or fix build.command in unik.yaml' });
    }
    if (r.code !== 0) throw compileFailed('the unik.yaml build.command', r);
    const artifact = insideProject(ctx.dir, cfg.artifact.path, 'artifact.path');
    if (!existsSync(artifact)) {
      throw new UserError('E_ARTIFACT_MISSING', `the build finished but ${cfg.artifact.path} does not exist`, { hint: 'make artifact.path in unik.yaml name what build.command produces' });
    }
    const st = statSync(artifact);
    let command0: string;
    let guestPaths: string[];
    if (st.isDirectory()) {
      rootfs.addTree(artifact, '/app');
      guestPaths = rootfs.elfFilesUnder('/app');
      command0 = '';
    } else {
      const guest = `/app/${basename(artifact)}`;
      rootfs.addFile(artifact, guest);
      guestPaths = [guest];
      command0 = guest;
    }
    const libs = rootfs.addLibraryClosure(guestPaths);
    if (libs > 0) ctx.log(`added ${libs} shared libraries (the ELF closure)`);
    if (!cfg.run.command && !command0) {
      throw new UserError('E_UNIKYAML_INVALID', 'artifact.path is a directory: say what to start with run.command', { hint: 'e.g. run: { command: [/app/bin/server] }' });
    }
    return {
      run: { command: cfg.run.command ?? [command0], workdir: '/app', memoryMiB: 64 },
      toolchain: {},
      inputs: { sources: treeDigest(ctx.dir) },
      artifacts: [{ path: cfg.artifact.path, size: st.isDirectory() ? 0 : st.size }],
      programs: Object.fromEntries(guestPaths.map((g) => [posix.basename(g), [g]])),
    };
  },
};
