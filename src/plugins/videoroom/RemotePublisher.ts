/**
 * A remote publisher (Janus PR #3014 cascading): media forwarded as plain RTP
 * by another gateway's `publish_remotely`, received on ONE leg (one port,
 * RTP and RTCP muxed) that this object owns. Streams are demultiplexed by the
 * Janus SSRC scheme 1000 + 10 × mindex + layer; a random 32-bit offset per
 * remote publisher is added on receipt so no two feeds inside ferry share an
 * SSRC, which keeps subscriber switches between cascaded feeds seen as source
 * changes (lessons §4, Janus #3444). `close()` releases the port (lessons §5).
 */
import { randomBytes } from 'node:crypto';
import type { JsonObject } from '../../core/Json.js';
import type { RtpLeg } from '../../media/Routing.js';
import { Feed, type FeedStream, type FeedStreamType } from './Feed.js';
import { cascadeSsrc } from './RtpForwarder.js';
import type { Room } from './Room.js';
import { CODECS, offerCodecFor } from './codecs.js';

/** One stream of `add_remote_publisher`/`update_remote_publisher`, validated. */
export interface RemoteStreamSpec {
  type: FeedStreamType;
  mindex: number;
  mid: string;
  codec: string | null;
  description?: string;
  disabled: boolean;
  simulcast: boolean;
  stereo: boolean;
  fec: boolean;
  dtx: boolean;
  h264Profile?: string;
  vp9Profile?: string;
}

/** Simulcast over the cascade always uses three layers (+0, +1, +2), as Janus's vssrc[0..2]. */
const CASCADE_LAYERS = 3;

export function randomSsrcOffset(): number {
  return randomBytes(4).readUInt32BE(0);
}

export class RemotePublisher extends Feed {
  readonly remote = true;
  removed = false;

  constructor(
    id: number,
    readonly room: Room,
    readonly leg: RtpLeg,
    readonly ssrcOffset: number,
    /** The handle that created it (null: Admin API); its ending removes this publisher. */
    readonly owner: object | null,
  ) {
    super(id);
  }

  get publishing(): boolean {
    return !this.removed;
  }

  notify(_data: JsonObject): void {
    // A remote publisher has no client on this gateway to tell.
  }

  /** Adds new streams, replaces changed ones and disables `disabled` ones; returns whether anything changed. */
  applyStreams(specs: RemoteStreamSpec[]): boolean {
    let changed = false;
    for (const spec of specs) {
      const index = this.streams.findIndex((s) => s.mindex === spec.mindex || s.mid === spec.mid);
      const old = index >= 0 ? this.streams[index] : undefined;
      if (old) for (const source of old.layers) this.leg.removeSource(source);
      const stream = this.buildStream(spec, old);
      if (index >= 0) this.streams[index] = stream;
      else this.streams.push(stream);
      changed = true;
    }
    this.streams.sort((a, b) => a.mindex - b.mindex);
    return changed;
  }

  private buildStream(spec: RemoteStreamSpec, old: FeedStream | undefined): FeedStream {
    return remoteFeedStream(spec, old, this.leg, this.ssrcOffset);
  }

  /** Ends the remote publisher: forwarders and the leg (its port) are released. Idempotent. */
  close(): void {
    if (this.removed) return;
    this.removed = true;
    this.closeForwarders();
    this.streams = [];
    this.leg.close();
  }
}

/**
 * A feed stream received over a cascade leg: built from its spec, keeping the old stream's
 * moderation and send flag; with a leg, its sources (one per layer) are added on it by the
 * Janus SSRC scheme plus `ssrcOffset`; without one (a cluster feed not cascaded here yet) it has
 * no sources but is described and offered like any other.
 */
export function remoteFeedStream(spec: RemoteStreamSpec, old: FeedStream | undefined, leg: RtpLeg | null, ssrcOffset: number): FeedStream {
  const offerOptions: Parameters<typeof offerCodecFor>[1] = { stereo: spec.stereo, fec: spec.fec, dtx: spec.dtx };
  if (spec.h264Profile) offerOptions.h264Profile = spec.h264Profile;
  if (spec.vp9Profile) offerOptions.vp9Profile = spec.vp9Profile;
  const offerCodec = spec.type === 'data' || spec.codec === null ? null : offerCodecFor(spec.codec, offerOptions);
  const stream: FeedStream = {
    mindex: spec.mindex,
    mid: spec.mid,
    type: spec.type,
    codec: spec.type === 'data' ? null : spec.codec,
    offerCodec,
    disabled: spec.disabled,
    moderated: old?.moderated ?? false,
    relay: old?.relay ?? true,
    simulcast: spec.type === 'video' && spec.simulcast,
    layers: [],
  };
  if (spec.description !== undefined) stream.description = spec.description;
  if (spec.h264Profile) stream.h264Profile = spec.h264Profile;
  if (spec.vp9Profile) stream.vp9Profile = spec.vp9Profile;
  if (leg && !spec.disabled && spec.type !== 'data' && spec.codec !== null) {
    const def = CODECS[spec.codec as keyof typeof CODECS];
    const kind = spec.type;
    const layers = stream.simulcast ? CASCADE_LAYERS : 1;
    for (let layer = 0; layer < layers; layer++) {
      // The video codec lets subscribers switch layers exactly at a keyframe.
      const codec: 'vp8' | 'vp9' | 'h264' | undefined = kind === 'video' && (spec.codec === 'vp8' || spec.codec === 'vp9' || spec.codec === 'h264') ? spec.codec : undefined;
      stream.layers.push(leg.addSource({ ssrc: cascadeSsrc(spec.mindex, layer), ssrcOffset, kind, clockRate: def.clockRate, ...(codec ? { codec } : {}) }));
    }
  }
  return stream;
}
