#!/usr/bin/env node
// Builds everything `npm install` must leave ready: the Rust addon (release)
// and the TypeScript. Runs cargo directly rather than through node-gyp so no
// Node headers are downloaded (napi-rs needs none); binding.gyp calls this
// same script for anyone who runs node-gyp by hand.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));

function run(cmd, cmdArgs, cwd) {
  const r = spawnSync(cmd, cmdArgs, { cwd, stdio: 'inherit' });
  if (r.error) {
    console.error(`ferry build: could not run ${cmd}: ${r.error.message}`);
    if (cmd === 'cargo') console.error('ferry build: the Rust toolchain (cargo) is required; install it with rustup.');
    process.exit(1);
  }
  if (r.status !== 0) process.exit(r.status ?? 1);
}

function buildNative() {
  const nativeDir = join(root, 'native');
  run('cargo', ['build', '--release', '--locked', '-p', 'ferry-native'], nativeDir);
  const lib = join(nativeDir, 'target', 'release', 'libferry_native.so');
  if (!existsSync(lib)) {
    console.error(`ferry build: expected ${lib} after cargo build`);
    process.exit(1);
  }
  copyFileSync(lib, join(nativeDir, 'ferry.node'));
}

function buildTs() {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  run(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], root);
}

if (!args.has('--ts-only')) buildNative();
if (!args.has('--native-only')) buildTs();
mkdirSync(join(root, 'dist'), { recursive: true });
