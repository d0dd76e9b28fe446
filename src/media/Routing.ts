// What plugins get to route media, as the media layer offers it: engine operations on ids
// they hold (sources and outputs), and plain RTP legs (one leased port each) for SIP, remote
// publishers and RTP forwarders. The core never sees these; plugins and the gateway's wiring do.

/** Engine operations plugins may perform on ids they hold. */
export interface MediaRouter {
  /**
   * Feeds `output` from `source` (null: nothing); the receiver sees one continuous stream.
   * With `onKeyframe`, the current source keeps feeding it until a keyframe of a source
   * created with a video `codec` arrives.
   */
  switchOutput(output: number, source: number | null, options?: { onKeyframe?: boolean }): void;
  pauseOutput(output: number, paused: boolean): void;
  /** Asks the sender of `source` for a keyframe (PLI). */
  requestKeyframe(source: number): void;
  /** Packets/bytes counters of a source or output (signalling-rate use only). */
  counters(id: number): { packets: number; bytes: number } | null;
  /** Called when an `onKeyframe` switch completes (the keyframe arrived); returns an unsubscribe. */
  onOutputSwitched(listener: (output: number, source: number) => void): () => void;
  /**
   * The highest VP8 temporal layer `output` forwards (null: every layer): lower at once, higher
   * from the next layer-sync frame. Optional: routers without temporal layers ignore it.
   */
  setOutputTemporal?(output: number, layer: number | null): void;
  /** A source's receive rate over the last half second (bits/s; 0 before it is measured). */
  sourceBitrate?(source: number): number;
  /** Caps what the publisher behind `source` sends (REMB, repeated); null: no cap. */
  setBitrateCap?(source: number, bps: number | null): void;
  /** Called when a temporal-layer choice took effect (layer null: every layer); returns an unsubscribe. */
  onOutputTemporal?(listener: (output: number, layer: number | null) => void): () => void;
  /**
   * Packets each source received so far, by source id, read in one call for every source (a
   * periodic reader's cheap alternative to `counters`). Optional: routers without it report none.
   */
  sourcePackets?(): Map<number, number>;
  /**
   * Lets `output` choose among simulcast layers (source ids, lowest first) within what its
   * subscriber's link takes, never above `preferred` / `temporalMax` (Janus `substream` /
   * `temporal`); switches are reported through onOutputSwitched. Null: switchOutput decides.
   */
  setOutputLayers?(output: number, layers: { sources: number[]; preferred: number; temporalMax: number | null } | null): void;
  /** VP9 SVC: the highest spatial and temporal layers `output` forwards (null: all). */
  setOutputSvc?(output: number, spatial: number | null, temporal: number | null): void;
  /** Called when a spatial-layer choice took effect (layer null: every layer); returns an unsubscribe. */
  onOutputSpatial?(listener: (output: number, layer: number | null) => void): () => void;
  /**
   * Per payload type `output` receives from its source, the type it writes instead of its own
   * (`to`), or that it does not send such packets (`to` null): a bridge whose sides number RFC
   * 4733 events differently, or where one side has none. Replaces the previous map.
   */
  setOutputPayloadMap?(output: number, map: ReadonlyArray<{ from: number; to: number | null }>): void;
  /** Reports the RFC 4733 events `source` carries with `payloadType` (null: stop), once per event. */
  setTelephoneEvents?(source: number, payloadType: number | null): void;
  /** Called for each RFC 4733 event that ended on a watched source; returns an unsubscribe. */
  onTelephoneEvent?(listener: (source: number, event: TelephoneEvent) => void): () => void;
}

/** An RFC 4733 event (§3.2: 0-9 digits, 10 `*`, 11 `#`, 12-15 A-D, 16 flash) as the engine saw it end. */
export interface TelephoneEvent {
  event: number;
  /** -dBm0. */
  volume: number;
  /** In the payload's clock units (e.g. 8000 per second for telephone-event/8000). */
  duration: number;
}

// ---- plain RTP legs (SIP media, remote publishers, rtp_forward) ------------------------------

export interface SdesKeys {
  /** RFC 4568 crypto suite, e.g. AES_CM_128_HMAC_SHA1_80, or AEAD_AES_128_GCM. */
  profile: string;
  localKey: Buffer;
  localSalt: Buffer;
  remoteKey: Buffer;
  remoteSalt: Buffer;
}

export interface RtpLegOptions {
  /** Who holds the port lease (shown by Admin / metrics), e.g. "videoroom:1234:remote:5678". */
  owner: string;
  /** Which port range: the gateway's RTP range or the SIP plugin's own. */
  pool?: 'rtp' | 'sip';
  /** Where media is sent; may be set later with setRemote. */
  remote?: { address: string; port: number } | null;
  /** Learn the remote from the first packet (symmetric RTP) when none is set. */
  latch?: boolean;
  srtp?: SdesKeys;
  /** A specific port from the pool's range (Janus's add_remote_publisher `port`); 0/absent = any free one. */
  port?: number;
  /** Media-thread placement group (e.g. the room), as for PeerConnections. */
  placementGroup?: string;
}

/** One UDP port (RTP and RTCP multiplexed on it, RFC 5761) owned by one plugin object. */
export interface RtpLeg {
  readonly address: string;
  readonly port: number;
  /**
   * `keyframeCache`: keep the source's current group of pictures, so an output that starts on
   * it gets a picture at once (a sender that ignores keyframe requests, e.g. an encoder's RTP).
   */
  addSource(options: { ssrc: number; ssrcOffset?: number; kind: 'audio' | 'video'; clockRate: number; codec?: 'vp8' | 'vp9' | 'h264'; keyframeCache?: boolean }): number;
  removeSource(source: number): void;
  addOutput(options: { ssrc: number; payloadType?: number; source?: number | null }): number;
  removeOutput(output: number): void;
  setRemote(remote: { address: string; port: number } | null): void;
  setSrtp(keys: SdesKeys | null): void;
  /** Packets with an SSRC no source claims (reported once per SSRC). */
  onUnknownSsrc(listener: (info: { ssrc: number; payloadType: number }) => void): void;
  /** Releases the port lease; the socket is closed when this returns. Idempotent. */
  close(): void;
  readonly closed: boolean;
}

/** What the gateway gives plugins that route media. */
export interface MediaServices {
  router: MediaRouter;
  openRtpLeg(options: RtpLegOptions): RtpLeg;
}

/**
 * One output of a plugin's subscriber (a VideoRoom subscriber's or a Streaming viewer's m-line)
 * and what the router was last told for it, so that only changes are sent: every router call
 * is then a real switch. `undefined`: nothing told yet.
 */
export interface OutputBinding {
  mid: string;
  /** Engine output id once negotiated. */
  output: number | null;
  appliedSource: number | null | undefined;
  appliedPaused: boolean | undefined;
  appliedLayer: number | null;
  /** Temporal layer last told (null: every layer). */
  appliedTemporal?: number | null | undefined;
  /** The simulcast layer set or VP9 SVC layers last told, where the output has them. */
  appliedLayerSet?: string | undefined;
  appliedSvc?: string | undefined;
}

/** A binding before negotiation: no output, nothing told. */
export const UNBOUND: Omit<OutputBinding, 'mid'> = { output: null, appliedSource: undefined, appliedPaused: undefined, appliedLayer: null, appliedTemporal: undefined };

/**
 * Takes each binding's engine output from the PeerConnection's streams (by mid); one whose
 * output changed (renegotiated, or gone) forgets what was told to the old one.
 */
export function bindOutputs(bindings: Iterable<OutputBinding>, streams: ReadonlyArray<{ mid: string; output: number | null }>): void {
  for (const b of bindings) {
    const output = streams.find((s) => s.mid === b.mid)?.output ?? null;
    if (output === b.output) continue;
    b.output = output;
    b.appliedSource = undefined;
    b.appliedPaused = undefined;
    b.appliedLayer = null;
    b.appliedTemporal = undefined;
    b.appliedLayerSet = undefined;
    b.appliedSvc = undefined;
  }
}
