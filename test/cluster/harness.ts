/**
 * A ferry cluster on loopback: a real `redis-server` (Debian's, started here on a free
 * 127.0.0.1 port with no persistence and a temporary directory, stopped at the end) and ferry
 * processes (`node dist/src/main.js`, as `npm start` runs) joined to it with short leases.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Redis } from 'ioredis';
import * as assert from 'uvu/assert';
import type { RTCPeerConnection } from 'werift';

import type { ConfigOverrides } from '../../src/config/Config.js';
import { pollUntil } from '../helpers/browser.js';
import { mediaRange } from '../helpers/ferry.js';
import { startFerryProcess, type FerryProcess } from '../helpers/ferryProcess.js';
import type { Json } from '../helpers/http.js';
import { freePort } from '../sip/helpers.js';
import { closeAll } from '../videoroom-e2e/harness.js';

export const REDIS_SERVER = process.env.FERRY_REDIS_SERVER ?? '/usr/bin/redis-server';
/** Short leases so node loss shows within seconds (README: the default is 10 s). */
export const LEASE_TTL_S = 2;
const ADMIN_SECRET = 'janusoverlord';

export interface RedisServer {
  url: string;
  port: number;
  client: Redis;
  /** Every key in the server (KEYS is fine on a test server). */
  keys(): Promise<string[]>;
  stop(): Promise<void>;
}

/** `port`: a given one (a restart on the port of a stopped server), else a free one. */
export async function startRedis(port?: number): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-redis-'));
  port ??= await freePort();
  const child: ChildProcess = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    void exited.then(() => reject(new Error(`redis-server exited: ${output}`)));
  });
  process.on('exit', () => child.kill('SIGKILL'));
  try {
    await ready;
  } catch (err) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  return {
    url,
    port,
    client,
    keys: () => client.keys('*'),
    stop: async () => {
      client.disconnect();
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Node {
  name: string;
  proc: FerryProcess;
  /** Set by killNode: a crashed node is not stopped. */
  killed: boolean;
  status(): Promise<Json>;
  cluster(): Promise<Json>;
}

/** Three disjoint thirds of this test process's 100 media ports. */
export function nodeRanges(): { rtp_port_min: number; rtp_port_max: number }[] {
  const a = mediaRange(50);
  const b = mediaRange(50);
  const base = Math.min(a.rtp_port_min, b.rtp_port_min);
  return [0, 1, 2].map((i) => ({ rtp_port_min: base + i * 33, rtp_port_max: base + i * 33 + 32 }));
}

export async function startNode(name: string, redisUrl: string, range: { rtp_port_min: number; rtp_port_max: number }, overrides: ConfigOverrides = {}): Promise<Node> {
  const proc = await startFerryProcess({
    ...overrides,
    videoroom: { demo_room: false, ...overrides.videoroom },
    textroom: { demo_room: false },
    cluster: { redis_url: redisUrl, node_id: name, advertise: '127.0.0.1', lease_ttl: LEASE_TTL_S, ...overrides.cluster },
    media: { ...range, ...overrides.media },
  });
  const status = async () => {
    const reply = await proc.admin.post('', { janus: 'ferry_status', admin_secret: ADMIN_SECRET });
    assert.is(reply['janus'], 'success', JSON.stringify(reply));
    return reply['status'] as Json;
  };
  return { name, proc, killed: false, status, cluster: async () => (await status())['cluster'] as Json };
}

/** Starts nodes one after the other (each joins a cluster the earlier ones already formed). */
export async function startNodes(names: string[], redisUrl: string, overrides: ConfigOverrides = {}): Promise<Node[]> {
  const ranges = nodeRanges();
  const nodes: Node[] = [];
  try {
    for (const [i, name] of names.entries()) nodes.push(await startNode(name, redisUrl, ranges[i]!, overrides));
  } catch (err) {
    await stopNodes(nodes);
    throw err;
  }
  return nodes;
}

export async function stopNodes(nodes: Node[]): Promise<void> {
  const results = await Promise.allSettled(nodes.filter((n) => !n.killed).map((n) => n.proc.stop()));
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

/** SIGKILL, as a crash: nothing of the node's shutdown runs. */
export function killNode(node: Node): void {
  node.killed = true;
  process.kill(node.proc.pid, 'SIGKILL');
}

/** pollUntil at the pace of cluster ticks (a tenth of a second). */
export const waitFor = <T>(read: () => Promise<T>, ok: (v: T) => boolean, ms: number, step = 100): Promise<T> => pollUntil(read, ok, ms, step);

export interface Cluster {
  redis: RedisServer;
  nodes: Node[];
  /** The werift peers the test opens (closed at the end, whatever happened). */
  peers: RTCPeerConnection[];
  /** Stops every node still running (a stopped node leaves at once) and checks that Redis holds no key. */
  stopLeavingNoKey(): Promise<void>;
}

/**
 * Runs `body` against a real redis-server and the nodes `names` (started in that order); the
 * peers, nodes and Redis are released however `body` ends.
 */
export async function withCluster(names: string[], body: (cluster: Cluster) => Promise<void>, overrides: ConfigOverrides = {}): Promise<void> {
  const redis = await startRedis();
  const peers: RTCPeerConnection[] = [];
  let nodes: Node[] = [];
  try {
    nodes = await startNodes(names, redis.url, overrides);
    await body({
      redis,
      nodes,
      peers,
      stopLeavingNoKey: async () => {
        await stopNodes(nodes);
        assert.equal(await redis.keys(), [], 'no key left once the nodes stopped');
      },
    });
  } finally {
    await closeAll(peers);
    await stopNodes(nodes).catch(() => undefined);
    await redis.stop();
  }
}
