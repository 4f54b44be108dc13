import { UserError } from '../../errors.js';
import type { Pack } from '../pack.js';
import { hasFile } from './common.js';

/** dotnet: detection is in place; the build is not implemented yet. */
export const dotnetPack: Pack = {
  name: 'dotnet',
  markers: '*.csproj or *.sln',
  detect: (dir) => hasFile(dir, /\.(csproj|sln)$/),
  async build() {
    throw new UserError('E_NOT_IMPLEMENTED', 'the dotnet pack can detect this project but cannot build it yet', {
      hint: 'add a unik.yaml with build.command and artifact.path to build it with the universal pack',
    });
  },
};
