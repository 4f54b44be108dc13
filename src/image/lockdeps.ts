/**
 * The dependencies a project's lock inputs resolve, for the image's SBOM (sbom.ts): one reader per ecosystem,
 * each reading only what the lock file itself states (name, version, and the digest when the lock has one).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

export interface LockedDependency {
  ecosystem: 'golang' | 'cargo' | 'npm' | 'pypi' | 'maven' | 'nuget';
  name: string;
  version: string;
  /** package URL (purl spec) */
  purl: string;
  /** CycloneDX hash algorithm name → hex digest */
  hashes: Array<{ alg: 'SHA-256' | 'SHA-512'; content: string }>;
  /** the lock file it came from (project-relative) */
  source: string;
  /** digests in a form CycloneDX has no algorithm for (Go's h1: dirhash) */
  properties?: Array<{ name: string; value: string }>;
}

const read = (dir: string, f: string): string | null => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : null);
const b64hex = (b64: string): string => Buffer.from(b64, 'base64').toString('hex');
const enc = (s: string): string => encodeURIComponent(s).replace(/%2F/g, '/');

/** go.sum: `module version h1:…` (the `/go.mod` lines only pin a module's go.mod). */
function goSum(dir: string): LockedDependency[] {
  const text = read(dir, 'go.sum');
  if (!text) return [];
  const out: LockedDependency[] = [];
  for (const line of text.split('\n')) {
    const [mod, version, h1] = line.trim().split(/\s+/);
    if (!mod || !version || !h1 || version.endsWith('/go.mod')) continue;
    out.push({
      ecosystem: 'golang', name: mod, version, purl: `pkg:golang/${enc(mod)}@${enc(version)}`, hashes: [], source: 'go.sum',
      properties: [{ name: 'unikctl:go:h1', value: h1 }],
    });
  }
  return out;
}

/** The `[[package]]` tables of a TOML lock file (Cargo.lock, uv.lock, poetry.lock): their top-level string keys and every sha256 named. */
function tomlPackages(text: string): Array<{ fields: Record<string, string>; sha256: string[] }> {
  const out: Array<{ fields: Record<string, string>; sha256: string[] }> = [];
  let cur: { fields: Record<string, string>; sha256: string[] } | null = null;
  for (const line of text.split('\n')) {
    if (/^\[\[package\]\]\s*$/.test(line)) {
      cur = { fields: {}, sha256: [] };
      out.push(cur);
      continue;
    }
    if (/^\[/.test(line)) {
      // a sub-table ([package.metadata], [[package.wheels]]) still belongs to the package; any other ends it
      if (!/^\[+package\./.test(line)) cur = null;
      continue;
    }
    if (!cur) continue;
    const kv = /^([A-Za-z0-9_-]+)\s*=\s*"([^"]*)"\s*$/.exec(line);
    if (kv?.[1] && kv[2] !== undefined && !(kv[1] in cur.fields)) cur.fields[kv[1]] = kv[2];
    for (const m of line.matchAll(/sha256[:=]\s*"?([0-9a-f]{64})/g)) if (m[1]) cur.sha256.push(m[1]);
  }
  return out;
}

function cargoLock(dir: string): LockedDependency[] {
  const text = read(dir, 'Cargo.lock');
  if (!text) return [];
  return tomlPackages(text).flatMap(({ fields }) => {
    const { name, version, checksum } = fields;
    // the workspace's own crates have no source (and no checksum): they are the app, not a dependency
    if (!name || !version || !fields.source) return [];
    return [{
      ecosystem: 'cargo' as const, name, version, purl: `pkg:cargo/${enc(name)}@${enc(version)}`, source: 'Cargo.lock',
      hashes: checksum && /^[0-9a-f]{64}$/.test(checksum) ? [{ alg: 'SHA-256' as const, content: checksum }] : [],
    }];
  });
}

function pythonTomlLock(dir: string, file: 'uv.lock' | 'poetry.lock'): LockedDependency[] {
  const text = read(dir, file);
  if (!text) return [];
  return tomlPackages(text).flatMap(({ fields, sha256 }) => {
    const { name, version } = fields;
    // uv.lock lists the project itself as an editable/virtual source: not a dependency
    if (!name || !version || (file === 'uv.lock' && /^\{\s*(editable|virtual)/.test(fields.source ?? ''))) return [];
    // one artifact digest stands for the release (the sdist's or the first wheel's): CycloneDX has one hash per algorithm
    return [{ ecosystem: 'pypi' as const, name, version, purl: pypiPurl(name, version), source: file, hashes: sha256[0] ? [{ alg: 'SHA-256' as const, content: sha256[0] }] : [] }];
  });
}

const pypiPurl = (name: string, version: string): string => `pkg:pypi/${enc(name.toLowerCase().replace(/[-_.]+/g, '-'))}@${enc(version)}`;

/** requirements.lock / requirements.txt: `name==version` with optional `--hash=sha256:…` (continuation lines joined). */
function requirements(dir: string): LockedDependency[] {
  const file = ['requirements.lock', 'requirements.txt'].find((f) => existsSync(join(dir, f)));
  const text = file ? read(dir, file) : null;
  if (!file || !text) return [];
  const out: LockedDependency[] = [];
  for (const req of text.replace(/\\\r?\n/g, ' ').split('\n')) {
    const m = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([^\s;#]+)/.exec(req);
    if (!m?.[1] || !m[2]) continue;
    const hash = /--hash[= ]sha256:([0-9a-f]{64})/.exec(req)?.[1];
    out.push({ ecosystem: 'pypi', name: m[1], version: m[2], purl: pypiPurl(m[1], m[2]), source: file, hashes: hash ? [{ alg: 'SHA-256', content: hash }] : [] });
  }
  return out;
}

/** package-lock.json v2/v3: `packages["node_modules/…"]` with version and an SRI integrity (sha512 mostly). */
function npmLock(dir: string): LockedDependency[] {
  const text = read(dir, 'package-lock.json');
  if (!text) return [];
  const lock = JSON.parse(text) as { packages?: Record<string, { version?: string; integrity?: string; link?: boolean }> };
  return Object.entries(lock.packages ?? {}).flatMap(([path, p]) => {
    const name = path.split('node_modules/').at(-1);
    if (!path || !name || !p.version || p.link) return [];
    return [{ ecosystem: 'npm' as const, name, version: p.version, purl: npmPurl(name, p.version), hashes: sriHashes(p.integrity), source: 'package-lock.json' }];
  });
}

const npmPurl = (name: string, version: string): string => {
  const [scope, bare] = name.startsWith('@') ? name.split('/') : [undefined, name];
  return `pkg:npm/${scope ? `${enc(scope)}/` : ''}${enc(bare ?? name)}@${enc(version)}`;
};

const sriHashes = (integrity: string | undefined): LockedDependency['hashes'] => {
  const sri = /^(sha512|sha256)-(.+)$/.exec(integrity ?? '');
  return sri?.[1] && sri[2] ? [{ alg: sri[1] === 'sha512' ? 'SHA-512' : 'SHA-256', content: b64hex(sri[2]) }] : [];
};

/** pnpm-lock.yaml (v6+): `packages: { "name@version": { resolution: { integrity } } }`. */
function pnpmLock(dir: string): LockedDependency[] {
  const text = read(dir, 'pnpm-lock.yaml');
  if (!text) return [];
  const lock = parseYaml(text) as { packages?: Record<string, { resolution?: { integrity?: string } }> } | null;
  return Object.entries(lock?.packages ?? {}).flatMap(([key, p]) => {
    const m = /^\/?(@?[^@]+)@([^(]+)/.exec(key);
    if (!m?.[1] || !m[2]) return [];
    return [{ ecosystem: 'npm' as const, name: m[1], version: m[2], purl: npmPurl(m[1], m[2]), hashes: sriHashes(p.resolution?.integrity), source: 'pnpm-lock.yaml' }];
  });
}

/** yarn.lock of Yarn 2+ (YAML): `"name@npm:range": { version, resolution, checksum }`; the checksum is of Yarn's cache archive. */
function yarnLock(dir: string): LockedDependency[] {
  const text = read(dir, 'yarn.lock');
  if (!text || !text.includes('__metadata:')) return []; // Yarn 1's own format names no digests worth a parser here
  const lock = parseYaml(text) as Record<string, { version?: string; resolution?: string; checksum?: string; linkType?: string }> | null;
  const seen = new Set<string>();
  return Object.entries(lock ?? {}).flatMap(([key, p]) => {
    const name = /^(@?[^@]+)@npm:/.exec(p.resolution ?? '')?.[1];
    if (key === '__metadata' || !name || !p.version || seen.has(`${name}@${p.version}`)) return [];
    seen.add(`${name}@${p.version}`);
    return [{
      ecosystem: 'npm' as const, name, version: p.version, purl: npmPurl(name, p.version), hashes: [], source: 'yarn.lock',
      ...(p.checksum ? { properties: [{ name: 'unikctl:yarn:checksum', value: p.checksum }] } : {}),
    }];
  });
}

/** packages.lock.json (NuGet): per target framework, each package's resolved version and contentHash (base64 sha512). */
function nugetLock(dir: string): LockedDependency[] {
  const text = read(dir, 'packages.lock.json');
  if (!text) return [];
  const lock = JSON.parse(text) as { dependencies?: Record<string, Record<string, { type?: string; resolved?: string; contentHash?: string }>> };
  const seen = new Map<string, LockedDependency>();
  for (const deps of Object.values(lock.dependencies ?? {})) {
    for (const [name, d] of Object.entries(deps)) {
      if (!d.resolved || d.type === 'Project' || seen.has(`${name}@${d.resolved}`)) continue;
      seen.set(`${name}@${d.resolved}`, {
        ecosystem: 'nuget', name, version: d.resolved, purl: `pkg:nuget/${enc(name)}@${enc(d.resolved)}`, source: 'packages.lock.json',
        hashes: d.contentHash ? [{ alg: 'SHA-512', content: b64hex(d.contentHash) }] : [],
      });
    }
  }
  return [...seen.values()];
}

/** pom.xml: Maven has no lock file; the java pack builds from pinned versions, which are what the POM declares. */
function mavenPom(dir: string): LockedDependency[] {
  const text = read(dir, 'pom.xml');
  if (!text) return [];
  const props = new Map<string, string>();
  for (const m of (/<properties>([\s\S]*?)<\/properties>/.exec(text)?.[1] ?? '').matchAll(/<([A-Za-z0-9_.-]+)>([^<]*)<\/\1>/g)) if (m[1] && m[2] !== undefined) props.set(m[1], m[2].trim());
  const expand = (v: string): string => v.replace(/\$\{([^}]+)\}/g, (all, k: string) => props.get(k) ?? all);
  const out: LockedDependency[] = [];
  for (const m of text.matchAll(/<dependency>([\s\S]*?)<\/dependency>/g)) {
    const tag = (t: string): string | undefined => new RegExp(`<${t}>([^<]*)</${t}>`).exec(m[1] ?? '')?.[1]?.trim();
    const [g, a, v, scope] = [tag('groupId'), tag('artifactId'), tag('version'), tag('scope')];
    if (!g || !a || !v || scope === 'test' || scope === 'provided') continue;
    const version = expand(v);
    out.push({ ecosystem: 'maven', name: `${g}:${a}`, version, purl: `pkg:maven/${enc(g)}/${enc(a)}@${enc(version)}`, hashes: [], source: 'pom.xml' });
  }
  return out;
}

/** Every dependency the project's lock inputs resolve, whatever its ecosystem (a project may have several). */
export function lockedDependencies(dir: string): LockedDependency[] {
  return [...goSum(dir), ...cargoLock(dir), ...npmLock(dir), ...pnpmLock(dir), ...yarnLock(dir), ...requirements(dir), ...pythonTomlLock(dir, 'uv.lock'), ...pythonTomlLock(dir, 'poetry.lock'), ...mavenPom(dir), ...nugetLock(dir)];
}
