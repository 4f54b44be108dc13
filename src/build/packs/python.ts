import { UserError } from '../../errors.js';
import type { Pack } from '../pack.js';
import { hasFile } from './common.js';

/** python: detection is in place; the build is not implemented yet. */
export const pythonPack: Pack = {
  name: 'python',
  markers: 'requirements.txt, pyproject.toml or *.py',
  detect: (dir) => hasFile(dir, 'requirements.txt') || hasFile(dir, 'pyproject.toml') || hasFile(dir, /\.py$/),
  async build() {
    throw new UserError('E_NOT_IMPLEMENTED', 'the python pack can detect this project but cannot build it yet', {
      hint: 'add a unik.yaml with build.command and artifact.path to build it with the universal pack',
    });
  },
};
