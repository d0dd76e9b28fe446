/**
 * Serves the demo pages (`src/demos/public/`) on the Janus HTTP listener, with
 * the client libraries Janus users already have taken from their npm packages
 * (janus.js from `janus-gateway`, adapter.js from `webrtc-adapter`) rather than
 * copied into the repository. The pages learn where the APIs are from
 * `<path>/ferry.json`, which carries ports and paths only, never a secret.
 *
 * Each page is written once as its own content (`src/demos/pages/<name>.html`:
 * a first-line comment with its title and what it loads, its styles, its
 * `<main>`), and served inside one document layout, so the head, the header,
 * the Log panel and the script loading (common.js's page shell) are the same
 * on every page without being copied into each.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

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

/** A demos folder (`public` or `pages`): beside this file under tsx, or back in src/ when running from dist/. */
function demosDirectory(name: 'public' | 'pages', marker: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, name), join(here, '..', '..', '..', 'src', 'demos', name)];
  const found = candidates.find((dir) => existsSync(join(dir, marker)));
  if (!found) throw new Error(`demo ${name} not found (looked in ${candidates.join(', ')})`);
  return found;
}

/** The static files of the pages (scripts, style sheet). */
export function demoPagesDirectory(): string {
  return demosDirectory('public', 'common.js');
}

/** What a page's first line says of it: `<!-- ferry demo page: {"title": …} -->`. */
interface PageHead {
  title: string;
  /** The h1, when not the title after "ferry · ". */
  heading?: string;
  /** Loads adapter.js and janus.js. */
  janus?: boolean;
  /** Has a state badge in its header. */
  state?: boolean;
  /** Its script, when not `<name>.js` ("none": no script and no Log panel). */
  script?: string;
}

const PAGE_HEAD = /^<!-- ferry demo page: (\{.*\}) -->\n/;
const escapeAttribute = (v: string) => v.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/** One page's content inside the layout every page shares. */
export function renderDemoPage(name: string, source: string): string {
  const m = PAGE_HEAD.exec(source);
  if (!m) throw new Error(`demo page ${name}: the first line must be <!-- ferry demo page: {...} -->`);
  const head = JSON.parse(m[1]!) as PageHead;
  const shell = [`data-page="${escapeAttribute(name)}"`];
  if (head.heading !== undefined) shell.push(`data-heading="${escapeAttribute(head.heading)}"`);
  if (head.janus) shell.push('data-janus');
  if (head.state) shell.push('data-state');
  if (head.script !== undefined) shell.push(`data-script="${escapeAttribute(head.script)}"`);
  const content = source.slice(m[0].length);
  const mainAt = content.indexOf('<main>');
  const styles = mainAt > 0 ? content.slice(0, mainAt) : '';
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${head.title.replace(/</g, '&lt;')}</title>`,
    '<link rel="stylesheet" href="style.css">',
    `<script src="common.js" ${shell.join(' ')} defer></script>`,
    `${styles}</head>`,
    '<body>',
    `${mainAt >= 0 ? content.slice(mainAt) : content}</body>`,
    '</html>',
    '',
  ].join('\n');
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
  await app.register(fastifyStatic, { root: demoPagesDirectory(), prefix: `${prefix}/`, index: false, decorateReply: false });
  // Every page rendered once at start; the index also at `<path>/` (and `<path>`: the listener ignores trailing slashes).
  const pagesDir = demosDirectory('pages', 'index.html');
  for (const file of readdirSync(pagesDir).filter((f) => f.endsWith('.html'))) {
    const name = file.slice(0, -'.html'.length);
    const html = renderDemoPage(name, readFileSync(join(pagesDir, file), 'utf8'));
    const send = async (_request: unknown, reply: FastifyReply) => reply.code(200).header('Content-Type', 'text/html; charset=utf-8').send(html);
    app.get(`${prefix}/${file}`, send);
    if (name === 'index') app.get(`${prefix}/`, send);
  }
  // Only the one file each page loads from a package is reachable, not the package tree.
  for (const v of vendor) {
    await app.register(fastifyStatic, { root: v.dir, prefix: v.at, allowedPath: (path) => path === `/${v.file}`, decorateReply: false });
  }
  app.get(`${prefix}/ferry.json`, async (_request, reply) => reply.code(200).header('Cache-Control', 'no-store').send(options.client()));
  if (options.rootRedirect) app.get('/', async (_request, reply) => reply.redirect(`${prefix}/`, 302));
}
