#!/usr/bin/env node
// Runs every suite — Rust (cargo test), the TypeScript type check and the uvu
// files, each uvu file in its own process so servers and sockets never leak
// between files — and ends with one plain line `N passed, N failed`, the
// line CI reads.
//
//   npm test                       all suites
//   npm test -- test/foo.test.ts   only these uvu files (no Rust, no type check)
//   npm test -- --no-rust          skip cargo test
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const files = argv.filter((a) => !a.startsWith('--'));
const onlyFiles = files.length > 0;
const runRust = !onlyFiles && !argv.includes('--no-rust');
const runTypecheck = !onlyFiles && !argv.includes('--no-typecheck');
const FILE_TIMEOUT_MS = Number(process.env.FERRY_TEST_FILE_TIMEOUT_MS ?? 300_000);
const JOBS = Math.max(1, Number(process.env.FERRY_TEST_JOBS ?? 1));

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

/** Runs a command, echoing its output, and resolves with {code, output}. */
function run(cmd, args, { cwd = root, timeoutMs = 0, quiet = false, env = {} } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    const onData = (d) => {
      output += d;
      if (!quiet) process.stdout.write(d);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    let timedOut = false;
    const timer = timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
        }, timeoutMs)
      : undefined;
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      resolve({ code: 127, output: output + String(err), timedOut });
    });
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? 1, output: stripAnsi(output), timedOut });
    });
  });
}

function findTestFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTestFiles(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const totals = { passed: 0, failed: 0, skipped: 0 };
const failures = [];

async function rustSuite() {
  console.log('\n== cargo test (native/) ==');
  const r = await run('cargo', ['test', '--profile', 'fasttest', '--locked', '--workspace', '--exclude', 'ferry-native'], {
    cwd: join(root, 'native'),
  });
  let passed = 0, failed = 0, seen = false;
  for (const m of r.output.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/g)) {
    seen = true;
    passed += Number(m[1]);
    failed += Number(m[2]);
    totals.skipped += Number(m[3]);
  }
  if (r.code !== 0 && failed === 0) failed = 1; // build failure or crash
  if (!seen && r.code === 0) console.log('cargo test reported no results');
  totals.passed += passed;
  totals.failed += failed;
  if (failed) failures.push('cargo test');
}

async function typecheckSuite() {
  console.log('\n== tsc --noEmit (src, test, bench) ==');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = await run(process.execPath, [tsc, '-p', 'tsconfig.check.json']);
  if (r.code === 0) totals.passed += 1;
  else { totals.failed += 1; failures.push('typecheck'); }
}

/**
 * The media-carrying end-to-end suites run with two media threads and every room spread over
 * both (round-robin placement), so each of their routes crosses threads; the other suites run
 * on the default configuration. A FERRY_MEDIA_* variable set by the caller wins.
 */
const CROSS_THREAD_SUITES = ['test/webrtc/', 'test/videoroom-e2e/', 'test/demos/', 'test/sip-plugin/'];
const CROSS_THREAD_ENV = { FERRY_MEDIA_WORKERS: '2', FERRY_MEDIA_PLACEMENT: 'round-robin' };

function suiteEnv(rel) {
  if (!CROSS_THREAD_SUITES.some((dir) => rel.startsWith(dir))) return {};
  return Object.fromEntries(Object.entries(CROSS_THREAD_ENV).filter(([k]) => process.env[k] === undefined));
}

async function uvuFile(file) {
  const rel = relative(root, file);
  const r = await run(process.execPath, ['--import', 'tsx', file], { timeoutMs: FILE_TIMEOUT_MS, quiet: JOBS > 1, env: suiteEnv(rel) });
  if (JOBS > 1) process.stdout.write(`\n== ${rel} ==\n${r.output}`);
  const total = /Total:\s+(\d+)/.exec(r.output);
  const passed = /Passed:\s+(\d+)/.exec(r.output);
  const skipped = /Skipped:\s+(\d+)/.exec(r.output);
  let p = passed ? Number(passed[1]) : 0;
  let f = total && passed ? Number(total[1]) - Number(passed[1]) : 0;
  if (skipped) totals.skipped += Number(skipped[1]);
  if ((r.code !== 0 || !total) && f === 0) f = 1; // crashed, hung or printed no summary
  if (r.timedOut) console.log(`${rel}: killed after ${FILE_TIMEOUT_MS} ms`);
  totals.passed += p;
  totals.failed += f;
  if (f) failures.push(rel);
}

async function uvuSuite() {
  const list = onlyFiles ? files.map((f) => join(root, f)) : findTestFiles(join(root, 'test'));
  console.log(`\n== uvu: ${list.length} file(s) ==`);
  const queue = [...list];
  const workers = Array.from({ length: Math.min(JOBS, queue.length) }, async () => {
    while (queue.length) {
      const f = queue.shift();
      if (JOBS === 1) console.log(`\n-- ${relative(root, f)}`);
      await uvuFile(f);
    }
  });
  await Promise.all(workers);
}

const started = Date.now();
if (runRust) await rustSuite();
if (runTypecheck) await typecheckSuite();
await uvuSuite();
console.log(`\nsuites took ${((Date.now() - started) / 1000).toFixed(1)} s`);
if (failures.length) console.log(`failing: ${failures.join(', ')}`);
if (totals.skipped) console.log(`${totals.skipped} skipped`);
// CI reads only the last line, and only this shape.
console.log(`${totals.passed} passed, ${totals.failed} failed`);
process.exit(totals.failed ? 1 : 0);
