/**
 * Just enough pom.xml reading for the java pack: properties, the pinned-version check of BLD-4 and a few build
 * settings. Not a full Maven model: parents and imported BOMs are not fetched, so what only the effective model
 * knows (a plugin pinned by a parent pom) is left to Maven's own model warnings (see mavenModelProblems).
 */

export interface PomInfo {
  /** the pom has a <parent>: plugins without a version may be pinned there */
  hasParent: boolean;
  properties: Record<string, string>;
  /** <build><finalName> / <build><directory> as written (properties resolved where possible) */
  finalName: string | null;
  buildDirectory: string | null;
  /** project.build.outputTimestamp is set (reproducible archive entries) */
  hasOutputTimestamp: boolean;
  packaging: string;
  /** unikctl.addModules: extra jlink modules the app needs at run time (reflection, services) */
  addModules: string[];
  /** unikctl.cds (default true): dump a class data sharing archive into the runtime */
  cds: boolean;
  /** <modules> of an aggregator pom (directories relative to it), profiles' modules excluded */
  modules: string[];
}

/** XML comments and CDATA would confuse the tag scanning below. */
export function stripXmlNoise(xml: string): string {
  return xml.replace(/<!--[\s\S]*?-->/g, '').replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '');
}

/** Every <tag>…</tag> block (tags that never nest in themselves: dependency, plugin, parent, extension…). */
function blocks(xml: string, tag: string): string[] {
  const re = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, 'g');
  return [...xml.matchAll(re)].map((m) => m[1] ?? '');
}

/** The text of a direct child element, after removing nested sections that may hold the same tag name. */
function childText(block: string, tag: string): string | null {
  const flat = block.replace(/<(dependencies|configuration|executions|exclusions|reportSets)(?:\s[^>]*)?>[\s\S]*?<\/\1>/g, '');
  const m = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`).exec(flat);
  return m?.[1] !== undefined ? m[1].trim() : null;
}

function readProperties(xml: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const body of blocks(xml, 'properties')) {
    for (const m of body.matchAll(/<([A-Za-z_][\w.-]*)(?:\s[^>]*)?>([^<]*)<\/\1>/g)) {
      if (m[1] && m[2] !== undefined) out[m[1]] = m[2].trim();
    }
  }
  return out;
}

/** ${name} references resolved from <properties> and the project coordinates; unknown ones are kept. */
export function interpolate(value: string, props: Record<string, string>): string {
  let v = value;
  for (let i = 0; i < 5 && v.includes('${'); i++) v = v.replace(/\$\{([^}]+)\}/g, (whole, name: string) => props[name] ?? whole);
  return v;
}

export function readPom(xmlRaw: string): PomInfo {
  const xml = stripXmlNoise(xmlRaw);
  const props = readProperties(xml);
  const project = xml.replace(/<parent(?:\s[^>]*)?>[\s\S]*?<\/parent>/, '');
  for (const k of ['groupId', 'artifactId', 'version']) {
    const v = childText(project.replace(/<(build|profiles|dependencyManagement|properties|reporting)(?:\s[^>]*)?>[\s\S]*?<\/\1>/g, ''), k);
    if (v !== null) props[`project.${k}`] = v;
  }
  const build = blocks(xml, 'build')[0] ?? '';
  const buildTop = build.replace(/<(plugins|pluginManagement|resources|testResources|extensions)(?:\s[^>]*)?>[\s\S]*?<\/\1>/g, '');
  const finalName = /<finalName>([^<]*)<\/finalName>/.exec(buildTop)?.[1]?.trim();
  const directory = /<directory>([^<]*)<\/directory>/.exec(buildTop)?.[1]?.trim();
  const topLevel = xml.replace(/<(build|profiles|dependencies|dependencyManagement|parent|properties|reporting)(?:\s[^>]*)?>[\s\S]*?<\/\1>/g, '');
  const addModules = (props['unikctl.addModules'] ?? '').split(/[\s,]+/).filter(Boolean);
  return {
    hasParent: /<parent(?:\s[^>]*)?>/.test(xml),
    properties: props,
    finalName: finalName ? interpolate(finalName, props) : null,
    buildDirectory: directory ? interpolate(directory, { ...props, 'project.basedir': '.', basedir: '.' }) : null,
    hasOutputTimestamp: 'project.build.outputTimestamp' in props,
    packaging: /<packaging>([^<]*)<\/packaging>/.exec(topLevel)?.[1]?.trim() ?? 'jar',
    addModules,
    cds: (props['unikctl.cds'] ?? 'true').toLowerCase() !== 'false',
    modules: [...(blocks(xml.replace(/<profiles(?:\s[^>]*)?>[\s\S]*?<\/profiles>/g, ''), 'modules')[0] ?? '').matchAll(/<module>([^<]*)<\/module>/g)]
      .map((m) => (m[1] ?? '').trim().replace(/\/+$/, '')).filter(Boolean),
  };
}

/** A version that does not name one fixed artifact: a range, LATEST/RELEASE, or a SNAPSHOT. */
export function looseVersion(version: string): string | null {
  if (/^[[(]|[\])]$|,/.test(version)) return 'a version range';
  if (version === 'LATEST' || version === 'RELEASE') return version;
  if (/-?SNAPSHOT$/i.test(version)) return 'a SNAPSHOT';
  return null;
}

function coordinates(block: string, props: Record<string, string>, defaultGroup?: string): string {
  const g = childText(block, 'groupId') ?? defaultGroup ?? '?';
  const a = childText(block, 'artifactId') ?? '?';
  return `${interpolate(g, props)}:${interpolate(a, props)}`;
}

/**
 * BLD-4 for Maven: every dependency, parent, plugin and build extension must name one fixed version.
 * Returns one line per problem (empty: pinned).
 */
export function pomLockProblems(xmlRaw: string): string[] {
  const xml = stripXmlNoise(xmlRaw);
  const info = readPom(xml);
  const props = info.properties;
  const problems: string[] = [];
  const check = (kind: string, coords: string, raw: string | null): void => {
    if (raw === null) return;
    const v = interpolate(raw, props);
    if (v.includes('${')) return; // defined outside this pom (parent, settings, -D): Maven's model check reports it
    const why = looseVersion(v);
    if (why) problems.push(`${kind} ${coords} uses ${why} (${v})`);
  };
  for (const p of blocks(xml, 'parent')) check('parent', coordinates(p, props), childText(p, 'version'));
  for (const d of blocks(xml, 'dependency')) check('dependency', coordinates(d, props), childText(d, 'version'));
  const plugins = blocks(xml, 'plugin').map((b) => ({ coords: coordinates(b, props, 'org.apache.maven.plugins'), version: childText(b, 'version') }));
  const versioned = new Set(plugins.filter((p) => p.version !== null).map((p) => p.coords));
  for (const p of plugins) {
    if (p.version !== null) check('plugin', p.coords, p.version);
    else if (!versioned.has(p.coords) && !info.hasParent) problems.push(`plugin ${p.coords} has no <version>`);
  }
  for (const e of blocks(xml, 'extension')) {
    const v = childText(e, 'version');
    if (v === null) problems.push(`build extension ${coordinates(e, props)} has no <version>`);
    else check('build extension', coordinates(e, props), v);
  }
  return [...new Set(problems)];
}

/**
 * Maven's own warnings about the effective model (after parents and pluginManagement): unpinned plugins and
 * LATEST/RELEASE versions that the static pom check could not see.
 */
export function mavenModelProblems(output: string): string[] {
  const out: string[] = [];
  for (const m of output.matchAll(/'build\.plugins\.plugin\.version' for (\S+) is missing/g)) out.push(`plugin ${m[1] ?? '?'} has no <version> (in the effective pom)`);
  for (const m of output.matchAll(/'([\w.]+)\.version' for (\S+) is either LATEST or RELEASE/g)) out.push(`${m[2] ?? '?'} uses LATEST or RELEASE (in the effective pom)`);
  return [...new Set(out)];
}
