/**
 * A viewer: one handle watching one mountpoint. Each m-line of its
 * PeerConnection ("slot") carries one stream of the mountpoint; once the
 * PeerConnection is up, each slot's output is fed from the stream's engine
 * source with `MediaRouter.switchOutput`. The engine does the rest: one
 * decryption-free receive per packet, one rewrite and encryption per viewer,
 * sequence numbers and timestamps continuous across source changes (an
 * encoder restart, a simulcast layer change, a `switch` to another
 * mountpoint), and a keyframe request (PLI) to the sender whenever an output
 * gets a new source.
 *
 * Two ways in: `watch` (ferry offers, the client answers with `start`, as
 * janus.js does) and `answerOffer` (the client offers and ferry answers, as a
 * WHEP player does). Every way out goes through `teardown`.
 */
import * as sdpTransform from 'sdp-transform';
import type { JsonObject } from '../../core/Json.js';
import type { HandleMedia, Jsep, OfferSection, RoutableMedia } from '../../core/Media.js';
import { UNBOUND, bindOutputs, type MediaServices, type OutputBinding } from '../../media/Routing.js';
import { offerCodecFor } from '../videoroom/codecs.js';
import { StreamingError, StreamingErrorCode } from './errors.js';
import type { Mountpoint, MountpointMedia, MountpointViewer } from './Mountpoint.js';

/**
 * - idle: watching nothing.
 * - preparing: ferry's offer went out, the client's answer (`start`) has not come.
 * - starting: negotiated (the client answered, or ferry answered the client's offer); ICE + DTLS not done.
 * - started: the PeerConnection is up; outputs are fed.
 */
export type ViewerState = 'idle' | 'preparing' | 'starting' | 'started';
export type ViewerInput = 'offered' | 'answered' | 'webrtcUp' | 'hangup';

export const VIEWER_TRANSITIONS: Readonly<Record<ViewerState, Readonly<Partial<Record<ViewerInput, ViewerState>>>>> = {
  idle: { offered: 'preparing', answered: 'starting' },
  preparing: { offered: 'preparing', answered: 'starting', hangup: 'idle' },
  starting: { offered: 'preparing', webrtcUp: 'started', hangup: 'idle' },
  // A new offer on a live PeerConnection (ICE restart) keeps media flowing.
  started: { offered: 'started', answered: 'started', hangup: 'idle' },
};

export interface ViewerClient {
  push(data: JsonObject, options?: { transaction?: string; jsep?: Jsep }): void;
  /** The handle's current PeerConnection, if any (never opens one). */
  media(): HandleMedia | null;
  /** The handle's PeerConnection, opened if needed; null without a WebRTC layer. */
  openMedia(): HandleMedia | null;
  closePeerConnection(reason: string): void;
}

/** One m-line of the viewer's PeerConnection. */
interface Slot extends OutputBinding {
  media: MountpointMedia;
  /** Wanted simulcast layer (Janus: the best there is) and VP8 temporal layer (2 and up: all). */
  substream: number;
  temporal: number;
  /** `configure` `send` for this m-line. */
  send: boolean;
  /** A layer change waiting for its keyframe, announced (`substream` event) when the engine makes it. */
  pendingLayer?: { source: number; layer: number };
}

const BEST_LAYER = 2;

/** Which of a mountpoint's streams a watch asks for: by mid, or (deprecated) all audio/video. */
export interface MediaChoice {
  mids: string[] | null;
  audio: boolean;
  video: boolean;
  substream?: number;
  temporal?: number;
}

export class Viewer implements MountpointViewer {
  private currentState: ViewerState = 'idle';
  mountpoint: Mountpoint | null = null;
  private slots: Slot[] = [];
  paused = false;
  private stopStreams: (() => void) | null = null;
  private stopSwitches: (() => void) | null = null;
  private stopTemporal: (() => void) | null = null;

  constructor(
    private readonly client: ViewerClient,
    private readonly services: MediaServices | null,
  ) {}

  get state(): ViewerState {
    return this.currentState;
  }

  /** Applies an input to the table; false (and no change) when the state does not take it. */
  private apply(input: ViewerInput): boolean {
    const next = VIEWER_TRANSITIONS[this.currentState][input];
    if (next === undefined) return false;
    this.currentState = next;
    return true;
  }

  private routable(): RoutableMedia & HandleMedia {
    const media = this.client.openMedia();
    if (!media || !media.createOffer || !media.streams || !media.onStreamsChanged) {
      throw new StreamingError(StreamingErrorCode.UNKNOWN_ERROR, 'WebRTC media is not available in this build');
    }
    return media as RoutableMedia & HandleMedia;
  }

  private chosenMedia(mp: Mountpoint, choice: MediaChoice): MountpointMedia[] {
    const chosen = mp.media.filter((m) =>
      choice.mids && choice.mids.length > 0 ? choice.mids.some((mid) => mid.toLowerCase() === m.mid.toLowerCase()) : m.type === 'audio' ? choice.audio : choice.video,
    );
    if (chosen.length === 0) throw new StreamingError(StreamingErrorCode.INVALID_REQUEST, "Can't offer an SDP with no audio, video or data for this mountpoint");
    return chosen;
  }

  private join(mp: Mountpoint, slots: Slot[]): void {
    this.mountpoint = mp;
    this.slots = slots;
    this.paused = false;
    mp.viewers.add(this);
  }

  private newSlot(mid: string, media: MountpointMedia, choice: MediaChoice): Slot {
    return {
      mid, media, substream: choice.substream ?? BEST_LAYER, temporal: choice.temporal ?? BEST_LAYER, send: true,
      ...UNBOUND,
    };
  }

  /** `watch`: ferry offers the chosen streams (sendonly), mids as the mountpoint names them. */
  async watch(mp: Mountpoint, choice: MediaChoice): Promise<Jsep> {
    const chosen = this.chosenMedia(mp, choice);
    const media = this.routable();
    this.join(mp, chosen.map((m) => this.newSlot(m.mid, m, choice)));
    return this.offer(media);
  }

  /** A new offer for the current slots (a fresh watch, or `restart` for an ICE restart). */
  async offer(media: RoutableMedia = this.routable()): Promise<Jsep> {
    const mp = this.mountpoint;
    if (!mp) throw new StreamingError(StreamingErrorCode.INVALID_STATE, 'Not watching a mountpoint');
    const sections: OfferSection[] = this.slots.map((slot) => ({
      mid: slot.mid,
      kind: slot.media.type,
      codec: offerCodec(slot.media),
      direction: 'sendonly',
      streamId: slot.media.config.msid?.split(' ')[0] ?? `janus${mp.id}`,
    }));
    const jsep = await media.createOffer(sections);
    this.apply('offered');
    this.follow(media);
    return jsep;
  }

  /**
   * `watch` with the client's offer (a WHEP player): each offered audio/video m-line gets the
   * next chosen stream of its kind, and ferry's answer sends it there with the stream's codec.
   */
  async answerOffer(mp: Mountpoint, offer: Jsep, choice: MediaChoice): Promise<Jsep> {
    const chosen = this.chosenMedia(mp, choice);
    const media = this.routable();
    let offered: { mid: string; type: string }[];
    try {
      offered = (sdpTransform.parse(offer.sdp).media ?? [])
        .filter((m) => m.port !== 0 && m.direction !== 'inactive' && m.direction !== 'sendonly')
        .map((m, i) => ({ mid: m.mid !== undefined ? String(m.mid) : String(i), type: m.type }));
    } catch (err) {
      throw new StreamingError(StreamingErrorCode.INVALID_SDP, `Error parsing SDP: ${(err as Error).message}`);
    }
    const unused = [...chosen];
    const slots: Slot[] = [];
    for (const m of offered) {
      const k = unused.findIndex((s) => s.type === m.type);
      if (k < 0) continue;
      const [stream] = unused.splice(k, 1);
      if (stream) slots.push(this.newSlot(m.mid, stream, choice));
    }
    if (slots.length === 0) throw new StreamingError(StreamingErrorCode.INVALID_SDP, 'The offer has no m-line that can receive any stream of this mountpoint');
    const answer = await answerWith(media, offer, slots);
    // An m-line answered with another codec than its stream's cannot carry it.
    const negotiated = new Map((media.streams?.() ?? []).map((s) => [s.mid, s.codec?.name.toLowerCase() ?? null]));
    this.join(mp, slots.filter((s) => negotiated.get(s.mid) === offerCodec(s.media).name.toLowerCase()));
    this.apply('answered');
    this.follow(media);
    this.syncOutputs();
    return answer;
  }

  /** The client offers again on a live PeerConnection (an ICE restart): the same streams, answered. */
  async reanswer(offer: Jsep): Promise<Jsep> {
    const answer = await answerWith(this.routable(), offer, this.slots);
    this.apply('answered');
    this.syncOutputs();
    return answer;
  }

  private follow(media: RoutableMedia): void {
    if (!this.stopStreams) this.stopStreams = media.onStreamsChanged(() => this.syncOutputs());
  }

  /** `start` with the client's answer. */
  answered(): void {
    this.apply('answered');
    this.syncOutputs();
  }

  /** The PeerConnection is up: outputs get their sources. */
  setMediaUp(): void {
    if (!this.apply('webrtcUp')) return;
    this.syncOutputs();
  }

  get mediaUp(): boolean {
    return this.currentState === 'started';
  }

  /** Reads each slot's engine output from the PeerConnection, then reconnects. */
  syncOutputs(): void {
    bindOutputs(this.slots, this.client.media()?.streams?.() ?? []);
    this.reconcile();
  }

  sourcesChanged(): void {
    this.reconcile();
  }

  /**
   * Makes the router match the slots: each output fed by its stream's chosen layer, paused
   * when the viewer, the slot or the mountpoint is. Only changes reach the router.
   */
  reconcile(): void {
    const mp = this.mountpoint;
    if (!this.mediaUp || !this.services || !mp) return;
    const router = this.services.router;
    for (const slot of this.slots) {
      if (slot.output === null) continue;
      const chosen = slot.media.layerSource(slot.substream);
      const source = chosen?.source ?? null;
      if (slot.appliedSource !== source) {
        // Video moves to a new source at that source's keyframe while the old one still plays
        // (the engine switches at once when the old source is gone); audio switches at once.
        const bridged = slot.media.type === 'video' && source !== null && slot.appliedSource !== undefined && slot.appliedSource !== null;
        router.switchOutput(slot.output, source, bridged ? { onKeyframe: true } : undefined);
        const sameStream = slot.appliedSource !== undefined && slot.appliedSource !== null && slot.media.layers.some((l) => l.source === slot.appliedSource);
        slot.pendingLayer = undefined;
        if (slot.media.config.simulcast && chosen && sameStream && slot.appliedLayer !== chosen.layer) {
          this.stopSwitches ??= router.onOutputSwitched((output, switched) => this.outputSwitched(output, switched));
          slot.pendingLayer = { source: chosen.source, layer: chosen.layer };
        }
        slot.appliedSource = source;
        slot.appliedLayer = chosen?.layer ?? null;
      }
      const paused = this.paused || !slot.send || !mp.config.enabled;
      if (slot.appliedPaused !== paused) {
        router.pauseOutput(slot.output, paused);
        slot.appliedPaused = paused;
      }
      // VP8 temporal layers: the highest one wanted (Janus counts 0..2; 2 and up is "all").
      const temporal = slot.media.type === 'video' && slot.temporal < BEST_LAYER ? slot.temporal : null;
      if (router.setOutputTemporal && slot.media.type === 'video' && slot.appliedTemporal !== temporal && (temporal !== null || slot.appliedTemporal !== undefined)) {
        this.stopTemporal ??= router.onOutputTemporal?.((output, layer) => this.outputTemporal(output, layer)) ?? null;
        router.setOutputTemporal(slot.output, temporal);
        slot.appliedTemporal = temporal;
      }
    }
  }

  /** Janus tells a viewer its new substream when it really gets it, at the keyframe. */
  private outputSwitched(output: number, source: number): void {
    const slot = this.slots.find((s) => s.output === output && s.pendingLayer?.source === source);
    if (!slot?.pendingLayer) return;
    const layer = slot.pendingLayer.layer;
    slot.pendingLayer = undefined;
    this.client.push({ streaming: 'event', result: { substream: layer } });
  }

  private outputTemporal(output: number, layer: number | null): void {
    if (!this.slots.some((s) => s.output === output)) return;
    this.client.push({ streaming: 'event', result: { temporal: layer ?? BEST_LAYER } });
  }

  /**
   * `configure`: per-m-line (or all) send, substream and temporal; the deprecated audio/video
   * toggles. Returns the substream already being received when one was asked for and is
   * current (Janus answers that at once), else null.
   */
  configure(options: { mid?: string; send?: boolean; substream?: number; temporal?: number; audio?: boolean; video?: boolean }): number | null {
    let current: number | null = null;
    for (const slot of this.slots) {
      if (options.audio !== undefined && slot.media.type === 'audio') slot.send = options.audio;
      if (options.video !== undefined && slot.media.type === 'video') slot.send = options.video;
      if (options.mid !== undefined && options.mid.toLowerCase() !== slot.mid.toLowerCase()) continue;
      if (options.send !== undefined) slot.send = options.send;
      if (slot.media.type !== 'video') continue;
      if (options.substream !== undefined && slot.media.config.simulcast) {
        slot.substream = options.substream;
        const chosen = slot.media.layerSource(options.substream);
        if (chosen && chosen.layer === slot.appliedLayer && chosen.source === slot.appliedSource) current = chosen.layer;
      }
      if (options.temporal !== undefined) slot.temporal = options.temporal;
    }
    this.reconcile();
    return current;
  }

  /**
   * `switch`: the same PeerConnection, another mountpoint with the same media (kind and codec,
   * matched by mid, else by position). Validated before anything changes.
   */
  switchTo(next: Mountpoint): void {
    const current = this.mountpoint;
    if (!current) throw new StreamingError(StreamingErrorCode.NO_SUCH_MOUNTPOINT, "Can't switch: not on a mountpoint");
    const plan = this.slots.map((slot) => {
      const target = next.media.find((m) => m.mid === slot.media.mid) ?? next.media[slot.media.mindex];
      if (!target || target.type !== slot.media.type || target.config.codec !== slot.media.config.codec) {
        throw new StreamingError(StreamingErrorCode.CANT_SWITCH, `Can't switch: mountpoint ${next.id} has no ${slot.media.type} stream with codec ${slot.media.config.codec} for mid ${slot.mid}`);
      }
      return { slot, target };
    });
    if (next === current) return;
    current.viewers.delete(this);
    for (const { slot, target } of plan) slot.media = target;
    this.mountpoint = next;
    next.viewers.add(this);
    this.reconcile();
  }

  notify(data: JsonObject): void {
    this.client.push(data);
  }

  /** The mountpoint was destroyed: the client hears `stopped` and its PeerConnection closes. */
  mountpointGone(): void {
    if (this.currentState === 'idle' && !this.mountpoint) return;
    this.client.push({ streaming: 'event', result: { status: 'stopped' } });
    this.teardown();
    this.client.closePeerConnection('Mountpoint destroyed');
  }

  /** The one ending of a viewer (stop, hangup, detach, mountpoint destroyed, shutdown). Idempotent. */
  teardown(): void {
    if (this.services && this.mediaUp) {
      for (const slot of this.slots) {
        if (slot.output !== null && slot.appliedSource !== undefined && slot.appliedSource !== null) this.services.router.switchOutput(slot.output, null);
      }
    }
    this.apply('hangup');
    this.mountpoint?.viewers.delete(this);
    this.mountpoint = null;
    this.slots = [];
    this.paused = false;
    for (const stop of [this.stopStreams, this.stopSwitches, this.stopTemporal]) stop?.();
    this.stopStreams = this.stopSwitches = this.stopTemporal = null;
  }

  /** Admin `handle_info`. */
  query(): JsonObject {
    return {
      state: this.currentState,
      mountpoint: this.mountpoint?.id ?? null,
      paused: this.paused,
      streams: this.slots.map((s) => ({ mid: s.mid, source_mid: s.media.mid, output: s.output, source: s.appliedSource ?? null, send: s.send, substream: s.substream, temporal: s.temporal })),
    };
  }
}

/** How a viewer's m-line describes a stream: its codec with the mountpoint's payload type and fmtp. */
function offerCodec(media: MountpointMedia): OfferSection['codec'] {
  const codec = offerCodecFor(media.config.codec);
  if (!codec) throw new StreamingError(StreamingErrorCode.UNKNOWN_ERROR, `Unsupported codec ${media.config.codec}`);
  codec.payloadType = media.config.pt;
  if (media.config.fmtp !== undefined) codec.fmtp = media.config.fmtp;
  return codec;
}

/** ferry's answer to a client's offer: only the slots' codecs, per kind, nothing received. */
async function answerWith(media: HandleMedia, offer: Jsep, slots: Slot[]): Promise<Jsep> {
  const codecs = (type: 'audio' | 'video') => [...new Set(slots.filter((s) => s.media.type === type).map((s) => s.media.config.codec))];
  try {
    return await media.createAnswer(offer, {
      audio: codecs('audio').length > 0,
      video: codecs('video').length > 0,
      data: false,
      codecs: { audio: codecs('audio'), video: codecs('video') },
      extensions: { audioLevel: false },
    });
  } catch (err) {
    throw new StreamingError(StreamingErrorCode.INVALID_SDP, `Error processing SDP: ${(err as Error).message}`);
  }
}
