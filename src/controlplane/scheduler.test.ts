import { describe, expect, it } from 'vitest';
import { FILTER_CATEGORIES, place, type NodeInfo, type PlacementRequest, type PlacementResult, type Policy } from './scheduler.js';

const NOW = 1_700_000_000_000;

function node(name: string, o: Partial<Omit<NodeInfo, 'capacity' | 'allocated'>> & { cpus?: number; mem?: number; usedCpus?: number; usedMem?: number; vms?: number } = {}): NodeInfo {
  return {
    name,
    status: o.status ?? 'ready',
    cordoned: o.cordoned ?? false,
    labels: o.labels ?? {},
    capacity: { cpus: o.cpus ?? 4, memoryMiB: o.mem ?? 4096 },
    allocated: { cpus: o.usedCpus ?? 0, memoryMiB: o.usedMem ?? 0, vms: o.vms ?? 0 },
    lastHeartbeatAt: o.lastHeartbeatAt ?? NOW,
  };
}

function req(o: Partial<PlacementRequest> = {}): PlacementRequest {
  return { name: o.name ?? 'app', cpus: o.cpus ?? 1, memoryMiB: o.memoryMiB ?? 256, labels: o.labels ?? {}, ...(o.avoid ? { avoid: o.avoid } : {}) };
}

/** place() at the fixed clock NOW. */
function placeAt(nodes: NodeInfo[], r: PlacementRequest, opts: { policy?: Policy; staleAfterMs?: number } = {}): PlacementResult {
  return place(nodes, r, { ...opts, now: NOW });
}

/** What the cluster records after a placement (the placement adds to the node's allocations and VM count). */
function commit(nodes: NodeInfo[], name: string, r: { cpus: number; memoryMiB: number }): void {
  const n = nodes.find((x) => x.name === name);
  if (!n) throw new Error(`unknown node ${name}`);
  n.allocated = { cpus: n.allocated.cpus + r.cpus, memoryMiB: n.allocated.memoryMiB + r.memoryMiB, vms: n.allocated.vms + 1 };
}

function nodeOf(r: PlacementResult): string {
  if (!r.ok) throw new Error(`expected a placement, got: ${r.reason}`);
  return r.node;
}

describe('place: filters', () => {
  it('empty cluster: no placement, all categories zero', () => {
    const r = placeAt([], req());
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toBe('no node fits: no nodes registered');
    expect(Object.keys(r.filtered)).toEqual([...FILTER_CATEGORIES]);
    expect(Object.values(r.filtered).every((v) => v === 0)).toBe(true);
  });

  it('no node fits: the reason counts every category, each node once under its first failing filter', () => {
    const nodes = [
      node('d1', { status: 'down' }),
      node('d2', { status: 'down', cordoned: true }), // down wins over cordoned
      node('c1', { cordoned: true }),
      node('s1', { lastHeartbeatAt: NOW - 60_000 }),
      node('a1', { status: 'down' }), // avoided wins over down
      // Required labels are checked in key order (gpu, then zone); a node counts under the first it lacks.
      node('l1', { labels: { zone: 'us' } }), // lacks gpu=true
      node('l2', { labels: {} }), // lacks gpu=true
      node('l3', { labels: { zone: 'us', gpu: 'true' } }), // lacks zone=eu
      node('l4', { labels: { zone: 'eu', gpu: 'false' } }), // lacks gpu=true
      node('cpu1', { labels: { zone: 'eu', gpu: 'true' }, cpus: 4, usedCpus: 3.5 }),
      node('m1', { labels: { zone: 'eu', gpu: 'true' }, mem: 1024, usedMem: 768 }),
      node('m2', { labels: { zone: 'eu', gpu: 'true' }, mem: 1024, usedMem: 1000 }),
    ];
    const r = placeAt(nodes, req({ cpus: 1, memoryMiB: 512, labels: { zone: 'eu', gpu: 'true' }, avoid: ['a1'] }));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.filtered).toEqual({ avoided: 1, down: 2, stale: 1, cordoned: 1, dedicated: 0, label: 4, cpu: 1, memory: 2 });
    expect(r.reason).toBe('no node fits: 1 avoided, 2 down, 1 stale (no heartbeat within 30000 ms), 1 cordoned, '
      + '3 lack label gpu=true, 1 lacks label zone=eu, 1 lacks cpu (needs 1 CPU, max free 0.5), '
      + '2 lack memory (needs 512 MiB, max free 256 MiB)');
  });

  it('skips cordoned nodes', () => {
    const nodes = [node('a', { cordoned: true }), node('b', { usedCpus: 3 })];
    expect(nodeOf(placeAt(nodes, req()))).toBe('b');
    const r = placeAt([node('a', { cordoned: true })], req());
    expect(r.ok ? null : r.reason).toBe('no node fits: 1 cordoned');
  });

  it('skips down nodes', () => {
    const nodes = [node('a', { status: 'down' }), node('b', { usedCpus: 3 })];
    expect(nodeOf(placeAt(nodes, req()))).toBe('b');
    const r = placeAt([node('a', { status: 'down' }), node('b', { status: 'down' })], req());
    expect(r.ok ? null : r.reason).toBe('no node fits: 2 down');
  });

  it('requires every label with exactly the same value; extra node labels are fine', () => {
    const nodes = [
      node('a', { labels: { zone: 'EU' } }), // case matters
      node('b', { labels: { zone: 'eu' } }), // lacks arch
      node('c', { labels: { zone: 'eu', arch: 'arm64', disk: 'ssd' } }),
      node('d', { labels: { zone: 'eu', arch: 'amd64' } }),
    ];
    expect(nodeOf(placeAt(nodes, req({ labels: { zone: 'eu', arch: 'arm64' } })))).toBe('c');
    const r = placeAt(nodes, req({ labels: { zone: 'eu', arch: 'riscv64' } }));
    expect(r.ok ? null : r.reason).toBe('no node fits: 4 lack label arch=riscv64');
    // A label key inherited from Object.prototype is not a label.
    const p = placeAt([node('x')], req({ labels: { constructor: 'x' } }));
    expect(p.ok ? null : p.filtered.label).toBe(1);
  });

  it('treats a ready node whose heartbeat is older than staleAfterMs as stale', () => {
    const nodes = [node('old', { lastHeartbeatAt: NOW - 30_001 }), node('edge', { lastHeartbeatAt: NOW - 30_000, usedCpus: 3 })];
    expect(nodeOf(placeAt(nodes, req()))).toBe('edge'); // exactly staleAfterMs old is still fresh
    const r = placeAt([node('old', { lastHeartbeatAt: NOW - 30_001 })], req());
    expect(r.ok ? null : r.reason).toBe('no node fits: 1 stale (no heartbeat within 30000 ms)');
    expect(nodeOf(placeAt(nodes, req(), { staleAfterMs: 5_000 * 60 }))).toBe('old');
    const short = placeAt([node('a', { lastHeartbeatAt: NOW - 2_000 })], req(), { staleAfterMs: 1_000 });
    expect(short.ok ? null : short.filtered.stale).toBe(1);
  });

  it('skips the nodes in the avoid list', () => {
    const nodes = [node('a'), node('b', { usedCpus: 2 }), node('c', { usedCpus: 3 })];
    expect(nodeOf(placeAt(nodes, req()))).toBe('a');
    expect(nodeOf(placeAt(nodes, req({ avoid: ['a'] })))).toBe('b');
    expect(nodeOf(placeAt(nodes, req({ avoid: ['a', 'b', 'nope'] })))).toBe('c');
    const r = placeAt(nodes, req({ avoid: ['a', 'b', 'c', 'a'] }));
    expect(r.ok ? null : r.reason).toBe('no node fits: 3 avoided');
  });

  it('places fractional CPUs and absorbs float residue', () => {
    const nodes = [node('a', { cpus: 1, mem: 1 << 20 })];
    for (const c of [0.1, 0.2, 0.4]) commit(nodes, nodeOf(placeAt(nodes, req({ cpus: c }))), { cpus: c, memoryMiB: 256 });
    // 0.1 + 0.2 + 0.4 = 0.7000000000000001 in binary floating point; 0.3 must still fit.
    expect(nodeOf(placeAt(nodes, req({ cpus: 0.3 })))).toBe('a');
    const over = placeAt(nodes, req({ cpus: 0.31 }));
    expect(over.ok ? null : over.reason).toBe('no node fits: 1 lacks cpu (needs 0.31 CPU, max free 0.3)');
    const q = [node('b', { cpus: 1 })];
    for (let i = 0; i < 4; i++) commit(q, nodeOf(placeAt(q, req({ cpus: 0.25, memoryMiB: 1 }))), { cpus: 0.25, memoryMiB: 1 });
    expect(placeAt(q, req({ cpus: 0.25, memoryMiB: 1 })).ok).toBe(false);
  });

  it('fits memory exactly equal to free memory, not one MiB more', () => {
    const nodes = [node('a', { mem: 2048, usedMem: 1536 })];
    const r = placeAt(nodes, req({ memoryMiB: 512 }));
    expect(r).toEqual({ ok: true, node: 'a', score: 0 });
    const more = placeAt(nodes, req({ memoryMiB: 513 }));
    expect(more.ok ? null : more.reason).toBe('no node fits: 1 lacks memory (needs 513 MiB, max free 512 MiB)');
    expect(placeAt([node('z', { cpus: 2, usedCpus: 1 })], req({ cpus: 1 })).ok).toBe(true);
  });

  it('rejects an invalid request without counting nodes', () => {
    for (const bad of [req({ cpus: -1 }), req({ memoryMiB: Number.NaN }), req({ cpus: Infinity })]) {
      const r = placeAt([node('a')], bad);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(/^invalid request: /);
    }
  });
});

describe('place: scoring', () => {
  it('breaks ties deterministically: fewer VMs, then name ascending, whatever the input order', () => {
    const equal = [node('c'), node('a'), node('b')];
    const perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    for (const policy of ['spread', 'binpack'] as const) {
      for (const p of perms) {
        const ns = p.map((i) => equal[i] as NodeInfo);
        expect(nodeOf(placeAt(ns, req(), { policy }))).toBe('a');
      }
      // Same free resources, but 'a' runs more VMs: 'b' wins on the VM tie-break.
      const vmsTie = [node('a', { usedCpus: 2, usedMem: 2048, vms: 4 }), node('b', { usedCpus: 2, usedMem: 2048, vms: 1 }), node('c', { usedCpus: 2, usedMem: 2048, vms: 1 })];
      expect(nodeOf(placeAt(vmsTie, req(), { policy }))).toBe('b');
    }
    // Same input → same output, repeatedly.
    const first = placeAt(equal, req());
    for (let i = 0; i < 10; i++) expect(placeAt(equal, req())).toEqual(first);
  });

  it('spread picks the node with the most headroom on its tightest resource; binpack the fullest that fits', () => {
    const nodes = [
      node('roomy-cpu', { cpus: 8, mem: 4096, usedMem: 3072 }), // after 1 CPU/256 MiB: cpu 7/8, mem 768/4096 → 0.1875
      node('balanced', { cpus: 4, mem: 4096, usedCpus: 1, usedMem: 1024 }), // cpu 2/4, mem 2816/4096 → 0.5
      node('full', { cpus: 4, mem: 4096, usedCpus: 2.5, usedMem: 512 }), // cpu 0.5/4 → 0.125
      node('too-full', { cpus: 4, usedCpus: 3.5 }),
    ];
    expect(placeAt(nodes, req())).toEqual({ ok: true, node: 'balanced', score: 0.5 });
    expect(placeAt(nodes, req(), { policy: 'binpack' })).toEqual({ ok: true, node: 'full', score: 0.875 });
  });

  it('keeps exact ties at zero headroom (float residue within the fit slack counts as full)', () => {
    // 'b' fits exactly (0.3 of 0.3 CPU); 'a' fits only thanks to the 1e-9 slack:
    // 1 - (0.1 + 0.2 + 0.4) - 0.3 = -1.1e-16. Both are left with 0 free CPU, so both score 0 (spread) or
    // 1 (binpack) and the name decides — even though 'b' is seen first.
    const used = 0.1 + 0.2 + 0.4;
    expect(1 - used - 0.3).toBeLessThan(0);
    for (const policy of ['spread', 'binpack'] as const) {
      expect(placeAt([node('b', { cpus: 0.3 }), node('a', { cpus: 1, usedCpus: used })], req({ cpus: 0.3 }), { policy }))
        .toEqual({ ok: true, node: 'a', score: policy === 'spread' ? 0 : 1 });
    }
  });

  it('spread distributes 6 placements over 3 equal nodes 2-2-2 (committing in between)', () => {
    const nodes = [node('n1'), node('n2'), node('n3')];
    const counts: Record<string, number> = {};
    const order: string[] = [];
    for (let i = 0; i < 6; i++) {
      const n = nodeOf(placeAt(nodes, req({ name: `app-${i}` })));
      order.push(n);
      counts[n] = (counts[n] ?? 0) + 1;
      commit(nodes, n, { cpus: 1, memoryMiB: 256 });
    }
    expect(counts).toEqual({ n1: 2, n2: 2, n3: 2 });
    expect(order).toEqual(['n1', 'n2', 'n3', 'n1', 'n2', 'n3']);
    expect(nodes.map((n) => n.allocated)).toEqual([1, 2, 3].map(() => ({ cpus: 2, memoryMiB: 512, vms: 2 })));
  });

  it('binpack fills one node before using the next', () => {
    const nodes = [node('n3'), node('n1'), node('n2')];
    const order: string[] = [];
    for (let i = 0; i < 9; i++) {
      const n = nodeOf(placeAt(nodes, req(), { policy: 'binpack' }));
      order.push(n);
      commit(nodes, n, { cpus: 1, memoryMiB: 256 });
    }
    expect(order).toEqual(['n1', 'n1', 'n1', 'n1', 'n2', 'n2', 'n2', 'n2', 'n3']);
  });

  it('does not mutate its input', () => {
    const nodes = [node('a'), node('b', { cordoned: true })];
    const copy = structuredClone(nodes);
    place(nodes, req({ avoid: ['a'] }), { now: NOW });
    place(nodes, req({ labels: { zone: 'mars' } }), { now: NOW });
    expect(nodes).toEqual(copy);
  });
});

describe('tenants (issue 12)', () => {
  const tenantReq = (tenant: string, o: Partial<PlacementRequest> = {}): PlacementRequest => ({ ...req(o), tenant });

  it('a node dedicated to a tenant takes only that tenant; a request without a tenant never lands there', () => {
    const nodes = [node('a', { labels: { dedicated: 'acme' } }), node('b', { labels: { dedicated: 'beta' } })];
    expect(nodeOf(placeAt(nodes, tenantReq('acme')))).toBe('a');
    expect(nodeOf(placeAt(nodes, tenantReq('beta')))).toBe('b');
    const other = placeAt(nodes, tenantReq('gamma'));
    expect(other.ok).toBe(false);
    if (!other.ok) {
      expect(other.filtered.dedicated).toBe(2);
      expect(other.reason).toBe('no node fits: 2 dedicated to another tenant'); // counts only: no tenant named
    }
    expect(placeAt(nodes, req()).ok).toBe(false);
  });

  it("spreads one tenant's VMs across nodes before packing them, even under binpack", () => {
    const nodes = [node('n1'), node('n2'), node('n3')];
    const order: string[] = [];
    for (let i = 0; i < 6; i++) {
      const n = nodeOf(placeAt(nodes, tenantReq('acme'), { policy: 'binpack' }));
      order.push(n);
      commit(nodes, n, { cpus: 1, memoryMiB: 256 });
      const placed = nodes.find((x) => x.name === n);
      if (placed) placed.tenantVms = { ...placed.tenantVms, acme: (placed.tenantVms?.acme ?? 0) + 1 };
    }
    expect(order).toEqual(['n1', 'n2', 'n3', 'n1', 'n2', 'n3']);
    // another tenant's VMs do not count against acme's spread: binpack packs it where acme already is
    expect(nodeOf(placeAt(nodes, tenantReq('beta'), { policy: 'binpack' }))).toBe('n1');
  });
});
