/**
 * A whole ferry as a separate OS process: `node dist/src/main.js --config
 * FILE`, exactly what `npm start` runs (default plugins, own media engine, own
 * port pool). Tests that need two gateways that share nothing — cascading
 * between ferries, issue 5 — run one of them through this helper.
 *
 * Every listener is on 127.0.0.1 port 0 and media stays on 127.0.0.1; the
 * bound addresses come from the "ferry started" line ferry logs (pino JSON on
 * stdout) once it listens. `stop()` must be called in `finally`: it sends
 * SIGTERM, waits for exit 0 and SIGKILLs as a last resort; an `exit` hook also
 * SIGKILLs a child the test process forgot, so no ferry outlives its test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { makeConfig, type ConfigOverrides, type FerryConfig } from '../../src/config/Config.js';
import type { GatewayAddresses } from '../../src/Gateway.js';
import { JanusHttp, loopbackOverrides } from './http.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FERRY_MAIN = join(ROOT, 'dist', 'src', 'main.js');
/** The same CLI from source through tsx: for tests of src/ changes that must not depend on a fresh `npm run build`. */
export const FERRY_SOURCE_MAIN = join(ROOT, 'src', 'main.ts');

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
/** Only the tail of the child's output is kept, for error messages: the pipes must be drained anyway. */
const OUTPUT_TAIL_CHARS = 8_000;

/** The media range is mandatory: it must be disjoint from every in-process ferry of the same test. */
export type FerryProcessOverrides = ConfigOverrides & {
  media: Partial<FerryConfig['media']> & { rtp_port_min: number; rtp_port_max: number };
};

export interface FerryProcess {
  pid: number;
  /** The effective configuration written to the child's config file. */
  config: FerryConfig;
  http: JanusHttp;
  admin: JanusHttp;
  wsUrl: string;
  addresses: GatewayAddresses;
  /** The child's output so far (tail), for assertion messages. */
  output(): string;
  /** SIGTERM, bounded wait for exit 0 (SIGKILL if it does not come); rejects on any other exit. */
  stop(): Promise<void>;
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Last resort for a test that crashed before its `finally`: no ferry child outlives this process. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) child.kill('SIGKILL');
  });
}

function appendTail(tail: string, chunk: string): string {
  const joined = tail + chunk;
  return joined.length > OUTPUT_TAIL_CHARS ? joined.slice(joined.length - OUTPUT_TAIL_CHARS) : joined;
}

/** The child's environment without FERRY_* variables: the config file alone decides (main.ts applies env overrides last). */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('FERRY_')) env[name] = value;
  return env;
}

export interface FerryProcessOptions {
  /** Node options for the child, before the script (e.g. `--trace-gc`, `--cpu-prof`). */
  nodeArgs?: string[];
  /** Sees every line the child writes on stdout (pino records, `--trace-gc` lines). */
  onStdoutLine?: (line: string) => void;
  /** 'dist' (default): dist/src/main.js as `npm start` runs it; 'source': src/main.ts through tsx. */
  entry?: 'dist' | 'source';
}

export async function startFerryProcess(overrides: FerryProcessOverrides, options: FerryProcessOptions = {}): Promise<FerryProcess> {
  const config = makeConfig({
    ...loopbackOverrides(overrides),
    // info: the "ferry started" line carrying the bound addresses is logged at that level.
    log: { level: 'info', ...overrides.log },
    media: { bind: '127.0.0.1', candidate_addresses: '127.0.0.1', ...overrides.media },
  });
  const dir = mkdtempSync(join(tmpdir(), 'ferry-process-'));
  const configFile = join(dir, 'ferry.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));

  const script = options.entry === 'source' ? ['--import', 'tsx', FERRY_SOURCE_MAIN] : [FERRY_MAIN];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...script, '--config', configFile], {
    cwd: ROOT,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  installExitHook();

  let stdoutTail = '';
  let stderrTail = '';
  let lineBuffer = '';
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitPromise = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      liveChildren.delete(child);
      rmSync(dir, { recursive: true, force: true });
      resolve(exited);
    });
  });
  const output = () => `stdout: ${stdoutTail}\nstderr: ${stderrTail}`;

  const started = new Promise<GatewayAddresses>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ferry process did not log "ferry started" within ${START_TIMEOUT_MS} ms\n${output()}`)), START_TIMEOUT_MS);
    const settle = (fn: () => void) => {
      clearTimeout(timer);
      fn();
    };
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      stderrTail = appendTail(stderrTail, chunk);
    });
    // Keep reading after the start line too: a full pipe would block the child's logger.
    child.stdout!.on('data', (chunk: string) => {
      stdoutTail = appendTail(stdoutTail, chunk);
      lineBuffer += chunk;
      let newline: number;
      while ((newline = lineBuffer.indexOf('\n')) >= 0) {
        const line = lineBuffer.slice(0, newline);
        lineBuffer = lineBuffer.slice(newline + 1);
        options.onStdoutLine?.(line);
        let record: { msg?: unknown; addresses?: GatewayAddresses };
        try {
          record = JSON.parse(line) as typeof record;
        } catch {
          continue; // not a pino line
        }
        if (record.msg === 'ferry started' && record.addresses) {
          const addresses = record.addresses;
          settle(() => resolve(addresses));
        }
      }
      if (lineBuffer.length > OUTPUT_TAIL_CHARS) lineBuffer = lineBuffer.slice(lineBuffer.length - OUTPUT_TAIL_CHARS);
    });
    child.once('error', (err) => settle(() => reject(new Error(`ferry process failed to spawn: ${err.message}`))));
    void exitPromise.then(({ code, signal }) => settle(() => reject(new Error(`ferry process exited (code ${code}, signal ${signal}) before it started\n${output()}`))));
  });

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!exited) child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
      });
      const result = await Promise.race([exitPromise, timedOut]);
      clearTimeout(timer);
      if (result === 'timeout') {
        child.kill('SIGKILL');
        await exitPromise;
        throw new Error(`ferry process ignored SIGTERM for ${STOP_TIMEOUT_MS} ms and was killed\n${output()}`);
      }
      if (result.code !== 0) throw new Error(`ferry process exited with code ${result.code} (signal ${result.signal}) on SIGTERM\n${output()}`);
    })();
    return stopping;
  };

  let addresses: GatewayAddresses;
  try {
    addresses = await started;
  } catch (err) {
    child.kill('SIGKILL');
    await exitPromise;
    throw err;
  }
  const port = (a: { port: number } | undefined, name: string): number => {
    if (!a) throw new Error(`ferry process did not report its ${name} address\n${output()}`);
    return a.port;
  };
  try {
    return {
      pid: child.pid ?? -1,
      config,
      http: new JanusHttp(`http://127.0.0.1:${port(addresses.http, 'http')}${config.http.base_path}`),
      admin: new JanusHttp(`http://127.0.0.1:${port(addresses.adminHttp, 'admin http')}${config.admin_http.base_path}`),
      wsUrl: `ws://127.0.0.1:${port(addresses.websocket, 'websocket')}/`,
      addresses,
      output,
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
