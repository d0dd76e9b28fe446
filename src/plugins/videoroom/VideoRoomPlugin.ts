/**
 * `janus.plugin.videoroom`: rooms, publishers, 1.x multistream subscribers,
 * remote publishers (cascading) and RTP forwarders, with Janus's request
 * names, event shapes and error codes (janus_videoroom.c). Media goes only
 * through ferry's seam: publishers' PeerConnections answer
 * (`HandleMedia.createAnswer`), subscribers' offer (`createOffer`), and
 * `MediaRouter` connects outputs to sources; plain RTP legs come from
 * `MediaServices.openRtpLeg`, each owned by exactly one object here.
 *
 * This file holds the plugin (rooms, synchronous requests, the participant
 * teardown every ending goes through); VideoRoomHandle.ts holds the
 * per-handle asynchronous requests.
 */
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { SystemClock, type Clock } from '../../time/Clock.js';
import type { JsonObject } from '../../core/Json.js';
import { field } from '../../core/Json.js';
import type { MediaServices, RtpLeg, RtpLegOptions } from '../../media/Routing.js';
import { createLogger } from '../../log/logger.js';
import type { Plugin, PluginContext, PluginHandle, PluginInfo } from '../../core/Plugin.js';
import { VideoRoomError, VideoRoomErrorCode, errorData, invalid, missing, noSuchFeed, noSuchRoom, refuseRecording } from './errors.js';
import type { Feed } from './Feed.js';
import { Publisher } from './Publisher.js';
import { RemotePublisher, randomSsrcOffset, type RemoteStreamSpec } from './RemotePublisher.js';
import { Room, checkSecret, defaultRoomConfig, placementGroup, type RoomConfig } from './Room.js';
import { RoomStore } from './RoomStore.js';
import { RtpForwarder, type ForwardTarget } from './RtpForwarder.js';
import { VideoRoomHandle } from './VideoRoomHandle.js';
import { codecKind, parseCodecList } from './codecs.js';
import * as R from './requests.js';
import { sdesKeys, srtpFromRequest } from './srtp.js';

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

/** Janus ids are 64-bit; ferry's stay below 2^48 so they survive JSON and JS numbers. */
const ID_LIMIT = 2 ** 48;

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
  private readonly store: RoomStore | null;
  private readonly handles = new Set<VideoRoomHandle>();

  constructor(options: VideoRoomPluginOptions) {
    this.services = options.media;
    this.config = { roomsFile: null, adminKey: null, lockRtpForward: false, maxRooms: 0, maxDescriptionLength: 256, quotas: null, rooms: [], ...options.config };
    this.clock = options.clock ?? new SystemClock();
    this.logger = options.logger ?? createLogger('silent');
    for (const r of this.config.rooms) this.rooms.set(r.room, new Room({ ...defaultRoomConfig(r.room), ...r }));
    this.store = this.config.roomsFile ? new RoomStore(this.config.roomsFile) : null;
    for (const c of this.store?.load() ?? []) this.rooms.set(c.room, new Room(c));
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
    return this.handleSync(request, null);
  }

  /** Shutdown: every room's legs and subscribers are released (handles were already destroyed by the core). */
  destroy(): void {
    for (const room of [...this.rooms.values()]) this.releaseRoom(room, false);
    this.rooms.clear();
  }

  // ---- request dispatch ------------------------------------------------------------------------

  /** Runs a synchronous request; plugin errors come back as `{videoroom:"event",error_code,error}`. */
  handleSync(body: JsonObject, owner: VideoRoomHandle | null): JsonObject {
    try {
      R.validate(body, R.REQUEST);
      const request = String(body['request']).toLowerCase();
      return this.dispatchSync(request, body, owner);
    } catch (err) {
      return errorData(err, this.logger);
    }
  }

  private dispatchSync(request: string, body: JsonObject, owner: VideoRoomHandle | null): JsonObject {
    switch (request) {
      case 'create': return this.create(body, owner);
      case 'edit': return this.edit(body);
      case 'destroy': return this.destroyRequest(body);
      case 'exists': return this.exists(body);
      case 'list': return this.list(body);
      case 'allowed': return this.allowed(body);
      case 'kick': return this.kick(body);
      case 'moderate': return this.moderate(body);
      case 'listparticipants': return this.listParticipants(body);
      case 'enable_recording': return this.enableRecording(body);
      case 'rtp_forward': return this.rtpForward(body, owner);
      case 'stop_rtp_forward': return this.stopRtpForward(body);
      case 'listforwarders': return this.listForwarders(body);
      case 'publish_remotely': return this.publishRemotely(body, owner);
      case 'unpublish_remotely': return this.unpublishRemotely(body);
      case 'listremotes':
      case 'list_remotes': return this.listRemotes(body);
      case 'add_remote_publisher': return this.addRemotePublisher(body, owner);
      case 'update_remote_publisher': return this.updateRemotePublisher(body);
      case 'remove_remote_publisher': return this.removeRemotePublisherRequest(body);
      default: throw new VideoRoomError(VideoRoomErrorCode.INVALID_REQUEST, `Unknown request '${request}'`);
    }
  }

  room(body: JsonObject): Room {
    const id = body['room'] as number;
    const room = this.rooms.get(id);
    if (!room || room.destroyed) throw noSuchRoom(id);
    return room;
  }

  private checkAdminKey(body: JsonObject): void {
    checkSecret(this.config.adminKey ?? undefined, body, 'admin_key');
  }

  private checkRtpLock(body: JsonObject): void {
    if (this.config.lockRtpForward) this.checkAdminKey(body);
  }

  private freshId(taken: (id: number) => boolean): number {
    for (let i = 0; i < 1000; i++) {
      const id = randomInt(1, ID_LIMIT);
      if (!taken(id)) return id;
    }
    throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, 'Could not pick a free id');
  }

  private persist(config: RoomConfig): void {
    if (!this.store) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, "No configuration file, can't save permanent room");
    try {
      this.store.put(config);
    } catch (err) {
      throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, (err as Error).message);
    }
  }

  // ---- room management ---------------------------------------------------------------------------

  private checkDescription(body: JsonObject, key: string): void {
    const d = R.optString(body, key);
    const max = this.config.maxDescriptionLength;
    if (d !== undefined && d.length > max) throw invalid(key, `at most ${max} characters`);
  }

  /**
   * Room quotas for a client request (owner null = Admin message_plugin, exempt): the global
   * max_rooms, then the creating client's rooms_per_client. Both refusals are 433, what Janus
   * answers a `create` it does not allow (a missing admin_key).
   */
  private admitRoom(owner: VideoRoomHandle | null): (() => void) | null {
    if (owner === null) return null;
    const { maxRooms, quotas } = this.config;
    try {
      if (maxRooms > 0 && this.rooms.size >= maxRooms) {
        if (quotas) quotas.refuse('max_rooms', maxRooms, 'too many rooms on this server');
        throw new Error(`Quota exceeded: too many rooms on this server (max_rooms = ${maxRooms})`);
      }
      return quotas ? quotas.acquireRoom(owner.sessionId) : null;
    } catch (err) {
      throw new VideoRoomError(VideoRoomErrorCode.UNAUTHORIZED, (err as Error).message);
    }
  }

  private create(body: JsonObject, owner: VideoRoomHandle | null): JsonObject {
    this.checkAdminKey(body);
    R.validate(body, R.CREATE);
    refuseRecording(body);
    this.checkDescription(body, 'description');
    const permanent = body['permanent'] === true;
    if (permanent && !this.store) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, "No configuration file, can't create permanent room");
    const requested = R.optNumber(body, 'room');
    if (requested !== undefined && this.rooms.has(requested)) throw new VideoRoomError(VideoRoomErrorCode.ROOM_EXISTS, `Room ${requested} already exists`);
    const release = this.admitRoom(owner);
    try {
      return this.createAdmitted(body, permanent, requested, release);
    } catch (err) {
      release?.();
      throw err;
    }
  }

  private createAdmitted(body: JsonObject, permanent: boolean, requested: number | undefined, release: (() => void) | null): JsonObject {
    const id = requested ?? this.freshId((i) => this.rooms.has(i));
    const config = defaultRoomConfig(id);
    const audio = R.optString(body, 'audiocodec');
    const video = R.optString(body, 'videocodec');
    if (audio !== undefined) config.audiocodec = parseCodecList(audio, 'audio') ?? fail(invalid('audiocodec', 'a list of supported audio codecs'));
    if (video !== undefined) config.videocodec = parseCodecList(video, 'video') ?? fail(invalid('videocodec', 'a list of supported video codecs'));
    const target = config as unknown as Record<string, unknown>;
    for (const key of [
      'description', 'secret', 'pin', 'is_private', 'require_pvtid', 'signed_tokens', 'bitrate', 'bitrate_cap', 'fir_freq', 'publishers',
      'vp9_profile', 'h264_profile', 'opus_fec', 'opus_dtx', 'audiolevel_ext', 'audiolevel_event', 'audio_active_packets', 'audio_level_average',
      'videoorient_ext', 'playoutdelay_ext', 'transport_wide_cc_ext', 'record', 'rec_dir', 'lock_record', 'notify_joining', 'require_e2ee', 'dummy_publisher',
    ]) {
      const v = field(body, key);
      if (v !== undefined && v !== null) target[key] = v;
    }
    const allowed = field(body, 'allowed');
    if (Array.isArray(allowed)) config.allowed = allowed.filter((a): a is string => typeof a === 'string');
    if (permanent) this.persist(config);
    const room = new Room(config);
    room.quotaRelease = release;
    this.rooms.set(id, room);
    this.logger.info({ room: id, permanent }, 'videoroom: room created');
    return { videoroom: 'created', room: id, permanent };
  }

  private edit(body: JsonObject): JsonObject {
    R.validate(body, R.EDIT);
    this.checkDescription(body, 'new_description');
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    const permanent = body['permanent'] === true;
    if (permanent && !this.store) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, "No configuration file, can't edit permanent room");
    const next: RoomConfig = structuredClone(room.config);
    const s = (k: string) => R.optString(body, k);
    const n = (k: string) => R.optNumber(body, k);
    const b = (k: string) => R.optBool(body, k);
    next.description = s('new_description') ?? next.description;
    const newSecret = s('new_secret');
    if (newSecret !== undefined) next.secret = newSecret;
    const newPin = s('new_pin');
    if (newPin !== undefined) {
      if (newPin.length === 0) delete next.pin;
      else next.pin = newPin;
    }
    next.is_private = b('new_is_private') ?? next.is_private;
    next.require_pvtid = b('new_require_pvtid') ?? next.require_pvtid;
    next.bitrate = n('new_bitrate') ?? next.bitrate;
    next.fir_freq = n('new_fir_freq') ?? next.fir_freq;
    next.publishers = n('new_publishers') ?? next.publishers;
    next.lock_record = b('new_lock_record') ?? next.lock_record;
    const recDir = s('new_rec_dir');
    if (recDir !== undefined) next.rec_dir = recDir;
    if (permanent) this.persist(next);
    room.config = next;
    for (const p of room.participants.values()) if (p instanceof Publisher) p.roomEdited();
    return { videoroom: 'edited', room: room.id };
  }

  private destroyRequest(body: JsonObject): JsonObject {
    R.validate(body, R.ROOM_SECRET);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    if (body['permanent'] === true) {
      if (!this.store) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, "No configuration file, can't destroy permanent room");
      try {
        this.store.remove(room.id);
      } catch (err) {
        throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, (err as Error).message);
      }
    }
    this.releaseRoom(room, true);
    this.rooms.delete(room.id);
    return { videoroom: 'destroyed', room: room.id };
  }

  /**
   * Ends a room: participants told `destroyed` (when `notify`), their
   * PeerConnections closed; remote publishers' and forwarders' legs closed;
   * subscribers torn down. Janus #3345's third leak was exactly this path
   * leaving remote publishers' ports bound.
   */
  private releaseRoom(room: Room, notify: boolean): void {
    if (room.destroyed) return;
    room.destroyed = true;
    room.quotaRelease?.();
    room.quotaRelease = null;
    for (const sub of [...room.subscribers]) {
      if (notify) sub.roomDestroyed();
      else sub.teardown();
    }
    for (const feed of [...room.participants.values()]) {
      if (feed instanceof RemotePublisher) {
        feed.close();
      } else if (feed instanceof Publisher) {
        if (notify) feed.notify({ videoroom: 'destroyed', room: room.id });
        feed.stopPublishing();
        feed.left = true;
        feed.closePeerConnection('Room destroyed');
      }
    }
    room.participants.clear();
  }

  private exists(body: JsonObject): JsonObject {
    R.validate(body, R.EXISTS);
    const id = body['room'] as number;
    const room = this.rooms.get(id);
    return { videoroom: 'success', room: id, exists: room !== undefined && !room.destroyed };
  }

  private list(body: JsonObject): JsonObject {
    R.validate(body, R.LIST);
    const key = R.optString(body, 'admin_key');
    let showPrivate = false;
    if (key !== undefined && this.config.adminKey !== null) {
      checkSecret(this.config.adminKey, body, 'admin_key');
      showPrivate = true;
    }
    const list = [...this.rooms.values()].filter((r) => !r.destroyed && (showPrivate || !r.config.is_private)).map((r) => r.describe());
    return { videoroom: 'success', list };
  }

  private allowed(body: JsonObject): JsonObject {
    R.validate(body, R.ALLOWED);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    const action = String(body['action']);
    const tokens = Array.isArray(body['allowed']) ? (body['allowed'] as string[]) : undefined;
    if (!['enable', 'disable', 'add', 'remove'].includes(action)) throw invalid('action', '"enable", "disable", "add" or "remove"');
    if ((action === 'add' || action === 'remove') && tokens === undefined) throw missing('allowed');
    const next = structuredClone(room.config);
    if (action === 'enable') next.allowed = next.allowed ?? [];
    else if (action === 'disable') next.allowed = null;
    else if (action === 'add') next.allowed = [...new Set([...(next.allowed ?? []), ...(tokens ?? [])])];
    else next.allowed = (next.allowed ?? []).filter((t) => !(tokens ?? []).includes(t));
    if (body['permanent'] === true) this.persist(next);
    room.config = next;
    const out: JsonObject = { videoroom: 'success', room: room.id };
    if (next.allowed !== null) out['allowed'] = [...next.allowed];
    return out;
  }

  private kick(body: JsonObject): JsonObject {
    R.validate(body, R.KICK);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    const id = body['id'] as number;
    const feed = room.participants.get(id);
    if (!feed) throw noSuchFeed(id);
    if (feed instanceof RemotePublisher) this.removeRemotePublisher(feed, 'kicked');
    else if (feed instanceof Publisher) this.removeParticipant(feed, 'kicked');
    return { videoroom: 'success' };
  }

  private moderate(body: JsonObject): JsonObject {
    R.validate(body, R.MODERATE);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    const id = body['id'] as number;
    const feed = room.participants.get(id);
    if (!feed) throw noSuchFeed(id);
    const mid = String(body['mid']);
    const stream = feed.stream(mid);
    if (!stream) throw new VideoRoomError(VideoRoomErrorCode.NO_SUCH_FEED, `No such mid '${mid}' in feed ${id}`);
    const mute = body['mute'] === true;
    if (stream.moderated !== mute) {
      stream.moderated = mute;
      feed.refreshForwarders();
      room.feedChanged(feed);
      if (feed.publishing) room.notify({ videoroom: 'event', room: room.id, publishers: [feed.describe(room.config.audiolevel_event)] }, feed);
    }
    return { videoroom: 'success' };
  }

  private listParticipants(body: JsonObject): JsonObject {
    R.validate(body, R.LISTPARTICIPANTS);
    const room = this.room(body);
    const participants = [...room.participants.values()].map((f) => {
      const p: JsonObject = { id: f.id, ...f.identity(), publisher: f.publishing };
      if (f.remote) p['remote'] = true;
      if (room.config.audiolevel_event && f.publishing) p['talking'] = f.talking;
      return p;
    });
    return { videoroom: 'participants', room: room.id, participants };
  }

  private enableRecording(body: JsonObject): JsonObject {
    R.validate(body, R.ENABLE_RECORDING);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    refuseRecording(body);
    room.config.record = false;
    return { videoroom: 'success', record: false };
  }

  // ---- participants: the one teardown ---------------------------------------------------------------

  /** Unpublishes a local publisher (request or PeerConnection gone); others hear `unpublished`. Idempotent. */
  unpublishParticipant(pub: Publisher): boolean {
    const was = pub.stopPublishing();
    if (was) pub.room.notify({ videoroom: 'event', room: pub.room.id, unpublished: pub.id, ...pub.identity() }, pub);
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

  // ---- RTP forwarders ---------------------------------------------------------------------------

  private publishingFeed(room: Room, id: number): Feed {
    const feed = room.participants.get(id);
    if (!feed || !feed.publishing) throw noSuchFeed(id);
    return feed;
  }

  /**
   * Opens a plain RTP leg (one port lease). One asked for by a client (`requester`; null = Admin)
   * counts against that client's peer_connections_per_client, checked before the port is leased
   * and given back when the leg closes: rtp_forward, publish_remotely and add_remote_publisher
   * must not be a way around the port share.
   */
  private openLeg(requester: VideoRoomHandle | null, options: RtpLegOptions & { port?: number }): RtpLeg {
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

  private rtpForward(body: JsonObject, requester: VideoRoomHandle | null): JsonObject {
    this.checkRtpLock(body);
    R.validate(body, R.RTP_FORWARD);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    const feed = this.publishingFeed(room, body['publisher_id'] as number);
    const srtp = srtpFromRequest(body);
    const defaultHost = R.optString(body, 'host');
    const entries = forwardEntries(body, feed);
    const planned: { host: string; port: number; stream: { mid: string; type: string }; target: ForwardTarget; substream?: number; rtcpPort?: number }[] = [];
    for (const e of entries) {
      R.validate(e, R.RTP_FORWARD_STREAM, 'streams.');
      const mid = String(e['mid']);
      const stream = feed.stream(mid);
      if (!stream || stream.disabled) throw new VideoRoomError(VideoRoomErrorCode.NO_SUCH_FEED, `No such mid '${mid}' in feed ${feed.id}`);
      const host = R.optString(e, 'host') ?? defaultHost;
      if (host === undefined) throw missing('host');
      const layers = stream.simulcast && e['simulcast'] === true ? 3 : 1;
      for (let layer = 0; layer < layers; layer++) {
        const suffix = layer === 0 ? '' : `_${layer + 1}`;
        const port = R.optNumber(e, `port${suffix}`);
        if (port === undefined) {
          if (layer === 0) throw missing('port');
          continue;
        }
        if (port === 0) throw invalid(`port${suffix}`, 'an integer between 1 and 65535');
        const ssrc = R.optNumber(e, `ssrc${suffix}`) ?? randomInt(1, 2 ** 32);
        const pt = R.optNumber(e, `pt${suffix}`);
        // Without `simulcast`, Janus forwards substream 0 only.
        const target: ForwardTarget = { mid, layer, ssrc };
        if (pt !== undefined) target.payloadType = pt;
        const entry: (typeof planned)[number] = { host, port, stream: { mid, type: stream.type }, target };
        if (layers > 1) entry.substream = layer;
        const rtcpPort = R.optNumber(e, 'rtcp_port');
        if (layer === 0 && rtcpPort !== undefined) entry.rtcpPort = rtcpPort;
        planned.push(entry);
      }
    }
    if (planned.length === 0) throw missing('streams');
    const created: { id: number; fwd: RtpForwarder }[] = [];
    try {
      for (const p of planned) {
        const streamId = this.freshId((i) => feed.forwarders.has(i) || created.some((c) => c.id === i)) % 2 ** 32;
        const leg = this.openLeg(requester, {
          owner: `videoroom:${room.id}:forwarder:${feed.id}:${streamId}`,
          placementGroup: placementGroup(room.id),
          pool: 'rtp',
          remote: { address: p.host, port: p.port },
          latch: false,
          ...(srtp ? { srtp: sdesKeys(srtp) } : {}),
        });
        const info: JsonObject = { stream_id: streamId, type: p.stream.type, host: p.host, port: p.port };
        if (p.rtcpPort !== undefined) {
          info['local_rtcp_port'] = leg.port;
          info['remote_rtcp_port'] = p.rtcpPort;
        }
        info['ssrc'] = p.target.ssrc;
        if (p.target.payloadType !== undefined) info['pt'] = p.target.payloadType;
        if (p.substream !== undefined) info['substream'] = p.substream;
        info['srtp'] = srtp !== null;
        const fwd = new RtpForwarder(leg, this.services?.router ?? null, [p.target], info);
        created.push({ id: streamId, fwd });
        fwd.refresh(feed);
      }
    } catch (err) {
      for (const c of created) c.fwd.close();
      throw err;
    }
    for (const c of created) feed.forwarders.set(c.id, c.fwd);
    return { videoroom: 'rtp_forward', room: room.id, publisher_id: feed.id, forwarders: created.map((c) => c.fwd.info) };
  }

  private stopRtpForward(body: JsonObject): JsonObject {
    this.checkRtpLock(body);
    R.validate(body, R.STOP_RTP_FORWARD);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    const publisherId = body['publisher_id'] as number;
    const feed = room.participants.get(publisherId);
    if (!feed) throw noSuchFeed(publisherId);
    const streamId = body['stream_id'] as number;
    const fwd = feed.forwarders.get(streamId);
    if (!fwd) throw new VideoRoomError(VideoRoomErrorCode.NO_SUCH_FEED, `No such stream (${streamId})`);
    fwd.close();
    feed.forwarders.delete(streamId);
    return { videoroom: 'stop_rtp_forward', room: room.id, publisher_id: publisherId, stream_id: streamId };
  }

  private listForwarders(body: JsonObject): JsonObject {
    R.validate(body, R.LISTFORWARDERS);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    const publishers: JsonObject[] = [];
    for (const feed of room.participants.values()) {
      if (feed.forwarders.size === 0) continue;
      const entry: JsonObject = { publisher_id: feed.id };
      if (feed.display !== undefined) entry['display'] = feed.display;
      entry['forwarders'] = [...feed.forwarders.values()].map((f) => f.info);
      publishers.push(entry);
    }
    return { videoroom: 'forwarders', room: room.id, publishers };
  }

  // ---- cascading: publish_remotely on the sending gateway -----------------------------------------

  private publishRemotely(body: JsonObject, requester: VideoRoomHandle | null): JsonObject {
    this.checkRtpLock(body);
    R.validate(body, R.PUBLISH_REMOTELY);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    const feed = this.publishingFeed(room, body['publisher_id'] as number);
    if (feed.remote) throw new VideoRoomError(VideoRoomErrorCode.INVALID_ELEMENT, 'Remote publishers cannot be published remotely');
    const remoteId = String(body['remote_id']);
    if (feed.remotes.has(remoteId)) throw new VideoRoomError(VideoRoomErrorCode.ID_EXISTS, `Remote ID ${remoteId} already exists`);
    const port = body['port'] as number;
    if (port === 0) throw invalid('port', 'an integer between 1 and 65535');
    const host = String(body['host']);
    const srtp = srtpFromRequest(body);
    const leg = this.openLeg(requester, {
      owner: `videoroom:${room.id}:remotize:${feed.id}:${remoteId}`,
          placementGroup: placementGroup(room.id),
      pool: 'rtp',
      remote: { address: host, port },
      latch: false,
      ...(srtp ? { srtp: sdesKeys(srtp) } : {}),
    });
    const info: JsonObject = { remote_id: remoteId, host, port };
    const rtcpPort = R.optNumber(body, 'rtcp_port');
    if (rtcpPort !== undefined) info['rtcp_port'] = rtcpPort;
    const fwd = new RtpForwarder(leg, this.services?.router ?? null, null, info);
    fwd.refresh(feed);
    feed.remotes.set(remoteId, fwd);
    return { videoroom: 'success', room: room.id, id: feed.id, remote_id: remoteId };
  }

  private unpublishRemotely(body: JsonObject): JsonObject {
    this.checkRtpLock(body);
    R.validate(body, R.UNPUBLISH_REMOTELY);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    const id = body['publisher_id'] as number;
    const feed = room.participants.get(id);
    if (!feed) throw noSuchFeed(id);
    const remoteId = String(body['remote_id']);
    const fwd = feed.remotes.get(remoteId);
    if (!fwd) throw new VideoRoomError(VideoRoomErrorCode.NO_SUCH_FEED, `No such remote ID (${remoteId})`);
    fwd.close();
    feed.remotes.delete(remoteId);
    return { videoroom: 'success', room: room.id, id };
  }

  private listRemotes(body: JsonObject): JsonObject {
    R.validate(body, R.LISTREMOTES);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    const id = body['publisher_id'] as number;
    const feed = room.participants.get(id);
    if (!feed) throw noSuchFeed(id);
    return { videoroom: 'success', room: room.id, id, list: [...feed.remotes.values()].map((f) => f.info) };
  }

  // ---- cascading: remote publishers on the receiving gateway ----------------------------------------

  private addRemotePublisher(body: JsonObject, owner: VideoRoomHandle | null): JsonObject {
    this.checkRtpLock(body);
    R.validate(body, R.ADD_REMOTE_PUBLISHER);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    const requested = R.optNumber(body, 'id');
    if (requested !== undefined && room.participants.has(requested)) throw new VideoRoomError(VideoRoomErrorCode.ID_EXISTS, `User ID ${requested} already exists`);
    if (room.publishingFeeds.length >= room.config.publishers) {
      throw new VideoRoomError(VideoRoomErrorCode.PUBLISHERS_FULL, `Maximum number of publishers (${room.config.publishers}) already reached`);
    }
    const specs = remoteStreamSpecs(R.objects(body, 'streams'), room, []);
    if (specs.length === 0) throw missing('streams');
    const srtp = srtpFromRequest(body);
    const id = requested ?? this.freshId((i) => room.participants.has(i));
    const port = R.optNumber(body, 'port') ?? 0;
    const leg = this.openLeg(owner, {
      owner: `videoroom:${room.id}:remote:${id}`,
          placementGroup: placementGroup(room.id),
      pool: 'rtp',
      latch: true,
      ...(srtp ? { srtp: sdesKeys(srtp) } : {}),
      ...(port !== 0 ? { port } : {}),
    });
    const rp = new RemotePublisher(id, room, leg, randomSsrcOffset(), owner);
    try {
      rp.display = R.optString(body, 'display');
      const metadata = field(body, 'metadata');
      if (metadata !== undefined && metadata !== null) rp.metadata = metadata;
      rp.applyStreams(specs);
      leg.onUnknownSsrc((info) => this.logger.debug({ room: room.id, id, ...info }, 'videoroom: remote publisher packet with unknown SSRC'));
    } catch (err) {
      rp.close();
      throw err instanceof VideoRoomError ? err : new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, (err as Error).message);
    }
    room.participants.set(id, rp);
    room.notify({ videoroom: 'event', room: room.id, publishers: [rp.describe(room.config.audiolevel_event)] }, rp);
    const out: JsonObject = { videoroom: 'success', room: room.id, id };
    if (body['iface'] !== undefined || body['mcast'] !== undefined) out['ip'] = leg.address;
    // RTP and RTCP share the one port (RFC 5761), so both are reported as it.
    out['port'] = leg.port;
    out['rtcp_port'] = leg.port;
    return out;
  }

  private remotePublisher(room: Room, id: number): RemotePublisher {
    const feed = room.participants.get(id);
    if (!feed) throw noSuchFeed(id);
    if (!(feed instanceof RemotePublisher)) throw new VideoRoomError(VideoRoomErrorCode.INVALID_ELEMENT, `Publisher ${id} is not a remote publisher`);
    return feed;
  }

  private updateRemotePublisher(body: JsonObject): JsonObject {
    this.checkRtpLock(body);
    R.validate(body, R.UPDATE_REMOTE_PUBLISHER);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    const rp = this.remotePublisher(room, body['id'] as number);
    const specs = remoteStreamSpecs(R.objects(body, 'streams'), room, rp.streams);
    const srtp = srtpFromRequest(body);
    const display = R.optString(body, 'display');
    if (display !== undefined) rp.display = display;
    const metadata = field(body, 'metadata');
    if (metadata !== undefined && metadata !== null) rp.metadata = metadata;
    if (srtp) rp.leg.setSrtp(sdesKeys(srtp));
    rp.applyStreams(specs);
    rp.refreshForwarders();
    room.feedChanged(rp);
    room.notify({ videoroom: 'event', room: room.id, publishers: [rp.describe(room.config.audiolevel_event)] }, rp);
    return { videoroom: 'success' };
  }

  private removeRemotePublisherRequest(body: JsonObject): JsonObject {
    this.checkRtpLock(body);
    R.validate(body, R.REMOVE_REMOTE_PUBLISHER);
    const room = this.room(body);
    checkSecret(room.config.secret, body, 'secret');
    this.removeRemotePublisher(this.remotePublisher(room, body['id'] as number), 'removed');
    return { videoroom: 'success' };
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
      }
    }
    return { rooms: this.rooms.size, participants, subscribers, legs };
  }
}

function fail(err: Error): never {
  throw err;
}

/** rtp_forward's `streams`, or the deprecated flat audio_port/video_port form mapped onto the feed's first audio/video m-lines. */
function forwardEntries(body: JsonObject, feed: Feed): JsonObject[] {
  const streams = R.objects(body, 'streams');
  if (streams.length > 0) return streams;
  const out: JsonObject[] = [];
  for (const kind of ['audio', 'video'] as const) {
    const port = R.optNumber(body, `${kind}_port`);
    if (port === undefined) continue;
    const stream = feed.streams.find((s) => s.type === kind && !s.disabled);
    if (!stream) continue;
    const e: JsonObject = { mid: stream.mid, port };
    for (const [from, to] of [['ssrc', 'ssrc'], ['pt', 'pt'], ['port_2', 'port_2'], ['ssrc_2', 'ssrc_2'], ['pt_2', 'pt_2'], ['port_3', 'port_3'], ['ssrc_3', 'ssrc_3'], ['pt_3', 'pt_3']] as const) {
      const v = field(body, `${kind}_${from}`);
      if (v !== undefined) e[to] = v;
    }
    if (kind === 'video' && body['simulcast'] === true) e['simulcast'] = true;
    out.push(e);
  }
  return out;
}

/** Validates add/update_remote_publisher streams; codec defaults to the room's first of that kind. */
function remoteStreamSpecs(entries: JsonObject[], room: Room, existing: Feed['streams']): RemoteStreamSpec[] {
  const specs: RemoteStreamSpec[] = [];
  for (const e of entries) {
    R.validate(e, R.REMOTE_STREAM, 'streams.');
    const type = String(e['type']);
    if (type !== 'audio' && type !== 'video' && type !== 'data') throw invalid('streams.type', '"audio", "video" or "data"');
    const mindex = e['mindex'] as number;
    const mid = String(e['mid']);
    if (specs.some((s) => s.mindex === mindex || s.mid === mid)) throw invalid('streams', 'a list of distinct mindex/mid values');
    const clash = existing.find((s) => (s.mindex === mindex) !== (s.mid === mid));
    if (clash) throw invalid('streams', `consistent with the existing mindex ${clash.mindex} / mid ${clash.mid}`);
    let codec: string | null = null;
    if (type !== 'data') {
      const given = R.optString(e, 'codec')?.toLowerCase();
      codec = given ?? (type === 'audio' ? room.config.audiocodec[0] : room.config.videocodec[0]) ?? null;
      if (codec === null || codecKind(codec) !== type) throw invalid('streams.codec', `a supported ${type} codec`);
    }
    const spec: RemoteStreamSpec = {
      type, mindex, mid, codec,
      disabled: e['disabled'] === true,
      simulcast: e['simulcast'] === true,
      stereo: e['stereo'] === true,
      fec: e['fec'] !== false,
      dtx: e['dtx'] === true,
    };
    const description = R.optString(e, 'description');
    if (description !== undefined) spec.description = description;
    const h264 = R.optString(e, 'h264_profile') ?? R.optString(e, 'h264-profile');
    if (h264 !== undefined) spec.h264Profile = h264;
    const vp9 = R.optString(e, 'vp9_profile') ?? R.optString(e, 'vp9-profile');
    if (vp9 !== undefined) spec.vp9Profile = vp9;
    specs.push(spec);
  }
  return specs;
}
