import { Linter } from 'eslint';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LAYERS, layersPlugin } from '../../scripts/eslint/layers.js';

/** The layering lint really fails on a back-edge (npm run lint runs it over src/). */
const ROOT = join(import.meta.dirname, '..', '..');
const lint = (file: string, code: string): string[] => {
  const linter = new Linter({ configType: 'flat', cwd: ROOT });
  return linter.verify(code, [{
    files: ['**/*.ts'], plugins: { layers: layersPlugin }, rules: { 'layers/one-way': 'error' },
    languageOptions: { sourceType: 'module', ecmaVersion: 2022 },
  }], { filename: join(ROOT, file) }).map((m) => m.message);
};

describe('layers/one-way', () => {
  it('allows imports down the layers, within a folder and of the root modules', () => {
    expect(lint('src/engine/x.ts', "import { a } from '../runtime/supervisor.js'; import { b } from './local.js'; import { c } from '../errors.js';")).toEqual([]);
    expect(lint('src/image/packs/node/x.ts', "import { a } from '../../../util/exec.js'; import { b } from '../../rootfs.js';")).toEqual([]);
  });
  it('refuses a back-edge, also from a nested folder and through a dynamic import', () => {
    expect(lint('src/store/x.ts', "import { a } from '../engine/local.js';")[0]).toContain('store must not import engine');
    expect(lint('src/image/packs/go/x.ts', "const m = await import('../../../runtime/qemu.js');")[0]).toContain('image must not import runtime');
    expect(lint('src/controlplane/x.ts', "export { a } from '../agent/agent.js';")[0]).toContain('controlplane must not import agent');
  });
  it('refuses a root module importing a folder', () => {
    expect(lint('src/paths.ts', "import { a } from './util/ids.js';")[0]).toContain('must not import util');
  });
  it('declares a strict order: no two folders may import each other', () => {
    for (const [from, tos] of Object.entries(LAYERS)) {
      for (const to of tos) expect(LAYERS[to as keyof typeof LAYERS], `${from} ↔ ${to}`).not.toContain(from);
    }
  });
});
