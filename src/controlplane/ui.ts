import type { FastifyInstance } from 'fastify';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { projectRoot } from '../paths.js';

/**
 * The SLO page (docs/slo.md) at /ui/: static files from the repository's ui/ folder and uPlot's dist files from its
 * npm package (no CDN). The files hold no data and are public; the page signs in with a token it keeps in
 * sessionStorage and sends as a bearer header to /v1/slo, never in a URL. Strict CSP: only this origin's scripts,
 * styles and fetches — no inline script or style.
 */
export const UI_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const require = createRequire(import.meta.url);
const FILES: Record<string, { path: () => string; type: string }> = {
  'index.html': { path: () => join(projectRoot, 'ui', 'index.html'), type: 'text/html; charset=utf-8' },
  'app.js': { path: () => join(projectRoot, 'ui', 'app.js'), type: 'text/javascript; charset=utf-8' },
  'app.css': { path: () => join(projectRoot, 'ui', 'app.css'), type: 'text/css; charset=utf-8' },
  'uPlot.iife.min.js': { path: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uPlot.min.css': { path: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

export function registerUi(app: FastifyInstance): void {
  const cache = new Map<string, Buffer>();
  const read = (name: string): Buffer => {
    let b = cache.get(name);
    if (!b) {
      b = readFileSync((FILES[name] as { path: () => string }).path());
      cache.set(name, b);
    }
    return b;
  };
  app.get('/ui', { config: { public: true }, schema: { hide: true } }, async (_req, reply) => reply.redirect('/ui/'));
  app.get('/ui/*', { config: { public: true }, schema: { hide: true } }, async (req, reply) => {
    const name = (req.params as { '*': string })['*'] || 'index.html';
    const f = FILES[name];
    if (!f) return reply.code(404).type('application/json').send({ code: 'E_NOT_FOUND', message: `no file ${name} in the page`, trace_id: req.id });
    return reply.header('content-security-policy', UI_CSP).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache').type(f.type).send(read(name));
  });
}
