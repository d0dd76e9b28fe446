/**
 * The seam between the signalling core and the WebRTC layer. The core never
 * touches SDP internals or sockets; a `MediaProvider` (supplied by the WebRTC
 * transport) opens one `HandleMedia` per handle that negotiates media, and
 * reports media lifecycle back through `MediaEvents`.
 */
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
}

/** One handle's PeerConnection, as the core and plugins see it. */
export interface HandleMedia {
  /** Client's jsep. May throw `JanusError(465)` for bad SDP. */
  setRemoteDescription(jsep: Jsep): Promise<void> | void;
  /** Plugin's jsep on its way to the client: returns it merged with ICE/DTLS attributes. */
  prepareLocalDescription(jsep: Jsep): Promise<Jsep> | Jsep;
  /** Builds an SDP answer to the client's offer for plugins that answer (echotest, videoroom publisher). */
  createAnswer(offer: Jsep, options: { audio: boolean; video: boolean; data: boolean }): Promise<Jsep> | Jsep;
  addRemoteCandidates(candidates: TrickleCandidate[]): void;
  /** Releases the PeerConnection, its native endpoint and port lease. Idempotent. */
  close(reason: string): void;
  /** Extra state for Admin `handle_info` (`webrtc` section). */
  describe(): JsonObject;
}

export interface MediaProvider {
  open(owner: { sessionId: number; handleId: number }, events: MediaEvents): HandleMedia;
}
