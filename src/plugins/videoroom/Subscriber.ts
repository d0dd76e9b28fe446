/**
 * A 1.x multistream subscriber: a list of m-lines ("slots"), each fed by one
 * feed stream (or inactive). ferry offers the slots to the client
 * (`RoutableMedia.createOffer`), and once the PeerConnection is up connects
 * each slot's output to the chosen source with `MediaRouter.switchOutput`.
 * The engine keeps sequence numbers and timestamps continuous across
 * switches; this class only decides which source feeds which output.
 *
 * Its lifecycle (offer/answer and the PeerConnection coming up) is the
 * explicit table below. Which simulcast layer (substream) and VP8 temporal
 * layer each slot gets is in the "simulcast layers" section.
 *
 * Data: one m=application m-line (RFC 8841: one SCTP association) carries the
 * data of every feed subscribed to, as in Janus 1.x; each publisher's messages
 * arrive on a channel labelled with its id.
 *
 * Why this file stays whole (about 680 lines): the slots, their lifecycle and
 * the layers their outputs get are one subscriber's state, changed by the same
 * requests and engine events in one order; split, each change would reach
 * across files for the slot it changes.
 */
import * as sdpTransform from 'sdp-transform';
import type { JsonObject } from '../../core/Json.js';
import type { DataMessage, DataOfferSection, HandleMedia, Jsep, OfferSection, OutgoingDataMessage, RoutableMedia } from '../../core/Media.js';
import { UNBOUND, bindOutputs, type MediaRouter, type MediaServices, type OutputBinding } from '../../media/Routing.js';
import { VideoRoomError, VideoRoomErrorCode, noSuchFeed } from './errors.js';
import { layerSource, relayable, type Feed, type FeedStream } from './Feed.js';
import type { FeedConsumer, Room } from './Room.js';

export interface SubscriberClient {
  push(data: JsonObject, options?: { transaction?: string; jsep?: Jsep }): void;
  /** The handle's current PeerConnection, if any (never opens one). */
  media(): HandleMedia | null;
  /** The handle's PeerConnection, opened if needed (to offer); null when no WebRTC layer exists. */
  openMedia(): HandleMedia | null;
  closePeerConnection(reason: string): void;
  /** A data-channel message to the client; false when it could not be queued. */
  sendData(message: OutgoingDataMessage): boolean;
}

/** The subscriber's data-channel m-line and the feeds whose data it carries (each by its data stream's mid). */
export interface DataSlot {
  mindex: number;
  mid: string;
  sources: Map<Feed, string>;
  /** The subscriber's `configure` `send` flag for this m-line. */
  send: boolean;
}

/** A slot: one m-line of the subscriber's PeerConnection. */
export interface Slot extends OutputBinding {
  mindex: number;
  kind: 'audio' | 'video';
  feed: Feed | null;
  feedMid: string | null;
  /** Codec offered on this m-line (kept when the slot goes inactive, for later reuse). */
  codec: OfferSection['codec'];
  codecName: string;
  /** Wanted simulcast layer (Janus default: the highest). */
  substream: number;
  temporal: number;
  /** The subscriber's `configure` `send` flag for this m-line. */
  send: boolean;
  crossrefid?: string;
  /** A layer switch waiting for its keyframe: announced (`substream` event) when the engine makes it. */
  pendingLayer?: { source: number; layer: number };
}

/** One entry of `streams` in join/subscribe. */
export interface StreamRequest {
  feed: number;
  mid?: string;
  crossrefid?: string;
  substream?: number;
  temporal?: number;
}

export interface SwitchRequest {
  feed: number;
  mid: string;
  subMid: string;
  substream?: number;
  temporal?: number;
}

export interface UnsubscribeRequest {
  feed?: number;
  mid?: string;
  subMid?: string;
}

/** Janus's default wanted layers: the best there is. */
const DEFAULT_LAYER = 2;

/** The highest temporal layer a slot wants (Janus counts 0..2; 2 and up: every layer → null). */
function wantedTemporal(slot: Slot): number | null {
  return slot.temporal < DEFAULT_LAYER ? Math.max(0, slot.temporal) : null;
}

/**
 * - new: slots chosen, no offer made yet.
 * - offered: an offer is out and not answered; the PeerConnection is not up.
 * - offered-updating: the same, and the slots changed after the offer went out (the client
 *   was told `updating`): once the answer is in, offer again.
 * - answered: the answer is in; the PeerConnection is not up yet.
 * - live: the PeerConnection is up and nothing is outstanding: outputs follow the slots.
 * - live-offered, live-offered-updating: up, with a renegotiation offer out (as above).
 * - ended: terminal (leave, hangup, detach, room destroyed); every input is ignored.
 *
 *   new ──offer──▶ offered ──answer──▶ answered ──media-up──▶ live
 *   new ──answer──▶ answered (the subscriber offered and ferry answered: a WHEP player)
 *   offered ──media-up──▶ live-offered ──answer──▶ live ──offer──▶ live-offered
 *   offered, live-offered ──update──▶ offered-updating, live-offered-updating
 *   any ──end──▶ ended
 */
export type SubscriberState = 'new' | 'offered' | 'offered-updating' | 'answered' | 'live' | 'live-offered' | 'live-offered-updating' | 'ended';
export type SubscriberInput = 'offer' | 'update' | 'answer' | 'media-up' | 'end';

export const SUBSCRIBER_TRANSITIONS: Readonly<Record<SubscriberState, Readonly<Partial<Record<SubscriberInput, SubscriberState>>>>> = {
  new: { offer: 'offered', answer: 'answered', end: 'ended' },
  offered: { offer: 'offered', update: 'offered-updating', answer: 'answered', 'media-up': 'live-offered', end: 'ended' },
  'offered-updating': { offer: 'offered', update: 'offered-updating', answer: 'answered', 'media-up': 'live-offered-updating', end: 'ended' },
  answered: { offer: 'offered', answer: 'answered', 'media-up': 'live', end: 'ended' },
  live: { offer: 'live-offered', answer: 'live', 'media-up': 'live', end: 'ended' },
  'live-offered': { offer: 'live-offered', update: 'live-offered-updating', answer: 'live', 'media-up': 'live-offered', end: 'ended' },
  'live-offered-updating': { offer: 'live-offered', update: 'live-offered-updating', answer: 'live', 'media-up': 'live-offered-updating', end: 'ended' },
  ended: {},
};

const OFFER_OUT: ReadonlySet<SubscriberState> = new Set(['offered', 'offered-updating', 'live-offered', 'live-offered-updating']);
const UPDATING: ReadonlySet<SubscriberState> = new Set(['offered-updating', 'live-offered-updating']);
const MEDIA_UP: ReadonlySet<SubscriberState> = new Set(['live', 'live-offered', 'live-offered-updating']);

export class Subscriber implements FeedConsumer {
  slots: Slot[] = [];
  /**
   * The client's `pause`/`start`: not a lifecycle state (it holds across all of them, like a
   * slot's `send`); it only decides whether outputs are paused once media is up.
   */
  paused = false;
  /** The data m-line, once a data stream was subscribed to (it stays, with or without sources). */
  dataSlot: DataSlot | null = null;
  /** The client's SCTP association is up (Janus `data_ready`): data is relayed from then on. */
  dataReady = false;
  /** Data messages relayed, and those the PeerConnection refused (counted for handle_info). */
  private dataRelayed = 0;
  private dataDropped = 0;
  private state: SubscriberState = 'new';
  private stopListening: (() => void) | null = null;
  private stopSwitchListening: (() => void) | null = null;
  private stopTemporalListening: (() => void) | null = null;
  private stopSpatialListening: (() => void) | null = null;

  constructor(
    readonly room: Room,
    private readonly client: SubscriberClient,
    private readonly services: MediaServices | null,
    readonly options: { autoupdate: boolean; useMsid: boolean; privateId: number | null },
  ) {}

  get currentState(): SubscriberState {
    return this.state;
  }

  /** Left, hung up, detached or its room destroyed: nothing more happens to it. */
  get ended(): boolean {
    return this.state === 'ended';
  }

  /** The PeerConnection is up (ICE + DTLS): outputs can be fed. */
  get mediaUp(): boolean {
    return MEDIA_UP.has(this.state);
  }

  /** An offer went out and its answer has not come back. */
  get offerOutstanding(): boolean {
    return OFFER_OUT.has(this.state);
  }

  /** Applies an input to the state table; one the table lacks changes nothing. */
  private apply(input: SubscriberInput): void {
    this.state = SUBSCRIBER_TRANSITIONS[this.state][input] ?? this.state;
  }

  /** Resolves requested streams into (feed, stream) pairs; 428 for a missing feed or mid. Changes nothing. */
  resolve(requests: StreamRequest[]): { feed: Feed; stream: FeedStream; request: StreamRequest }[] {
    const out: { feed: Feed; stream: FeedStream; request: StreamRequest }[] = [];
    for (const request of requests) {
      const feed = this.room.participants.get(request.feed);
      if (!feed || !feed.publishing) throw noSuchFeed(request.feed);
      if (request.mid !== undefined) {
        const stream = feed.stream(request.mid);
        if (!stream || stream.disabled) throw new VideoRoomError(VideoRoomErrorCode.NO_SUCH_FEED, `No such mid '${request.mid}' in feed ${request.feed}`);
        if (stream.type === 'data' || stream.offerCodec) out.push({ feed, stream, request });
      } else {
        for (const stream of feed.subscribableStreams) out.push({ feed, stream, request });
      }
    }
    return out;
  }

  /** The m-line index a new m-line takes: after every media slot and the data m-line. */
  private nextMindex(): number {
    return this.slots.length + (this.dataSlot ? 1 : 0);
  }

  /** Adds slots for resolved streams, reusing inactive m-lines of the same kind first (as Janus recycles them). */
  addSlots(resolved: { feed: Feed; stream: FeedStream; request: StreamRequest }[]): number {
    let added = 0;
    for (const { feed, stream, request } of resolved) {
      if (stream.type === 'data') {
        if (!this.dataSlot) {
          const mindex = this.nextMindex();
          this.dataSlot = { mindex, mid: String(mindex), sources: new Map(), send: true };
        }
        if (this.dataSlot.sources.get(feed) !== stream.mid) {
          this.dataSlot.sources.set(feed, stream.mid);
          added++;
        }
        continue;
      }
      if (!stream.offerCodec || !stream.codec) continue;
      const kind = stream.type;
      let slot = this.slots.find((s) => s.feed === null && s.kind === kind);
      if (!slot) {
        const mindex = this.nextMindex();
        slot = {
          mindex, mid: String(mindex), kind, feed: null, feedMid: null, codec: stream.offerCodec, codecName: stream.codec,
          substream: DEFAULT_LAYER, temporal: DEFAULT_LAYER, send: true, ...UNBOUND,
        };
        this.slots.push(slot);
      }
      slot.feed = feed;
      slot.feedMid = stream.mid;
      slot.codec = stream.offerCodec;
      slot.codecName = stream.codec;
      slot.substream = request.substream ?? DEFAULT_LAYER;
      slot.temporal = request.temporal ?? DEFAULT_LAYER;
      slot.send = true;
      if (request.crossrefid !== undefined) slot.crossrefid = request.crossrefid;
      else delete slot.crossrefid;
      added++;
    }
    return added;
  }

  /** Marks matching slots inactive (their outputs are disconnected); returns how many. */
  removeSlots(requests: UnsubscribeRequest[]): number {
    let removed = 0;
    for (const r of requests) {
      removed += this.removeDataSources(r);
      for (const slot of this.slots) {
        if (slot.feed === null) continue;
        if (r.subMid !== undefined && slot.mid !== r.subMid) continue;
        if (r.feed !== undefined && slot.feed.id !== r.feed) continue;
        if (r.mid !== undefined && slot.feedMid !== r.mid) continue;
        if (r.subMid === undefined && r.feed === undefined) continue;
        this.deactivate(slot);
        removed++;
      }
    }
    this.reconcile();
    return removed;
  }

  /** An unsubscribe of the data m-line (sub_mid) or of a feed's data stream (feed, mid). */
  private removeDataSources(r: UnsubscribeRequest): number {
    const data = this.dataSlot;
    if (!data) return 0;
    if (r.subMid !== undefined) {
      if (r.subMid !== data.mid) return 0;
      const n = data.sources.size;
      data.sources.clear();
      return n;
    }
    if (r.feed === undefined) return 0;
    for (const [feed, mid] of data.sources) {
      if (feed.id !== r.feed || (r.mid !== undefined && r.mid !== mid)) continue;
      data.sources.delete(feed);
      return 1;
    }
    return 0;
  }

  private deactivate(slot: Slot): void {
    slot.feed = null;
    slot.feedMid = null;
    delete slot.crossrefid;
  }

  /** Builds the offer for the current slots through the handle's PeerConnection. */
  async offer(): Promise<Jsep> {
    const media = this.routable();
    const sections: { mindex: number; section: OfferSection | DataOfferSection }[] = this.slots.map((slot) => {
      const section: OfferSection = { mid: slot.mid, kind: slot.kind, codec: slot.codec, direction: slot.feed ? 'sendonly' : 'inactive' };
      if (slot.feed) section.streamId = this.options.useMsid ? `janus${slot.feed.id}` : 'janus';
      return { mindex: slot.mindex, section };
    });
    if (this.dataSlot) sections.push({ mindex: this.dataSlot.mindex, section: { mid: this.dataSlot.mid, kind: 'data' } });
    sections.sort((a, b) => a.mindex - b.mindex);
    const jsep = await media.createOffer(sections.map((s) => s.section));
    this.apply('offer');
    if (!this.stopListening && media.onStreamsChanged) this.stopListening = media.onStreamsChanged(() => this.syncOutputs());
    return jsep;
  }

  /**
   * A subscriber that brings its own offer (a WHEP player): each offered audio/video m-line takes
   * the next slot of its kind (and its mid), slots left without one are dropped, and ferry
   * answers with the slots' codecs (RFC 3264 §6: only formats the offer listed).
   */
  async answer(offer: Jsep): Promise<Jsep> {
    const media = this.client.openMedia();
    if (!media || !media.streams || !media.onStreamsChanged) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, 'WebRTC media is not available in this build');
    const unused = [...this.slots];
    const matched: Slot[] = [];
    offeredMedia(offer.sdp).forEach((m) => {
      const k = unused.findIndex((s) => s.kind === m.type);
      if (k < 0) return;
      const [slot] = unused.splice(k, 1);
      if (!slot) return;
      slot.mid = m.mid;
      slot.mindex = m.index;
      matched.push(slot);
    });
    if (matched.length === 0) throw new VideoRoomError(VideoRoomErrorCode.INVALID_SDP, 'The offer has no m-line that can receive these streams');
    this.slots = matched;
    const codecs = (kind: 'audio' | 'video') => [...new Set(matched.filter((s) => s.kind === kind).map((s) => s.codecName))];
    let answer: Jsep;
    try {
      answer = await media.createAnswer(offer, { audio: codecs('audio').length > 0, video: codecs('video').length > 0, data: false, codecs: { audio: codecs('audio'), video: codecs('video') } });
    } catch (err) {
      throw new VideoRoomError(VideoRoomErrorCode.INVALID_SDP, `Error processing SDP: ${(err as Error).message}`);
    }
    this.apply('answer');
    this.stopListening ??= media.onStreamsChanged(() => this.syncOutputs());
    this.syncOutputs();
    return answer;
  }

  private routable(): RoutableMedia {
    const media = this.client.openMedia();
    if (!media || !media.createOffer || !media.streams || !media.onStreamsChanged) {
      throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, 'WebRTC media is not available in this build');
    }
    return media as RoutableMedia;
  }

  /**
   * The client's answer was applied (`start` + jsep). Returns whether the slots changed while
   * the offer was out, so a new offer is owed (`renegotiate`).
   */
  answered(): boolean {
    const owed = UPDATING.has(this.state);
    this.apply('answer');
    this.syncOutputs();
    return owed;
  }

  setMediaUp(): void {
    this.apply('media-up');
    this.syncOutputs();
  }

  /** Reads the engine output of each slot from the PeerConnection, then reconnects. */
  syncOutputs(): void {
    if (this.ended) return;
    bindOutputs(this.slots, this.client.media()?.streams?.() ?? []);
    this.reconcile();
  }

  /**
   * Makes the router match the slots: each output fed by its feed stream's
   * chosen layer (or nothing), paused when the subscriber or the slot is.
   * Only changes are sent, so every router call is a real switch.
   */
  reconcile(): void {
    if (!this.mediaUp || !this.services) return;
    const router = this.services.router;
    for (const slot of this.slots) {
      if (slot.output === null) continue;
      this.applySource(router, slot, slot.output);
      const paused = this.paused || !slot.send;
      if (slot.appliedPaused !== paused) {
        router.pauseOutput(slot.output, paused);
        slot.appliedPaused = paused;
      }
      this.applyTemporal(router, slot, slot.output);
    }
  }

  // ---- simulcast layers (substream) and VP8 temporal layers ------------------------------------------

  /**
   * Feeds the slot's output from the layer of its feed stream that `slot.substream` asks for
   * (or nothing). A change of layer of the same stream waits for the new layer's keyframe and
   * is announced (`substream`) when the engine makes it.
   */
  private applySource(router: MediaRouter, slot: Slot, output: number): void {
    const stream = slot.feed && slot.feedMid !== null ? slot.feed.stream(slot.feedMid) : undefined;
    if (this.applyLayerSet(router, slot, output, stream)) return;
    const chosen = stream && relayable(stream) ? layerSource(stream, slot.substream) : null;
    const source = chosen?.source ?? null;
    if (slot.appliedSource !== source) {
      // A substream change moves to the new layer at its next keyframe, so the subscriber
      // never gets inter frames it has no reference for; the old layer bridges the wait.
      // Other switches (another feed, none) take effect at once, as in Janus.
      const substreamChange = slot.kind === 'video' && source !== null && slot.appliedSource !== undefined && slot.appliedSource !== null && stream !== undefined && stream.layers.includes(slot.appliedSource);
      slot.pendingLayer = undefined;
      if (substreamChange) router.switchOutput(output, source, { onKeyframe: true });
      else router.switchOutput(output, source);
      // A new source is only decodable from a keyframe (RFC 4585 §6.3.1 PLI).
      if (source !== null && slot.kind === 'video') router.requestKeyframe(source);
      const layerChanged = slot.appliedSource !== undefined && slot.appliedSource !== null && chosen !== null && stream?.simulcast === true && slot.appliedLayer !== chosen.layer;
      slot.appliedSource = source;
      slot.appliedLayer = chosen?.layer ?? null;
      if (layerChanged && chosen) {
        if (substreamChange && source !== null) {
          // Listened to from the first layer switch on, so a subscriber that never got this far
          // (a join refused with 428, say) leaves nothing registered; teardown removes it.
          this.stopSwitchListening ??= router.onOutputSwitched((switchedOutput, switched) => this.onOutputSwitched(switchedOutput, switched));
          slot.pendingLayer = { source, layer: chosen.layer };
        }
        else this.client.push({ videoroom: 'event', room: this.room.id, mid: slot.mid, substream: chosen.layer });
      }
    }
  }

  /**
   * A simulcast video stream: the engine chooses the slot's layer itself, within what the
   * subscriber's link takes (send-side bandwidth estimation), never above `slot.substream` /
   * `slot.temporal`, which become the subscriber's preferred maximum; `substream` and `temporal`
   * events follow what it actually sends. False when the slot is not fed that way (any more).
   */
  private applyLayerSet(router: MediaRouter, slot: Slot, output: number, stream: FeedStream | undefined): boolean {
    const layered = stream !== undefined && relayable(stream) && slot.kind === 'video' && stream.simulcast && stream.layers.length > 1 && router.setOutputLayers !== undefined;
    if (!layered) {
      if (slot.appliedLayerSet !== undefined) {
        router.setOutputLayers?.(output, null);
        slot.appliedLayerSet = undefined;
        // What feeds the output now is the engine's last choice: the next switch starts afresh.
        slot.appliedSource = undefined;
      }
      return false;
    }
    const set = { sources: [...stream.layers], preferred: Math.max(0, Math.min(slot.substream, stream.layers.length - 1)), temporalMax: wantedTemporal(slot) };
    const key = JSON.stringify(set);
    if (slot.appliedLayerSet === key) return true;
    this.stopSwitchListening ??= router.onOutputSwitched((switchedOutput, switched) => this.onOutputSwitched(switchedOutput, switched));
    this.stopTemporalListening ??= router.onOutputTemporal?.((changedOutput, layer) => this.onOutputTemporal(changedOutput, layer)) ?? null;
    router.setOutputLayers!(output, set);
    slot.appliedLayerSet = key;
    slot.appliedSource = undefined;
    slot.pendingLayer = undefined;
    return true;
  }

  /**
   * VP9 SVC (one stream carrying spatial and temporal layers): the output forwards up to
   * `spatial_layer` (`substream`) and `temporal_layer` (`temporal`); 2 and up: every layer.
   */
  private applySvc(router: MediaRouter, slot: Slot, output: number): boolean {
    const stream = slot.feed && slot.feedMid !== null ? slot.feed.stream(slot.feedMid) : undefined;
    const svc = stream !== undefined && slot.kind === 'video' && stream.codec === 'vp9' && !stream.simulcast && router.setOutputSvc !== undefined;
    if (!svc) return false;
    const spatial = slot.substream < DEFAULT_LAYER ? Math.max(0, slot.substream) : null;
    const temporal = wantedTemporal(slot);
    const key = `${spatial}/${temporal}`;
    if (slot.appliedSvc === key) return true;
    // Nothing to say to the engine until the subscriber asks for fewer layers than all.
    if (slot.appliedSvc === undefined && spatial === null && temporal === null) return true;
    this.stopSpatialListening ??= router.onOutputSpatial?.((changedOutput, layer) => this.onOutputSpatial(changedOutput, layer)) ?? null;
    this.stopTemporalListening ??= router.onOutputTemporal?.((changedOutput, layer) => this.onOutputTemporal(changedOutput, layer)) ?? null;
    router.setOutputSvc!(output, spatial, temporal);
    slot.appliedSvc = key;
    return true;
  }

  /** Caps the slot's VP8 temporal layer at `slot.temporal` (2 and up: every layer). */
  private applyTemporal(router: MediaRouter, slot: Slot, output: number): void {
    // The engine applies the temporal maximum with the layer set or the SVC layers.
    if (slot.appliedLayerSet !== undefined || this.applySvc(router, slot, output)) return;
    // VP8 temporal layers: the highest one wanted (Janus counts 0..2; 2 and up is "all").
    const temporal = slot.kind === 'video' ? wantedTemporal(slot) : null;
    if (router.setOutputTemporal && slot.kind === 'video' && slot.appliedTemporal !== temporal && (temporal !== null || slot.appliedTemporal !== undefined)) {
      this.stopTemporalListening ??= router.onOutputTemporal?.((changedOutput, layer) => this.onOutputTemporal(changedOutput, layer)) ?? null;
      router.setOutputTemporal(output, temporal);
      slot.appliedTemporal = temporal;
    }
  }

  /** The highest layer of `feed`'s stream `mid` this subscriber's slots want (their `substream`). */
  wantedLayer(feed: Feed, mid: string): number | null {
    let wanted: number | null = null;
    for (const slot of this.slots) {
      if (slot.feed !== feed || slot.feedMid !== mid || !slot.send) continue;
      wanted = Math.max(wanted ?? 0, Math.max(0, slot.substream));
    }
    return wanted;
  }

  /** Janus sends `substream` when the subscriber actually gets the new layer, i.e. at its keyframe. */
  private onOutputSwitched(output: number, source: number): void {
    const chosenByEngine = this.slots.find((s) => s.output === output && s.appliedLayerSet !== undefined);
    if (chosenByEngine) {
      // The engine moved this output to another layer of its set (bandwidth estimation).
      const stream = chosenByEngine.feed && chosenByEngine.feedMid !== null ? chosenByEngine.feed.stream(chosenByEngine.feedMid) : undefined;
      const layer = stream?.layers.indexOf(source) ?? -1;
      if (layer < 0 || chosenByEngine.appliedLayer === layer) return;
      chosenByEngine.appliedLayer = layer;
      this.client.push({ videoroom: 'event', room: this.room.id, mid: chosenByEngine.mid, substream: layer });
      return;
    }
    const slot = this.slots.find((s) => s.output === output && s.pendingLayer?.source === source);
    if (!slot?.pendingLayer) return;
    const layer = slot.pendingLayer.layer;
    slot.pendingLayer = undefined;
    this.client.push({ videoroom: 'event', room: this.room.id, mid: slot.mid, substream: layer });
  }

  /** Janus sends `temporal` when the subscriber's temporal layer actually changed. */
  private onOutputTemporal(output: number, layer: number | null): void {
    const slot = this.slots.find((s) => s.output === output);
    if (!slot) return;
    // Janus names it temporal_layer for VP9 SVC, temporal for simulcast.
    const name = slot.appliedSvc !== undefined ? 'temporal_layer' : 'temporal';
    this.client.push({ videoroom: 'event', room: this.room.id, mid: slot.mid, [name]: layer ?? DEFAULT_LAYER });
  }

  /** Janus sends `spatial_layer` when a VP9 SVC subscriber's spatial layer actually changed. */
  private onOutputSpatial(output: number, layer: number | null): void {
    const slot = this.slots.find((s) => s.output === output);
    if (!slot) return;
    this.client.push({ videoroom: 'event', room: this.room.id, mid: slot.mid, spatial_layer: layer ?? DEFAULT_LAYER });
  }

  // ---- switch, feed changes, renegotiation, teardown ---------------------------------------------------

  /** Validates every switch before applying any; returns the number of changed slots and whether renegotiation is needed. */
  applySwitch(requests: SwitchRequest[]): { changes: number; renegotiate: boolean } {
    const plan: { slot: Slot; feed: Feed; stream: FeedStream; request: SwitchRequest }[] = [];
    const dataPlan: { feed: Feed; mid: string }[] = [];
    for (const r of requests) {
      if (this.dataSlot && r.subMid === this.dataSlot.mid) {
        // The data m-line switches to the new feed's data: its other sources go (Janus relays one per switch).
        const feed = this.room.participants.get(r.feed);
        if (!feed || !feed.publishing) throw noSuchFeed(r.feed);
        const stream = feed.stream(r.mid);
        if (!stream || stream.disabled) throw new VideoRoomError(VideoRoomErrorCode.NO_SUCH_FEED, `No such mid '${r.mid}' in feed ${r.feed}`);
        if (stream.type !== 'data') throw new VideoRoomError(VideoRoomErrorCode.INVALID_FEED, `Can't switch a data m-line to a ${stream.type} stream`);
        dataPlan.push({ feed, mid: stream.mid });
        continue;
      }
      const slot = this.slots.find((s) => s.mid === r.subMid);
      if (!slot) throw new VideoRoomError(VideoRoomErrorCode.NO_SUCH_FEED, `No such subscription mid '${r.subMid}'`);
      const feed = this.room.participants.get(r.feed);
      if (!feed || !feed.publishing) throw noSuchFeed(r.feed);
      const stream = feed.stream(r.mid);
      if (!stream || stream.disabled) throw new VideoRoomError(VideoRoomErrorCode.NO_SUCH_FEED, `No such mid '${r.mid}' in feed ${r.feed}`);
      if (stream.type !== slot.kind) throw new VideoRoomError(VideoRoomErrorCode.INVALID_FEED, `Can't switch a ${slot.kind} m-line to a ${stream.type} stream`);
      // The negotiated payload format cannot change without renegotiation.
      if (stream.codec !== slot.codecName) {
        throw new VideoRoomError(VideoRoomErrorCode.INVALID_FEED, `Can't switch: codec ${stream.codec ?? 'none'} differs from the m-line's ${slot.codecName}`);
      }
      plan.push({ slot, feed, stream, request: r });
    }
    let changes = 0;
    let renegotiate = false;
    for (const { feed, mid } of dataPlan) {
      const data = this.dataSlot!;
      if (data.sources.size !== 1 || data.sources.get(feed) !== mid) changes++;
      data.sources = new Map([[feed, mid]]);
    }
    for (const { slot, feed, stream, request } of plan) {
      if (slot.feed === null) renegotiate = true;
      if (slot.feed !== feed || slot.feedMid !== stream.mid) changes++;
      slot.feed = feed;
      slot.feedMid = stream.mid;
      if (request.substream !== undefined) slot.substream = request.substream;
      if (request.temporal !== undefined) slot.temporal = request.temporal;
    }
    this.reconcile();
    return { changes, renegotiate };
  }

  /** A feed's streams changed: slots whose stream vanished go inactive. Returns whether any did. */
  private dropVanished(feed: Feed): boolean {
    let dropped = false;
    for (const slot of this.slots) {
      if (slot.feed !== feed) continue;
      const stream = slot.feedMid !== null ? feed.stream(slot.feedMid) : undefined;
      if (!stream || stream.disabled || stream.type !== slot.kind || stream.codec !== slot.codecName) {
        this.deactivate(slot);
        dropped = true;
      }
    }
    return dropped;
  }

  consumes(feed: Feed): boolean {
    return !this.ended && (this.slots.some((s) => s.feed === feed) || (this.dataSlot?.sources.has(feed) ?? false));
  }

  feedChanged(feed: Feed): void {
    if (this.ended) return;
    // A feed that stopped publishing data (renegotiated it away) is no longer relayed.
    const dataMid = this.dataSlot?.sources.get(feed);
    if (dataMid !== undefined && feed.stream(dataMid)?.type !== 'data') this.dataSlot!.sources.delete(feed);
    if (!this.slots.some((s) => s.feed === feed)) return;
    const dropped = this.dropVanished(feed);
    this.reconcile();
    if (dropped) this.autoUpdate();
  }

  feedGone(feed: Feed): void {
    if (this.ended) return;
    // The data m-line stays whatever feeds leave: no renegotiation for data.
    this.dataSlot?.sources.delete(feed);
    let dropped = false;
    for (const slot of this.slots) {
      if (slot.feed === feed) {
        this.deactivate(slot);
        dropped = true;
      }
    }
    if (!dropped) return;
    this.reconcile();
    this.autoUpdate();
  }

  /** With autoupdate, a lost feed is renegotiated away with an `updated` event and a new offer. */
  private autoUpdate(): void {
    if (!this.options.autoupdate) return;
    void this.renegotiate(undefined).catch(() => undefined);
  }

  /**
   * Sends `updated` + offer, or `updating` when an offer is still unanswered
   * (the change then rides on the offer made after the answer).
   */
  async renegotiate(transaction: string | undefined): Promise<void> {
    if (this.ended) return;
    const options = transaction !== undefined ? { transaction } : {};
    if (this.offerOutstanding) {
      this.apply('update');
      this.client.push({ videoroom: 'updating', room: this.room.id }, options);
      return;
    }
    const jsep = await this.offer();
    if (this.ended) return;
    this.client.push({ videoroom: 'updated', room: this.room.id, streams: this.describeStreams() }, { ...options, jsep });
  }

  roomDestroyed(): void {
    if (this.ended) return;
    this.client.push({ videoroom: 'destroyed', room: this.room.id });
    this.teardown();
    this.client.closePeerConnection('Room destroyed');
  }

  /**
   * The one ending of a subscriber (leave, hangup, detach, room destroyed):
   * outputs disconnected, listener removed, out of the room. Idempotent.
   */
  teardown(): void {
    if (this.ended) return;
    if (this.services && this.mediaUp) {
      for (const slot of this.slots) {
        if (slot.output !== null && slot.appliedSource !== undefined && slot.appliedSource !== null) this.services.router.switchOutput(slot.output, null);
      }
    }
    this.apply('end');
    this.stopListening?.();
    this.stopListening = null;
    this.stopSwitchListening?.();
    this.stopSwitchListening = null;
    this.stopTemporalListening?.();
    this.stopTemporalListening = null;
    this.stopSpatialListening?.();
    this.stopSpatialListening = null;
    for (const slot of this.slots) this.deactivate(slot);
    this.dataSlot?.sources.clear();
    this.dataReady = false;
    this.room.subscribers.delete(this);
  }

  /**
   * A publisher's data-channel message: relayed when this subscriber takes that feed's data and
   * its association is up, not paused, on a channel labelled with the publisher's id (as Janus).
   */
  relayData(feed: Feed, mid: string, message: DataMessage): void {
    const data = this.dataSlot;
    if (this.ended || this.paused || !this.dataReady || !data?.send || data.sources.get(feed) !== mid) return;
    if (this.client.sendData({ label: String(feed.id), binary: message.binary, data: message.data })) this.dataRelayed++;
    else this.dataDropped++;
  }

  describeStreams(): JsonObject[] {
    const media = this.slots.map((slot) => {
      const out: JsonObject = { type: slot.kind, mindex: slot.mindex, mid: slot.mid, active: slot.feed !== null };
      const stream = slot.feed && slot.feedMid !== null ? slot.feed.stream(slot.feedMid) : undefined;
      if (slot.feed && stream) {
        out['feed_id'] = slot.feed.id;
        out['feed_mid'] = stream.mid;
        if (slot.feed.display !== undefined) out['feed_display'] = slot.feed.display;
        if (slot.feed.metadata !== undefined) out['feed_metadata'] = slot.feed.metadata;
        if (stream.description !== undefined) out['feed_description'] = stream.description;
        out['codec'] = slot.codecName;
        if (slot.codecName === 'h264' && stream.h264Profile) out['h264-profile'] = stream.h264Profile;
        if (slot.codecName === 'vp9' && stream.vp9Profile) out['vp9-profile'] = stream.vp9Profile;
        if (stream.simulcast) out['simulcast'] = { substream: slot.substream, temporal: slot.temporal };
      }
      if (slot.crossrefid !== undefined) out['crossrefid'] = slot.crossrefid;
      out['send'] = slot.send;
      out['ready'] = this.mediaUp && slot.output !== null;
      return out;
    });
    const data = this.dataSlot;
    if (!data) return media;
    // Janus lists a data m-line with how many feeds, and which, feed it.
    const entry: JsonObject = {
      type: 'data',
      mindex: data.mindex,
      mid: data.mid,
      active: data.sources.size > 0,
      sources: data.sources.size,
      source_ids: [...data.sources.keys()].map((f) => f.id),
      send: data.send,
      ready: this.mediaUp && this.dataReady,
    };
    return [...media, entry].sort((a, b) => Number(a['mindex']) - Number(b['mindex']));
  }

  query(): JsonObject {
    return {
      room: this.room.id,
      paused: this.paused,
      media_up: this.mediaUp,
      offer_outstanding: this.offerOutstanding,
      streams: this.slots.map((s) => ({
        mid: s.mid,
        feed: s.feed?.id ?? null,
        feed_mid: s.feedMid,
        output: s.output,
        source: s.appliedSource ?? null,
        // Simulcast chosen by the engine within the subscriber's estimate (see applyLayerSet):
        // the preferred maximum and the layer actually sent.
        ...(s.appliedLayerSet !== undefined ? { layers: { substream: s.substream, temporal: s.temporal, 'substream-sent': s.appliedLayer } } : {}),
        ...(s.appliedSvc !== undefined ? { svc: { spatial_layer: s.substream, temporal_layer: s.temporal } } : {}),
      })),
      data: this.dataSlot
        ? { mid: this.dataSlot.mid, feeds: [...this.dataSlot.sources.keys()].map((f) => f.id), ready: this.dataReady, relayed: this.dataRelayed, dropped: this.dataDropped }
        : null,
    };
  }
}

/** The audio/video m-lines of an offer that may receive (not rejected, not sendonly/inactive), in order. */
function offeredMedia(sdp: string): { type: string; mid: string; index: number }[] {
  let parsed;
  try {
    parsed = sdpTransform.parse(sdp);
  } catch (err) {
    throw new VideoRoomError(VideoRoomErrorCode.INVALID_SDP, `Error parsing SDP: ${(err as Error).message}`);
  }
  return (parsed.media ?? [])
    .map((m, index) => ({ type: m.type, mid: m.mid !== undefined ? String(m.mid) : String(index), index, port: m.port, direction: m.direction }))
    .filter((m) => (m.type === 'audio' || m.type === 'video') && m.port !== 0 && m.direction !== 'sendonly' && m.direction !== 'inactive');
}
