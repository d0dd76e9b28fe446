// The layering of src/, checked from the imports themselves (the rules are docs/layers.md):
// each folder imports only from folders below it (or itself); the wiring at src/ top level
// (Ferry.ts, Gateway.ts, main.ts) may import anything, and nothing imports it.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/** Layer of each folder of src/, lowest first; a folder may import from lower layers and its own. */
const LAYERS: Record<string, number> = {
  log: 0,
  config: 0,
  time: 0,
  sip: 1,
  media: 1,
  events: 1,
  core: 2,
  metrics: 3,
  webrtc: 3,
  plugins: 4,
  transports: 4,
  demos: 4,
  cluster: 5,
};
const TOP = 9; // src/*.ts: the wiring

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The folder of src/ a file lives in (its first path segment), or '' for the top level. */
function folderOf(file: string): string {
  const rel = relative(SRC, file);
  return rel.includes('/') ? rel.split('/')[0]! : '';
}

function layerOf(folder: string): number | undefined {
  return folder === '' ? TOP : LAYERS[folder];
}

test('every folder of src/ has a layer', () => {
  const folders = readdirSync(SRC).filter((n) => statSync(join(SRC, n)).isDirectory());
  for (const f of folders) assert.ok(LAYERS[f] !== undefined, `src/${f} is missing from the layer list (test/core/layers.test.ts, docs/layers.md)`);
});

test('no import runs upward (media never imports core, transports never import plugins, nothing imports the wiring)', () => {
  const violations: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = folderOf(file);
    const fromLayer = layerOf(from)!;
    for (const m of readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)[^'"]*from\s+'(\.[^']+)'/gm)) {
      const target = resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts'));
      if (!target.startsWith(SRC)) continue;
      const to = folderOf(target);
      if (to === from) continue;
      const toLayer = layerOf(to)!;
      if (toLayer >= fromLayer) violations.push(`${relative(SRC, file)} imports ${relative(SRC, target)} (${from || 'top'} → ${to || 'top'})`);
    }
  }
  assert.equal(violations, [], violations.join('\n'));
});

test.run();
