import { UserError } from '../../errors.js';
import type { Pack } from '../pack.js';
import type { UnikYaml } from '../unikyaml.js';
import { dotnetPack } from './dotnet.js';
import { goPack } from './go.js';
import { javaPack } from './java.js';
import { nodePack } from './node.js';
import { pythonPack } from './python.js';
import { rustPack } from './rust.js';
import { universalPack } from './universal.js';

/**
 * Detection order = precedence when a project matches several packs: unik.yaml with a build section,
 * then compiled languages before interpreted ones (a Go or Java service with a package.json for its assets is
 * still a Go or Java service), and Python last because any *.py file matches it. `pack:` in unik.yaml overrides.
 */
export const PACKS: readonly Pack[] = [universalPack, goPack, rustPack, javaPack, dotnetPack, nodePack, pythonPack];

export interface PackChoice { pack: Pack; alsoMatched: string[]; }

export function detectPack(dir: string, config: UnikYaml | null): Pack {
  return choosePack(dir, config).pack;
}

export function choosePack(dir: string, config: UnikYaml | null): PackChoice {
  if (config?.pack) {
    const forced = PACKS.find((p) => p.name === config.pack);
    if (!forced) {
      throw new UserError('E_UNIKYAML_INVALID', `unik.yaml: pack "${config.pack}" is not one of ${PACKS.map((p) => p.name).join(', ')}`);
    }
    return { pack: forced, alsoMatched: [] };
  }
  const matches = PACKS.filter((p) => p.detect(dir, config));
  const pack = matches[0];
  if (!pack) {
    throw new UserError('E_NO_PACK', `no build pack recognizes ${dir}`, {
      hint: `looked for: ${PACKS.map((p) => `${p.name} (${p.markers})`).join('; ')}. Add a unik.yaml with build.command and artifact.path for anything else`,
    });
  }
  return { pack, alsoMatched: matches.slice(1).map((p) => p.name) };
}
