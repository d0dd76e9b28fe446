/**
 * A VideoRoom room: its options (what `create` set and `edit` changes, what a
 * permanent room stores), its participants (local and remote publishers, by
 * id) and its subscribers. Notifications to participants go through here.
 */
import type { DataMessage } from '../../core/Media.js';
import type { JsonObject } from '../../core/Json.js';
import type { Feed } from './Feed.js';
import type { CodecPolicy } from './codecs.js';
import type { LocalFeedChange } from './ClusterLink.js';

/** Every room option; this is also the shape a permanent room is stored in. */
export interface RoomConfig {
  room: number;
  description: string;
  secret?: string;
  pin?: string;
  is_private: boolean;
  /** null: no token check; a list: `join` needs one of these tokens. */
  allowed: string[] | null;
  require_pvtid: boolean;
  signed_tokens: boolean;
  bitrate: number;
  bitrate_cap: boolean;
  fir_freq: number;
  publishers: number;
  audiocodec: string[];
  videocodec: string[];
  vp9_profile?: string;
  h264_profile?: string;
  opus_fec: boolean;
  opus_dtx: boolean;
  audiolevel_ext: boolean;
  audiolevel_event: boolean;
  audio_active_packets: number;
  audio_level_average: number;
  videoorient_ext: boolean;
  playoutdelay_ext: boolean;
  transport_wide_cc_ext: boolean;
  record: boolean;
  rec_dir?: string;
  lock_record: boolean;
  notify_joining: boolean;
  require_e2ee: boolean;
  dummy_publisher: boolean;
}

/** janus_videoroom.c defaults for a new room. */
export function defaultRoomConfig(room: number): RoomConfig {
  return {
    room,
    description: `Room ${room}`,
    is_private: false,
    allowed: null,
    require_pvtid: false,
    signed_tokens: false,
    bitrate: 0,
    bitrate_cap: false,
    fir_freq: 0,
    publishers: 3,
    audiocodec: ['opus'],
    videocodec: ['vp8'],
    opus_fec: true,
    opus_dtx: false,
    audiolevel_ext: true,
    audiolevel_event: false,
    audio_active_packets: 100,
    audio_level_average: 25,
    videoorient_ext: true,
    playoutdelay_ext: true,
    transport_wide_cc_ext: true,
    record: false,
    lock_record: false,
    notify_joining: false,
    require_e2ee: false,
    dummy_publisher: false,
  };
}

/** Something that consumes a room's feeds (a subscriber); told when a feed changes or goes away. */
export interface FeedConsumer {
  /** The highest simulcast layer this consumer wants of `feed`'s stream `mid` (null: none of it). */
  wantedLayer?(feed: Feed, mid: string): number | null;
  feedChanged(feed: Feed): void;
  feedGone(feed: Feed): void;
  roomDestroyed(): void;
  /** Ends the consumer without telling its client (shutdown). */
  teardown(): void;
  /** A data-channel message a feed published on its data stream `mid`. */
  relayData?(feed: Feed, mid: string, message: DataMessage): void;
  /** Whether any of this consumer's streams comes from `feed` (cascades follow this). */
  consumes?(feed: Feed): boolean;
}

export class Room {
  readonly participants = new Map<number, Feed>();
  readonly subscribers = new Set<FeedConsumer>();
  destroyed = false;
  /** Gives back the creating client's room quota; called once, when the room ends. */
  quotaRelease: (() => void) | null = null;
  /** Told when a participant of this node joins, (un)publishes or leaves (the cluster listens). */
  observer: ((feed: Feed, change: LocalFeedChange) => void) | null = null;
  /** Told of every data-channel message a participant of this node publishes (the cluster relays it). */
  dataObserver: ((feed: Feed, mid: string, message: DataMessage) => void) | null = null;

  constructor(public config: RoomConfig) {}

  get id(): number {
    return this.config.room;
  }

  get codecPolicy(): CodecPolicy {
    const p: CodecPolicy = { audio: this.config.audiocodec, video: this.config.videocodec };
    if (this.config.h264_profile) p.h264Profile = this.config.h264_profile;
    if (this.config.vp9_profile) p.vp9Profile = this.config.vp9_profile;
    return p;
  }

  /** Feeds currently publishing, the limit `publishers` applies to. */
  get publishingFeeds(): Feed[] {
    return [...this.participants.values()].filter((f) => f.publishing);
  }

  /** The `publishers` list of `joined`: every publishing feed except the joiner. */
  publishersList(except?: Feed): JsonObject[] {
    return this.publishingFeeds.filter((f) => f !== except).map((f) => f.describe(this.config.audiolevel_event));
  }

  /** Sends `data` to every participant that has a client (remote publishers have none), except `except`. */
  notify(data: JsonObject, except?: Feed): void {
    for (const p of this.participants.values()) if (p !== except) p.notify(data);
  }

  localFeedChanged(feed: Feed, change: LocalFeedChange): void {
    this.observer?.(feed, change);
  }

  /** Tells every subscriber that a feed's streams or sources changed. */
  feedChanged(feed: Feed): void {
    for (const s of this.subscribers) s.feedChanged(feed);
  }

  feedGone(feed: Feed): void {
    for (const s of this.subscribers) s.feedGone(feed);
  }

  /** A publisher's data-channel message, to every consumer of its data stream. */
  relayData(feed: Feed, mid: string, message: DataMessage): void {
    for (const s of this.subscribers) s.relayData?.(feed, mid, message);
  }

  /** A `list` entry. */
  describe(): JsonObject {
    const c = this.config;
    const out: JsonObject = {
      room: c.room,
      description: c.description,
      pin_required: c.pin !== undefined,
      is_private: c.is_private,
      max_publishers: c.publishers,
      bitrate: c.bitrate,
    };
    if (c.bitrate_cap) out['bitrate_cap'] = true;
    Object.assign(out, {
      fir_freq: c.fir_freq,
      require_pvtid: c.require_pvtid,
      require_e2ee: c.require_e2ee,
      dummy_publisher: c.dummy_publisher,
      notify_joining: c.notify_joining,
      audiocodec: c.audiocodec.join(','),
      videocodec: c.videocodec.join(','),
    });
    if (c.audiocodec.includes('opus')) {
      out['opus_fec'] = c.opus_fec;
      out['opus_dtx'] = c.opus_dtx;
    }
    out['record'] = c.record;
    if (c.rec_dir !== undefined) out['rec_dir'] = c.rec_dir;
    out['lock_record'] = c.lock_record;
    out['num_participants'] = this.participants.size;
    out['audiolevel_ext'] = c.audiolevel_ext;
    out['audiolevel_event'] = c.audiolevel_event;
    if (c.audiolevel_event) {
      out['audio_active_packets'] = c.audio_active_packets;
      out['audio_level_average'] = c.audio_level_average;
    }
    out['videoorient_ext'] = c.videoorient_ext;
    out['playoutdelay_ext'] = c.playoutdelay_ext;
    out['transport_wide_cc_ext'] = c.transport_wide_cc_ext;
    return out;
  }
}

/** The media-thread placement group of a room: its endpoints stay on few media threads. */
export function placementGroup(room: number | string): string {
  return `videoroom:${room}`;
}
