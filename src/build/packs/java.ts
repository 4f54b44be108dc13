import { UserError } from '../../errors.js';
import type { Pack } from '../pack.js';
import { hasFile } from './common.js';

/** java: detection is in place; the build is not implemented yet. */
export const javaPack: Pack = {
  name: 'java',
  markers: 'pom.xml or build.gradle(.kts)',
  detect: (dir) => hasFile(dir, 'pom.xml') || hasFile(dir, 'build.gradle') || hasFile(dir, 'build.gradle.kts'),
  async build() {
    throw new UserError('E_NOT_IMPLEMENTED', 'the java pack can detect this project but cannot build it yet', {
      hint: 'add a unik.yaml with build.command and artifact.path to build it with the universal pack',
    });
  },
};
