import type { Command } from 'commander';
import { buildProject } from '../../image/build.js';
import { homeLayout } from '../../paths.js';
import type { Output } from '../output.js';
import { formatBytes } from '../../util/size.js';
import { formatElapsed } from '../../util/duration.js';

export function registerBuild(program: Command, out: () => Output): void {
  program
    .command('build')
    .description('build the boot artifact (kernel + read-only root filesystem + manifest) for a project directory')
    .argument('[dir]', 'project directory', '.')
    .option('--debug', 'debug build: symbols kept, debug kernel, kernel console in logs')
    .option('--rootfs <dir>', 'a directory merged into the image root (never a Dockerfile)')
    .option('-t, --tag <tag>', 'tag recorded in the local package store', 'latest')
    .option('--sign-key <pem>', 'sign the image with this Ed25519 private key (default: $UNIKCTL_SIGNING_KEY; none: unsigned)')
    .addHelpText('after', '\nExamples:\n  unikctl build examples/go-http\n  unikctl build --debug --json .')
    .action(async (dir: string, opts: { debug?: boolean; rootfs?: string; tag: string; signKey?: string }) => {
      const o = out();
      const r = await buildProject({
        dir, mode: opts.debug ? 'debug' : 'release', layout: homeLayout(), tag: opts.tag,
        ...(opts.rootfs ? { rootfsDir: opts.rootfs } : {}),
        ...(opts.signKey ? { signKey: opts.signKey } : {}),
        progress: {
          step: (m) => o.progress(`==> ${m}`),
          line: (l) => o.progress(o.paint(`    ${l}`, 'dim')),
          warn: (m) => o.progress(`${o.paint('warning', 'yellow')}: ${m}`),
        },
      });
      if (o.json) {
        o.jsonData({ name: r.name, ref: r.ref, pack: r.pack, mode: r.mode, imageDir: r.imageDir, packageDir: r.packageDir, metadata: r.metadataFile, durationMs: r.durationMs, manifest: r.manifest, signedBy: r.signedBy });
        return;
      }
      const m = r.manifest;
      o.data([
        `built ${r.ref} (${r.pack} pack, ${r.mode}) in ${formatElapsed(r.durationMs)}`,
        `  image     ${r.imageDir}`,
        `  kernel    ${formatBytes(m.kernel.size).padEnd(10)} sha256:${m.kernel.sha256.slice(0, 16)}…`,
        `  rootfs    ${formatBytes(m.rootfs.size).padEnd(10)} sha256:${m.rootfs.sha256.slice(0, 16)}…`,
        `  total     ${formatBytes(m.size)}`,
        `  command   ${m.run.command.join(' ')}`,
        `  metadata  ${r.metadataFile}`,
        `  signed    ${r.signedBy ?? 'no (no --sign-key / UNIKCTL_SIGNING_KEY)'}`,
        `deploy it:  unikctl deploy ${r.ref}${m.run.ports[0] ? ` -p ${m.run.ports[0]}:${m.run.ports[0]}` : ''}`,
      ].join('\n'));
    });
}
