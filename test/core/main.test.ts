/** The CLI: --help, config errors naming the key, serving on env overrides, SIGTERM → exit 0. */
import { spawn } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const MAIN = join(process.cwd(), 'src', 'main.ts');

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => out };
}

const cli = suite('main');

cli('--help prints usage and exits 0', async () => {
  const p = run(['--help']);
  assert.is(await p.exited, 0);
  assert.match(p.output(), 'Usage: ferry');
  assert.match(p.output(), '8088');
});

cli('a bad config file is refused naming the key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-cfg-'));
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'general:\n  session_timeout: soon\n');
  const p = run(['--config', file]);
  assert.is(await p.exited, 2);
  assert.match(p.output(), 'general.session_timeout');
});

cli('serves the API, then SIGTERM ends sessions and exits 0', async () => {
  const env = {
    FERRY_HTTP_BIND: '127.0.0.1', FERRY_HTTP_PORT: '0', FERRY_WEBSOCKET_BIND: '127.0.0.1', FERRY_WEBSOCKET_PORT: '0',
    FERRY_ADMIN_HTTP_PORT: '0', FERRY_ADMIN_WEBSOCKET_PORT: '0',
  };
  const p = run([], env);
  const deadline = Date.now() + 15_000;
  let port = 0;
  while (!port && Date.now() < deadline) {
    const m = /"transport":"janus.http","host":"127.0.0.1","port":(\d+)/.exec(p.output());
    if (m) port = Number(m[1]);
    else await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(port > 0, p.output());
  const res = await fetch(`http://127.0.0.1:${port}/janus`, { method: 'POST', body: JSON.stringify({ janus: 'create', transaction: 'c' }) });
  const body = (await res.json()) as { janus: string };
  assert.is(body.janus, 'success');
  p.child.kill('SIGTERM');
  assert.is(await p.exited, 0);
  assert.match(p.output(), 'gateway stopped');
});

cli.run();
