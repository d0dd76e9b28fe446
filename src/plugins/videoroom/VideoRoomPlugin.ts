/**
 * `janus.plugin.videoroom`: rooms, publishers, 1.x multistream subscribers,
 * remote publishers (cascading) and RTP forwarders, with Janus's request
 * names, event shapes and error codes (janus_videoroom.c). Media goes only
 * through ferry's seam: publishers' PeerConnections answer
 * (`HandleMedia.createAnswer`), subscribers' offer (`createOffer`), and
 * `MediaRouter` connects outputs to sources; plain RTP legs come from
 * `MediaServices.openRtpLeg`, each owned by exactly one object here.
 *
 * This file holds the plugin (rooms, the plain RTP legs it opens, the
 * participant teardown every ending goes through). The synchronous requests
 * are the table in syncRequests.ts (runs in roomRequests.ts,
 * forwardingRequests.ts, remotePublisherRequests.ts); VideoRoomHandle.ts
 * holds the per-handle asynchronous requests.
 */
import type { Logger } from 'pino';
import { SystemClock, type Clock } from '../../time/Clock.js';
import { freshId } from '../../core/FreshId.js';
import type { JsonObject, JsonValue } from '../../core/Json.js';
import type { MediaServices, RtpLeg, RtpLegOptions } from '../../media/Routing.js';
import { createLogger } from '../../log/logger.js';
import type { Plugin, PluginContext, PluginHandle, PluginInfo } from '../../core/Plugin.js';
import { VideoRoomError, VideoRoomErrorCode, errorData, noSuchRoom } from './errors.js';
import { ClusterFeed } from './ClusterFeed.js';
import { DIRECTORY_REQUESTS, type VideoRoomClusterLink } from './ClusterLink.js';
import type { RemoteStreamSpec } from './RemotePublisher.js';
import { Publisher } from './Publisher.js';
import { RemotePublisher } from './RemotePublisher.js';
import { Room, defaultRoomConfig, type RoomConfig } from './Room.js';
import { RoomStore } from './RoomStore.js';
import { VideoRoomHandle } from './VideoRoomHandle.js';
import * as R from './requests.js';
import { runSyncRequest } from './syncRequests.js';

export const VIDEOROOM_PACKAGE = 'janus.plugin.videoroom';

export interface VideoRoomConfig {
  /** JSON file holding permanent rooms; null: `permanent: true` is refused with 499. */
  roomsFile: string | null;
  /** When set, `create` needs it (and `list` shows private rooms to who gives it). */
  adminKey: string | null;
  /** Janus `lock_rtp_forward`: with an admin_key, RTP forwarding and remote publisher requests need it too. */
  lockRtpForward: boolean;
  /**
   * Rooms over all clients that `create` through the client API may reach (0 = no limit);
   * Admin `message_plugin` is exempt.
   */
  maxRooms: number;
  /** Longest `description` / `new_description`, in characters. */
  maxDescriptionLength: number;
  /** Per-client room quota (core Quotas); absent: only maxRooms applies. */
  quotas: RoomQuotas | null;
  /** Rooms that exist from start (like the room sections of janus.plugin.videoroom.jcfg); not written to the rooms file. */
  rooms: Array<Partial<RoomConfig> & { room: number }>;
}

/** What the plugin needs from the core's per-client quotas. */
export interface RoomQuotas {
  /** Counts a room for the session's client; throws QuotaExceededError when it is at its limit. */
  acquireRoom(sessionId: number): () => void;
  /** Counts a port lease (plain RTP leg) like a PeerConnection of the session's client. */
  acquirePeerConnection(sessionId: number): () => void;
  /** Counts and throws a refusal decided here (max_rooms). */
  refuse(limit: 'max_rooms', max: number, what: string): never;
}

export interface VideoRoomPluginOptions {
  media: MediaServices | null;
  config?: Partial<VideoRoomConfig>;
  clock?: Clock;
  logger?: Logger;
}

export class VideoRoomPlugin implements Plugin {
  readonly info: PluginInfo = {
    package: VIDEOROOM_PACKAGE,
    name: 'JANUS VideoRoom plugin',
    description: 'A SFU videoconferencing plugin (ferry implementation): rooms, multistream subscribers, cascading and RTP forwarding.',
    author: 'ferry',
    version: 19,
    versionString: '0.0.19',
  };

  readonly rooms = new Map<number, Room>();
  readonly services: MediaServices | null;
  readonly config: VideoRoomConfig;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Where permanent rooms are kept; null: `permanent: true` is refused with 499. */
  readonly store: RoomStore | null;
  private readonly handles = new Set<VideoRoomHandle>();
  /** The ferry cluster this node is part of (README "Cluster"); null: a gateway on its own. */
  cluster: VideoRoomClusterLink | null = null;

  constructor(options: VideoRoomPluginOptions) {
    this.services = options.media;
    this.config = { roomsFile: null, adminKey: null, lockRtpForward: false, maxRooms: 0, maxDescriptionLength: 256, quotas: null, rooms: [], ...options.config };
    this.clock = options.clock ?? new SystemClock();
    this.logger = options.logger ?? createLogger('silent');
    for (const r of this.config.rooms) this.addRoom(new Room({ ...defaultRoomConfig(r.room), ...r }));
    this.store = this.config.roomsFile ? new RoomStore(this.config.roomsFile) : null;
    for (const c of this.store?.load() ?? []) this.addRoom(new Room(c));
  }

  /** Every room enters here, so the cluster hears about its local participants. */
  addRoom(room: Room): Room {
    room.observer = (feed, change) => this.cluster?.localFeed(room, feed, change);
    room.dataObserver = (feed, mid, message) => this.cluster?.localData(room, feed, mid, message);
    this.rooms.set(room.id, room);
    return room;
  }

  /** Ends a room here only (its config stays wherever it is kept): participants told `destroyed`. */
  dropRoom(room: Room): void {
    this.releaseRoom(room, true);
    if (this.rooms.get(room.id) === room) this.rooms.delete(room.id);
  }


  attach(context: PluginContext): PluginHandle {
    const handle = new VideoRoomHandle(this, context);
    this.handles.add(handle);
    return handle;
  }

  /** Called by a handle's destroy(). */
  forgetHandle(handle: VideoRoomHandle): void {
    this.handles.delete(handle);
  }

  async handleAdminMessage(request: JsonObject): Promise<JsonObject> {
    return this.handleRequest(request, null);
  }

  /**
   * A synchronous request from a handle or Admin: in a cluster, the room directory requests
   * (create, edit, destroy, exists, list, allowed) go through the directory and answer later.
   */
  handleRequest(body: JsonObject, owner: VideoRoomHandle | null): JsonObject | Promise<JsonObject> {
    const request = body['request'];
    const name = typeof request === 'string' ? request.toLowerCase() : '';
    if (!this.cluster || !DIRECTORY_REQUESTS.has(name)) return this.handleSync(body, owner);
    return this.cluster.roomRequest(name, body, () => this.handleSync(body, owner)).catch((err: unknown) => errorData(err, this.logger));
  }

  /** Shutdown: every room's legs and subscribers are released (handles were already destroyed by the core). */
  destroy(): void {
    for (const room of [...this.rooms.values()]) this.releaseRoom(room, false);
    this.rooms.clear();
  }

  // ---- requests and what they share ------------------------------------------------------------

  /** Runs a synchronous request (syncRequests.ts); plugin errors come back as `{videoroom:"event",error_code,error}`. */
  handleSync(body: JsonObject, owner: VideoRoomHandle | null): JsonObject {
    try {
      R.validate(body, R.REQUEST);
      return runSyncRequest(this, String(body['request']).toLowerCase(), body, owner);
    } catch (err) {
      return errorData(err, this.logger);
    }
  }

  /** The room a request names (`room`, already validated), else 426. */
  room(body: JsonObject): Room {
    const id = body['room'] as number;
    const room = this.rooms.get(id);
    if (!room || room.destroyed) throw noSuchRoom(id);
    return room;
  }

  /** A random id below 2^48 that `taken` does not know. */
  freshId(taken: (id: number) => boolean): number {
    const id = freshId(taken);
    if (id === undefined) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, 'Could not pick a free id');
    return id;
  }

  /** Whether `permanent: true` can be kept: a rooms file, or a cluster's directory. */
  get canPersist(): boolean {
    return this.store !== null || this.cluster !== null;
  }

  /** Writes a permanent room to the rooms file (499 when there is none or it cannot be written; a cluster's directory keeps it too). */
  persist(config: RoomConfig): void {
    if (!this.store && this.cluster) return;
    if (!this.store) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, "No configuration file, can't save permanent room");
    try {
      this.store.put(config);
    } catch (err) {
      throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, (err as Error).message);
    }
  }

  /**
   * Ends a room: participants told `destroyed` (when `notify`), their
   * PeerConnections closed; remote publishers' and forwarders' legs closed;
   * subscribers torn down. Janus #3345's third leak was exactly this path
   * leaving remote publishers' ports bound.
   */
  releaseRoom(room: Room, notify: boolean): void {
    if (room.destroyed) return;
    room.destroyed = true;
    room.quotaRelease?.();
    room.quotaRelease = null;
    for (const sub of [...room.subscribers]) {
      if (notify) sub.roomDestroyed();
      else sub.teardown();
    }
    for (const feed of [...room.participants.values()]) {
      if (feed instanceof RemotePublisher || feed instanceof ClusterFeed) {
        feed.close();
      } else if (feed instanceof Publisher) {
        if (notify) feed.notify({ videoroom: 'destroyed', room: room.id });
        feed.stopPublishing();
        feed.left = true;
        room.localFeedChanged(feed, 'left');
        feed.closePeerConnection('Room destroyed');
      }
    }
    room.participants.clear();
  }

  // ---- participants: the one teardown ---------------------------------------------------------------

  /** Unpublishes a local publisher (request or PeerConnection gone); others hear `unpublished`. Idempotent. */
  unpublishParticipant(pub: Publisher): boolean {
    const was = pub.stopPublishing();
    if (was) {
      pub.room.notify({ videoroom: 'event', room: pub.room.id, unpublished: pub.id, ...pub.identity() }, pub);
      pub.room.localFeedChanged(pub, 'unpublished');
    }
    return was;
  }

  /**
   * The one teardown of a local participant (leave, kick, handle detached):
   * unpublish, leave the room, tell the others. Idempotent.
   */
  removeParticipant(pub: Publisher, how: 'leave' | 'kicked' | 'detached'): void {
    if (pub.left) return;
    const room = pub.room;
    this.unpublishParticipant(pub);
    if (how === 'kicked') pub.notify({ videoroom: 'event', room: room.id, leaving: 'ok', reason: 'kicked' });
    pub.left = true;
    room.participants.delete(pub.id);
    if (how === 'kicked') {
      room.notify({ videoroom: 'event', room: room.id, kicked: pub.id, ...pub.identity() });
      pub.closePeerConnection('Kicked');
    } else {
      room.notify({ videoroom: 'event', room: room.id, leaving: pub.id, ...pub.identity() });
    }
    room.localFeedChanged(pub, 'left');
  }

  // ---- participants of other cluster nodes ------------------------------------------------------

  /**
   * What another node says of a participant that joined there: added when new, announced
   * (`publishers`) when it starts publishing, re-described when its streams change, and
   * `unpublished` when it stops, as local participants are. Returns the feed, or null when the
   * id is taken here by a participant of this node.
   */
  upsertClusterFeed(room: Room, node: string, id: number, entry: { display?: string; metadata?: JsonValue; publishing: boolean; specs: RemoteStreamSpec[] }): ClusterFeed | null {
    let feed = room.participants.get(id);
    if (feed && !(feed instanceof ClusterFeed)) return null;
    if (feed && feed.node !== node) {
      // The same id from another node: the participant moved (rejoined there); the old one is gone.
      this.removeClusterFeed(feed);
      feed = undefined;
    }
    let cf = feed;
    if (!cf) {
      cf = new ClusterFeed(id, room, node);
      room.participants.set(id, cf);
      cf.display = entry.display;
      if (entry.metadata !== undefined && entry.metadata !== null) cf.metadata = entry.metadata;
      if (room.config.notify_joining) room.notify({ videoroom: 'event', room: room.id, joining: { id, ...cf.identity() } }, cf);
    }
    cf.display = entry.display;
    if (entry.metadata !== undefined && entry.metadata !== null) cf.metadata = entry.metadata;
    if (entry.publishing) {
      const was = cf.publishing;
      const changed = cf.setSpecs(entry.specs);
      cf.announced = true;
      if (was && changed) {
        cf.refreshForwarders();
        room.feedChanged(cf);
      }
      if (!was || changed) room.notify({ videoroom: 'event', room: room.id, publishers: [cf.describe(room.config.audiolevel_event)] }, cf);
    } else if (cf.publishing) {
      this.unpublishClusterFeed(cf);
    }
    return cf;
  }

  /** A participant of another node stopped publishing: its cascade ends, everyone hears `unpublished`. */
  unpublishClusterFeed(cf: ClusterFeed): void {
    if (!cf.publishing) return;
    cf.closeForwarders();
    cf.unannounce();
    cf.room.feedGone(cf);
    cf.room.notify({ videoroom: 'event', room: cf.room.id, unpublished: cf.id, ...cf.identity() }, cf);
  }

  /** A participant of another node left (or its node is gone): `unpublished` if it was publishing, then `leaving`. Idempotent. */
  removeClusterFeed(cf: ClusterFeed): void {
    if (cf.gone) return;
    const room = cf.room;
    this.unpublishClusterFeed(cf);
    cf.close();
    if (room.participants.get(cf.id) === cf) room.participants.delete(cf.id);
    room.notify({ videoroom: 'event', room: room.id, leaving: cf.id, ...cf.identity() });
  }

  /** The one teardown of a remote publisher (remove request, kick, owner handle ended); its leg is closed. Idempotent. */
  removeRemotePublisher(rp: RemotePublisher, how: 'removed' | 'kicked' | 'owner-gone'): void {
    if (rp.removed) return;
    const room = rp.room;
    room.participants.delete(rp.id);
    room.feedGone(rp);
    rp.close();
    room.notify({ videoroom: 'event', room: room.id, unpublished: rp.id, ...rp.identity() });
    if (how === 'kicked') room.notify({ videoroom: 'event', room: room.id, kicked: rp.id, ...rp.identity() });
    else room.notify({ videoroom: 'event', room: room.id, leaving: rp.id, ...rp.identity() });
  }

  /** Remote publishers a handle created end with it (lessons §5: ending the session releases the port). */
  releaseOwnedBy(owner: VideoRoomHandle): void {
    for (const room of this.rooms.values()) {
      for (const feed of [...room.participants.values()]) {
        if (feed instanceof RemotePublisher && feed.owner === owner) this.removeRemotePublisher(feed, 'owner-gone');
      }
    }
  }

  // ---- plain RTP legs (forwarders, cascading) ----------------------------------------------------

  /**
   * Opens a plain RTP leg (one port lease). One asked for by a client (`requester`; null = Admin)
   * counts against that client's peer_connections_per_client, checked before the port is leased
   * and given back when the leg closes: rtp_forward, publish_remotely and add_remote_publisher
   * must not be a way around the port share.
   */
  openLeg(requester: VideoRoomHandle | null, options: RtpLegOptions & { port?: number }): RtpLeg {
    if (!this.services) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, 'RTP media is not available in this build');
    let release: (() => void) | null = null;
    if (requester !== null && this.config.quotas) {
      try {
        release = this.config.quotas.acquirePeerConnection(requester.sessionId);
      } catch (err) {
        throw new VideoRoomError(VideoRoomErrorCode.UNAUTHORIZED, (err as Error).message);
      }
    }
    let leg: RtpLeg;
    try {
      leg = this.services.openRtpLeg(options);
    } catch (err) {
      release?.();
      this.logger.warn({ err, owner: options.owner }, 'videoroom: could not open RTP leg');
      throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, 'Could not open UDP socket for RTP stream');
    }
    if (release) {
      const giveBack = release;
      const close = leg.close.bind(leg);
      leg.close = () => {
        close();
        giveBack();
      };
    }
    if (options.port !== undefined && options.port !== 0 && leg.port !== options.port) {
      leg.close();
      throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, 'Could not open UDP socket for RTP stream');
    }
    return leg;
  }

  /** Counts for tests and Admin: rooms, participants, open legs owned by this plugin. */
  stats(): { rooms: number; participants: number; subscribers: number; legs: number } {
    let participants = 0;
    let subscribers = 0;
    let legs = 0;
    for (const room of this.rooms.values()) {
      participants += room.participants.size;
      subscribers += room.subscribers.size;
      for (const f of room.participants.values()) {
        legs += f.forwarders.size + f.remotes.size;
        if (f instanceof RemotePublisher && !f.removed) legs++;
        if (f instanceof ClusterFeed && f.cascadePort !== null) legs++;
      }
    }
    return { rooms: this.rooms.size, participants, subscribers, legs };
  }
}
