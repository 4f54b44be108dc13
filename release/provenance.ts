/**
 * SLSA provenance of a release: an in-toto Statement v1 whose predicate is SLSA Provenance v1
 * (slsa.dev/provenance/v1). Every field is derived from the source commit, the build inputs and the toolchain,
 * never from the clock or the clone's location, so two builds of one commit write the same bytes.
 */
export interface Digest { [alg: string]: string }
export interface ResourceDescriptor { name?: string; uri?: string; digest?: Digest; annotations?: Record<string, string> }

export interface ProvenanceInput {
  subjects: { name: string; sha256: string }[];
  builderId: string;
  commit: string;
  /** the repository's name or address when known (CI); absent locally, where the clone's path means nothing */
  repository?: string;
  sourceDateEpoch: number;
  skipTests: boolean;
  /** build inputs (package-lock.json, …) by their path in the repository */
  inputs: { path: string; sha256: string }[];
  toolchain: { name: string; version: string; sha256?: string }[];
  byproducts: { name: string; sha256: string; mediaType: string }[];
}

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
/** Names this build procedure: scripts/release.sh + release/main.ts (docs/release.md describes it). */
export const BUILD_TYPE = 'urn:unikctl:release:npm-tarball:v1';

export function provenanceStatement(p: ProvenanceInput): object {
  const source: ResourceDescriptor = {
    ...(p.repository ? { uri: `git+${p.repository}` } : {}),
    name: 'source',
    digest: { gitCommit: p.commit },
  };
  return {
    _type: STATEMENT_TYPE,
    subject: p.subjects.map((s) => ({ name: s.name, digest: { sha256: s.sha256 } })),
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: {
        buildType: BUILD_TYPE,
        externalParameters: {
          source: { ...(p.repository ? { repository: p.repository } : {}), commit: p.commit },
          skipTests: p.skipTests,
        },
        internalParameters: { sourceDateEpoch: p.sourceDateEpoch },
        resolvedDependencies: [
          source,
          ...p.inputs.map((i) => ({ name: i.path, digest: { sha256: i.sha256 } })),
          ...p.toolchain.map((t) => ({
            name: t.name,
            uri: `pkg:generic/${t.name}@${t.version}`,
            ...(t.sha256 ? { digest: { sha256: t.sha256 } } : {}),
          })),
        ],
      },
      runDetails: {
        builder: { id: p.builderId },
        byproducts: p.byproducts.map((b) => ({ name: b.name, mediaType: b.mediaType, digest: { sha256: b.sha256 } })),
      },
    },
  };
}
