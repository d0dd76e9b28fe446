/**
 * A participant of a clustered room who joined on another ferry node (README "Cluster"). It is
 * listed, announced and subscribable here like a local one; its media arrives only while some
 * subscriber of this node consumes it, over one cascade leg (the remote-publisher path: plain
 * RTP with SRTP, Janus SSRC scheme plus a random offset) that the cluster's CascadeManager opens
 * and closes. The leg is owned here: `detach()` and `close()` release its port.
 */
import type { JsonObject } from '../../core/Json.js';
import { assignDefined } from '../../core/RequestTable.js';
import type { RtpLeg } from '../../media/Routing.js';
import { Feed, type FeedStream } from './Feed.js';
import { randomSsrcOffset, remoteFeedStream, type RemoteStreamSpec } from './RemotePublisher.js';
import type { Room } from './Room.js';

export class ClusterFeed extends Feed {
  readonly remote = true;
  /** The publisher's node announced streams (it is publishing there). */
  announced = false;
  /** Left the room (or the room or the node is gone). */
  gone = false;
  private specs: RemoteStreamSpec[] = [];
  private leg: RtpLeg | null = null;
  private ssrcOffset = randomSsrcOffset();

  constructor(
    id: number,
    readonly room: Room,
    /** The node the participant joined on. */
    readonly node: string,
  ) {
    super(id);
  }

  get publishing(): boolean {
    return this.announced && !this.gone;
  }

  /** The cascade leg's local port while media is cascaded here, else null. */
  get cascadePort(): number | null {
    return this.leg?.port ?? null;
  }

  notify(_data: JsonObject): void {
    // Its client is on another node, which tells it itself.
  }

  /** The streams the publisher's node announced; returns whether they differ from the last ones. */
  setSpecs(specs: RemoteStreamSpec[]): boolean {
    if (JSON.stringify(specs) === JSON.stringify(this.specs)) return false;
    this.specs = specs;
    this.rebuild();
    return true;
  }

  /** Cascaded media starts arriving on `leg` (this feed owns it from now on). */
  attach(leg: RtpLeg): void {
    this.detach();
    this.leg = leg;
    // A fresh offset per cascade: subscribers see a new source, never a resumed one (lessons §4).
    this.ssrcOffset = randomSsrcOffset();
    this.rebuild();
  }

  /** Stops receiving: sources removed, the leg (its port) released. Idempotent. */
  detach(): void {
    const leg = this.leg;
    if (!leg) return;
    for (const s of this.streams) for (const source of s.layers) leg.removeSource(source);
    this.leg = null;
    leg.close();
    this.rebuild();
  }

  /** The publisher unpublished on its node: no streams, no leg. */
  unannounce(): void {
    this.announced = false;
    this.specs = [];
    this.detach();
    this.streams = [];
  }

  /** Ends the feed (left, room or node gone): forwarders and the leg released. Idempotent. */
  close(): void {
    if (this.gone) return;
    this.gone = true;
    this.closeForwarders();
    this.unannounce();
  }

  private rebuild(): void {
    const old = new Map(this.streams.map((s) => [s.mid, s]));
    if (this.leg) for (const s of this.streams) for (const source of s.layers) this.leg.removeSource(source);
    this.streams = this.specs.map((spec) => remoteFeedStream(spec, old.get(spec.mid), this.leg, this.ssrcOffset)).sort((a, b) => a.mindex - b.mindex);
  }
}

/**
 * What a remote node needs to describe and receive a local feed: its streams as
 * `add_remote_publisher` specs (Opus stereo/FEC/DTX read from the negotiated fmtp).
 */
export function feedSpecs(feed: Feed): RemoteStreamSpec[] {
  return feed.streams.map((s: FeedStream) => {
    const fmtp = s.offerCodec?.fmtp ?? '';
    const spec: RemoteStreamSpec = {
      type: s.type,
      mindex: s.mindex,
      mid: s.mid,
      codec: s.codec,
      disabled: s.disabled || (s.type !== 'data' && s.codec === null),
      simulcast: s.simulcast,
      stereo: /(^|;)\s*stereo=1/.test(fmtp),
      fec: !/(^|;)\s*useinbandfec=0/.test(fmtp),
      dtx: /(^|;)\s*usedtx=1/.test(fmtp),
    };
    // An empty profile is none (the SDP named no profile).
    return assignDefined(spec, { description: s.description, h264Profile: s.h264Profile || undefined, vp9Profile: s.vp9Profile || undefined });
  });
}
