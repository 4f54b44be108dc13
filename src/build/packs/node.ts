import { UserError } from '../../errors.js';
import type { Pack } from '../pack.js';
import { hasFile } from './common.js';

/** node: detection is in place; the build is not implemented yet. */
export const nodePack: Pack = {
  name: 'node',
  markers: 'package.json',
  detect: (dir) => hasFile(dir, 'package.json'),
  async build() {
    throw new UserError('E_NOT_IMPLEMENTED', 'the node pack can detect this project but cannot build it yet', {
      hint: 'add a unik.yaml with build.command and artifact.path to build it with the universal pack',
    });
  },
};
