import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, httpGet, ROOT, TestHome } from './helpers.js';

/** §5: every bad input gets a stable code and changes no existing state — checked against a live VM. */
describe('bad input: clear errors, nothing disturbed', () => {
  const home = new TestHome();
  const scratch = mkdtempSync(join(tmpdir(), 'unikctl-bad-'));
  let port = 0;
  let before = '';

  const expectError = async (args: string[], code: string, exit = 1): Promise<string> => {
    const r = await home.cli(args);
    expect(r.code, `${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(exit);
    expect(r.stderr).toContain(code);
    const j = await home.cli([...args, '--json']);
    expect(j.code).toBe(exit);
    expect((JSON.parse(j.stdout) as { error: { code: string } }).error.code).toBe(code);
    return r.stderr;
  };

  beforeAll(async () => {
    port = await freePort();
    const r = await home.cli(['deploy', join(ROOT, 'examples', 'go-http'), '--name', 'keeper', '-p', `${port}:8080`]);
    expect(r.code, r.stderr).toBe(0);
    await home.waitState('keeper', ['running']);
    await httpGet(`http://127.0.0.1:${port}/`);
    before = JSON.stringify((await home.status()).deployments.map((d) => [d.name, d.state]));
  });

  afterAll(async () => {
    // nothing above disturbed the running deployment
    expect(JSON.stringify((await home.status()).deployments.map((d) => [d.name, d.state]))).toBe(before);
    expect(await httpGet(`http://127.0.0.1:${port}/still-here`)).toContain('hello');
    await home.cleanup();
    expect(home.qemuProcesses()).toEqual([]);
  });

  it('unknown command and unknown flag: usage error, exit 2, with a suggestion', async () => {
    const r = await home.cli(['deplyo']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'deplyo'");
    expect(r.stderr).toContain('Did you mean deploy?');
    const f = await home.cli(['status', '--bogus']);
    expect(f.code).toBe(2);
    expect(f.stderr).toContain("unknown option '--bogus'");
    const j = await home.cli(['deplyo', '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ error: { code: 'E_USAGE' } });
  });

  it('--help and --version work everywhere', async () => {
    for (const args of [['--help'], ['deploy', '--help'], ['logs', '--help'], ['--version']]) {
      const r = await home.cli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout.length).toBeGreaterThan(0);
    }
  });

  it('a directory with no detectable pack', async () => {
    const dir = join(scratch, 'empty');
    mkdirSync(dir);
    writeFileSync(join(dir, 'README.txt'), 'nothing to build');
    const err = await expectError(['deploy', dir], 'E_NO_PACK');
    expect(err).toContain('go.mod');
    await expectError(['build', dir], 'E_NO_PACK');
  });

  it('a broken unik.yaml', async () => {
    const dir = join(scratch, 'broken-yaml');
    mkdirSync(dir);
    writeFileSync(join(dir, 'unik.yaml'), 'build:\n  command: make\n'); // no artifact.path
    expect(await expectError(['build', dir], 'E_UNIKYAML_INVALID')).toContain('artifact.path');
    writeFileSync(join(dir, 'unik.yaml'), 'build: [unclosed\n');
    await expectError(['deploy', dir], 'E_UNIKYAML_INVALID');
  });

  it('a Dockerfile as rootfs, on the command line or in unik.yaml', async () => {
    const dir = join(scratch, 'docker');
    mkdirSync(dir);
    writeFileSync(join(dir, 'Dockerfile'), 'FROM scratch\n');
    writeFileSync(join(dir, 'hello.c'), 'int main(void){return 0;}\n');
    writeFileSync(join(dir, 'unik.yaml'), 'build:\n  command: gcc -o hello hello.c\nartifact:\n  path: hello\nrootfs: Dockerfile\n');
    await expectError(['build', dir], 'E_DOCKERFILE_ROOTFS');
    await expectError(['deploy', join(ROOT, 'examples', 'c-hello'), '--rootfs', join(dir, 'Dockerfile')], 'E_DOCKERFILE_ROOTFS');
  });

  it('an unknown app for logs, status and destroy', async () => {
    await expectError(['logs', 'nope'], 'E_UNKNOWN_APP');
    await expectError(['destroy', 'nope'], 'E_UNKNOWN_APP');
    await expectError(['status', 'nope'], 'E_UNKNOWN_APP');
    // a list with one unknown name destroys nothing
    await expectError(['destroy', 'keeper', 'nope'], 'E_UNKNOWN_APP');
  });

  it('invalid names, ports, env and references', async () => {
    await expectError(['deploy', join(ROOT, 'examples', 'go-http'), '--name', 'Bad_Name'], 'E_INVALID_NAME');
    await expectError(['deploy', join(ROOT, 'examples', 'go-http'), '-p', '99999:80'], 'E_INVALID_PORT');
    await expectError(['deploy', join(ROOT, 'examples', 'go-http'), '-e', 'NOEQUALS'], 'E_INVALID_ARGUMENT');
    const miss = await expectError(['deploy', 'no-such-package:v9'], 'E_PACKAGE_NOT_FOUND');
    expect(miss).toContain('local package store local/no-such-package:v9');
    await expectError(['deploy', join(ROOT, 'examples', 'go-http'), '--name', 'keeper'], 'E_NAME_TAKEN');
  });

  it('memory, environment and port mappings that would only fail inside QEMU are refused at admission', async () => {
    const app = join(ROOT, 'examples', 'go-http');
    const free = await freePort();
    expect(await expectError(['deploy', app, '-m', '100000G'], 'E_INVALID_ARGUMENT')).toContain("host's total memory");
    expect(await expectError(['deploy', app, '-m', 'banana'], 'E_INVALID_ARGUMENT')).toContain('not a size');
    expect(await expectError(['deploy', app, '-m', '8M'], 'E_INVALID_ARGUMENT')).toContain('minimum of 16 MiB');
    expect(await expectError(['deploy', app, '-e', `BIG=${'x'.repeat(3000)}`], 'E_INVALID_ARGUMENT')).toContain('kernel command line');
    // one host port once, whatever the address (0.0.0.0 overlaps every address)
    expect(await expectError(['deploy', app, '-p', `${free}:8080`, '-p', `127.0.0.1:${free}:8081`], 'E_INVALID_PORT')).toContain('published twice');
    // an address this host does not have is a bad mapping, not a port in use
    const addr = await expectError(['deploy', app, '-p', `1.2.3.4:${free}:8080`], 'E_INVALID_PORT');
    expect(addr).toContain('address not available on this host');
    expect(addr).not.toContain('already in use');
    // the running deployment's port on another address is still its port
    await expectError(['deploy', app, '-p', `127.0.0.1:${port}:8080`, '--name', 'clash3'], 'E_PORT_IN_USE');
    expect((await home.status()).deployments.map((d) => d.name)).toEqual(['keeper']);
  });

  it('a port already in use is reported before any VM starts', async () => {
    // taken by the running deployment
    await expectError(['deploy', join(ROOT, 'examples', 'go-http'), '-p', `${port}:8080`, '--name', 'clash'], 'E_PORT_IN_USE');
    // taken by another process on the host
    const other = await freePort();
    const srv: Server = createServer();
    await new Promise<void>((r) => srv.listen(other, '0.0.0.0', () => r()));
    try {
      await expectError(['deploy', join(ROOT, 'examples', 'go-http'), '-p', `${other}:8080`, '--name', 'clash2'], 'E_PORT_IN_USE');
    } finally {
      srv.close();
    }
    expect((await home.status()).deployments.map((d) => d.name)).toEqual(['keeper']);
  });
});
