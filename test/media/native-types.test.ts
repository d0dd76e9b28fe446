// The addon's TypeScript declarations (src/media/native.generated.ts) are generated from its
// Rust by scripts/build.mjs together with native/ferry.node. They must name exactly what that
// addon exports, classes with their methods and functions; a difference means the two come
// from different builds (`npm run build` makes both) and the type check would vouch for an
// addon that is not the one loaded.
import { readFileSync } from 'node:fs';

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { loadNative } from '../../src/media/native.js';

const declarations = readFileSync(new URL('../../src/media/native.generated.ts', import.meta.url), 'utf8');

/** Declared classes (with their method names) and functions, each list sorted. */
function declared(): { classes: Map<string, string[]>; functions: string[] } {
  const classes = new Map<string, string[]>();
  for (const [, name, body] of declarations.matchAll(/^export declare class (\w+) \{\n([\s\S]*?)^\}/gm)) {
    const methods = [...body!.matchAll(/^ {2}(\w+)\(/gm)].map((m) => m[1]!).filter((m) => m !== 'constructor');
    classes.set(name!, methods.sort());
  }
  const functions = [...declarations.matchAll(/^export declare function (\w+)\(/gm)].map((m) => m[1]!).sort();
  return { classes, functions };
}

test('the generated declarations name every export of the loaded addon, and nothing else', () => {
  const addon = loadNative() as unknown as Record<string, unknown>;
  const { classes, functions } = declared();
  assert.ok(classes.has('NativeEngine'), 'the declarations declare NativeEngine');
  assert.equal(Object.keys(addon).sort(), [...classes.keys(), ...functions].sort());
  for (const [name, methods] of classes) {
    const prototype = (addon[name] as { prototype: object }).prototype;
    const actual = Object.getOwnPropertyNames(prototype).filter((m) => m !== 'constructor').sort();
    assert.equal(actual, methods, `methods of ${name}`);
  }
  for (const name of functions) assert.type(addon[name], 'function', name);
});

test.run();
