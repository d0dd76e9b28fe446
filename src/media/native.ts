// Loads the Rust addon built by `npm install` (scripts/build.mjs copies it to native/ferry.node).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The addon's own declarations, generated from its Rust (`#[napi]` items in native/src/) by
// scripts/build.mjs: an event, a counter or a method is declared there once, never here.
export type {
  EngineEvent,
  RemoteAddress,
  NativeEngine,
  EndpointOptions as NativeEndpointOptions,
  EngineCounters as NativeEngineCounters,
} from './native.generated.js';

/** What `native/ferry.node` exports. */
export type NativeAddon = typeof import('./native.generated.js');

function findAddon(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'native', 'ferry.node');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('ferry: native/ferry.node not found — run `npm install` (it builds the Rust addon)');
}

let cached: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    cached = require(findAddon()) as NativeAddon;
  }
  return cached;
}
