/**
 * The seam between the signalling core and the WebRTC layer. The core never
 * touches SDP internals or sockets; a `MediaProvider` (supplied by the WebRTC
 * transport) opens one `HandleMedia` per handle that negotiates media, and
 * reports media lifecycle back through `MediaEvents`.
 */
import type { MediaLineStats, WebRtcTransportEvent } from '../events/JanusEvents.js';
import type { JsonObject } from './Json.js';

export type JsepType = 'offer' | 'answer';

/** A JSEP as the Janus API carries it (`type`, `sdp`, and optional flags). */
export interface Jsep {
  type: JsepType;
  sdp: string;
  trickle?: boolean;
  /** Other Janus jsep fields (`rid_order`, `force_relay`, `e2ee`, `svc`) pass through. */
  [extra: string]: unknown;
}

/** A trickled candidate: `{candidate, sdpMid, sdpMLineIndex}` or `{completed: true}`. */
export type TrickleCandidate = JsonObject;

/**
 * A data-channel message (Janus `janus_plugin_data`): the channel's label and sub-protocol,
 * text (UTF-8) or binary, whole (SCTP reassembles what the peer fragmented).
 */
export interface DataMessage {
  label: string;
  protocol: string;
  binary: boolean;
  data: Buffer;
}

/** A message a plugin sends on its handle's data channels (Janus `relay_data`). */
export interface OutgoingDataMessage {
  /**
   * The channel's label. Absent: the first open channel (as Janus relays a NULL label), or a new
   * "JanusDataChannel". A label no channel has opens one (reliable, ordered), as in Janus.
   */
  label?: string;
  /** Sub-protocol of a channel this opens. */
  protocol?: string;
  /** Binary; default: text (a string is always text). */
  binary?: boolean;
  data: Buffer | string;
}

/** Callbacks the media layer invokes on the handle that owns the media. */
export interface MediaEvents {
  /** ICE + DTLS done: the core sends `webrtcup` and calls the plugin's `setupMedia()`. */
  webrtcUp(): void;
  /** Media started/stopped flowing on an m-line (`media` event). */
  mediaState(info: { mid: string; type: 'audio' | 'video'; receiving: boolean; substream?: number; seconds?: number }): void;
  /** Packet loss report (`slowlink` event). */
  slowLink(info: { mid: string; media: 'audio' | 'video'; uplink: boolean; lost: number }): void;
  /** A local candidate to trickle to the client (`trickle` event); `null` = gathering completed. */
  localCandidate(candidate: TrickleCandidate | null): void;
  /** The PeerConnection died on its own (ICE failure, DTLS alert, consent lost). */
  closed(reason: string): void;
  /** A transport step (ICE, candidates, DTLS) for the event handlers; absent when none wants them. */
  transportEvent?(event: WebRtcTransportEvent): void;
  /** One m-line's counters every `events.stats_period`, for the event handlers; absent when none wants them. */
  mediaStats?(stats: MediaLineStats): void;
  /** A data-channel message from the client (Janus `incoming_data`). */
  data?(message: DataMessage): void;
  /** Data channels can be sent on: the SCTP association is up (Janus `data_ready`), once per association. */
  dataReady?(): void;
}

/** One handle's PeerConnection, as the core and plugins see it. */
/** What a plugin lets the media layer put in its answer. */
export interface AnswerOptions {
  audio: boolean;
  video: boolean;
  data: boolean;
  /** Codecs that may be chosen per kind, most preferred first (e.g. a room's lists). */
  codecs?: { audio?: string[]; video?: string[] };
  /** RTP header extensions the answer may accept (default: all ferry supports), e.g. a room's audiolevel_ext. */
  extensions?: { audioLevel?: boolean; transportWideCc?: boolean };
  /** Accept the offer's RFC 4733 telephone-event at the chosen audio codec's clock rate (default: no). */
  telephoneEvent?: boolean;
}

export interface HandleMedia extends Partial<RoutableMedia> {
  /** Client's jsep. May throw `JanusError(465)` for bad SDP. */
  setRemoteDescription(jsep: Jsep): Promise<void> | void;
  /** Plugin's jsep on its way to the client: returns it merged with ICE/DTLS attributes. */
  prepareLocalDescription(jsep: Jsep): Promise<Jsep> | Jsep;
  /**
   * Builds an SDP answer to the client's offer (already applied with setRemoteDescription) for
   * plugins that answer (echotest, videoroom publisher). `codecs` narrows what may be chosen per
   * kind, most preferred first (e.g. a room's audiocodec/videocodec lists).
   */
  createAnswer(
    offer: Jsep,
    options: AnswerOptions,
  ): Promise<Jsep> | Jsep;
  addRemoteCandidates(candidates: TrickleCandidate[]): void;
  /**
   * Sends a data-channel message to the client (Janus `relay_data`). False when it was not
   * queued: no data channel was negotiated or is up yet, the message exceeds the client's
   * a=max-message-size, or the send buffer is full (each counted).
   */
  sendData?(message: OutgoingDataMessage): boolean;
  /** Releases the PeerConnection, its native endpoint and port lease. Idempotent. */
  close(reason: string): void;
  /** Extra state for Admin `handle_info` (`webrtc` section). */
  describe(): JsonObject;
}

export interface MediaProvider {
  /** `placementGroup`: where the media belongs (see PluginHandle.placementGroup). */
  open(owner: { sessionId: number; handleId: number; placementGroup?: string }, events: MediaEvents): HandleMedia;
}

// ---- media routing, as plugins see it ------------------------------------------------------
// A plugin never touches packets: it connects outputs (what a handle sends to
// its client) to sources (what some client or RTP leg sends ferry). The
// native engine does the rest. Ids are the engine's.

export interface NegotiatedCodec {
  name: string;
  payloadType: number;
  clockRate: number;
  channels?: number;
  fmtp?: string;
}

/** One m-line of a handle's PeerConnection after negotiation. */
export interface MediaStreamInfo {
  mid: string;
  /** m-line index in the SDP. */
  index: number;
  kind: 'audio' | 'video';
  codec: NegotiatedCodec | null;
  /** What the client sends ferry on this m-line: one entry per SSRC (several with simulcast). */
  sources: { ssrc: number; source: number; rid?: string }[];
  /** What ferry sends the client on this m-line, if it sends. */
  output: number | null;
  /** The SSRC ferry sends with on this m-line. */
  outputSsrc: number | null;
  /** RFC 4733 telephone-event payload type negotiated on this audio m-line (both ways), if any. */
  telephoneEvent?: number | null;
  /** RTP header extensions (RFC 8285 a=extmap) the answer accepted on this m-line. */
  extensions?: { id: number; uri: string }[];
}

/** A section ferry offers (plugins that offer: VideoRoom subscribers, SIP outgoing bridges). */
export interface OfferSection {
  mid?: string;
  kind: 'audio' | 'video';
  codec: Omit<NegotiatedCodec, 'payloadType'> & { payloadType?: number; rtcpFb?: { type: string; subtype?: string }[] };
  direction: 'sendonly' | 'recvonly' | 'sendrecv' | 'inactive';
  /** msid stream id (e.g. the publisher's display) for the client's MediaStream grouping. */
  streamId?: string;
  /** Offer RFC 4733 telephone-event beside an audio codec, at its clock rate, with this payload type if free. */
  telephoneEvent?: { payloadType?: number };
}

/** A data-channel m-line ferry offers (RFC 8841: at most one per PeerConnection). */
export interface DataOfferSection {
  mid?: string;
  kind: 'data';
}

/** Routing-capable view of a handle's PeerConnection. */
export interface RoutableMedia {
  streams(): MediaStreamInfo[];
  /** Called whenever streams() changes (negotiation done, SSRC learned, closed). Returns an unsubscribe. */
  onStreamsChanged(listener: () => void): () => void;
  /** Builds an offer for the client (the client answers with `setRemoteDescription`). */
  createOffer(sections: (OfferSection | DataOfferSection)[]): Promise<Jsep> | Jsep;
  /**
   * Averages the client's RFC 6464 audio levels over every `packets` packets per audio
   * m-line (when negotiated); `listener` gets each average in −dBov (0 loudest). null stops.
   */
  meterAudioLevels(options: { packets: number } | null, listener?: (mid: string, level: number) => void): void;
}
