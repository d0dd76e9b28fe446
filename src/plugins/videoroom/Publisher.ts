/**
 * A local publisher: a participant joined through a handle, publishing over
 * its PeerConnection. Its feed streams are the PeerConnection's m-lines; the
 * engine sources on them are what subscribers and forwarders connect to.
 */
import { randomInt } from 'node:crypto';
import type { Clock, Timer } from '../../time/Clock.js';
import type { JsonObject } from '../../core/Json.js';
import type { MediaStreamInfo, RoutableMedia } from '../../core/Media.js';
import type { MediaRouter, MediaServices } from '../../media/Routing.js';
import { RecordingSet, recordable, type Recording } from '../../media/Recorder.js';
import { Feed, type FeedStream } from './Feed.js';
import type { Room } from './Room.js';
import { codecNameOf } from './codecs.js';

/** Video feedback offered to subscribers of a WebRTC publisher's video (RFC 4585 NACK/PLI, RFC 5104 FIR). */
/** How often a simulcast publisher's cap follows what its subscribers want (see demandCap). */
const DEMAND_INTERVAL_MS = 2000;
/**
 * Subscribers must have wanted only the lower layers this long before the publisher is capped
 * (lifting is at once): a subscriber flipping between layers, or one about to rise again, does
 * not make the publisher's encoder drop and restart a layer each time.
 */
const DEMAND_HOLD_MS = 15_000;
/** The cap from demand: the wanted layers' measured rates times this, plus a floor for audio and RTCP. */
const DEMAND_HEADROOM = 1.5;
const DEMAND_FLOOR_BPS = 100_000;

const VIDEO_FEEDBACK = [{ type: 'nack' }, { type: 'nack', subtype: 'pli' }, { type: 'ccm', subtype: 'fir' }];

/** What the publisher's handle lets it do on its client. */
export interface PublisherClient {
  push(data: JsonObject): void;
  closePeerConnection(reason: string): void;
}

export interface PublishedDescription {
  /** Data-channel m-lines of the offer (not routed, but listed like Janus does). */
  data: { mid: string; index: number }[];
  /** Audio/video m-lines of the offer: one the media layer rejected (and so does not report) is listed disabled. */
  media: { mid: string; index: number; kind: 'audio' | 'video' }[];
  /** Codec the room allows per mid (codecs.restrictOffer); an m-line negotiated to anything else is not relayed. */
  chosen: Map<string, string | null>;
  /** Janus `rid_order`: "hml" (default: first rid is the highest layer) or "lmh". */
  ridOrder: 'hml' | 'lmh';
  descriptions: Map<string, string>;
}

export class Publisher extends Feed {
  readonly remote = false;
  readonly privateId: number;
  /** An answer was given to this publisher's offer and its PeerConnection is not gone. */
  published = false;
  /** ICE + DTLS are up: the feed is announced and can be subscribed to. */
  mediaUp = false;
  bitrate = 0;
  audioCodec: string | null = null;
  videoCodec: string | null = null;
  private media: RoutableMedia | null = null;
  private described: PublishedDescription = { data: [], media: [], chosen: new Map(), ridOrder: 'hml', descriptions: new Map() };
  private stopListening: (() => void) | null = null;
  private firTimer: Timer | null = null;
  /** Re-reads what subscribers want of the simulcast layers (see demandCap). */
  private demandTimer: Timer | null = null;
  /** The REMB cap last given to the engine (undefined: none yet). */
  private appliedCap: number | null | undefined;
  /** Since when the subscribers have wanted only the lower layers (null: not now). */
  private lowDemandSince: number | null = null;
  left = false;
  /** Per-publisher overrides of the room's audio_active_packets / audio_level_average (join, configure). */
  audioActivePackets: number | null = null;
  audioLevelAverage: number | null = null;
  /** Janus `record` of configure/publish: this publisher is recorded even if its room is not. */
  recordRequested = false;
  /** Janus `filename`: the base of this publisher's file names (else Janus's own naming). */
  recordingBase: string | null = null;
  /** The open files of this publication, one per stream (see updateRecording). */
  private recordings: RecordingSet | null = null;

  constructor(
    id: number,
    readonly room: Room,
    private readonly client: PublisherClient,
    private readonly services: MediaServices | null,
    private readonly clock: Clock,
  ) {
    super(id);
    this.privateId = randomInt(1, 2 ** 32);
  }

  get publishing(): boolean {
    return this.published && this.mediaUp;
  }

  notify(data: JsonObject): void {
    if (!this.left) this.client.push(data);
  }

  closePeerConnection(reason: string): void {
    this.client.closePeerConnection(reason);
  }

  /** After the answer: takes the PeerConnection's m-lines as the feed's streams and follows their changes. */
  attachMedia(media: RoutableMedia, described: PublishedDescription): void {
    this.stopListening?.();
    this.media = media;
    this.described = described;
    this.published = true;
    this.rebuildStreams();
    this.updateRecording();
    this.stopListening = media.onStreamsChanged(() => this.onStreamsChanged());
  }

  private onStreamsChanged(): void {
    if (!this.published) return;
    const before = JSON.stringify(this.streams);
    this.rebuildStreams();
    if (JSON.stringify(this.streams) === before) return;
    this.updateRecording();
    this.refreshForwarders();
    if (this.publishing) this.room.feedChanged(this);
  }

  private rebuildStreams(): void {
    const previous = new Map(this.streams.map((s) => [s.mid, s]));
    const infos = this.media?.streams() ?? [];
    const streams: FeedStream[] = infos.map((info) => this.streamFrom(info, previous.get(info.mid)));
    for (const m of this.described.media) {
      if (infos.some((i) => i.mid === m.mid)) continue;
      streams.push({ mindex: m.index, mid: m.mid, type: m.kind, codec: null, offerCodec: null, disabled: true, moderated: false, relay: true, simulcast: false, layers: [] });
    }
    for (const d of this.described.data) {
      streams.push({ mindex: d.index, mid: d.mid, type: 'data', codec: null, offerCodec: null, disabled: false, moderated: false, relay: true, simulcast: false, layers: [] });
    }
    streams.sort((a, b) => a.mindex - b.mindex);
    this.streams = streams;
    this.audioCodec = streams.find((s) => s.type === 'audio' && !s.disabled)?.codec ?? null;
    this.videoCodec = streams.find((s) => s.type === 'video' && !s.disabled)?.codec ?? null;
  }

  private streamFrom(info: MediaStreamInfo, previous: FeedStream | undefined): FeedStream {
    // The room's codec policy is enforced here too: a media layer that answered with a codec
    // the narrowed offer did not keep gets its m-line disabled rather than relayed.
    const allowed = this.described.chosen.get(info.mid);
    const codec = info.codec && allowed !== undefined && allowed !== null && codecNameOf(info.codec.name, info.codec.clockRate) === allowed ? info.codec : null;
    const layers = orderLayers(info.sources, this.described.ridOrder);
    const stream: FeedStream = {
      mindex: info.index,
      mid: info.mid,
      type: info.kind,
      codec: codec ? codecNameOf(codec.name, codec.clockRate) : null,
      offerCodec: codec
        ? {
            name: codec.name,
            clockRate: codec.clockRate,
            ...(codec.channels !== undefined ? { channels: codec.channels } : {}),
            ...(codec.fmtp !== undefined ? { fmtp: codec.fmtp } : {}),
            ...(info.kind === 'video' ? { rtcpFb: VIDEO_FEEDBACK.map((f) => ({ ...f })) } : {}),
          }
        : null,
      disabled: codec === null,
      moderated: previous?.moderated ?? false,
      relay: previous?.relay ?? true,
      simulcast: info.sources.length > 1,
      layers,
    };
    const description = this.described.descriptions.get(info.mid) ?? previous?.description;
    if (description !== undefined) stream.description = description;
    const profile = codec?.fmtp ? /profile-level-id=([0-9a-fA-F]{6})/.exec(codec.fmtp)?.[1] : undefined;
    if (stream.codec === 'h264' && profile) stream.h264Profile = profile.toLowerCase();
    const vp9 = codec?.fmtp ? /profile-id=(\d)/.exec(codec.fmtp)?.[1] : undefined;
    if (stream.codec === 'vp9' && vp9) stream.vp9Profile = vp9;
    return stream;
  }

  /** Whether this publisher is to be recorded: its own `record`, or its room's. */
  get recordWanted(): boolean {
    return this.recordRequested || this.room.config.record;
  }

  /** The files being (or last) written for this publication. */
  get recordingFiles(): readonly Recording[] {
    return this.recordings?.recordings ?? [];
  }

  /**
   * Starts a file for every recordable stream not yet recorded while recording is wanted and
   * the publisher is up, or closes them all when it is not (configure `record`,
   * enable_recording, streams changing). Files are named as Janus's VideoRoom names them:
   * `videoroom-<room>-user-<id>-<µs now>-<audio|video>-<m-line>`, or `<filename>-<audio|video>-<m-line>`.
   * A file that cannot be created is reported to the publisher and skipped.
   */
  updateRecording(): void {
    const recorder = this.services?.recorder;
    if (!recorder) return;
    // From the answer on (packets flow once DTLS is up), so the request's answer lists the files.
    if (!this.recordWanted || !this.published || this.left) {
      this.recordings?.clear();
      this.recordings = null;
      return;
    }
    this.recordings ??= new RecordingSet(recorder, (rec, message) =>
      this.notify({ videoroom: 'event', room: this.room.id, error_code: 499, error: `Recording ${rec.path} failed: ${message}` }),
    );
    const now = Date.now() * 1000;
    const infos = this.media?.streams() ?? [];
    for (const s of this.streams) {
      if (s.type === 'data' && !s.disabled) {
        // Janus records the publisher's text messages too: `…-data-<m-line>.mjr`.
        if (this.recordings.data) continue;
        const base = this.recordingBase !== null ? `${this.recordingBase}-data-${s.mindex}` : `videoroom-${this.room.id}-user-${this.id}-${now}-data-${s.mindex}`;
        try {
          this.recordings.start({ source: -1, path: recorder.pathFor(this.room.config.rec_dir, base), kind: 'data', codec: 'text', mid: s.mid });
        } catch (err) {
          this.notify({ videoroom: 'event', room: this.room.id, error_code: 499, error: `Could not record stream ${s.mid}: ${(err as Error).message}` });
        }
        continue;
      }
      if (s.disabled || s.type === 'data' || !recordable(s.codec)) continue;
      // Simulcast: the top layer (layers are lowest first).
      const source = s.layers[s.layers.length - 1];
      if (source === undefined || this.recordings.has(source) || this.recordings.recordings.some((r) => r.active && r.spec.mid === s.mid)) continue;
      const base = this.recordingBase !== null ? `${this.recordingBase}-${s.type}-${s.mindex}` : `videoroom-${this.room.id}-user-${this.id}-${now}-${s.type}-${s.mindex}`;
      try {
        this.recordings.start({
          source,
          path: recorder.pathFor(this.room.config.rec_dir, base),
          kind: s.type,
          codec: s.codec ?? '',
          mid: s.mid,
          ...(s.offerCodec?.fmtp !== undefined ? { fmtp: s.offerCodec.fmtp } : {}),
          extensions: infos.find((i) => i.mid === s.mid)?.extensions ?? [],
        });
      } catch (err) {
        this.notify({ videoroom: 'event', room: this.room.id, error_code: 499, error: `Could not record stream ${s.mid}: ${(err as Error).message}` });
      }
    }
  }

  /** A text message on the publisher's data channel, for its data recording (binary ones are not recorded, as in Janus). */
  recordData(message: { binary: boolean; data: Buffer }): void {
    if (!message.binary) this.recordings?.writeData(message.data);
  }

  /** ICE + DTLS up: announce the feed, start periodic keyframe requests when the room asks for them. */
  setMediaUp(): void {
    if (this.mediaUp || !this.published || this.left) return;
    this.mediaUp = true;
    this.refreshForwarders();
    this.startFirTimer();
    this.applyBitrateCap();
    this.demandTimer ??= this.clock.setInterval(() => this.applyBitrateCap(), DEMAND_INTERVAL_MS);
    this.meterAudioLevels();
    this.announce();
  }

  /**
   * Talking detection (Janus `audiolevel_event`): the engine averages the RFC 6464 levels of
   * every `audio_active_packets` packets; an average below `audio_level_average` (−dBov,
   * lower is louder) means talking. Changes go to every participant, this one included.
   */
  meterAudioLevels(): void {
    if (!this.media || !this.publishing) return;
    const c = this.room.config;
    if (!c.audiolevel_event || !c.audiolevel_ext) {
      this.media.meterAudioLevels(null);
      return;
    }
    this.media.meterAudioLevels({ packets: this.audioActivePackets ?? c.audio_active_packets }, (mid, level) => this.onAudioLevel(mid, level));
  }

  private onAudioLevel(mid: string, level: number): void {
    if (!this.publishing) return;
    const talking = level < (this.audioLevelAverage ?? this.room.config.audio_level_average);
    if (talking === this.talking) return;
    this.talking = talking;
    this.room.notify({ videoroom: talking ? 'talking' : 'stopped-talking', room: this.room.id, id: this.id, mid, 'audio-level-dBov-avg': level });
  }

  /** `{videoroom:"event",room,publishers:[this]}` to everyone else. */
  announce(): void {
    if (!this.publishing) return;
    this.room.notify({ videoroom: 'event', room: this.room.id, publishers: [this.describe(this.room.config.audiolevel_event)] }, this);
    this.room.localFeedChanged(this, 'published');
  }

  /** Asks every video source of this feed for a keyframe (configure `keyframe`, subscriber switches, fir_freq). */
  requestKeyframes(mid?: string): void {
    if (!this.services) return;
    for (const s of this.streams) {
      if (s.type !== 'video' || s.disabled || (mid !== undefined && s.mid !== mid)) continue;
      for (const source of s.layers) this.services.router.requestKeyframe(source);
    }
  }

  private startFirTimer(): void {
    this.firTimer?.cancel();
    this.firTimer = null;
    const seconds = this.room.config.fir_freq;
    if (seconds > 0 && this.services) this.firTimer = this.clock.setInterval(() => this.requestKeyframes(), seconds * 1000);
  }

  /** The room's fir_freq or bitrate changed (edit). */
  roomEdited(): void {
    if (this.publishing) {
      this.startFirTimer();
      this.applyBitrateCap();
    }
  }

  /**
   * What the publisher may send, as Janus's VideoRoom caps it with REMB: its own `configure`
   * `bitrate`, else the room's `bitrate` (0: no cap); the room's `bitrate_cap` bounds the own.
   * Sent on the publisher's first video source (the REMB lists every video SSRC of its
   * PeerConnection) and repeated by the engine every second.
   */
  applyBitrateCap(): void {
    const router = this.services?.router;
    if (!router?.setBitrateCap || !this.publishing) return;
    const source = this.streams.find((s) => s.type === 'video' && !s.disabled && s.layers.length > 0)?.layers[0];
    if (source === undefined) return;
    const room = this.room.config;
    let cap = this.bitrate > 0 ? this.bitrate : room.bitrate;
    if (room.bitrate_cap && room.bitrate > 0) cap = Math.min(cap || room.bitrate, room.bitrate);
    const demand = this.demandCap(router);
    if (demand === null) this.lowDemandSince = null;
    else this.lowDemandSince ??= this.clock.now();
    const held = this.lowDemandSince !== null && this.clock.now() - this.lowDemandSince >= DEMAND_HOLD_MS;
    if (demand !== null && held) cap = cap > 0 ? Math.min(cap, demand) : demand;
    const next = cap > 0 ? cap : null;
    if (next === this.appliedCap) return;
    this.appliedCap = next;
    router.setBitrateCap(source, next);
  }

  /**
   * A cap so the publisher stops sending simulcast layers no subscriber wants: when every
   * subscriber of a simulcast stream has preferred (its `substream`) a layer below the top one
   * for DEMAND_HOLD_MS, the
   * REMB allows what the wanted layers and the other streams carry now, with headroom; the
   * sender's allocator then drops the layers above (libwebrtc fills layers bottom-up). Only
   * preferences count, never estimates, so a layer a subscriber's link may grow into stays on.
   * Null (no cap from demand) while anything else may need the top layer: no subscriber yet,
   * an RTP forwarder or a remote publication, a rate not measured yet.
   */
  private demandCap(router: MediaRouter): number | null {
    // A recording takes the top layer: it needs it whoever else watches.
    if (!router.sourceBitrate || this.forwarders.size > 0 || this.remotes.size > 0 || this.recordings?.active) return null;
    const streams = this.streams.filter((s) => !s.disabled && s.relay && s.layers.length > 0);
    const layered = streams.filter((s) => s.type === 'video' && s.simulcast && s.layers.length > 1);
    if (!layered.length) return null;
    let total = 0;
    for (const s of streams) {
      let upTo = s.layers.length - 1;
      if (layered.includes(s)) {
        let wanted: number | null = null;
        for (const consumer of this.room.subscribers) {
          const w = consumer.wantedLayer?.(this, s.mid);
          if (w !== null && w !== undefined) wanted = Math.max(wanted ?? 0, w);
        }
        if (wanted === null || wanted >= upTo) return null;
        upTo = wanted;
      }
      for (const source of s.layers.slice(0, upTo + 1)) {
        const bps = router.sourceBitrate(source);
        if (bps <= 0 && s.type === 'video') return null;
        total += bps;
      }
    }
    return Math.round(total * DEMAND_HEADROOM + DEMAND_FLOOR_BPS);
  }

  /**
   * Stops publishing (unpublish request, PeerConnection gone, leave, kick,
   * room destroyed). Returns whether it was publishing. Idempotent.
   */
  stopPublishing(): boolean {
    if (!this.published) return false;
    const wasAnnounced = this.publishing;
    this.published = false;
    this.mediaUp = false;
    this.stopListening?.();
    this.stopListening = null;
    this.media?.meterAudioLevels(null);
    this.media = null;
    this.firTimer?.cancel();
    this.firTimer = null;
    this.demandTimer?.cancel();
    this.demandTimer = null;
    this.appliedCap = undefined;
    this.lowDemandSince = null;
    this.closeForwarders();
    // Every ending (unpublish, hangup, leave, kick, detach, session timeout, room destroyed)
    // comes here: the files are closed, whole, before the sources go.
    this.recordings?.clear();
    this.recordings = null;
    this.streams = [];
    this.audioCodec = null;
    this.videoCodec = null;
    this.talking = false;
    if (wasAnnounced) this.room.feedGone(this);
    return wasAnnounced;
  }
}

/** Engine sources of an m-line, lowest quality first (see PublishedDescription.ridOrder). */
export function orderLayers(sources: MediaStreamInfo['sources'], ridOrder: 'hml' | 'lmh'): number[] {
  const ids = sources.map((s) => s.source);
  const withRid = sources.some((s) => s.rid !== undefined);
  // RFC 8853 rids in the order the offer lists them; Janus's default order lists the highest first.
  // SSRC simulcast (a=ssrc-group:SIM, RFC 5576 grouping) lists the lowest first.
  return withRid && ridOrder === 'hml' ? ids.reverse() : ids;
}
