import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packBundle } from '../../src/engine/bundle.js';
import { ADMIN_TOKEN, TestServer } from './cp-helpers.js';

/**
 * Finding 9 (upload amplification, artifact deletion and garbage collection) and finding 13 (a package manifest
 * naming files outside the package) through the real API.
 */
const TTL_MS = 2500;

const manifest = (rootfsFile: string): string => JSON.stringify({
  schema: 'unikctl.image/v1', name: 'pkg', pack: 'binary', mode: 'release',
  kernel: { file: 'vmlinux.gz', encoding: 'gzip', sha256: '0'.repeat(64), size: 12, rawSha256: '0'.repeat(64), rawSize: 12, variant: 'release', configHash: 'x' },
  rootfs: { file: rootfsFile, sha256: '0'.repeat(64), size: 12, format: 'erofs' },
  run: { command: ['/app/x'], env: {}, workdir: '/app', memoryMiB: 64, ports: [] }, size: 24,
});

describe('artifacts: amplification bound, delete, garbage collection', () => {
  // one worker and slow fake jobs: a deploy stays queued/running while the test looks at its artifact
  const server = new TestServer({ runner: 'fake', workers: 1, extra: ['--fake-work-ms', '60000', '--artifact-ttl-ms', String(TTL_MS)] });
  const scratch = mkdtempSync(join(tmpdir(), 'unikctld-art-e2e-'));

  const upload = async (files: Record<string, string>): Promise<{ status: number; json: Record<string, unknown> }> => {
    const dir = mkdtempSync(join(scratch, 'src-'));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const bundle = await packBundle(dir, { exclude: [] });
    try {
      return await post(readFileSync(bundle.file));
    } finally {
      bundle.cleanup();
    }
  };
  const post = async (body: Buffer): Promise<{ status: number; json: Record<string, unknown> }> => {
    const r = await fetch(`${server.url}/v1/artifacts`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/gzip' }, body: new Uint8Array(body) });
    return { status: r.status, json: (await r.json()) as Record<string, unknown> };
  };
  const stored = (): string[] => {
    const dir = join(server.data, 'artifacts');
    return existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith('art_')).sort() : [];
  };
  const temps = (): string[] => {
    const tmp = join(server.data, 'artifacts', '.tmp');
    return existsSync(tmp) ? readdirSync(tmp) : [];
  };

  beforeAll(async () => server.start());
  afterAll(async () => {
    await server.stop();
    server.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('a small gzip bomb is refused with 413 E_UPLOAD_TOO_LARGE and leaves nothing behind', async () => {
    const before = stored();
    // 20 MiB of zeros in one tar entry: ~20 KiB compressed, far within the absolute limit, 1000× its size
    const h = new Header({ path: 'zeros', mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), type: 'File', size: 20 << 20 });
    h.encode();
    const header = h.block as Buffer;
    const bomb = gzipSync(Buffer.concat([header, Buffer.alloc(20 << 20), Buffer.alloc(1024)]));
    expect(bomb.length).toBeLessThan(64 << 10);
    const r = await post(bomb);
    expect([r.status, r.json.code]).toEqual([413, 'E_UPLOAD_TOO_LARGE']);
    expect(stored()).toEqual(before);
    expect(temps()).toEqual([]);
  });

  it('DELETE /v1/artifacts/:id removes an artifact; an unknown id is 404 E_UNKNOWN_ARTIFACT', async () => {
    const up = await upload({ 'a.txt': 'delete me\n' });
    expect(up.status).toBe(201);
    const id = up.json.id as string;
    const del = await server.api(`/v1/artifacts/${id}`, { method: 'DELETE' });
    expect(del.status).toBe(204);
    expect(stored()).not.toContain(id);
    expect((await server.api(`/v1/artifacts/${id}`)).status).toBe(404);
    const again = await server.api(`/v1/artifacts/${id}`, { method: 'DELETE' });
    expect([again.status, ((await again.json()) as { code: string }).code]).toEqual([404, 'E_UNKNOWN_ARTIFACT']);
    const bad = await server.api('/v1/artifacts/..%2F..%2Fetc', { method: 'DELETE' });
    expect(bad.status).toBe(400);
  });

  it('an artifact a queued/running deploy uses: DELETE is 409 E_ARTIFACT_IN_USE; GC keeps it and removes old unused ones', async () => {
    const pkg = await upload({ 'manifest.json': manifest('rootfs.erofs'), 'vmlinux.gz': 'not a kernel', 'rootfs.erofs': 'not a rootfs' });
    expect(pkg.status).toBe(201);
    const used = pkg.json.id as string;
    const dep = await server.api('/v1/deployments', { json: { source: { artifact: used, kind: 'package' }, name: 'uses-art' } });
    expect(dep.status, await dep.clone().text()).toBe(202);
    const del = await server.api(`/v1/artifacts/${used}`, { method: 'DELETE' });
    const err = (await del.json()) as { code: string; message: string };
    expect([del.status, err.code]).toEqual([409, 'E_ARTIFACT_IN_USE']);
    expect(err.message).toContain('uses-art');
    expect(stored()).toContain(used);

    const unused = (await upload({ 'b.txt': 'collect me\n' })).json.id as string;
    expect(stored()).toContain(unused);
    // older than the TTL, plus one sweep interval (TTL/10, at least 1 s)
    const deadline = Date.now() + TTL_MS + 8000;
    while (stored().includes(unused) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(stored()).not.toContain(unused);
    expect(stored()).toContain(used); // older than the TTL too, but the running deploy needs it
  });

  it('a package whose manifest names a file outside it is refused with 400 E_PACKAGE_INVALID (finding 13)', async () => {
    const evil = await upload({ 'manifest.json': manifest('../../../../../../../../etc/hostname'), 'vmlinux.gz': 'not a kernel' });
    expect(evil.status).toBe(201);
    const dep = await server.api('/v1/deployments', { json: { source: { artifact: evil.json.id, kind: 'package' }, name: 'evil' } });
    expect([dep.status, ((await dep.json()) as { code: string }).code]).toEqual([400, 'E_PACKAGE_INVALID']);
  });
});

