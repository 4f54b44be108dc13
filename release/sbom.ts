import { createHash } from 'node:crypto';

/**
 * `npm sbom` output made reproducible: the random serial number and the wall-clock timestamp replaced by values
 * derived from the release (a name-based UUID over the normalized document; SOURCE_DATE_EPOCH), arrays sorted,
 * the root component named after package.json (npm names it after the directory) and bound to the tarball by
 * its SHA-256. Everything else is npm's.
 */
type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

export interface SbomSubject {
  name: string;
  version: string;
  tarball: string;
  tarballSha256: string;
  epoch: number;
}

const isObj = (v: Json | undefined): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: Json | undefined): string => (typeof v === 'string' ? v : JSON.stringify(v ?? null));
const byKey = (key: string) => (a: Json, b: Json): number => cmp(isObj(a) ? str(a[key]) : str(a), isObj(b) ? str(b[key]) : str(b));
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** RFC 4122 version-5-style UUID from a SHA-256 (the layout of v5, a stronger hash). */
export function nameUuid(seed: string): string {
  const h = createHash('sha256').update(seed).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export const isoFromEpoch = (epoch: number): string => new Date(epoch * 1000).toISOString().replace(/\.000Z$/, 'Z');

/** Sorts every array of objects in a CycloneDX document by its natural key; arrays of strings by value. */
function sortCdx(v: Json): Json {
  if (Array.isArray(v)) {
    const items = v.map(sortCdx);
    if (items.every((i) => typeof i === 'string')) return [...items].sort(byKey(''));
    const key = ['bom-ref', 'ref', 'name', 'alg', 'phase'].find((k) => items.every((i) => isObj(i) && k in i));
    return key ? [...items].sort(byKey(key)) : items;
  }
  if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, sortCdx(x)]));
  return v;
}

/**
 * The packages a production install gets, `name@version`, from the lock file's own `dev` flags. `npm sbom
 * --omit dev` is not used: it also drops production packages that a dev tool shares (yaml, semver, … under
 * npm 11.19), so the SBOM is taken whole and cut down to this set.
 */
export function runtimePackages(lock: { packages?: Record<string, { name?: string; version?: string; dev?: boolean }> }): Set<string> {
  return new Set(Object.entries(lock.packages ?? {})
    .filter(([path, p]) => path !== '' && p.dev !== true && p.version !== undefined && path.includes('node_modules/'))
    .map(([path, p]) => `${p.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)}@${p.version}`));
}

export function normalizeCycloneDx(whole: Obj, s: SbomSubject, runtime: Set<string>): Obj {
  const raw: Obj = { ...whole };
  const refOf = (c: Json): string => (isObj(c) ? `${str(c.name)}@${str(c.version)}` : '');
  const comps = (Array.isArray(raw.components) ? raw.components : []).filter((c) => runtime.has(refOf(c)));
  const kept = new Set(comps.map((c) => (isObj(c) ? str(c['bom-ref']) : '')));
  const root = isObj(raw.metadata) && isObj(raw.metadata.component) ? str(raw.metadata.component['bom-ref']) : '';
  kept.add(root);
  raw.components = comps;
  raw.dependencies = (Array.isArray(raw.dependencies) ? raw.dependencies : []).filter((d) => isObj(d) && kept.has(str(d.ref))).map((d) => {
    const o = { ...(d as Obj) };
    if (Array.isArray(o.dependsOn)) o.dependsOn = o.dependsOn.filter((x) => kept.has(str(x)));
    return o;
  });
  const doc = sortCdx(raw) as Obj;
  const meta = isObj(doc.metadata) ? doc.metadata : {};
  const component = isObj(meta.component) ? meta.component : {};
  meta.timestamp = isoFromEpoch(s.epoch);
  meta.component = {
    ...component,
    type: 'application',
    name: s.name,
    version: s.version,
    hashes: [{ alg: 'SHA-256', content: s.tarballSha256 }],
    properties: [{ name: 'unikctl:release:tarball', value: s.tarball }],
  };
  doc.metadata = meta;
  delete doc.serialNumber;
  const serial = `urn:uuid:${nameUuid(`cyclonedx\n${JSON.stringify(doc)}`)}`;
  // serialNumber near the top, as npm writes it
  const { $schema, bomFormat, specVersion, ...rest } = doc;
  return { $schema: $schema ?? null, bomFormat: bomFormat ?? null, specVersion: specVersion ?? null, serialNumber: serial, ...rest };
}

export function normalizeSpdx(raw: Obj, s: SbomSubject, runtime: Set<string>): Obj {
  const doc = { ...raw };
  const describes = Array.isArray(doc.documentDescribes) ? doc.documentDescribes.map(str) : [];
  const pkgs = (Array.isArray(doc.packages) ? doc.packages : [])
    .filter((p) => isObj(p) && (describes.includes(str(p.SPDXID)) || runtime.has(`${str(p.name)}@${str(p.versionInfo)}`)));
  const ids = new Set(['SPDXRef-DOCUMENT', ...pkgs.map((p) => (isObj(p) ? str(p.SPDXID) : ''))]);
  const rels = (Array.isArray(doc.relationships) ? doc.relationships : [])
    .filter((r) => isObj(r) && ids.has(str(r.spdxElementId)) && ids.has(str(r.relatedSpdxElement)));
  doc.packages = [...pkgs].sort(byKey('SPDXID')).map((p) => {
    if (!isObj(p)) return p;
    const q: Obj = { ...p };
    if (Array.isArray(q.externalRefs)) q.externalRefs = [...q.externalRefs].sort(byKey('referenceLocator'));
    if (Array.isArray(q.checksums)) q.checksums = [...q.checksums].sort(byKey('algorithm'));
    return q;
  });
  doc.relationships = [...rels].sort((a, b) => cmp(relKey(a), relKey(b)));
  const root = doc.packages.find((p) => isObj(p) && Array.isArray(doc.documentDescribes) && doc.documentDescribes.includes(str(p.SPDXID)));
  if (isObj(root)) {
    root.name = s.name;
    root.versionInfo = s.version;
    root.packageFileName = s.tarball;
    root.primaryPackagePurpose = 'APPLICATION';
    root.checksums = [{ algorithm: 'SHA256', checksumValue: s.tarballSha256 }];
  }
  doc.name = `${s.name}@${s.version}`;
  const info = isObj(doc.creationInfo) ? { ...doc.creationInfo } : {};
  info.created = isoFromEpoch(s.epoch);
  doc.creationInfo = info;
  delete doc.documentNamespace;
  const ns = `urn:uuid:${nameUuid(`spdx\n${JSON.stringify(doc)}`)}`;
  // SPDX wants a URI; a URN is one, and this one names the document by its content
  const { spdxVersion, dataLicense, SPDXID, name, ...rest } = doc;
  return { spdxVersion: spdxVersion ?? null, dataLicense: dataLicense ?? null, SPDXID: SPDXID ?? null, name: name ?? null, documentNamespace: ns, ...rest };
}

const relKey = (r: Json): string => (isObj(r) ? `${str(r.spdxElementId)}\t${str(r.relationshipType)}\t${str(r.relatedSpdxElement)}` : str(r));

export const jsonText = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;
