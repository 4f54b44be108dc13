import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../errors.js';
import { run, which } from '../../util/exec.js';
import { fileDigest, treeDigest } from '../inputs.js';
import type { Pack } from '../pack.js';
import { addRuntimeFiles } from '../runtime-files.js';
import { compileFailed } from './common.js';

/** Go: a static binary (CGO off, -trimpath); release strips symbols, debug keeps them and disables optimizations. */
export const goPack: Pack = {
  name: 'go',
  markers: 'go.mod',
  detect: (dir) => existsSync(join(dir, 'go.mod')),
  async build(ctx, rootfs) {
    const go = which('go', ctx.env);
    if (!go) {
      throw new UserError('E_TOOLCHAIN_MISSING', 'the Go toolchain (go) is not on PATH', {
        hint: 'install Go from https://go.dev/dl/ (or apt-get install golang) and make sure `go version` works',
      });
    }
    const gomod = readFileSync(join(ctx.dir, 'go.mod'), 'utf8');
    const hasDeps = /^\s*require\b/m.test(gomod);
    if (hasDeps && !existsSync(join(ctx.dir, 'go.sum'))) {
      const msg = 'go.mod requires modules but there is no go.sum';
      if (ctx.mode === 'release') {
        throw new UserError('E_LOCK_REQUIRED', `${msg}: a release build needs pinned dependencies`, { hint: 'run `go mod tidy` and commit go.sum, or build with --debug' });
      }
      ctx.warn(`${msg}; a release build will refuse this (E_LOCK_REQUIRED)`);
    }
    const name = /^module\s+(\S+)/m.exec(gomod)?.[1]?.split('/').pop() ?? 'app';
    const out = join(ctx.workDir, name);
    const env: NodeJS.ProcessEnv = {
      ...ctx.env,
      CGO_ENABLED: '0', GOOS: 'linux', GOARCH: 'amd64', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly',
      GOCACHE: join(ctx.cacheDir, 'go-build'), GOMODCACHE: join(ctx.cacheDir, 'go-mod'),
    };
    const flags = ctx.mode === 'release'
      ? ['-trimpath', '-buildvcs=false', '-ldflags=-s -w -buildid=']
      : ['-trimpath', '-buildvcs=false', '-gcflags=all=-N -l', '-ldflags=-buildid='];
    ctx.log(`go build ${flags.join(' ')} -o ${name} .`);
    const r = await run([go, 'build', ...flags, '-o', out, '.'], { cwd: ctx.dir, env, onLine: ctx.log });
    if (r.code !== 0) throw compileFailed('go build', r);
    rootfs.addFile(out, `/app/${name}`);
    addRuntimeFiles(ctx, rootfs);
    const version = (await run([go, 'env', 'GOVERSION'], { env })).stdout.trim();
    return {
      run: { command: [`/app/${name}`], workdir: '/app', memoryMiB: 64 },
      toolchain: { go: version },
      inputs: {
        'go.mod': fileDigest(join(ctx.dir, 'go.mod')) ?? '',
        ...(existsSync(join(ctx.dir, 'go.sum')) ? { 'go.sum': fileDigest(join(ctx.dir, 'go.sum')) ?? '' } : {}),
        sources: treeDigest(ctx.dir, (rel) => rel.endsWith('.go') || rel === 'go.mod' || rel === 'go.sum'),
      },
      artifacts: [{ path: `/app/${name}`, size: statSync(out).size }],
      programs: { [name]: [`/app/${name}`] },
    };
  },
};
