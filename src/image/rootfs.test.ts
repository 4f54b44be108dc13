import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { RootfsBuilder } from './rootfs.js';

let tmp: string;
let staging: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'unik-rootfs-'));
  staging = join(tmp, 'stage');
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const mode = (p: string): number => statSync(p).mode & 0o777;

function dockerfileCode(path: string): string | undefined {
  try {
    RootfsBuilder.assertNotDockerfile(path);
  } catch (e) {
    return e instanceof UserError ? e.code : `not a UserError: ${String(e)}`;
  }
  return undefined;
}

describe('RootfsBuilder.assertNotDockerfile', () => {
  it.each(['Dockerfile', 'app.dockerfile', 'Containerfile', 'Dockerfile.prod', 'dockerfile', '/some/dir/Dockerfile', 'x/Build.Dockerfile'])(
    'rejects %s by name (even when missing) with E_DOCKERFILE_ROOTFS',
    (name) => {
      expect(dockerfileCode(join(tmp, name))).toBe('E_DOCKERFILE_ROOTFS');
    },
  );

  it('rejects a real file whose name contains "dockerfile"', () => {
    const f = join(tmp, 'my-dockerfile');
    writeFileSync(f, 'FROM scratch\n');
    expect(dockerfileCode(f)).toBe('E_DOCKERFILE_ROOTFS');
  });

  it('says how to fix it', () => {
    try {
      RootfsBuilder.assertNotDockerfile(join(tmp, 'Dockerfile'));
      expect.unreachable();
    } catch (e) {
      expect((e as UserError).message).toContain('Dockerfile');
      expect((e as UserError).hint).toContain('directory');
    }
  });

  it('accepts a directory', () => {
    const d = join(tmp, 'rootfs');
    mkdirSync(d);
    expect(dockerfileCode(d)).toBeUndefined();
  });

  it('accepts a directory whose name merely contains "dockerfile"', () => {
    const d = join(tmp, 'my-dockerfile-assets');
    mkdirSync(d);
    expect(dockerfileCode(d)).toBeUndefined();
  });
});

describe('RootfsBuilder', () => {
  it('creates the mount points and the base /etc files', () => {
    new RootfsBuilder(staging);
    for (const d of ['proc', 'sys', 'dev', 'tmp']) expect(statSync(join(staging, d)).isDirectory()).toBe(true);
    expect(readFileSync(join(staging, 'etc/resolv.conf'), 'utf8')).toBe('nameserver 10.0.2.3\n');
    expect(readFileSync(join(staging, 'etc/hosts'), 'utf8')).toContain('127.0.0.1 localhost');
    expect(readFileSync(join(staging, 'etc/passwd'), 'utf8')).toMatch(/^root:x:0:0:/);
    expect(readFileSync(join(staging, 'etc/group'), 'utf8')).toMatch(/^root:x:0:/);
    expect(readFileSync(join(staging, 'etc/nsswitch.conf'), 'utf8')).toContain('hosts: files dns');
    for (const f of ['hosts', 'resolv.conf', 'passwd', 'group', 'nsswitch.conf']) expect(mode(join(staging, 'etc', f))).toBe(0o644);
  });

  it('contains no shell or package manager', () => {
    new RootfsBuilder(staging);
    for (const p of ['bin/sh', 'bin/bash', 'usr/bin/apt', 'sbin/apk']) expect(existsSync(join(staging, p))).toBe(false);
  });

  it('addFile gives executables 0755 and other files 0644', () => {
    const b = new RootfsBuilder(staging);
    const exe = join(tmp, 'exe');
    const exeOwnerOnly = join(tmp, 'exe700');
    const data = join(tmp, 'data');
    const worldWritable = join(tmp, 'ww');
    for (const f of [exe, exeOwnerOnly, data, worldWritable]) writeFileSync(f, f);
    chmodSync(exe, 0o775);
    chmodSync(exeOwnerOnly, 0o700);
    chmodSync(data, 0o600);
    chmodSync(worldWritable, 0o666);
    b.addFile(exe, '/app/exe');
    b.addFile(exeOwnerOnly, '/app/exe700');
    b.addFile(data, '/app/data');
    b.addFile(worldWritable, '/app/sub/ww');
    expect(mode(join(staging, 'app/exe'))).toBe(0o755);
    expect(mode(join(staging, 'app/exe700'))).toBe(0o755);
    expect(mode(join(staging, 'app/data'))).toBe(0o644);
    expect(mode(join(staging, 'app/sub/ww'))).toBe(0o644);
    expect(readFileSync(join(staging, 'app/data'), 'utf8')).toBe(data);
  });

  it('addFile follows a symlink and copies its target', () => {
    const b = new RootfsBuilder(staging);
    writeFileSync(join(tmp, 'real'), 'content');
    symlinkSync(join(tmp, 'real'), join(tmp, 'link'));
    b.addFile(join(tmp, 'link'), '/app/file');
    expect(lstatSync(join(staging, 'app/file')).isFile()).toBe(true);
    expect(readFileSync(join(staging, 'app/file'), 'utf8')).toBe('content');
  });

  it('addBytes writes with the given mode', () => {
    const b = new RootfsBuilder(staging);
    b.addBytes('/init', 'x', 0o755);
    expect(mode(join(staging, 'init'))).toBe(0o755);
  });

  it('hostPath maps guest paths into the staging directory', () => {
    const b = new RootfsBuilder(staging);
    expect(b.hostPath('/app/x')).toBe(join(staging, 'app/x'));
    expect(b.hostPath('/app/./y/../x')).toBe(join(staging, 'app/x'));
  });

  it.each(['../x', 'app/x', 'a/../../x', '', '.'])('hostPath rejects the relative path %j', (p) => {
    const b = new RootfsBuilder(staging);
    expect(() => b.hostPath(p)).toThrow(/bad guest path/);
  });

  it('hostPath never leaves the staging directory for /../x (clamped to /x)', () => {
    const b = new RootfsBuilder(staging);
    expect(b.hostPath('/../x')).toBe(join(staging, 'x'));
    expect(b.hostPath('/../../etc/passwd')).toBe(join(staging, 'etc/passwd'));
  });

  it('addTree keeps relative in-tree links and copies links that leave the tree', () => {
    const src = join(tmp, 'app');
    mkdirSync(join(src, 'lib'), { recursive: true });
    writeFileSync(join(src, 'lib', 'real.so'), 'so');
    symlinkSync('real.so', join(src, 'lib', 'link.so'));
    writeFileSync(join(tmp, 'outside.txt'), 'outside');
    symlinkSync(join(tmp, 'outside.txt'), join(src, 'abs-link'));
    const b = new RootfsBuilder(staging);
    b.addTree(src, '/app');
    expect(readlinkSync(join(staging, 'app/lib/link.so'))).toBe('real.so');
    expect(lstatSync(join(staging, 'app/abs-link')).isFile()).toBe(true);
    expect(readFileSync(join(staging, 'app/abs-link'), 'utf8')).toBe('outside');
  });

  it('addTree copies a relative link that leaves the tree into a sibling with the same prefix', () => {
    const src = join(tmp, 'app');
    mkdirSync(src, { recursive: true });
    mkdirSync(join(tmp, 'app2'));
    writeFileSync(join(tmp, 'app2', 'f'), 'sibling');
    symlinkSync('../app2/f', join(src, 'f'));
    const b = new RootfsBuilder(staging);
    b.addTree(src, '/app');
    expect(lstatSync(join(staging, 'app/f')).isFile()).toBe(true);
  });
});
