/**
 * The image's SBOM: a CycloneDX 1.5 JSON document (validated against the official schema by
 * test/e2e/supply-chain.test.ts). Components: the kernel (version, config hash), the guest init, the language
 * runtime, every dependency the lock inputs resolve (lockdeps.ts) and every file of the root filesystem with its
 * digest, read back from the erofs image itself (what boots, not what the build meant to put there).
 * Deterministic: no timestamp, a serial number derived from the manifest digest (reproducible images, BLD-8).
 */
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { run, which } from '../util/exec.js';
import type { ImageManifest } from './image.js';
import type { LockedDependency } from './lockdeps.js';

export const SBOM_FILE = 'sbom.cdx.json';

export interface RootfsFile { path: string; sha256: string; size: number; }

/** Every regular file of an erofs image with its sha256, by extracting it into a scratch directory. */
export async function erofsFiles(erofsFile: string, scratchParent: string): Promise<RootfsFile[]> {
  if (!which('fsck.erofs')) throw new UserError('E_TOOL_MISSING', 'fsck.erofs is not installed (needed to list the image files for the SBOM)', { hint: 'apt-get install erofs-utils (or run make setup)' });
  const dir = mkdtempSync(join(scratchParent, 'sbom-'));
  try {
    const out = join(dir, 'root');
    const r = await run(['fsck.erofs', `--extract=${out}`, '--no-preserve', erofsFile]);
    if (r.code !== 0) throw new UserError('E_INTERNAL', `fsck.erofs --extract failed: ${r.stderr.trim() || r.stdout.trim()}`);
    const files: RootfsFile[] = [];
    const walk = (d: string, guest: string): void => {
      for (const e of readdirSync(d).sort()) {
        const p = join(d, e);
        const st = lstatSync(p);
        if (st.isDirectory()) walk(p, `${guest}${e}/`);
        else if (st.isFile()) files.push({ path: `${guest}${e}`, sha256: createHash('sha256').update(readFileSync(p)).digest('hex'), size: st.size });
      }
    };
    walk(out, '/');
    return files;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The toolchain entry that names the image's language runtime, in the order the packs record them. */
const RUNTIMES: Array<{ key: string; name: string; purl?: (v: string) => string }> = [
  { key: 'node', name: 'node' },
  { key: 'python', name: 'cpython' },
  { key: 'java', name: 'java' },
  { key: 'dotnet', name: 'dotnet' },
  { key: 'go', name: 'go' },
  { key: 'rustc', name: 'rust' },
];

export interface SbomInput {
  manifest: ImageManifest;
  manifestSha256: string;
  kernelVersion: string;
  toolchain: Record<string, string>;
  dependencies: LockedDependency[];
  files: RootfsFile[];
  unikctlVersion: string;
}

type Component = Record<string, unknown>;

function uuidFrom(hex: string): string {
  const h = hex.slice(0, 32).split('');
  h[12] = '5'; // name-based (RFC 4122 version 5 layout; the digest is sha256, not sha1)
  h[16] = ((parseInt(h[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  const s = h.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20, 32)}`;
}

export function makeSbom(i: SbomInput): Record<string, unknown> {
  const m = i.manifest;
  const init = i.files.find((f) => f.path === '/init');
  const runtime = RUNTIMES.find((r) => i.toolchain[r.key]);
  const components: Component[] = [
    {
      type: 'operating-system', 'bom-ref': 'kernel', name: 'linux', version: i.kernelVersion,
      description: `unikctl guest kernel (${m.kernel.variant}), ${m.kernel.encoding === 'br' ? 'brotli' : m.kernel.encoding}-compressed PVH vmlinux`,
      hashes: [{ alg: 'SHA-256', content: m.kernel.sha256 }],
      properties: [
        { name: 'unikctl:kernel:configHash', value: m.kernel.configHash },
        { name: 'unikctl:kernel:variant', value: m.kernel.variant },
        { name: 'unikctl:kernel:rawSha256', value: m.kernel.rawSha256 },
      ],
    },
    {
      type: 'application', 'bom-ref': 'init', name: 'unik-init', version: i.unikctlVersion, description: 'unikctl guest init (/init)',
      ...(init ? { hashes: [{ alg: 'SHA-256', content: init.sha256 }] } : {}),
    },
  ];
  if (runtime) {
    const version = i.toolchain[runtime.key] ?? '';
    components.push({ type: 'platform', 'bom-ref': 'runtime', name: runtime.name, version, description: `language runtime / toolchain of the ${m.pack} pack` });
  }
  const refs = new Set<string>();
  for (const d of i.dependencies) {
    if (refs.has(d.purl)) continue;
    refs.add(d.purl);
    components.push({
      type: 'library', 'bom-ref': d.purl, name: d.name, version: d.version, purl: d.purl,
      ...(d.hashes.length > 0 ? { hashes: d.hashes } : {}),
      properties: [{ name: 'unikctl:lockfile', value: d.source }, ...(d.properties ?? [])],
    });
  }
  for (const f of i.files) {
    components.push({ type: 'file', 'bom-ref': `file:${f.path}`, name: f.path, hashes: [{ alg: 'SHA-256', content: f.sha256 }], properties: [{ name: 'unikctl:file:size', value: String(f.size) }] });
  }
  return {
    $schema: 'http://cyclonedx.org/schema/bom-1.5.schema.json',
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: `urn:uuid:${uuidFrom(i.manifestSha256)}`,
    version: 1,
    metadata: {
      tools: { components: [{ type: 'application', name: 'unikctl', version: i.unikctlVersion }] },
      component: {
        type: 'application', 'bom-ref': 'image', name: m.name,
        properties: [
          { name: 'unikctl:pack', value: m.pack },
          { name: 'unikctl:mode', value: m.mode },
          { name: 'unikctl:manifest:sha256', value: i.manifestSha256 },
          { name: 'unikctl:rootfs:sha256', value: m.rootfs.sha256 },
        ],
      },
    },
    components,
    dependencies: [{ ref: 'image', dependsOn: ['kernel', 'init', ...(runtime ? ['runtime'] : []), ...refs] }],
  };
}
