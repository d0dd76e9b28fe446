/**
 * A feed: what subscribers and forwarders can consume in a room. A local
 * publisher (WebRTC) and a remote publisher (plain RTP from another gateway)
 * are both feeds; subscribers never need to know which.
 */
import type { JsonObject, JsonValue } from '../../core/Json.js';
import type { OfferSection } from '../../core/Media.js';
import type { RtpForwarder } from './RtpForwarder.js';

export type FeedStreamType = 'audio' | 'video' | 'data';

/** One m-line of a feed, with the engine sources that carry it. */
export interface FeedStream {
  mindex: number;
  mid: string;
  type: FeedStreamType;
  /** Janus codec name (`opus`, `vp8`, …); null for data or a rejected m-line. */
  codec: string | null;
  /** How a subscriber offer describes this stream's codec; null for data or rejected m-lines. */
  offerCodec: OfferSection['codec'] | null;
  description?: string;
  /** Rejected, or marked gone by `update_remote_publisher`. */
  disabled: boolean;
  /** Muted by `moderate`: not relayed until unmuted. */
  moderated: boolean;
  /** The publisher's `configure` `send` flag for this stream. */
  relay: boolean;
  simulcast: boolean;
  /** Engine source ids, lowest quality first (one entry without simulcast; empty until known). */
  layers: number[];
  h264Profile?: string;
  vp9Profile?: string;
}

export abstract class Feed {
  display: string | undefined;
  metadata: JsonValue | undefined;
  streams: FeedStream[] = [];
  /** `rtp_forward` forwarders by stream_id. */
  readonly forwarders = new Map<number, RtpForwarder>();
  /** `publish_remotely` forwarders by remote_id. */
  readonly remotes = new Map<string, RtpForwarder>();
  talking = false;
  abstract readonly remote: boolean;

  constructor(readonly id: number) {}

  /** Is this feed offering media to subscribers right now? */
  abstract get publishing(): boolean;

  /** Delivers a room notification to this participant's client, if it has one. */
  abstract notify(data: JsonObject): void;

  stream(mid: string): FeedStream | undefined {
    return this.streams.find((s) => s.mid === mid);
  }

  /** Media streams the engine can route (not disabled, not data: data-channel messages are relayed in the control plane). */
  get routableStreams(): FeedStream[] {
    return this.streams.filter((s) => !s.disabled && s.type !== 'data' && s.offerCodec !== null);
  }

  /** What a subscription without a mid takes: the routable media and the data stream. */
  get subscribableStreams(): FeedStream[] {
    return this.streams.filter((s) => !s.disabled && (s.type === 'data' || s.offerCodec !== null));
  }

  /** The feed's data-channel stream, when it publishes one. */
  get dataStream(): FeedStream | undefined {
    return this.streams.find((s) => s.type === 'data' && !s.disabled);
  }

  /** `{id, display?, metadata?, streams, talking?}` as `joined`/`publishers` list it. */
  describe(audioLevelEvent: boolean): JsonObject {
    const out: JsonObject = { id: this.id };
    if (this.display !== undefined) out['display'] = this.display;
    if (this.metadata !== undefined) out['metadata'] = this.metadata;
    out['streams'] = this.streams.map((s) => describeFeedStream(s));
    if (audioLevelEvent) out['talking'] = this.talking;
    return out;
  }

  /** `{id, display?, metadata?}` as `leaving`/`unpublished`/`kicked` carry it. */
  identity(): JsonObject {
    const out: JsonObject = {};
    if (this.display !== undefined) out['display'] = this.display;
    if (this.metadata !== undefined) out['metadata'] = this.metadata;
    return out;
  }

  /** Closes every forwarder (their port leases with them). Idempotent. */
  closeForwarders(): void {
    for (const f of this.forwarders.values()) f.close();
    this.forwarders.clear();
    for (const f of this.remotes.values()) f.close();
    this.remotes.clear();
  }

  /** Re-points forwarders after the feed's sources changed (renegotiation, SSRC learned). */
  refreshForwarders(): void {
    for (const f of this.forwarders.values()) f.refresh(this);
    for (const f of this.remotes.values()) f.refresh(this);
  }
}

export function describeFeedStream(s: FeedStream): JsonObject {
  const out: JsonObject = { type: s.type, mindex: s.mindex, mid: s.mid };
  if (s.disabled) out['disabled'] = true;
  if (s.codec) out['codec'] = s.codec;
  if (s.description !== undefined) out['description'] = s.description;
  if (s.moderated) out['moderated'] = true;
  if (s.simulcast) out['simulcast'] = true;
  if (s.type === 'video' && s.codec === 'h264' && s.h264Profile) out['h264_profile'] = s.h264Profile;
  if (s.type === 'video' && s.codec === 'vp9' && s.vp9Profile) out['vp9_profile'] = s.vp9Profile;
  return out;
}

/** The source a consumer asking for `substream` gets: that layer, or the best lower one available. */
export function layerSource(stream: FeedStream, substream: number): { source: number; layer: number } | null {
  if (stream.layers.length === 0) return null;
  const layer = Math.max(0, Math.min(substream, stream.layers.length - 1));
  const source = stream.layers[layer];
  return source === undefined ? null : { source, layer };
}

/** Can this stream be relayed right now? */
export function relayable(stream: FeedStream): boolean {
  return !stream.disabled && !stream.moderated && stream.relay;
}
