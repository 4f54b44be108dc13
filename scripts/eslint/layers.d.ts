import type { ESLint } from 'eslint';

/** Types of layers.js (plain JS so that eslint.config.js can load it without a build). */
export declare const LAYERS: Record<'cli' | 'agent' | 'controlplane' | 'engine' | 'runtime' | 'image' | 'kernel' | 'store' | 'util', string[]>;
export declare const layersPlugin: ESLint.Plugin;
