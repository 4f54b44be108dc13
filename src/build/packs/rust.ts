import { UserError } from '../../errors.js';
import type { Pack } from '../pack.js';
import { hasFile } from './common.js';

/** rust: detection is in place; the build is not implemented yet. */
export const rustPack: Pack = {
  name: 'rust',
  markers: 'Cargo.toml',
  detect: (dir) => hasFile(dir, 'Cargo.toml'),
  async build() {
    throw new UserError('E_NOT_IMPLEMENTED', 'the rust pack can detect this project but cannot build it yet', {
      hint: 'add a unik.yaml with build.command and artifact.path to build it with the universal pack',
    });
  },
};
