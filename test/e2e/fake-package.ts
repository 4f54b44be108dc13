// A package the node store resolves without any VM work behind it: for `unikctld serve --runner fake`
// (the control-plane conformance test and the API benchmark, bench/api.ts, which imports it from here).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes local/<name>:latest into the data directory's node store (readImage without verify only checks that the files exist). */
export function fakePackage(dataDir: string, name: string): void {
  const dir = join(dataDir, 'node', 'packages', 'local', name, 'latest');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'vmlinux.gz'), 'not a kernel\n');
  writeFileSync(join(dir, 'rootfs.erofs'), 'not a filesystem\n');
  const zero = '0'.repeat(64);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({
    schema: 'unikctl.image/v1', name, pack: 'binary', mode: 'release',
    kernel: { file: 'vmlinux.gz', encoding: 'gzip', sha256: zero, size: 13, rawSha256: zero, rawSize: 13, variant: 'release', configHash: '0' },
    rootfs: { file: 'rootfs.erofs', sha256: zero, size: 17, format: 'erofs' },
    run: { command: [`/app/${name}`], env: {}, workdir: '/app', memoryMiB: 64, ports: [] },
    size: 30,
  }));
}
