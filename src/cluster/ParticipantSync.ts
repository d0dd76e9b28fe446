/**
 * Participants across nodes. Each node announces its own (local Publishers) in
 * `ferry:feeds:<node>` and on `ferry:events`, in the order they happen; the others show them
 * as ClusterFeeds through the VideoRoom plugin (upsertClusterFeed/removeClusterFeed), so the
 * publisher list, `publishers`/`unpublished`/`leaving` and `listparticipants` are the same
 * everywhere. Events are the fast path (at most once); every tick this node rewrites its own
 * hash from what it has (repair) and reconciles the others' against what it shows.
 */
import type { Logger } from 'pino';

import type { JsonObject, JsonValue } from '../core/Json.js';
import { isJsonObject } from '../core/Json.js';
import type { DataMessage } from '../core/Media.js';
import { assignDefined } from '../core/RequestTable.js';
import { ClusterFeed, feedSpecs } from '../plugins/videoroom/ClusterFeed.js';
import { codecKind } from '../plugins/videoroom/codecs.js';
import type { Feed } from '../plugins/videoroom/Feed.js';
import { Publisher } from '../plugins/videoroom/Publisher.js';
import type { RemoteStreamSpec } from '../plugins/videoroom/RemotePublisher.js';
import type { Room } from '../plugins/videoroom/Room.js';
import type { VideoRoomPlugin } from '../plugins/videoroom/VideoRoomPlugin.js';
import type { ClusterDirectory, FeedEntry } from './ClusterDirectory.js';
import type { NodeHeartbeat } from './NodeHeartbeat.js';

export class ParticipantSync {
  /** This node's writes, in the order its participants changed. */
  private writes: Promise<void> = Promise.resolve();
  /** Other nodes' participant events, applied one after the other (some wait for a room to be mirrored). */
  private applying: Promise<void> = Promise.resolve();
  /** Per node, bumped by each of its participant events: a reconciliation read of that node that overlapped one is not trusted. */
  private readonly epochs = new Map<string, number>();

  constructor(
    private readonly plugin: VideoRoomPlugin,
    private readonly directory: ClusterDirectory,
    private readonly heartbeat: NodeHeartbeat,
    private readonly logger: Logger,
    private readonly ensureRoom: (id: number) => Promise<void>,
    private readonly demandChanged: (room: Room) => void,
  ) {}

  private get nodeId(): string {
    return this.directory.nodeId;
  }

  // ---- this node's participants ----------------------------------------------------------------

  /** A local participant joined, (un)published or left: the directory and the other nodes are told, in order. */
  announce(room: Room, feed: Feed, left: boolean): void {
    const entry = left ? null : entryOf(room, feed);
    const event: JsonObject = { type: 'feed', node: this.nodeId, room: room.id, feed: feed.id, entry: entry as unknown as JsonValue };
    this.writes = this.writes
      .then(() => this.directory.writeFeed(room.id, feed.id, entry, event))
      .catch((err: unknown) => this.logger.warn({ err, room: room.id, feed: feed.id }, 'cluster: participant not announced (the next tick repairs the directory)'));
  }

  /**
   * Data channels between nodes: a local publisher's message goes out on the events channel
   * while some other node consumes the feed (it then has a cascade from here); there, the
   * ClusterFeed relays it to its subscribers like a local publisher's.
   */
  relayData(room: Room, feed: Feed, mid: string, message: DataMessage): void {
    if (![...feed.remotes.keys()].some((k) => k.startsWith('cluster:'))) return;
    const event: JsonObject = { type: 'data', node: this.nodeId, room: room.id, feed: feed.id, mid, label: message.label, protocol: message.protocol, binary: message.binary, data: message.data.toString('base64') };
    this.directory.publish(event).catch((err: unknown) => this.logger.debug({ err }, 'cluster: data message not relayed'));
  }

  /** Rewrites this node's hash from what it has, in line with its writes (never undoing a newer one). */
  async repair(): Promise<void> {
    const repair = this.writes.then(() => this.directory.repairFeeds(this.ownEntries()));
    this.writes = repair.then(
      () => undefined,
      () => undefined,
    );
    const repaired = await repair;
    if (repaired > 0) this.logger.info({ repaired }, 'cluster: own participants rewritten in the directory');
  }

  /** Waits (bounded by the caller) for this node's writes to be out. */
  flushed(): Promise<void> {
    return this.writes;
  }

  private ownEntries(): Map<string, string> {
    const out = new Map<string, string>();
    for (const room of this.plugin.rooms.values()) {
      if (room.destroyed) continue;
      for (const feed of room.participants.values()) {
        if (feed instanceof Publisher && !feed.left) out.set(`${room.id}:${feed.id}`, JSON.stringify(entryOf(room, feed)));
      }
    }
    return out;
  }

  // ---- the other nodes' participants ---------------------------------------------------------------

  /** A `feed` event of another node. */
  onFeedEvent(event: JsonObject): void {
    const node = String(event['node']);
    const roomId = Number(event['room']);
    const feedId = Number(event['feed']);
    const entry = isJsonObject(event['entry']) ? (event['entry'] as unknown as FeedEntry) : null;
    this.bump(node);
    this.heartbeat.heard(node);
    this.applying = this.applying
      .then(() => this.ensureRoom(roomId))
      .then(() => {
        const room = this.plugin.rooms.get(roomId);
        if (!room) return;
        if (entry) this.apply(node, entry);
        else {
          const feed = room.participants.get(feedId);
          if (feed instanceof ClusterFeed && feed.node === node) this.plugin.removeClusterFeed(feed);
        }
        this.demandChanged(room);
      })
      .catch((err: unknown) => this.logger.debug({ err }, 'cluster: participant event not applied'));
  }

  /** A `data` event: a data-channel message of another node's publisher. */
  onDataEvent(event: JsonObject): void {
    const room = this.plugin.rooms.get(Number(event['room']));
    const feed = room?.participants.get(Number(event['feed']));
    if (!room || !(feed instanceof ClusterFeed) || feed.node !== String(event['node']) || typeof event['data'] !== 'string') return;
    room.relayData(feed, String(event['mid']), {
      label: String(event['label'] ?? ''),
      protocol: String(event['protocol'] ?? ''),
      binary: event['binary'] === true,
      data: Buffer.from(event['data'], 'base64'),
    });
  }

  /** A node said it left: its participants leave every room here at once. */
  onNodeLeft(node: string): void {
    this.bump(node);
    for (const room of this.plugin.rooms.values()) {
      for (const feed of [...room.participants.values()]) if (feed instanceof ClusterFeed && feed.node === node) this.plugin.removeClusterFeed(feed);
      this.demandChanged(room);
    }
  }

  /**
   * Shows every live node's participants, and only those. A node's entries are applied (and
   * its missing ones removed) only when none of its events arrived during the read; the
   * participants of a node that is gone are removed whatever else happens; nothing is removed
   * while `recovering` (the directory restarted and the others are still registering again).
   */
  async reconcile(recovering: boolean): Promise<void> {
    const before = new Map(this.epochs);
    const read = new Map<string, FeedEntry[]>();
    for (const node of this.heartbeat.nodes.keys()) if (node !== this.nodeId) read.set(node, await this.directory.feedsOf(node));
    const seen = new Set<string>();
    const trusted = new Set<string>();
    for (const [node, entries] of read) {
      if ((this.epochs.get(node) ?? 0) !== (before.get(node) ?? 0)) continue;
      trusted.add(node);
      for (const e of entries) {
        seen.add(`${node}/${e.room}/${e.feed}`);
        this.apply(node, e);
      }
    }
    for (const node of this.epochs.keys()) if (!this.heartbeat.isLive(node)) this.epochs.delete(node);
    if (recovering) return;
    for (const room of this.plugin.rooms.values()) {
      for (const feed of [...room.participants.values()]) {
        if (!(feed instanceof ClusterFeed)) continue;
        const gone = !this.heartbeat.isLive(feed.node) || (trusted.has(feed.node) && !seen.has(`${feed.node}/${room.id}/${feed.id}`));
        if (gone) this.plugin.removeClusterFeed(feed);
      }
    }
  }

  /** Participants of other nodes shown here. */
  count(): number {
    let n = 0;
    for (const room of this.plugin.rooms.values()) for (const f of room.participants.values()) if (f instanceof ClusterFeed) n++;
    return n;
  }

  private bump(node: string): void {
    this.epochs.set(node, (this.epochs.get(node) ?? 0) + 1);
  }

  private apply(node: string, e: FeedEntry): void {
    const room = this.plugin.rooms.get(e.room);
    if (!room || room.destroyed) return;
    const specs = parseSpecs(e.specs);
    if (specs === null) {
      this.logger.warn({ node, room: e.room, feed: e.feed }, 'cluster: participant with malformed streams ignored');
      return;
    }
    const entry: Parameters<VideoRoomPlugin['upsertClusterFeed']>[3] = { publishing: e.publishing === true, specs };
    assignDefined(entry, { display: typeof e.display === 'string' ? e.display : undefined, metadata: e.metadata });
    if (!this.plugin.upsertClusterFeed(room, node, e.feed, entry)) this.logger.warn({ node, room: e.room, feed: e.feed }, 'cluster: participant id taken here');
  }
}

/** A participant of this node as the directory holds it. */
function entryOf(room: Room, feed: Feed): FeedEntry {
  const entry: FeedEntry = { room: room.id, feed: feed.id, publishing: feed.publishing, specs: feed.publishing ? (feedSpecs(feed) as unknown as JsonValue[]) : [] };
  return assignDefined(entry, { display: feed.display, metadata: feed.metadata });
}

/** Streams another node announced, checked before they build anything here; null when malformed. */
export function parseSpecs(value: unknown): RemoteStreamSpec[] | null {
  if (!Array.isArray(value)) return null;
  const specs: RemoteStreamSpec[] = [];
  for (const v of value) {
    if (!isJsonObject(v)) return null;
    const type = v['type'];
    if (type !== 'audio' && type !== 'video' && type !== 'data') return null;
    if (!Number.isSafeInteger(v['mindex']) || typeof v['mid'] !== 'string') return null;
    const codec = v['codec'];
    if (codec !== null && (typeof codec !== 'string' || (type !== 'data' && codecKind(codec) !== type))) return null;
    const spec: RemoteStreamSpec = {
      type, mindex: v['mindex'] as number, mid: v['mid'], codec: type === 'data' ? null : (codec as string | null),
      disabled: v['disabled'] === true || (type !== 'data' && codec === null),
      simulcast: v['simulcast'] === true, stereo: v['stereo'] === true, fec: v['fec'] !== false, dtx: v['dtx'] === true,
    };
    if (typeof v['description'] === 'string') spec.description = v['description'];
    if (typeof v['h264Profile'] === 'string') spec.h264Profile = v['h264Profile'];
    if (typeof v['vp9Profile'] === 'string') spec.vp9Profile = v['vp9Profile'];
    specs.push(spec);
  }
  return specs;
}
