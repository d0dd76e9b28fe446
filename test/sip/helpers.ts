/** Shared helpers for SIP tests: bounded waits, raw UDP peers, child processes killed by PID. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'uvu';
import type { Emitter, EventMap, EventsOf } from '../../src/sip/Emitter.js';

/** Resolves with the event's arguments, or rejects after `ms`. */
export function waitFor<T extends Emitter<EventMap>, K extends keyof EventsOf<T> & string>(
  emitter: T, event: K, ms = 5000, pred: (...a: EventsOf<T>[K]) => boolean = () => true,
): Promise<EventsOf<T>[K]> {
  type Args = EventsOf<T>[K];
  const em = emitter as unknown as Emitter<Record<K, Args>>;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      em.off(event, on);
      reject(new Error(`timed out after ${ms} ms waiting for '${event}'`));
    }, ms);
    const on = (...args: Args) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      em.off(event, on);
      resolve(args);
    };
    em.on(event, on);
  });
}

export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A raw UDP socket on 127.0.0.1 collecting datagrams. */
export async function rawUdp(): Promise<{ socket: Socket; port: number; received: Buffer[]; send(data: string | Buffer, port: number): void; close(): void }> {
  const socket = createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (m) => received.push(m));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  return {
    socket,
    port: socket.address().port,
    received,
    send: (data, port) => socket.send(typeof data === 'string' ? Buffer.from(data) : data, port, '127.0.0.1'),
    close: () => socket.close(),
  };
}

/** A free port on 127.0.0.1 (TCP and, almost surely, UDP) for peers that need a fixed port. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const a = srv.address();
        const p = typeof a === 'object' && a ? a.port : 0;
        srv.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free port');
}

/** Fails loudly when a peer binary is missing: CI installs it with .ci/install-test-peers.sh. */
export function requireBinary(name: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = r.stdout.trim();
  if (r.status !== 0 || path === '') {
    throw new Error(`'${name}' is not installed: run .ci/install-test-peers.sh (apt-get install sip-tester kamailio kamailio-tls-modules baresip)`);
  }
  return path;
}

export interface Peer {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  /** Signals the peer's whole process group (kamailio forks workers); idempotent. */
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Spawns a peer in its own process group with a hard time limit. `kill()`
 * signals that group by its id, so forked workers go too; once the main
 * process exits, its pipes are closed so orphaned workers cannot keep the
 * test process alive.
 */
export function spawnPeer(cmd: string, args: string[], limitMs: number, cwd?: string): Peer {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...(cwd ? { cwd } : {}) });
  let out = '';
  child.stdout?.on('data', (d) => { out += d; });
  child.stderr?.on('data', (d) => { out += d; });
  let groupAlive = true;
  const kill = (signal: NodeJS.Signals = 'SIGKILL') => {
    if (child.pid === undefined || !groupAlive) return;
    try { process.kill(-child.pid, signal); } catch { groupAlive = false; }
  };
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    kill('SIGKILL'); // leftover workers of this group
    groupAlive = false;
    child.stdout?.destroy();
    child.stderr?.destroy();
    resolve(code);
  }));
  const timer = setTimeout(() => kill('SIGKILL'), limitMs);
  timer.unref();
  void exited.then(() => clearTimeout(timer));
  return { child, output: () => out, exited, kill };
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e) => { clearTimeout(t); reject(e); });
  });
}

export const SDP_OFFER = [
  'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 40000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', '',
].join('\r\n');
export const SDP_ANSWER = SDP_OFFER.replace('40000', '40002').replace('o=- 1 1', 'o=- 2 2');

/** The registrar/proxy config the SIP tests run kamailio with (appends a Service-Route). */
export const KAMAILIO_CFG = join(dirname(fileURLToPath(import.meta.url)), 'kamailio', 'registrar.cfg');

/**
 * Starts kamailio on 127.0.0.1:`port` (UDP and TCP) with `cfg` (default: the registrar above) and
 * `SERVICE_PORT` for its Service-Route;
 * ready once it has written its PID file. The caller keeps the Peer and stops it with stopKamailio.
 */
export async function startKamailio(workdir: string, port: number, servicePort: number, limitMs: number, cfg = KAMAILIO_CFG, extraArgs: string[] = []): Promise<Peer> {
  const pidfile = join(workdir, `kamailio-${port}.pid`);
  const peer = spawnPeer(requireBinary('kamailio'), [
    '-f', cfg, '-DD', '-E', '-P', pidfile, '-A', `SERVICE_PORT=${servicePort}`,
    '-l', `udp:127.0.0.1:${port}`, '-l', `tcp:127.0.0.1:${port}`, '-Y', workdir, '-w', workdir, ...extraArgs,
  ], limitMs, workdir);
  try {
    await until(() => existsSync(pidfile) || peer.child.exitCode !== null, 8000, `kamailio pidfile\n${peer.output()}`);
    if (peer.child.exitCode !== null) throw new Error(`kamailio exited: ${peer.output()}`);
  } catch (err) {
    peer.kill('SIGKILL');
    throw err;
  }
  await new Promise((r) => setTimeout(r, 300));
  return peer;
}

/** Stops kamailio gracefully (SIGTERM to its process group: main and workers), SIGKILL if it lingers. */
export async function stopKamailio(workdir: string, peer: Peer, port: number): Promise<void> {
  peer.kill('SIGTERM');
  const exited = await withTimeout(peer.exited, 5000, 'kamailio exit').then(() => true, () => false);
  if (!exited) peer.kill('SIGKILL');
  rmSync(join(workdir, `kamailio-${port}.pid`), { force: true });
}

/**
 * The kamailio side of a test file: requires the binary, gives each test a fresh work
 * directory, and after each test stops every kamailio it started and removes the directory.
 * Register a file's own after-each cleanup (clients talking to kamailio) before calling this,
 * so it runs while kamailio is still up.
 */
export function useKamailio(suite: Test, options: { dirPrefix: string; limitMs: number; cfg?: string }): {
  /** `cfg` and `extraArgs` (e.g. a TLS listener) override the suite's for this start. */
  start(port: number, servicePort: number, more?: { cfg?: string; extraArgs?: string[] }): Promise<Peer>;
  /** This test's work directory (removed after it). */
  readonly workdir: string;
  stop(peer: Peer, port: number): Promise<void>;
} {
  let workdir = '';
  const peers: Peer[] = [];
  suite.before(() => {
    requireBinary('kamailio');
  });
  suite.before.each(() => {
    workdir = mkdtempSync(join(tmpdir(), options.dirPrefix));
  });
  suite.after.each(async () => {
    for (const p of peers.splice(0)) {
      p.kill('SIGTERM');
      await withTimeout(p.exited, 3000, 'peer exit').catch(() => p.kill('SIGKILL'));
    }
    rmSync(workdir, { recursive: true, force: true });
  });
  return {
    get workdir() {
      return workdir;
    },
    async start(port, servicePort, more) {
      const peer = await startKamailio(workdir, port, servicePort, options.limitMs, more?.cfg ?? options.cfg, more?.extraArgs ?? []);
      peers.push(peer);
      return peer;
    },
    stop: (peer, port) => stopKamailio(workdir, peer, port),
  };
}
