/**
 * The folder layering of src/, checked on every import (static and dynamic): a folder may import its own files,
 * the root modules (src/errors.ts, src/paths.ts) and the folders listed for it — always lower layers, so no import
 * points back up and no two folders import each other. docs/architecture.md draws the same picture.
 */
import { dirname, relative, resolve, sep } from 'node:path';

export const LAYERS = {
  // entry points: the unikctl and unikctld commands
  cli: ['agent', 'controlplane', 'engine', 'runtime', 'image', 'kernel', 'store', 'util'],
  // servers: the node agent reuses the control plane's HTTP, auth and artifact pieces, never the reverse
  agent: ['controlplane', 'engine', 'runtime', 'image', 'kernel', 'store', 'util'],
  controlplane: ['engine', 'runtime', 'image', 'kernel', 'store', 'util'],
  // the engine behind the Client interface: local (embedded), HTTP and cluster clients sit on runtime and images
  engine: ['runtime', 'image', 'kernel', 'store', 'util'],
  runtime: ['image', 'kernel', 'store', 'util'],
  image: ['kernel', 'store', 'util'],
  kernel: ['store', 'util'],
  store: ['util'],
  util: [],
};

const ROOT_MODULES = new Set(['errors.ts', 'paths.ts']);

/** The top folder of src/ a path lies in ('' for a root module, null outside src/). */
function topOf(srcDir, file) {
  const rel = relative(srcDir, file);
  if (rel.startsWith('..') || rel === '') return null;
  const parts = rel.split(sep);
  return parts.length === 1 ? '' : parts[0];
}

export const layersPlugin = {
  rules: {
    'one-way': {
      meta: { type: 'problem', schema: [], messages: { back: '{{from}} must not import {{to}} ({{path}}): layers point one way (scripts/eslint/layers.js)' } },
      create(context) {
        const file = context.filename;
        const srcDir = resolve(context.cwd, 'src');
        const from = topOf(srcDir, file);
        if (from === null) return {};
        const check = (node, source) => {
          if (typeof source !== 'string' || !source.startsWith('.')) return;
          const target = resolve(dirname(file), source).replace(/\.js$/, '.ts');
          const to = topOf(srcDir, target);
          if (to === null || to === from) return;
          if (to === '' && ROOT_MODULES.has(relative(srcDir, target))) return;
          const allowed = from === '' ? [] : (LAYERS[from] ?? []);
          if (!allowed.includes(to)) context.report({ node, messageId: 'back', data: { from: from || 'src/', to: to || relative(srcDir, target), path: source } });
        };
        return {
          ImportDeclaration: (n) => check(n, n.source.value),
          ExportNamedDeclaration: (n) => n.source && check(n, n.source.value),
          ExportAllDeclaration: (n) => check(n, n.source.value),
          ImportExpression: (n) => n.source.type === 'Literal' && check(n, n.source.value),
        };
      },
    },
  },
};
