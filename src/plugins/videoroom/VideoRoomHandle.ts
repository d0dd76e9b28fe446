/**
 * One handle attached to the VideoRoom: nothing, a publisher or a subscriber.
 * Synchronous requests are answered at once; asynchronous ones are `ack`ed
 * and processed one at a time (Janus uses a handler thread), their result
 * pushed as an event with the request's transaction.
 *
 * Every ending of the handle's role goes through one idempotent path:
 * publisher → `VideoRoomPlugin.removeParticipant`, subscriber →
 * `Subscriber.teardown`; remote publishers created from this handle end with
 * it (`releaseOwnedBy`).
 *
 * Why this file stays whole (about 650 lines): the publisher's and the
 * subscriber's asynchronous requests all read and change the one role slot
 * and go through the one request queue; the synchronous requests already live
 * apart (syncRequests.ts and the files it names).
 */
import type { JsonObject } from '../../core/Json.js';
import { field } from '../../core/Json.js';
import type { DataMessage, HandleMedia, Jsep, RoutableMedia } from '../../core/Media.js';
import type { PluginContext, PluginHandle, PluginMessage, PluginReply } from '../../core/Plugin.js';
import { RequestQueue } from '../../core/RequestQueue.js';
import { assignDefined } from '../../core/RequestTable.js';
import { VideoRoomError, VideoRoomErrorCode, checkRecorderAvailable, checkSecret, errorData, invalid, missing } from './errors.js';
import { Publisher, type PublishedDescription } from './Publisher.js';
import { placementGroup, type Room } from './Room.js';
import { Subscriber, type StreamRequest, type SwitchRequest, type UnsubscribeRequest } from './Subscriber.js';
import type { VideoRoomPlugin } from './VideoRoomPlugin.js';
import { acceptedDataMids, restrictOffer } from './codecs.js';
import * as R from './requests.js';
import { isSyncRequest } from './syncRequests.js';

type Role = { kind: 'publisher'; publisher: Publisher } | { kind: 'subscriber'; subscriber: Subscriber } | null;

const MEDIA_UNAVAILABLE = 'WebRTC media is not available in this build';

export class VideoRoomHandle implements PluginHandle {
  private role: Role = null;
  private destroyed = false;
  /** The room this handle last subscribed in: a cluster's cascades follow what its subscriber consumes. */
  private subscribedRoom: Room | null = null;
  private readonly requests = new RequestQueue((err, message) => {
    if (!this.destroyed) this.ctx.pushEvent(errorData(err, this.ctx.logger), { transaction: message.transaction });
  });

  constructor(private readonly plugin: VideoRoomPlugin, private readonly ctx: PluginContext) {}

  /** The Janus session this handle belongs to (per-client room quotas). */
  get sessionId(): number {
    return this.ctx.sessionId;
  }

  get publisher(): Publisher | null {
    return this.role?.kind === 'publisher' && !this.role.publisher.left ? this.role.publisher : null;
  }

  get subscriber(): Subscriber | null {
    return this.role?.kind === 'subscriber' && !this.role.subscriber.ended ? this.role.subscriber : null;
  }

  /** A handle's media goes with its room: the one it is in, or the one a join names. */
  placementGroup(body: JsonObject): string | undefined {
    const room = this.publisher?.room.id ?? this.subscriber?.room.id ?? body['room'];
    return typeof room === 'number' || typeof room === 'string' ? placementGroup(room) : undefined;
  }

  closePeerConnection(reason: string): void {
    if (!this.destroyed) this.ctx.closePeerConnection(reason);
  }

  /** After anything that may change what this handle's subscriber consumes. */
  private consumptionChanged(): void {
    if (this.subscribedRoom) this.plugin.cluster?.demandChanged(this.subscribedRoom);
  }

  /** The PeerConnection, opened if none exists yet (only for making or answering an offer). */
  private openMedia(): HandleMedia | null {
    if (this.destroyed) return null;
    return this.ctx.media ?? this.ctx.openMedia();
  }

  handleMessage(message: PluginMessage): PluginReply | Promise<PluginReply> {
    const body = message.body;
    const request = field(body, 'request');
    if (typeof request !== 'string') {
      return { kind: 'ok', data: errorData(request === undefined || request === null ? missing('request') : invalid('request', 'a string'), this.ctx.logger) };
    }
    const name = request.toLowerCase();
    if (isSyncRequest(name)) {
      const data = this.plugin.handleRequest(body, this);
      return data instanceof Promise ? data.then((d): PluginReply => ({ kind: 'ok', data: d })) : { kind: 'ok', data };
    }
    if (!R.ASYNC_REQUESTS.has(name)) return { kind: 'ok', data: errorData(new VideoRoomError(VideoRoomErrorCode.INVALID_REQUEST, `Unknown request '${request}'`), this.ctx.logger) };
    // Whatever the request did (or failed to do), the cluster hears what this handle now consumes.
    this.requests.push(message, (m) => this.process(name, m).finally(() => this.consumptionChanged()));
    // janus_videoroom.c returns JANUS_PLUGIN_OK_WAIT without a hint.
    return { kind: 'wait' };
  }

  private push(data: JsonObject, transaction: string | undefined, jsep?: Jsep): void {
    if (!this.destroyed) this.ctx.pushEvent(data, { transaction, jsep });
  }

  private async process(name: string, message: PluginMessage): Promise<void> {
    if (this.destroyed) return;
    const { body, transaction, jsep } = message;
    const pub = this.publisher;
    const sub = this.subscriber;
    if (name === 'join' || name === 'joinandconfigure') {
      if (pub || sub) throw new VideoRoomError(VideoRoomErrorCode.ALREADY_JOINED, `Already in as a ${pub ? 'publisher' : 'subscriber'} on this handle`);
      return this.join(name, body, transaction, jsep);
    }
    if (pub) return this.publisherRequest(pub, name, body, transaction, jsep);
    if (sub) return this.subscriberRequest(sub, name, body, transaction, jsep);
    throw new VideoRoomError(VideoRoomErrorCode.JOIN_FIRST, 'Invalid request on unconfigured participant');
  }

  // ---- join ---------------------------------------------------------------------------------------

  private async join(name: string, body: JsonObject, transaction: string, jsep: Jsep | undefined): Promise<void> {
    R.validate(body, R.JOIN);
    const ptype = String(body['ptype']);
    await this.plugin.cluster?.ensureRoom(body['room'] as number);
    const room = this.plugin.room(body);
    if (ptype === 'publisher') return this.joinPublisher(name === 'joinandconfigure', room, body, transaction, jsep);
    if (ptype === 'subscriber' || ptype === 'listener') {
      if (name === 'joinandconfigure') throw new VideoRoomError(VideoRoomErrorCode.INVALID_REQUEST, 'Subscribers cannot joinandconfigure');
      return this.joinSubscriber(room, body, transaction, jsep);
    }
    throw invalid('ptype', '"publisher" or "subscriber"');
  }

  private async joinPublisher(configure: boolean, room: Room, body: JsonObject, transaction: string, jsep: Jsep | undefined): Promise<void> {
    R.validate(body, R.PUBLISHER_JOIN);
    checkSecret(room.config.pin, body, 'pin');
    if (room.config.allowed !== null) {
      const token = R.optString(body, 'token');
      if (token === undefined || !room.config.allowed.includes(token)) throw new VideoRoomError(VideoRoomErrorCode.UNAUTHORIZED, 'Unauthorized (not in the allowed list)');
    }
    if (configure) {
      R.validate(body, R.PUBLISH);
      checkRecordRequest(room, body, this.plugin.services?.recorder !== undefined);
    }
    const requested = R.optNumber(body, 'id');
    if (requested !== undefined && room.participants.has(requested)) throw new VideoRoomError(VideoRoomErrorCode.ID_EXISTS, `User ID ${requested} already exists`);
    const id = requested ?? this.plugin.freshId((i) => room.participants.has(i));
    const pub = new Publisher(id, room, { push: (data) => this.push(data, undefined), closePeerConnection: (reason) => this.closePeerConnection(reason) }, this.plugin.services, this.plugin.clock);
    pub.display = R.optString(body, 'display');
    const metadata = field(body, 'metadata');
    if (metadata !== undefined && metadata !== null) pub.metadata = metadata;
    if (configure) {
      applyAudioLevelSettings(pub, body);
      applyRecordRequest(pub, body);
    }
    room.participants.set(id, pub);
    this.role = { kind: 'publisher', publisher: pub };
    room.localFeedChanged(pub, 'joined');
    if (room.config.notify_joining) {
      room.notify({ videoroom: 'event', room: room.id, joining: { id, ...pub.identity() } }, pub);
    }
    const joined: JsonObject = {
      videoroom: 'joined',
      room: room.id,
      description: room.config.description,
      id,
      private_id: pub.privateId,
      publishers: room.publishersList(pub),
    };
    if (room.config.notify_joining) {
      joined['attendees'] = [...room.participants.values()].filter((f) => f !== pub && !f.publishing).map((f) => ({ id: f.id, ...f.identity() }));
    }
    if (configure && jsep) {
      // joinandconfigure: the answer rides on the `joined` event; a failed publish leaves the participant joined.
      const answer = await this.publish(pub, body, jsep);
      this.push(joined, transaction, answer);
      return;
    }
    this.push(joined, transaction);
  }

  private async joinSubscriber(room: Room, body: JsonObject, transaction: string, jsep: Jsep | undefined): Promise<void> {
    R.validate(body, R.SUBSCRIBER_JOIN);
    checkSecret(room.config.pin, body, 'pin');
    const privateId = R.optNumber(body, 'private_id') ?? null;
    if (room.config.require_pvtid) {
      const owner = [...room.participants.values()].find((f) => f instanceof Publisher && f.privateId === privateId);
      if (privateId === null || !owner) throw new VideoRoomError(VideoRoomErrorCode.UNAUTHORIZED, 'Unauthorized (this room requires a valid private_id)');
    }
    let requests = streamRequests(R.objects(body, 'streams'));
    const legacyFeed = R.optNumber(body, 'feed');
    if (requests.length === 0 && legacyFeed !== undefined) requests = [{ feed: legacyFeed }];
    if (requests.length === 0) throw missing('streams');
    const sub = new Subscriber(room, this.subscriberClient(), this.plugin.services, {
      autoupdate: R.optBool(body, 'autoupdate') ?? true,
      useMsid: R.optBool(body, 'use_msid') ?? false,
      privateId,
    });
    const resolved = sub.resolve(requests);
    if (resolved.length === 0) throw new VideoRoomError(VideoRoomErrorCode.INVALID_FEED, 'The requested feeds have no stream ferry can relay');
    if (!this.routableMedia()) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, MEDIA_UNAVAILABLE);
    sub.addSlots(resolved);
    // A subscriber that offers (WHEP) gets ferry's answer; otherwise ferry offers (janus.js).
    if (jsep && jsep.type !== 'offer') throw new VideoRoomError(VideoRoomErrorCode.INVALID_SDP_TYPE, 'Invalid SDP type (a subscriber may only offer when joining)');
    const offer = jsep ? await sub.answer(jsep) : await sub.offer();
    if (this.destroyed || room.destroyed) {
      sub.teardown();
      return;
    }
    room.subscribers.add(sub);
    this.role = { kind: 'subscriber', subscriber: sub };
    this.subscribedRoom = room;
    this.push({ videoroom: 'attached', room: room.id, streams: sub.describeStreams() }, transaction, offer);
  }

  private subscriberClient() {
    return {
      push: (data: JsonObject, options?: { transaction?: string; jsep?: Jsep }) => this.push(data, options?.transaction, options?.jsep),
      media: () => this.ctx.media,
      openMedia: () => this.openMedia(),
      closePeerConnection: (reason: string) => this.closePeerConnection(reason),
      sendData: (message: Parameters<NonNullable<HandleMedia['sendData']>>[0]) => (this.destroyed ? false : (this.ctx.media?.sendData?.(message) ?? false)),
    };
  }

  private routableMedia(): RoutableMedia | null {
    const media = this.openMedia();
    return media && media.streams && media.onStreamsChanged && media.createOffer ? (media as RoutableMedia) : null;
  }

  // ---- publisher requests ----------------------------------------------------------------------------

  private async publisherRequest(pub: Publisher, name: string, body: JsonObject, transaction: string, jsep: Jsep | undefined): Promise<void> {
    const room = pub.room;
    switch (name) {
      case 'publish': {
        R.validate(body, R.PUBLISH);
        checkRecordRequest(room, body, this.plugin.services?.recorder !== undefined);
        if (pub.published) throw new VideoRoomError(VideoRoomErrorCode.ALREADY_PUBLISHED, "Can't publish, already published");
        if (!jsep) throw missing('jsep');
        applyRecordRequest(pub, body);
        const answer = await this.publish(pub, body, jsep);
        this.push(this.configured(pub), transaction, answer);
        return;
      }
      case 'configure': {
        R.validate(body, R.PUBLISH);
        checkRecordRequest(room, body, this.plugin.services?.recorder !== undefined);
        applyRecordRequest(pub, body);
        const answer = jsep ? await this.publish(pub, body, jsep) : undefined;
        this.configurePublisher(pub, body);
        pub.updateRecording();
        this.push(this.configured(pub), transaction, answer);
        return;
      }
      case 'unpublish': {
        if (!pub.published) throw new VideoRoomError(VideoRoomErrorCode.NOT_PUBLISHED, "Can't unpublish, not published");
        this.plugin.unpublishParticipant(pub);
        this.push({ videoroom: 'event', room: room.id, unpublished: 'ok' }, transaction);
        this.closePeerConnection('Unpublished');
        return;
      }
      case 'leave': {
        this.plugin.removeParticipant(pub, 'leave');
        this.push({ videoroom: 'event', room: room.id, leaving: 'ok' }, transaction);
        this.closePeerConnection('Left the room');
        return;
      }
      default:
        throw new VideoRoomError(VideoRoomErrorCode.INVALID_REQUEST, `Unknown request '${name}' for a publisher`);
    }
  }

  private configured(pub: Publisher): JsonObject {
    const out: JsonObject = { videoroom: 'event', room: pub.room.id, configured: 'ok' };
    if (pub.audioCodec) out['audio_codec'] = pub.audioCodec;
    if (pub.videoCodec) out['video_codec'] = pub.videoCodec;
    if (pub.published) out['streams'] = pub.describe(false)['streams'] ?? [];
    const files = pub.recordingFiles.filter((r) => r.active);
    if (files.length) out['recordings'] = files.map((r) => r.describe());
    return out;
  }

  /**
   * Answers a publisher's offer (publish, joinandconfigure, configure with a
   * jsep): the offer is narrowed to the room's codecs, answered by the
   * handle's PeerConnection, and its m-lines become the feed's streams.
   */
  private async publish(pub: Publisher, body: JsonObject, jsep: Jsep): Promise<Jsep> {
    const room = pub.room;
    if (jsep.type !== 'offer') throw new VideoRoomError(VideoRoomErrorCode.INVALID_SDP_TYPE, 'Invalid SDP type (publishers must send an offer)');
    if (!pub.published && room.publishingFeeds.length >= room.config.publishers) {
      throw new VideoRoomError(VideoRoomErrorCode.PUBLISHERS_FULL, `Maximum number of publishers (${room.config.publishers}) already reached`);
    }
    const policy = room.codecPolicy;
    const audioCodec = R.optString(body, 'audiocodec')?.toLowerCase();
    const videoCodec = R.optString(body, 'videocodec')?.toLowerCase();
    if (audioCodec !== undefined) {
      if (!policy.audio.includes(audioCodec)) throw invalid('audiocodec', `one of the room's audio codecs (${policy.audio.join(',')})`);
      policy.audio = [audioCodec];
    }
    if (videoCodec !== undefined) {
      if (!policy.video.includes(videoCodec)) throw invalid('videocodec', `one of the room's video codecs (${policy.video.join(',')})`);
      policy.video = [videoCodec];
    }
    const media = this.openMedia();
    if (!media) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, MEDIA_UNAVAILABLE);
    const routable = this.routableMedia();
    if (!routable) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, MEDIA_UNAVAILABLE);
    let restricted;
    try {
      restricted = restrictOffer(jsep.sdp, policy);
    } catch (err) {
      throw new VideoRoomError(VideoRoomErrorCode.INVALID_SDP, `Error parsing SDP: ${(err as Error).message}`);
    }
    let answer: Jsep;
    try {
      // The media layer picks each m-line's codec from the room's lists, in the room's order
      // (Janus: the first of audiocodec/videocodec the offer has). The narrowed offer is passed
      // too, for media layers that answer the SDP they are given rather than the applied one.
      answer = await media.createAnswer(
        { ...jsep, sdp: restricted.sdp },
        {
          audio: true,
          video: true,
          data: true,
          codecs: { audio: [...policy.audio], video: [...policy.video] },
          extensions: { audioLevel: room.config.audiolevel_ext, transportWideCc: room.config.transport_wide_cc_ext },
        },
      );
    } catch (err) {
      throw new VideoRoomError(VideoRoomErrorCode.INVALID_SDP, `Error processing SDP: ${(err as Error).message}`);
    }
    if (this.destroyed || pub.left) throw new VideoRoomError(VideoRoomErrorCode.UNKNOWN_ERROR, 'Participant left while publishing');
    const descriptions = new Map<string, string>();
    for (const d of R.objects(body, 'descriptions')) {
      R.validate(d, R.DESCRIPTION, 'descriptions.');
      descriptions.set(String(d['mid']), String(d['description']));
    }
    // A data m-line the media layer refused (data channels off) is no data stream of the feed.
    const dataMids = acceptedDataMids(answer.sdp);
    const described: PublishedDescription = { data: restricted.data.filter((d) => dataMids.has(d.mid)), media: restricted.media, chosen: restricted.chosen, ridOrder: jsep['rid_order'] === 'lmh' ? 'lmh' : 'hml', descriptions };
    const wasPublishing = pub.publishing;
    this.applyIdentity(pub, body);
    pub.attachMedia(routable, described);
    pub.refreshForwarders();
    if (wasPublishing) {
      // Renegotiation of a live publisher: subscribers re-point, everyone hears the new stream list.
      room.feedChanged(pub);
      pub.announce();
    }
    return answer;
  }

  private applyIdentity(pub: Publisher, body: JsonObject): boolean {
    let changed = false;
    const display = R.optString(body, 'display');
    if (display !== undefined && display !== pub.display) {
      pub.display = display;
      changed = true;
    }
    const metadata = field(body, 'metadata');
    if (metadata !== undefined && metadata !== null) {
      pub.metadata = metadata;
      changed = true;
    }
    return changed;
  }

  /** `configure` without renegotiation: bitrate, keyframe, per-stream send/keyframe, descriptions, display. */
  private configurePublisher(pub: Publisher, body: JsonObject): void {
    const streams = R.objects(body, 'streams');
    for (const s of streams) R.validate(s, R.PUBLISHER_STREAM_CONFIGURE, 'streams.');
    for (const d of R.objects(body, 'descriptions')) R.validate(d, R.DESCRIPTION, 'descriptions.');
    const bitrate = R.optNumber(body, 'bitrate');
    if (bitrate !== undefined) {
      pub.bitrate = pub.room.config.bitrate_cap && pub.room.config.bitrate > 0 ? Math.min(bitrate, pub.room.config.bitrate) : bitrate;
      pub.applyBitrateCap();
    }
    if (body['keyframe'] === true) pub.requestKeyframes();
    if (applyAudioLevelSettings(pub, body)) pub.meterAudioLevels();
    let changed = this.applyIdentity(pub, body);
    for (const s of streams) {
      const mid = String(s['mid']);
      const stream = pub.stream(mid);
      if (!stream) continue;
      if (s['keyframe'] === true) pub.requestKeyframes(mid);
      const send = R.optBool(s, 'send');
      if (send !== undefined && send !== stream.relay) {
        stream.relay = send;
        changed = true;
      }
    }
    for (const d of R.objects(body, 'descriptions')) {
      const stream = pub.stream(String(d['mid']));
      if (stream) {
        stream.description = String(d['description']);
        changed = true;
      }
    }
    if (changed && pub.publishing) {
      pub.refreshForwarders();
      pub.room.feedChanged(pub);
      pub.announce();
    }
  }

  // ---- subscriber requests -----------------------------------------------------------------------------

  private async subscriberRequest(sub: Subscriber, name: string, body: JsonObject, transaction: string, jsep: Jsep | undefined): Promise<void> {
    const room = sub.room;
    switch (name) {
      case 'start': {
        let offerOwed = false;
        if (jsep) {
          if (jsep.type !== 'answer') throw new VideoRoomError(VideoRoomErrorCode.INVALID_SDP_TYPE, 'Invalid SDP type (subscribers must answer)');
          offerOwed = sub.answered();
        }
        sub.paused = false;
        sub.reconcile();
        this.push({ videoroom: 'event', room: room.id, started: 'ok' }, transaction);
        if (offerOwed) await sub.renegotiate(undefined);
        return;
      }
      case 'pause': {
        sub.paused = true;
        sub.reconcile();
        this.push({ videoroom: 'event', room: room.id, paused: 'ok' }, transaction);
        return;
      }
      case 'switch': {
        R.validate(body, R.SWITCH);
        const requests = R.objects(body, 'streams').map((s): SwitchRequest => {
          R.validate(s, R.SWITCH_STREAM, 'streams.');
          const r: SwitchRequest = { feed: s['feed'] as number, mid: String(s['mid']), subMid: String(s['sub_mid']) };
          const substream = R.optNumber(s, 'substream') ?? R.optNumber(s, 'spatial_layer');
          const temporal = R.optNumber(s, 'temporal') ?? R.optNumber(s, 'temporal_layer');
          if (substream !== undefined) r.substream = substream;
          if (temporal !== undefined) r.temporal = temporal;
          return r;
        });
        const { changes, renegotiate } = sub.applySwitch(requests);
        this.push({ videoroom: 'event', room: room.id, switched: 'ok', changes, streams: sub.describeStreams() }, transaction);
        if (renegotiate) await sub.renegotiate(undefined);
        return;
      }
      case 'subscribe':
      case 'unsubscribe':
      case 'update': {
        const { subscribe, unsubscribe } = this.updateLists(name, body);
        const resolved = sub.resolve(subscribe);
        for (const u of unsubscribe) if (u.feed === undefined && u.subMid === undefined) throw missing('feed');
        const removed = unsubscribe.length ? sub.removeSlots(unsubscribe) : 0;
        const added = sub.addSlots(resolved);
        if (added + removed === 0) {
          this.push({ videoroom: 'updated', room: room.id, streams: sub.describeStreams() }, transaction);
          return;
        }
        await sub.renegotiate(transaction);
        return;
      }
      case 'configure': {
        R.validate(body, R.SUBSCRIBER_CONFIGURE);
        this.configureSubscriber(sub, body);
        if (body['restart'] === true) {
          const offer = await sub.offer();
          this.push({ videoroom: 'event', room: room.id, configured: 'ok' }, transaction, offer);
          return;
        }
        this.push({ videoroom: 'event', room: room.id, configured: 'ok' }, transaction);
        return;
      }
      case 'leave': {
        sub.teardown();
        this.push({ videoroom: 'event', room: room.id, left: 'ok' }, transaction);
        this.closePeerConnection('Subscriber left');
        return;
      }
      default:
        throw new VideoRoomError(VideoRoomErrorCode.INVALID_REQUEST, `Unknown request '${name}' for a subscriber`);
    }
  }

  private updateLists(name: string, body: JsonObject): { subscribe: StreamRequest[]; unsubscribe: UnsubscribeRequest[] } {
    if (name === 'subscribe') {
      R.validate(body, R.SUBSCRIBE);
      return { subscribe: streamRequests(R.objects(body, 'streams')), unsubscribe: [] };
    }
    if (name === 'unsubscribe') {
      R.validate(body, R.SUBSCRIBE);
      return { subscribe: [], unsubscribe: unsubscribeRequests(R.objects(body, 'streams')) };
    }
    R.validate(body, R.UPDATE);
    if (field(body, 'subscribe') === undefined && field(body, 'unsubscribe') === undefined) throw missing('subscribe');
    return { subscribe: streamRequests(R.objects(body, 'subscribe')), unsubscribe: unsubscribeRequests(R.objects(body, 'unsubscribe')) };
  }

  /** Subscriber `configure`: per-m-line send/substream/temporal, the deprecated audio/video toggles. */
  private configureSubscriber(sub: Subscriber, body: JsonObject): void {
    const streams = R.objects(body, 'streams');
    for (const s of streams) R.validate(s, R.SUBSCRIBER_STREAM_CONFIGURE, 'streams.');
    for (const s of streams) {
      if (sub.dataSlot && sub.dataSlot.mid === String(s['mid'])) {
        const send = R.optBool(s, 'send');
        if (send !== undefined) sub.dataSlot.send = send;
        continue;
      }
      const slot = sub.slots.find((x) => x.mid === String(s['mid']));
      if (!slot) continue;
      assignDefined(slot, {
        send: R.optBool(s, 'send'),
        substream: R.optNumber(s, 'substream') ?? R.optNumber(s, 'spatial_layer'),
        temporal: R.optNumber(s, 'temporal') ?? R.optNumber(s, 'temporal_layer'),
      });
    }
    for (const kind of ['audio', 'video'] as const) {
      const on = R.optBool(body, kind);
      if (on !== undefined) for (const slot of sub.slots) if (slot.kind === kind) slot.send = on;
    }
    const substream = R.optNumber(body, 'substream');
    const temporal = R.optNumber(body, 'temporal');
    for (const slot of sub.slots) {
      if (slot.kind !== 'video') continue;
      if (substream !== undefined) slot.substream = substream;
      if (temporal !== undefined) slot.temporal = temporal;
    }
    sub.reconcile();
  }

  // ---- media lifecycle ---------------------------------------------------------------------------------

  setupMedia(): void {
    if (this.destroyed) return;
    this.publisher?.setMediaUp();
    this.subscriber?.setMediaUp();
  }

  /** A publisher's data-channel message goes to every subscriber of its data stream (unless `send` is off). */
  incomingData(message: DataMessage): void {
    const pub = this.publisher;
    if (this.destroyed || !pub?.publishing) return;
    const stream = pub.dataStream;
    if (!stream) return;
    pub.recordData(message);
    if (!stream.relay) return;
    pub.room.relayData(pub, stream.mid, message);
    pub.room.dataObserver?.(pub, stream.mid, message);
  }

  dataReady(): void {
    const sub = this.subscriber;
    if (sub) sub.dataReady = true;
  }

  /** The PeerConnection is gone: a publisher unpublishes (and stays in the room), a subscriber ends. Idempotent. */
  hangupMedia(_reason: string): void {
    const pub = this.publisher;
    if (pub) this.plugin.unpublishParticipant(pub);
    const sub = this.subscriber;
    if (sub) {
      sub.teardown();
      this.role = null;
      this.consumptionChanged();
    }
  }

  destroy(_reason: string): void {
    if (this.destroyed) return;
    const pub = this.publisher;
    if (pub) this.plugin.removeParticipant(pub, 'detached');
    this.subscriber?.teardown();
    this.plugin.releaseOwnedBy(this);
    this.consumptionChanged();
    this.destroyed = true;
    this.role = null;
    this.plugin.forgetHandle(this);
  }

  query(): JsonObject {
    const pub = this.publisher;
    if (pub) {
      return {
        type: 'publisher', room: pub.room.id, id: pub.id, private_id: pub.privateId, display: pub.display ?? null,
        published: pub.published, media_up: pub.mediaUp, bitrate: pub.bitrate, streams: pub.describe(false)['streams'] ?? [],
        forwarders: pub.forwarders.size, remotes: pub.remotes.size,
        recording: pub.recordingFiles.some((r) => r.active), recordings: pub.recordingFiles.map((r) => r.describe()),
      };
    }
    const sub = this.subscriber;
    if (sub) return { type: 'subscriber', ...sub.query() };
    return { type: 'none', destroyed: this.destroyed };
  }
}

function streamRequests(entries: JsonObject[]): StreamRequest[] {
  return entries.map((s) => {
    R.validate(s, R.SUBSCRIBE_STREAM, 'streams.');
    const r: StreamRequest = { feed: s['feed'] as number };
    assignDefined(r, {
      mid: R.optString(s, 'mid'),
      crossrefid: R.optString(s, 'crossrefid'),
      substream: R.optNumber(s, 'substream') ?? R.optNumber(s, 'spatial_layer'),
      temporal: R.optNumber(s, 'temporal') ?? R.optNumber(s, 'temporal_layer'),
    });
    return r;
  });
}

function unsubscribeRequests(entries: JsonObject[]): UnsubscribeRequest[] {
  return entries.map((s) => {
    R.validate(s, R.UNSUBSCRIBE_STREAM, 'streams.');
    const r: UnsubscribeRequest = {};
    assignDefined(r, { feed: R.optNumber(s, 'feed'), mid: R.optString(s, 'mid'), subMid: R.optString(s, 'sub_mid') });
    return r;
  });
}

/**
 * Janus `lock_record`: a publisher may only start or stop its own recording with the room's
 * secret (or the room's enable_recording does it).
 */
function checkRecordRequest(room: Room, body: JsonObject, available: boolean): void {
  const record = R.optBool(body, 'record');
  if (record === undefined) return;
  if (room.config.lock_record) checkSecret(room.config.secret, body, 'secret');
  checkRecorderAvailable(record, available);
}

/** A publisher's `record` and `filename` (join, publish, configure). */
function applyRecordRequest(pub: Publisher, body: JsonObject): void {
  const record = R.optBool(body, 'record');
  if (record !== undefined) pub.recordRequested = record;
  const filename = R.optString(body, 'filename');
  if (filename !== undefined) pub.recordingBase = filename.length ? filename : null;
}

/** A publisher's own `audio_active_packets` / `audio_level_average` (join, configure); true when given. */
function applyAudioLevelSettings(pub: Publisher, body: JsonObject): boolean {
  const packets = R.optNumber(body, 'audio_active_packets');
  const average = R.optNumber(body, 'audio_level_average');
  if (packets !== undefined) pub.audioActivePackets = packets;
  if (average !== undefined) pub.audioLevelAverage = average;
  return packets !== undefined || average !== undefined;
}
