import { cpSync, rmSync } from 'node:fs';
import type { BuildProgress } from '../image/build.js';
import { loadPrivateKey } from '../image/dsse.js';
import { copyImageDir, normalizeRef, PackageStore } from '../image/package-store.js';
import type { HomeLayout } from '../paths.js';
import type { DeploymentSpec } from '../store/types.js';

/**
 * Builds what a deploy names (a project or an ELF binary; a package needs no build) into `imageDir`, a private copy:
 * the supervisor of a deployment builds its own image, the controller of a service one image per version for all
 * its replicas.
 */
export async function buildInto(o: {
  layout: HomeLayout; spec: DeploymentSpec; name: string; imageDir: string; workDir: string;
  /** where a daemon without the sandbox copies a client's project before building it */
  copyDir: string;
  progress: BuildProgress; signal: AbortSignal; env: NodeJS.ProcessEnv | undefined;
}): Promise<void> {
  const { layout, spec, name, imageDir, progress } = o;
  const src = spec.source;
  if (src.kind === 'package') throw new Error('buildInto: a package is not built');
  const mode = spec.debug ? 'debug' : 'release';
  // loaded only here: a supervisor that runs a built package never holds the packs' code (less memory per VM)
  const { buildBinaryImage, buildProject } = await import('../image/build.js');
  const remote = spec.remoteBuild;
  if (src.kind === 'project' && remote?.sandbox) {
    // code a client sent to a daemon: built as the build user in a sandbox, never in the artifact itself
    const { sandboxedBuild } = await import('../image/sandbox.js');
    const r = await sandboxedBuild({
      layout, projectDir: src.dir, mode, cacheKey: name, policy: remote.sandbox, progress, env: o.env ?? process.env,
      signal: o.signal, ...(spec.rootfsDir ? { rootfsDir: spec.rootfsDir } : {}),
      signKey: spec.signKey ? loadPrivateKey(spec.signKey) : null,
    });
    try {
      rmSync(imageDir, { recursive: true, force: true });
      copyImageDir(r.imageDir, imageDir, { private: true });
      new PackageStore(layout).put(normalizeRef(`${r.manifest.name}:latest`), r.imageDir);
    } finally {
      rmSync(r.workRoot, { recursive: true, force: true });
    }
  } else if (src.kind === 'project') {
    // a daemon without the sandbox (trusted clients) still builds a copy: a stored artifact never changes
    const copy = remote ? o.copyDir : null;
    if (copy) {
      rmSync(copy, { recursive: true, force: true });
      cpSync(src.dir, copy, { recursive: true, verbatimSymlinks: true });
    }
    try {
      const r = await buildProject({ dir: copy ?? src.dir, mode, layout, rootfsDir: spec.rootfsDir, progress, env: o.env, ...(spec.signKey ? { signKey: spec.signKey } : {}) });
      rmSync(imageDir, { recursive: true, force: true });
      copyImageDir(r.imageDir, imageDir, { private: true });
    } finally {
      if (copy) rmSync(copy, { recursive: true, force: true });
    }
  } else {
    const signKey = spec.signKey ?? ((o.env ?? process.env).UNIKCTL_SIGNING_KEY || null);
    await buildBinaryImage({ binary: src.path, outDir: imageDir, layout, mode, name, rootfsDir: spec.rootfsDir, workDir: o.workDir, signKey });
  }
}
