import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Header } from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Client } from '../engine/client.js';
import { homeLayout } from '../paths.js';
import { ArtifactStore } from '../store/artifacts.js';
import type { QueuedOperation, OperationJournal } from './operation-journal.js';
import type { Placement, PlacementStore } from './node-store.js';
import type { Queue } from './queue.js';
import { ControlPlane } from './service.js';
import { TenantScope } from './tenants.js';

/** A one-file tar archive whose content makes each artifact distinct. */
function tarOf(text: string): Buffer {
  const body = Buffer.from(text);
  const h = new Header({ path: 'f', mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), type: 'File', size: body.length });
  h.encode();
  return Buffer.concat([h.block as Buffer, body, Buffer.alloc(512 - body.length), Buffer.alloc(1024)]);
}

describe('ControlPlane artifact deletion and garbage collection (finding 9)', () => {
  let dir: string;
  let artifacts: ArtifactStore;
  let pending: QueuedOperation[];
  let placements: Placement[];
  let cp: ControlPlane;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'unik-cp-art-'));
    artifacts = new ArtifactStore({ dir: join(dir, 'artifacts'), maxUploadBytes: 1 << 20, maxExtractedBytes: 1 << 20, maxEntries: 10 });
    pending = [];
    placements = [];
    const journal = { pendingDeploys: async () => pending } as unknown as OperationJournal;
    const store = { listPlacements: async () => placements } as unknown as PlacementStore;
    cp = new ControlPlane({ journal, queue: {} as Queue, node: {} as Client, fleet: null, host: null, nodeLayout: homeLayout({ UNIKCTL_HOME: join(dir, 'home') }), artifacts, maxAttempts: 1, placements: store });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const put = async (text: string): Promise<string> => (await artifacts.put(Readable.from([tarOf(text)]))).id;
  const code = async (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (e: { code: string }) => e.code);

  it('refuses to delete an artifact a queued/running deploy or a placement uses; deletes it once they are gone', async () => {
    const byJob = await put('job');
    const byPlacement = await put('placement');
    pending = [{ id: 'op_1', target: 'web', state: 'running', request: { target: join(dir, 'artifacts', byJob, 'root') } } as unknown as QueuedOperation];
    placements = [{ deployment: 'db', node: 'n1', cpus: 1, memoryMiB: 64, placedAt: 1, request: { source: { artifact: byPlacement, kind: 'project' } } }];
    expect(await code(cp.deleteArtifact(byJob, TenantScope.GLOBAL))).toBe('E_ARTIFACT_IN_USE');
    expect(await code(cp.deleteArtifact(byPlacement, TenantScope.GLOBAL))).toBe('E_ARTIFACT_IN_USE');
    expect(artifacts.get(byJob)).not.toBeNull();
    pending = [];
    placements = [];
    expect(await code(cp.deleteArtifact(byJob, TenantScope.GLOBAL))).toBe('ok');
    expect(artifacts.get(byJob)).toBeNull();
    expect(await code(cp.deleteArtifact(byJob, TenantScope.GLOBAL))).toBe('E_UNKNOWN_ARTIFACT');
  });

  it('collectArtifacts removes old unreferenced artifacts and keeps referenced ones', async () => {
    const used = await put('used');
    const old = await put('old');
    placements = [{ deployment: 'db', node: 'n1', cpus: 1, memoryMiB: 64, placedAt: 1, request: { source: { artifact: used, kind: 'project' } } }];
    await new Promise((r) => setTimeout(r, 30));
    expect(await cp.collectArtifacts(10)).toEqual([old]);
    expect(artifacts.get(used)).not.toBeNull();
  });
});
