import { UserError } from '../../errors.js';
import type { Pack } from '../pack.js';
import type { UnikYaml } from '../unikyaml.js';
import { goPack } from './go.js';
import { universalPack } from './universal.js';

/** Detection order = precedence: unik.yaml with a build section wins, then the native packs in this order. */
export const PACKS: readonly Pack[] = [universalPack, goPack];

export function detectPack(dir: string, config: UnikYaml | null): Pack {
  const pack = PACKS.find((p) => p.detect(dir, config));
  if (!pack) {
    throw new UserError('E_NO_PACK', `no build pack recognizes ${dir}`, {
      hint: `looked for: ${PACKS.map((p) => `${p.name} (${p.markers})`).join('; ')}. Add a unik.yaml with build.command and artifact.path for anything else`,
    });
  }
  return pack;
}
