/**
 * An `rtp` mountpoint: media an encoder (ffmpeg, GStreamer, OBS, a camera)
 * sends as plain RTP to ports ferry leased for it, fanned out by the engine to
 * every viewer's PeerConnection. It is the same path as a VideoRoom remote
 * publisher: one RtpLeg (one leased port, RTCP multiplexed on it, RFC 5761)
 * per stream and simulcast layer, latching the sender's address from its
 * first packet so keyframe requests (PLI, RFC 4585 §6.3.1) go back to it.
 *
 * The mountpoint owns its legs: `close()` releases every port, and it is the
 * only place that does (lessons §5).
 *
 * Which SSRC a port carries is learned, not configured: the first SSRC with
 * the stream's payload type becomes the source. A different SSRC replaces it
 * only once the current one has been silent for `collision` ms (Janus's
 * `collision`), so stray or hostile packets cannot take a live stream over;
 * an encoder that restarts with a new SSRC is followed after that pause.
 */
import type { JsonObject } from '../../core/Json.js';
import type { MediaRouter, RtpLeg } from '../../media/Routing.js';
import { CODECS } from '../videoroom/codecs.js';

export type MediaType = 'audio' | 'video';

/** One stream of a mountpoint as configured (and as a permanent mountpoint is stored). */
export interface MediaConfig {
  type: MediaType;
  mid: string;
  label: string;
  msid?: string;
  /** Janus codec name (`opus`, `vp8`, …). */
  codec: string;
  /** Payload type the sender uses, offered to viewers too. */
  pt: number;
  fmtp?: string;
  /** Ports asked for, one per simulcast layer (lowest first); 0 = any free port of the media range. */
  ports: number[];
  /** A separate port the sender's RTCP may go to (0 = any free one); absent = RTCP on the RTP port. */
  rtcpport?: number;
  simulcast: boolean;
}

/** Every mountpoint option; also the shape a permanent mountpoint is stored in. */
export interface MountpointConfig {
  id: number;
  name: string;
  description: string;
  metadata?: string;
  secret?: string;
  pin?: string;
  is_private: boolean;
  enabled: boolean;
  /** ms a source must be silent before another SSRC on its port replaces it. */
  collision: number;
  /** SRTP from the sender (RFC 3711), SDES style as Janus takes it: suite 32 or 80 and base64 key‖salt. */
  srtpsuite?: 32 | 80;
  srtpcrypto?: string;
  media: MediaConfig[];
}

/** Collision window when a `create` sets none: one second of silence before a new SSRC is taken. */
export const DEFAULT_COLLISION_MS = 1000;

/** One port of a stream (one simulcast layer), with the source it latched. */
export interface Layer {
  readonly leg: RtpLeg;
  /** Engine source of the latched SSRC, null until a packet arrived. */
  source: number | null;
  ssrc: number | null;
  /** SSRCs seen while `source` was live, waiting for it to go silent (SSRC → when seen). */
  readonly candidates: Map<number, number>;
  /** The source's packet count at the last tick, and when it last grew (null: nothing yet). */
  packets: number;
  lastReceived: number | null;
  /** A new SSRC was adopted and the sender's address re-learned: ask it for a keyframe once it sends. */
  keyframeWanted: boolean;
}

export class MountpointMedia {
  constructor(
    readonly config: MediaConfig,
    readonly mindex: number,
    readonly layers: Layer[],
    /** The leg bound on `rtcpport`, if one was asked for. */
    readonly rtcpLeg: RtpLeg | null,
  ) {}

  get mid(): string {
    return this.config.mid;
  }

  get type(): MediaType {
    return this.config.type;
  }

  /** The source a viewer wanting `substream` gets: that layer, or the best lower one that has a source. */
  layerSource(substream: number): { source: number; layer: number } | null {
    for (let layer = Math.min(substream, this.layers.length - 1); layer >= 0; layer--) {
      const source = this.layers[layer]?.source;
      if (source !== null && source !== undefined) return { source, layer };
    }
    // Nothing at or below: any higher layer that has a source.
    for (let layer = substream + 1; layer < this.layers.length; layer++) {
      const source = this.layers[layer]?.source;
      if (source !== null && source !== undefined) return { source, layer };
    }
    return null;
  }

  /** ms since any layer last received media, null when none ever did. */
  ageMs(now: number): number | null {
    let last: number | null = null;
    for (const l of this.layers) if (l.lastReceived !== null && (last === null || l.lastReceived > last)) last = l.lastReceived;
    return last === null ? null : Math.max(0, Math.round(now - last));
  }
}

/** What watches a mountpoint (a viewer): told when sources change or the mountpoint goes. */
export interface MountpointViewer {
  /** A stream's source changed (first packet, new SSRC) or the mountpoint was enabled/disabled. */
  sourcesChanged(): void;
  /** The mountpoint is destroyed: tell the client and end the viewer. */
  mountpointGone(): void;
  /** Ends the viewer without telling its client (shutdown). */
  teardown(): void;
  /** Tells the viewer's client something about the mountpoint (`edited`). */
  notify(data: JsonObject): void;
}

/** Opens one leg for a mountpoint (the plugin counts it against its creator's quota). */
export type LegOpener = (purpose: string, port: number) => RtpLeg;

export class Mountpoint {
  readonly viewers = new Set<MountpointViewer>();
  readonly media: MountpointMedia[] = [];
  destroyed = false;

  private constructor(
    public config: MountpointConfig,
    private readonly router: MediaRouter | null,
  ) {}

  /**
   * Opens every port the configuration asks for; if one fails, the ones already open are
   * released and the error goes on (no half-built mountpoint keeps a port).
   */
  static open(config: MountpointConfig, openLeg: LegOpener, router: MediaRouter | null, now: () => number): Mountpoint {
    const mp = new Mountpoint(config, router);
    const opened: RtpLeg[] = [];
    try {
      config.media.forEach((m, mindex) => {
        const layers: Layer[] = m.ports.map((port, layer) => {
          const leg = openLeg(`${m.mid}${layer > 0 ? `:${layer + 1}` : ''}`, port);
          opened.push(leg);
          return { leg, source: null, ssrc: null, candidates: new Map(), packets: 0, lastReceived: null, keyframeWanted: false };
        });
        let rtcpLeg: RtpLeg | null = null;
        if (m.rtcpport !== undefined) {
          rtcpLeg = openLeg(`${m.mid}:rtcp`, m.rtcpport);
          opened.push(rtcpLeg);
        }
        const media = new MountpointMedia(m, mindex, layers, rtcpLeg);
        mp.media.push(media);
        for (const layer of layers) {
          layer.leg.onUnknownSsrc((info) => mp.unknownSsrc(media, layer, info.ssrc, info.payloadType, now()));
        }
      });
    } catch (err) {
      for (const leg of opened) leg.close();
      throw err;
    }
    return mp;
  }

  get id(): number {
    return this.config.id;
  }

  /** Packets with an SSRC the port has no source for (the engine reports each SSRC once). */
  private unknownSsrc(media: MountpointMedia, layer: Layer, ssrc: number, payloadType: number, now: number): void {
    if (this.destroyed || payloadType !== media.config.pt) return;
    if (layer.source === null) this.adopt(media, layer, ssrc, now);
    else if (ssrc !== layer.ssrc) layer.candidates.set(ssrc, now);
  }

  /** Makes `ssrc` the layer's source (replacing the old one); viewers re-point their outputs. */
  private adopt(media: MountpointMedia, layer: Layer, ssrc: number, now: number): void {
    if (layer.source !== null) {
      layer.leg.removeSource(layer.source);
      // A restarted encoder usually sends from another port: learn its address from its next
      // packet (symmetric RTP), so keyframe requests reach it rather than the old one.
      layer.leg.setRemote(null);
      layer.keyframeWanted = true;
    }
    layer.source = null;
    const def = CODECS[media.config.codec as keyof typeof CODECS];
    const codec = media.type === 'video' && (media.config.codec === 'vp8' || media.config.codec === 'vp9' || media.config.codec === 'h264') ? media.config.codec : undefined;
    layer.source = layer.leg.addSource({ ssrc, kind: media.type, clockRate: def?.clockRate ?? 90000, ...(codec ? { codec } : {}) });
    layer.ssrc = ssrc;
    layer.candidates.delete(ssrc);
    layer.lastReceived = now;
    layer.packets = 0;
    for (const v of this.viewers) v.sourcesChanged();
  }

  /**
   * Periodic bookkeeping with every source's packet count: when each stream last received media
   * (`age_ms`), and a silent source replaced by an SSRC that arrived meanwhile.
   */
  tick(now: number, sourcePackets: Map<number, number>): void {
    if (this.destroyed) return;
    for (const media of this.media) {
      for (const layer of media.layers) {
        if (layer.source !== null) {
          const packets = sourcePackets.get(layer.source) ?? layer.packets;
          if (packets !== layer.packets) {
            layer.packets = packets;
            layer.lastReceived = now;
            if (layer.keyframeWanted && media.type === 'video') this.router?.requestKeyframe(layer.source);
            layer.keyframeWanted = false;
          }
        }
        if (layer.candidates.size === 0) continue;
        const silentFor = layer.lastReceived === null ? Infinity : now - layer.lastReceived;
        if (silentFor < this.config.collision) continue;
        // The most recently seen SSRC: an encoder restart is the last one to have appeared.
        let newest: [number, number] | null = null;
        for (const entry of layer.candidates) if (newest === null || entry[1] >= newest[1]) newest = entry;
        layer.candidates.clear();
        if (newest) this.adopt(media, layer, newest[0], now);
      }
    }
  }

  /** `enable`/`disable`: a disabled mountpoint keeps its ports but sends viewers nothing. */
  setEnabled(enabled: boolean): void {
    if (this.config.enabled === enabled) return;
    this.config.enabled = enabled;
    for (const v of this.viewers) v.sourcesChanged();
  }

  /** Ends the mountpoint: viewers told (`notify`) or torn down, every port released. Idempotent. */
  close(notify: boolean): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const v of [...this.viewers]) {
      if (notify) v.mountpointGone();
      else v.teardown();
    }
    this.viewers.clear();
    for (const media of this.media) {
      for (const layer of media.layers) {
        layer.leg.close();
        layer.source = null;
      }
      media.rtcpLeg?.close();
    }
  }

  /** Ports leased by this mountpoint (tests and Admin check they all come back). */
  get legCount(): number {
    let n = 0;
    for (const m of this.media) n += m.layers.filter((l) => !l.leg.closed).length + (m.rtcpLeg && !m.rtcpLeg.closed ? 1 : 0);
    return n;
  }

  // ---- what the API shows ----------------------------------------------------------------------

  /** A `list` entry (Janus: generic info only). */
  listEntry(now: number): JsonObject {
    const c = this.config;
    const out: JsonObject = { id: c.id, type: 'live', description: c.description };
    if (c.metadata !== undefined) out['metadata'] = c.metadata;
    out['enabled'] = c.enabled;
    out['media'] = this.media.map((m) => {
      const e: JsonObject = { mid: m.mid, label: m.config.label, type: m.type };
      if (m.config.msid !== undefined) e['msid'] = m.config.msid;
      const age = m.ageMs(now);
      if (age !== null) e['age_ms'] = age;
      return e;
    });
    return out;
  }

  /** The `info` object; secrets, PIN, privacy and ports only for who proved the secret (or when there is none). */
  info(now: number, privileged: boolean): JsonObject {
    const c = this.config;
    const out: JsonObject = { id: c.id, name: c.name, description: c.description };
    if (c.metadata !== undefined) out['metadata'] = c.metadata;
    if (privileged) {
      if (c.secret !== undefined) out['secret'] = c.secret;
      if (c.pin !== undefined) out['pin'] = c.pin;
      out['is_private'] = c.is_private;
    }
    out['viewers'] = this.viewers.size;
    out['enabled'] = c.enabled;
    out['type'] = 'live';
    out['media'] = this.media.map((m) => {
      const e: JsonObject = { mid: m.mid, mindex: m.mindex, type: m.type, label: m.config.label };
      if (m.config.msid !== undefined) e['msid'] = m.config.msid;
      const age = m.ageMs(now);
      if (age !== null) e['age_ms'] = age;
      e['pt'] = m.config.pt;
      e['codec'] = m.config.codec;
      e['rtpmap'] = rtpmap(m.config);
      if (m.config.fmtp !== undefined) e['fmtp'] = m.config.fmtp;
      if (m.config.simulcast) e['simulcast'] = true;
      if (privileged) Object.assign(e, this.portsOf(m));
      return e;
    });
    return out;
  }

  /** The `stream` object of a `created` reply. */
  created(): JsonObject {
    const c = this.config;
    return {
      id: c.id,
      type: 'live',
      description: c.description,
      is_private: c.is_private,
      ports: this.media.map((m) => {
        const e: JsonObject = { type: m.type, mid: m.mid };
        if (m.config.msid !== undefined) e['msid'] = m.config.msid;
        return { ...e, ...this.portsOf(m) };
      }),
    };
  }

  private portsOf(m: MountpointMedia): JsonObject {
    const out: JsonObject = {};
    m.layers.forEach((l, i) => {
      out[i === 0 ? 'port' : `port_${i + 1}`] = l.leg.port;
    });
    if (m.rtcpLeg) out['rtcp_port'] = m.rtcpLeg.port;
    return out;
  }

  /** The configuration to store for a permanent mountpoint: the ports it actually holds. */
  persisted(): MountpointConfig {
    const c = structuredClone(this.config);
    c.media.forEach((m, i) => {
      const media = this.media[i];
      if (!media) return;
      m.ports = media.layers.map((l) => l.leg.port);
      if (media.rtcpLeg) m.rtcpport = media.rtcpLeg.port;
    });
    return c;
  }
}

/** SDP rtpmap value of a stream (`VP8/90000`, `opus/48000/2`). */
export function rtpmap(m: MediaConfig): string {
  const def = CODECS[m.codec as keyof typeof CODECS];
  if (!def) return m.codec;
  const name = def.encoding === 'opus' ? 'opus' : def.encoding.toUpperCase();
  return `${name}/${def.clockRate}${def.channels ? `/${def.channels}` : ''}`;
}
