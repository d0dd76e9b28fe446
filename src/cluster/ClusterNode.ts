/**
 * One ferry node of a cluster (README "Cluster"): the VideoRoom's link to the others.
 *
 * - Rooms: every node mirrors every room of the directory (ClusterDirectory.ts); create, edit,
 *   allowed and destroy run here and are written through to it, `exists` asks it, `list` first
 *   mirrors what it holds. A room's owner (RoomLease.ts) keeps it alive; when the owner's
 *   lease expires, the preferred live node takes the room over with a new fencing token.
 * - Participants: each node announces its own, the others show them (ParticipantSync.ts) and
 *   cascade their media on demand (CascadeManager.ts).
 * - Every tick (a third of the lease TTL): heartbeat, lease renewal, then reconciliation of
 *   rooms, leases and participants against the directory. Events are only the fast path;
 *   what a lost event or a dead node leaves behind, the next tick repairs.
 */
import type { Logger } from 'pino';

import type { JsonObject, JsonValue } from '../core/Json.js';
import type { DataMessage } from '../core/Media.js';
import type { LocalFeedChange, VideoRoomClusterLink } from '../plugins/videoroom/ClusterLink.js';
import { ClusterFeed } from '../plugins/videoroom/ClusterFeed.js';
import { VideoRoomError, VideoRoomErrorCode, errorData } from '../plugins/videoroom/errors.js';
import type { Feed } from '../plugins/videoroom/Feed.js';
import { Publisher } from '../plugins/videoroom/Publisher.js';
import { Room, type RoomConfig } from '../plugins/videoroom/Room.js';
import { restoreConfig } from '../plugins/videoroom/RoomStore.js';
import type { VideoRoomPlugin } from '../plugins/videoroom/VideoRoomPlugin.js';
import { CascadeManager } from './CascadeManager.js';
import { ClusterBus } from './ClusterBus.js';
import { ClusterDirectory } from './ClusterDirectory.js';
import { NodeHeartbeat, type NodeLoad } from './NodeHeartbeat.js';
import { ParticipantSync } from './ParticipantSync.js';
import { RoomLeases, parseLease } from './RoomLease.js';

export interface ClusterNodeOptions {
  redisUrl: string;
  nodeId: string;
  advertise: string;
  leaseTtlMs: number;
  plugin: VideoRoomPlugin;
  logger: Logger;
  load: () => NodeLoad;
}

/** Figures for /metrics. */
export interface ClusterGauges {
  redis_up: number;
  nodes: number;
  rooms: number;
  rooms_owned: number;
  remote_participants: number;
  cascades_in: number;
  cascades_out: number;
}

type State = 'new' | 'running' | 'paused' | 'stopped';

/** A room missing from this many directory scans in a row was destroyed elsewhere (its event was lost). */
const MISSING_SCANS_TO_DROP = 2;
/** A room without owner is taken by the preferred node at once, by any node after this many ticks. */
const OWNERLESS_TICKS_FOR_ANY = 3;
/** Shutdown steps that talk to Redis give up after this long (Redis may be what is gone). */
const STOP_STEP_MS = 2000;

export class ClusterNode implements VideoRoomClusterLink {
  readonly nodeId: string;
  readonly directory: ClusterDirectory;
  readonly heartbeat: NodeHeartbeat;
  readonly leases: RoomLeases;
  readonly bus: ClusterBus;
  readonly cascades: CascadeManager;
  readonly participants: ParticipantSync;
  private readonly plugin: VideoRoomPlugin;
  private readonly logger: Logger;
  private state: State = 'new';
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private tickErrors = 0;
  private redisUp = false;
  private readonly missingScans = new Map<number, number>();
  private readonly ownerlessTicks = new Map<number, number>();
  /** Each room's owner as last read. */
  private readonly owners = new Map<number, { node: string; fence: number }>();
  /** Rooms created or destroyed here whose directory write is under way (the tick leaves them alone). */
  private readonly creating = new Set<number>();
  private readonly destroying = new Set<number>();
  private readonly demandQueued = new Set<Room>();
  /** Rooms the directory keeps without TTL (what a re-registration after a Redis restart must say). */
  private readonly permanentRooms = new Set<number>();
  /** The Redis server's run id as last seen (a change: it restarted). */
  private redisRunId: string | null = null;
  /** Until then (after a Redis restart) nothing is removed for being absent: the other nodes are still registering again. */
  private recoveringUntil = 0;

  constructor(private readonly options: ClusterNodeOptions) {
    this.nodeId = options.nodeId;
    this.plugin = options.plugin;
    this.logger = options.logger.child({ component: 'cluster', node: options.nodeId });
    this.directory = new ClusterDirectory(options.redisUrl, options.nodeId, options.leaseTtlMs);
    this.heartbeat = new NodeHeartbeat(this.directory, options.advertise, options.load);
    this.leases = new RoomLeases(this.directory.redis, options.nodeId, options.leaseTtlMs, this.directory.roomTtlMs);
    this.bus = new ClusterBus(this.directory.duplicate(), this.directory.redis, options.nodeId, this.logger, (e) => this.onEvent(e));
    this.cascades = new CascadeManager(this.plugin, this.bus, options.nodeId, options.advertise, this.logger);
    this.participants = new ParticipantSync(this.plugin, this.directory, this.heartbeat, this.logger, (id) => this.ensureRoom(id), (room) => this.demandChanged(room));
    this.bus.handle('kick', (params) => this.kickLocal(params));
  }

  // ---- lifecycle -------------------------------------------------------------------------------------

  /** Connects, registers this node's own rooms, reads the cluster, and starts ticking. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`cluster node cannot start from state ${this.state}`);
    try {
      await this.directory.connect();
      await this.bus.start();
    } catch (err) {
      await this.closeConnections();
      throw new Error(`cluster: cannot reach Redis at ${redactUrl(this.options.redisUrl)}: ${err instanceof Error ? err.message : String(err)}`);
    }
    // Two processes under one id would each take the other's participants for their own.
    if (await this.directory.nodeIdTaken().catch(() => false)) {
      await this.closeConnections();
      throw new Error(`cluster: node_id "${this.nodeId}" is in use by a live node (a crashed one's heartbeat expires within cluster.lease_ttl)`);
    }
    this.state = 'running';
    this.plugin.cluster = this;
    // Rooms from this node's configuration (and rooms file): the directory's version wins when
    // the room is already there; they are not permanent in the directory, since every node that
    // has them configured registers them again.
    for (const room of [...this.plugin.rooms.values()]) {
      if (await this.directory.createRoom(room.config as unknown as JsonObject, false)) this.leases.adopt(room.id, 1);
      else await this.mirror(room.id);
    }
    this.redisRunId = await this.directory.runId();
    await this.tick();
    this.timer = setInterval(() => void this.tick(), Math.max(100, Math.floor(this.options.leaseTtlMs / 3)));
    this.timer.unref();
    this.logger.info({ advertise: this.options.advertise, nodes: [...this.heartbeat.nodes.keys()] }, 'cluster: node joined');
  }

  /** Shutdown, first step: no more ticks and no more mirroring; this node's own writes still go out. */
  pause(): void {
    if (this.state !== 'running') return;
    this.state = 'paused';
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Shutdown, last step (after the gateway ended its sessions): leases released, this node's keys deleted, the others told. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'new') return;
    this.pause();
    this.state = 'stopped';
    this.plugin.cluster = null;
    this.cascades.clear();
    await bounded(this.participants.flushed(), STOP_STEP_MS);
    const alone = [...this.heartbeat.nodes.keys()].every((n) => n === this.nodeId);
    const owned = [...this.leases.owned.keys()];
    await bounded(
      (async () => {
        await this.leases.releaseAll();
        // The last node going: rooms that are not permanent end with the cluster, as with Janus.
        if (alone) {
          for (const id of owned) {
            const r = await this.directory.getRoom(id);
            if (r && !r.permanent) await this.directory.deleteRoom(id);
          }
        }
        await this.directory.removeNode();
        await this.directory.publish({ type: 'node-left', node: this.nodeId });
      })(),
      STOP_STEP_MS,
    ).catch((err: unknown) => this.logger.warn({ err }, 'cluster: could not leave cleanly; keys expire with their TTL'));
    await this.closeConnections();
    this.logger.info('cluster: node left');
  }

  private async closeConnections(): Promise<void> {
    await bounded(this.bus.close(), STOP_STEP_MS).catch(() => undefined);
    await bounded(this.directory.close(), STOP_STEP_MS).catch(() => undefined);
    this.directory.redis.disconnect();
  }

  // ---- the tick: heartbeat, leases, reconciliation ------------------------------------------------------

  private async tick(): Promise<void> {
    if (this.ticking || this.state !== 'running') return;
    this.ticking = true;
    try {
      await this.heartbeat.beat();
      await this.recoverIfRestarted();
      for (const room of await this.leases.renewAll()) this.logger.warn({ room }, 'cluster: lease lost');
      await this.participants.repair();
      await this.syncRooms();
      await this.participants.reconcile(this.recovering);
      this.cascades.dropDeadTargets((n) => this.heartbeat.isLive(n));
      for (const room of this.plugin.rooms.values()) this.cascades.followDemand(room);
      this.redisUp = true;
    } catch (err) {
      this.tickErrors++;
      if (this.redisUp) this.logger.warn({ err }, 'cluster: directory unreachable');
      this.redisUp = false;
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Redis restarted (a new run id): without persistence it lost the directory. Every node
   * registers again the rooms it knows, the first to do so owning them (fencing tokens start
   * over); the participants come back with each node's repair below, heartbeats with the beat.
   */
  private async recoverIfRestarted(): Promise<void> {
    const runId = await this.directory.runId();
    const restarted = this.redisRunId !== null && runId !== null && runId !== this.redisRunId;
    this.redisRunId = runId;
    if (!restarted) return;
    this.recoveringUntil = Date.now() + this.options.leaseTtlMs * 2;
    let registered = 0;
    for (const room of [...this.plugin.rooms.values()]) {
      if (room.destroyed) continue;
      if (await this.directory.createRoom(room.config as unknown as JsonObject, this.permanentRooms.has(room.id))) {
        this.leases.adopt(room.id, 1);
        registered++;
      }
    }
    this.logger.warn({ registered }, 'cluster: the directory restarted; rooms registered again');
  }

  /** Mirrors the directory's rooms, drops those destroyed elsewhere, takes over rooms without owner. */
  private async syncRooms(): Promise<void> {
    const ids = await this.directory.roomIds();
    const known = new Set(ids);
    for (const id of ids) if (!this.plugin.rooms.has(id) && !this.destroying.has(id)) await this.mirror(id);
    for (const room of [...this.plugin.rooms.values()]) {
      if (known.has(room.id) || this.creating.has(room.id) || this.recovering) {
        this.missingScans.delete(room.id);
        continue;
      }
      const n = (this.missingScans.get(room.id) ?? 0) + 1;
      this.missingScans.set(room.id, n);
      if (n >= MISSING_SCANS_TO_DROP) {
        this.missingScans.delete(room.id);
        this.leases.forget(room.id);
        this.plugin.dropRoom(room);
      }
    }
    const values = await this.directory.leases(ids);
    const preferred = this.heartbeat.preferredNode() === this.nodeId;
    for (const [i, id] of ids.entries()) {
      const lease = parseLease(values[i] ?? null);
      if (lease) {
        this.owners.set(id, lease);
        this.ownerlessTicks.delete(id);
        continue;
      }
      this.owners.delete(id);
      const ticks = (this.ownerlessTicks.get(id) ?? 0) + 1;
      this.ownerlessTicks.set(id, ticks);
      if (!preferred && ticks < OWNERLESS_TICKS_FOR_ANY) continue;
      const fence = await this.leases.acquire(id);
      if (fence !== null) {
        this.owners.set(id, { node: this.nodeId, fence });
        this.ownerlessTicks.delete(id);
        this.logger.info({ room: id, fence }, 'cluster: room taken over');
      }
    }
    for (const id of [...this.owners.keys()]) if (!known.has(id)) this.owners.delete(id);
  }

  private get recovering(): boolean {
    return Date.now() < this.recoveringUntil;
  }

  // ---- events from the other nodes -----------------------------------------------------------------

  private onEvent(event: JsonObject): void {
    if (this.state !== 'running') return;
    const node = String(event['node']);
    const roomId = Number(event['room']);
    switch (event['type']) {
      case 'feed':
        this.participants.onFeedEvent(event);
        return;
      case 'data':
        this.participants.onDataEvent(event);
        return;
      case 'room':
        void this.mirror(roomId).catch((err: unknown) => this.logger.debug({ err }, 'cluster: room event not applied'));
        return;
      case 'room-destroyed': {
        const room = this.plugin.rooms.get(roomId);
        this.leases.forget(roomId);
        if (room) this.plugin.dropRoom(room);
        return;
      }
      case 'node-left':
        this.heartbeat.left(node);
        this.participants.onNodeLeft(node);
        this.cascades.dropDeadTargets((n) => n !== node && this.heartbeat.isLive(n));
        return;
      default:
        return;
    }
  }

  /** Loads (or refreshes) a room from the directory into this node's rooms. */
  private async mirror(id: number): Promise<void> {
    const stored = await this.directory.getRoom(id);
    if (!stored) return;
    if (stored.permanent) this.permanentRooms.add(id);
    else this.permanentRooms.delete(id);
    const config: RoomConfig = restoreConfig(id, stored.config);
    const room = this.plugin.rooms.get(id);
    if (!room) {
      this.plugin.addRoom(new Room(config));
      return;
    }
    if (JSON.stringify(room.config) === JSON.stringify(config)) return;
    room.config = config;
    for (const p of room.participants.values()) if (p instanceof Publisher) p.roomEdited();
  }

  // ---- VideoRoomClusterLink -------------------------------------------------------------------------

  async roomRequest(name: string, body: JsonObject, local: () => JsonObject): Promise<JsonObject> {
    const id = typeof body['room'] === 'number' ? body['room'] : undefined;
    try {
      switch (name) {
        case 'exists': {
          const reply = local();
          if (reply['error_code'] !== undefined || id === undefined) return reply;
          return { videoroom: 'success', room: id, exists: await this.directory.roomExists(id) };
        }
        case 'list':
          for (const roomId of await this.directory.roomIds()) if (!this.plugin.rooms.has(roomId)) await this.mirror(roomId);
          return local();
        case 'create':
          return await this.create(body, local, id);
        case 'destroy': {
          if (id !== undefined) await this.ensureRoom(id);
          const reply = local();
          if (reply['videoroom'] !== 'destroyed' || id === undefined) return reply;
          this.leases.forget(id);
          this.permanentRooms.delete(id);
          this.destroying.add(id);
          try {
            await this.directory.deleteRoom(id);
            await this.directory.publish({ type: 'room-destroyed', node: this.nodeId, room: id });
          } finally {
            this.destroying.delete(id);
          }
          return reply;
        }
        default: {
          // edit, allowed
          if (id !== undefined) await this.ensureRoom(id);
          const reply = local();
          const room = id !== undefined ? this.plugin.rooms.get(id) : undefined;
          if (reply['error_code'] !== undefined || !room) return reply;
          await this.directory.saveRoom(room.config as unknown as JsonObject, body['permanent'] === true);
          if (body['permanent'] === true) this.permanentRooms.add(room.id);
          await this.directory.publish({ type: 'room', node: this.nodeId, room: room.id });
          return reply;
        }
      }
    } catch (err) {
      if (err instanceof VideoRoomError) throw err;
      this.logger.warn({ err, request: name }, 'cluster: directory request failed');
      throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, `Cluster directory unavailable (${err instanceof Error ? err.message : String(err)})`);
    }
  }

  private async create(body: JsonObject, local: () => JsonObject, requested: number | undefined): Promise<JsonObject> {
    // A room another node made that this one has not mirrored yet: mirrored first, so `create` answers 427.
    if (requested !== undefined) await this.ensureRoom(requested);
    const reply = local();
    if (reply['videoroom'] !== 'created') return reply;
    const id = reply['room'] as number;
    const room = this.plugin.rooms.get(id);
    if (!room) return reply;
    this.creating.add(id);
    let created: boolean;
    try {
      created = await this.directory.createRoom(room.config as unknown as JsonObject, body['permanent'] === true);
    } catch (err) {
      this.plugin.dropRoom(room);
      throw err;
    } finally {
      this.creating.delete(id);
    }
    if (!created) {
      // Another node created the same id at the same moment: its room is the room.
      this.plugin.dropRoom(room);
      await this.mirror(id);
      return errorData(new VideoRoomError(VideoRoomErrorCode.ROOM_EXISTS, `Room ${id} already exists`), this.logger);
    }
    this.leases.adopt(id, 1);
    this.owners.set(id, { node: this.nodeId, fence: 1 });
    if (body['permanent'] === true) this.permanentRooms.add(id);
    await this.directory.publish({ type: 'room', node: this.nodeId, room: id });
    return reply;
  }

  async ensureRoom(id: number): Promise<void> {
    if (this.state !== 'running' || !Number.isSafeInteger(id) || this.plugin.rooms.has(id)) return;
    await this.mirror(id);
  }

  localFeed(room: Room, feed: Feed, change: LocalFeedChange): void {
    if (this.state === 'new' || this.state === 'stopped' || feed instanceof ClusterFeed) return;
    this.participants.announce(room, feed, change === 'left');
  }

  localData(room: Room, feed: Feed, mid: string, message: DataMessage): void {
    if (this.state === 'running') this.participants.relayData(room, feed, mid, message);
  }

  demandChanged(room: Room): void {
    if (this.state !== 'running' || this.demandQueued.has(room)) return;
    this.demandQueued.add(room);
    setImmediate(() => {
      this.demandQueued.delete(room);
      if (this.state === 'running') this.cascades.followDemand(room);
    });
  }

  kickRemote(room: Room, feed: Feed): void {
    if (!(feed instanceof ClusterFeed)) return;
    this.bus.request(feed.node, 'kick', { room: room.id, feed: feed.id }).catch((err: unknown) => this.logger.warn({ err, room: room.id, feed: feed.id }, 'cluster: kick not delivered'));
  }

  private kickLocal(params: JsonObject): JsonObject {
    const room = this.plugin.rooms.get(Number(params['room']));
    const feed = room?.participants.get(Number(params['feed']));
    if (!(feed instanceof Publisher)) throw new Error('no such participant here');
    this.plugin.removeParticipant(feed, 'kicked');
    return { kicked: feed.id };
  }

  // ---- what operators see --------------------------------------------------------------------------

  status(): JsonObject {
    return {
      node_id: this.nodeId,
      advertise: this.options.advertise,
      redis: this.directory.connected ? 'connected' : 'disconnected',
      lease_ttl_ms: this.options.leaseTtlMs,
      nodes: [...this.heartbeat.nodes.values()].map((n) => ({ node_id: n.node_id, advertise: n.advertise, load: n.load as unknown as JsonValue, self: n.node_id === this.nodeId })),
      rooms: this.plugin.rooms.size,
      rooms_owned: [...this.leases.owned].map(([room, fence]) => ({ room, fence })),
      room_owners: [...this.owners].map(([room, o]) => ({ room, node: o.node, fence: o.fence })),
      remote_participants: this.participants.count(),
      cascades_in: this.cascades.cascadesIn(),
      cascades_out: this.cascades.cascadesOut(),
      cascades_started: this.cascades.started,
      cascade_failures: this.cascades.failures,
      tick_errors: this.tickErrors,
    };
  }

  gauges(): ClusterGauges {
    const s = this.status();
    return {
      redis_up: this.directory.connected ? 1 : 0,
      nodes: this.heartbeat.nodes.size,
      rooms: this.plugin.rooms.size,
      rooms_owned: this.leases.owned.size,
      remote_participants: this.participants.count(),
      cascades_in: (s['cascades_in'] as JsonValue[]).length,
      cascades_out: (s['cascades_out'] as JsonValue[]).length,
    };
  }
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

function bounded<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
