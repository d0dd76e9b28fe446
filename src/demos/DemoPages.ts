/**
 * Serves the demo pages (`src/demos/public/`) on the Janus HTTP listener, with
 * the client libraries Janus users already have taken from their npm packages
 * (janus.js from `janus-gateway`, adapter.js from `webrtc-adapter`) rather than
 * copied into the repository. The pages learn where the APIs are from
 * `<path>/ferry.json`, which carries ports and paths only, never a secret.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

export interface DemoPagesOptions {
  /** URL prefix, e.g. `/demos`. */
  path: string;
  /** What the pages need to reach ferry, sent as `<path>/ferry.json`; read per request (ports are known after listen). */
  client: () => DemoClientConfig;
  /** Redirect `/` to the pages (when the Janus API is not itself at `/`). */
  rootRedirect: boolean;
}

export interface DemoClientConfig {
  /** Janus HTTP API base path on this origin. */
  janusPath: string;
  /** Janus WebSocket port, null when that transport is off. */
  websocketPort: number | null;
  /** Admin HTTP API (port + base path; same host as the page), null when off. */
  admin: { port: number; path: string } | null;
}

/** The pages directory: beside this file under tsx, or back in src/ when running from dist/. */
export function demoPagesDirectory(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'public'), join(here, '..', '..', '..', 'src', 'demos', 'public')];
  const found = candidates.find((dir) => existsSync(join(dir, 'index.html')));
  if (!found) throw new Error(`demo pages not found (looked in ${candidates.join(', ')})`);
  return found;
}

/** Directory of an installed package, found through Node's resolver from this module. */
function packageDirectory(name: string): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve(`${name}/package.json`));
}

export async function registerDemoPages(app: FastifyInstance, options: DemoPagesOptions): Promise<void> {
  const prefix = options.path.replace(/\/+$/, '');
  const vendor = [
    { dir: join(packageDirectory('janus-gateway'), 'npm', 'src'), at: `${prefix}/vendor/janus-gateway/`, file: 'janus.js' },
    { dir: join(packageDirectory('webrtc-adapter'), 'out'), at: `${prefix}/vendor/webrtc-adapter/`, file: 'adapter.js' },
  ];
  for (const v of vendor) {
    if (!existsSync(join(v.dir, v.file))) throw new Error(`demo pages: ${join(v.dir, v.file)} is missing (npm install)`);
  }
  const pages = demoPagesDirectory();
  await app.register(fastifyStatic, { root: pages, prefix: `${prefix}/`, index: false, decorateReply: false });
  // The index at `<path>/` (and `<path>`: the listener ignores trailing slashes).
  const index = readFileSync(join(pages, 'index.html'));
  app.get(`${prefix}/`, async (_request, reply) => reply.code(200).header('Content-Type', 'text/html; charset=utf-8').send(index));
  // Only the one file each page loads from a package is reachable, not the package tree.
  for (const v of vendor) {
    await app.register(fastifyStatic, { root: v.dir, prefix: v.at, allowedPath: (path) => path === `/${v.file}`, decorateReply: false });
  }
  app.get(`${prefix}/ferry.json`, async (_request, reply) => reply.code(200).header('Cache-Control', 'no-store').send(options.client()));
  if (options.rootRedirect) app.get('/', async (_request, reply) => reply.redirect(`${prefix}/`, 302));
}
