/**
 * The cluster's shared state in Redis (README "Cluster"), every key under `ferry:`:
 *
 *   ferry:room:<room>    hash  config (RoomConfig JSON), permanent ("1"/"0"), fence (last lease token).
 *                              A permanent room has no TTL; another lives while its lease owner
 *                              renews it (ROOM_TTL_FACTOR × lease TTL), so a cluster that is all
 *                              gone leaves no room behind that Janus would not have kept.
 *   ferry:lease:<room>   string "<node>|<fence>", PX lease TTL: the room's owning node (RoomLease.ts).
 *   ferry:node:<node>    string heartbeat JSON (advertise, load), PX lease TTL (NodeHeartbeat.ts).
 *   ferry:feeds:<node>   hash  "<room>:<feed>" → participant JSON, PEXPIREd with the heartbeat:
 *                              everything a node announces dies with it.
 *
 * and two kinds of pub/sub channel (ClusterBus.ts): ferry:events and ferry:rpc:<node>. Keys
 * that name a node live only as long as its heartbeat, whatever way the node ends.
 */
import { Redis } from 'ioredis';

import type { JsonObject, JsonValue } from '../core/Json.js';

/** A non-permanent room outlives its owner's last renewal by this many lease TTLs (a takeover comes first). */
export const ROOM_TTL_FACTOR = 3;

export const keys = {
  room: (id: number) => `ferry:room:${id}`,
  roomPattern: 'ferry:room:*',
  lease: (id: number) => `ferry:lease:${id}`,
  node: (id: string) => `ferry:node:${id}`,
  nodePattern: 'ferry:node:*',
  feeds: (node: string) => `ferry:feeds:${node}`,
  events: 'ferry:events',
  rpc: (node: string) => `ferry:rpc:${node}`,
};

/** A participant as its node announces it (the value in ferry:feeds:<node>). */
export interface FeedEntry {
  room: number;
  feed: number;
  display?: string;
  metadata?: JsonValue;
  publishing: boolean;
  /** RemoteStreamSpec[] as JSON: what other nodes describe and receive. */
  specs: JsonValue[];
}

export interface DirectoryRoom {
  config: JsonObject;
  permanent: boolean;
}

/** Creates the room and its first lease (token 1) unless the room exists. */
const CREATE_ROOM = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'config', ARGV[1], 'permanent', ARGV[2], 'fence', 1)
redis.call('SET', KEYS[2], ARGV[3] .. '|1', 'PX', ARGV[4])
if ARGV[2] ~= '1' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return 1`;

/** Replaces an existing room's config; ARGV[2] = "1" makes it permanent (no TTL from then on). */
const SAVE_ROOM = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'config', ARGV[1])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'permanent', '1')
  redis.call('PERSIST', KEYS[1])
end
return 1`;

type Scripted = Redis & {
  ferryCreateRoom(room: string, lease: string, config: string, permanent: string, node: string, leaseTtl: number, roomTtl: number): Promise<number>;
  ferrySaveRoom(room: string, config: string, permanent: string): Promise<number>;
};

export class ClusterDirectory {
  readonly redis: Scripted;

  constructor(
    url: string,
    readonly nodeId: string,
    readonly leaseTtlMs: number,
  ) {
    // Commands fail fast while Redis is away (one retry), rather than queueing behind a request.
    this.redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000, enableAutoPipelining: true }) as Scripted;
    this.redis.defineCommand('ferryCreateRoom', { numberOfKeys: 2, lua: CREATE_ROOM });
    this.redis.defineCommand('ferrySaveRoom', { numberOfKeys: 1, lua: SAVE_ROOM });
    // Errors are reported by the commands that meet them; an unhandled 'error' event would crash.
    this.redis.on('error', () => undefined);
  }

  get roomTtlMs(): number {
    return this.leaseTtlMs * ROOM_TTL_FACTOR;
  }

  get connected(): boolean {
    return this.redis.status === 'ready';
  }

  connect(): Promise<void> {
    return this.redis.connect();
  }

  /** A second connection to the same server (pub/sub needs one of its own). */
  duplicate(): Redis {
    const dup = this.redis.duplicate();
    dup.on('error', () => undefined);
    return dup;
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  // ---- rooms --------------------------------------------------------------------------------------

  /** Creates the room with this node as its owner (lease token 1); false when it exists. */
  async createRoom(config: JsonObject, permanent: boolean): Promise<boolean> {
    const id = config['room'] as number;
    const done = await this.redis.ferryCreateRoom(keys.room(id), keys.lease(id), JSON.stringify(config), permanent ? '1' : '0', this.nodeId, this.leaseTtlMs, this.roomTtlMs);
    return done === 1;
  }

  /** Writes an edited config; `permanent` true keeps the room without TTL. False when the room is gone. */
  async saveRoom(config: JsonObject, permanent: boolean): Promise<boolean> {
    return (await this.redis.ferrySaveRoom(keys.room(config['room'] as number), JSON.stringify(config), permanent ? '1' : '0')) === 1;
  }

  async deleteRoom(id: number): Promise<void> {
    await this.redis.del(keys.room(id), keys.lease(id));
  }

  async roomExists(id: number): Promise<boolean> {
    return (await this.redis.exists(keys.room(id))) === 1;
  }

  async getRoom(id: number): Promise<DirectoryRoom | null> {
    const [config, permanent] = await this.redis.hmget(keys.room(id), 'config', 'permanent');
    if (config === null || config === undefined) return null;
    try {
      const parsed = JSON.parse(config) as unknown;
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
      return { config: parsed as JsonObject, permanent: permanent === '1' };
    } catch {
      return null;
    }
  }

  /** Every room id in the directory. */
  async roomIds(): Promise<number[]> {
    const ids: number[] = [];
    for (const key of await this.scan(keys.roomPattern)) {
      const id = Number(key.slice('ferry:room:'.length));
      if (Number.isSafeInteger(id) && id > 0) ids.push(id);
    }
    return ids;
  }

  /** The lease value ("<node>|<fence>") of each room, null where there is none. */
  async leases(ids: number[]): Promise<(string | null)[]> {
    if (ids.length === 0) return [];
    return this.redis.mget(ids.map((id) => keys.lease(id)));
  }

  // ---- nodes and their participants ---------------------------------------------------------------

  /** Every node key and its heartbeat JSON. */
  async nodes(): Promise<Map<string, JsonObject>> {
    const found = await this.scan(keys.nodePattern);
    const out = new Map<string, JsonObject>();
    if (found.length === 0) return out;
    const values = await this.redis.mget(found);
    found.forEach((key, i) => {
      const v = values[i];
      if (v === null || v === undefined) return;
      try {
        out.set(key.slice('ferry:node:'.length), JSON.parse(v) as JsonObject);
      } catch {
        /* not ours: skipped */
      }
    });
    return out;
  }

  /** One heartbeat: the node key and the node's participants live one more lease TTL. */
  async heartbeat(info: JsonObject): Promise<void> {
    await this.redis.multi().set(keys.node(this.nodeId), JSON.stringify(info), 'PX', this.leaseTtlMs).pexpire(keys.feeds(this.nodeId), this.leaseTtlMs).exec();
  }

  /** Announces (or withdraws, `entry` null) a participant of this node, with the event that tells the others at once. */
  async writeFeed(room: number, feed: number, entry: FeedEntry | null, event: JsonObject): Promise<void> {
    const tx = this.redis.multi();
    if (entry) tx.hset(keys.feeds(this.nodeId), `${room}:${feed}`, JSON.stringify(entry)).pexpire(keys.feeds(this.nodeId), this.leaseTtlMs);
    else tx.hdel(keys.feeds(this.nodeId), `${room}:${feed}`);
    tx.publish(keys.events, JSON.stringify(event));
    await tx.exec();
  }

  /**
   * Makes this node's participant hash exactly `entries` (field → JSON): what a failed write or
   * an expiry during a Redis outage lost is written again, what should be gone is deleted.
   */
  async repairFeeds(entries: Map<string, string>): Promise<number> {
    const key = keys.feeds(this.nodeId);
    const stored = await this.redis.hgetall(key);
    const tx = this.redis.multi();
    let changes = 0;
    for (const [field, value] of entries) {
      if (stored[field] !== value) {
        tx.hset(key, field, value);
        changes++;
      }
    }
    for (const field of Object.keys(stored)) {
      if (!entries.has(field)) {
        tx.hdel(key, field);
        changes++;
      }
    }
    if (changes === 0) return 0;
    tx.pexpire(key, this.leaseTtlMs);
    await tx.exec();
    return changes;
  }

  /** The Redis server's run id: a new one means the server restarted (and, without persistence, lost every key). */
  async runId(): Promise<string | null> {
    const info = await this.redis.info('server');
    return /^run_id:(\w+)/m.exec(info)?.[1] ?? null;
  }

  /** Whether another process heartbeats under this node's id right now. */
  async nodeIdTaken(): Promise<boolean> {
    return (await this.redis.exists(keys.node(this.nodeId))) === 1;
  }

  /** What a node announces, or null when it announces nothing (no key). */
  async feedsOf(node: string): Promise<FeedEntry[]> {
    const all = await this.redis.hgetall(keys.feeds(node));
    const out: FeedEntry[] = [];
    for (const v of Object.values(all)) {
      try {
        const e = JSON.parse(v) as FeedEntry;
        if (Number.isSafeInteger(e.room) && Number.isSafeInteger(e.feed)) out.push(e);
      } catch {
        /* malformed: skipped */
      }
    }
    return out;
  }

  /** This node leaves: its heartbeat and participants go at once rather than at TTL expiry. */
  async removeNode(): Promise<void> {
    await this.redis.del(keys.node(this.nodeId), keys.feeds(this.nodeId));
  }

  async publish(event: JsonObject): Promise<void> {
    await this.redis.publish(keys.events, JSON.stringify(event));
  }

  /** SCAN with a pattern; bounded by the keyspace (the cursor returns to 0). */
  private async scan(pattern: string): Promise<string[]> {
    const out = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      for (const k of batch) out.add(k);
      cursor = next;
    } while (cursor !== '0');
    return [...out];
  }
}
