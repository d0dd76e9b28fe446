/** A VideoRoom client over the real Janus WebSocket API, and SDPs a browser would send. */
import { JanusWs, startGateway, type Json, type TestGateway } from '../helpers/http.js';
import { VideoRoomPlugin, type VideoRoomConfig } from '../../src/plugins/videoroom/VideoRoomPlugin.js';
import { fakeMedia } from './fakeMedia.js';

export const VR = 'janus.plugin.videoroom';

export interface Bench {
  t: TestGateway;
  plugin: VideoRoomPlugin;
  media: ReturnType<typeof fakeMedia>;
  stop(): Promise<void>;
}

/** A gateway with the VideoRoom plugin and the fake media seam. */
export async function startBench(config: Partial<VideoRoomConfig> = {}, ports = 20): Promise<Bench> {
  const media = fakeMedia(ports);
  const plugin = new VideoRoomPlugin({ media: media.services, config });
  const t = await startGateway({}, { plugins: [plugin], media: media.provider, services: media.services });
  return { t, plugin, media, stop: () => t.stop() };
}

export class VrClient {
  private constructor(readonly ws: JanusWs, readonly sessionId: number, readonly handleId: number) {}

  static async open(bench: Bench, ws?: JanusWs): Promise<VrClient> {
    const socket = ws ?? (await JanusWs.connect(bench.t.wsUrl));
    const created = await socket.request({ janus: 'create' });
    const sessionId = created['data'].id as number;
    const attached = await socket.request({ janus: 'attach', session_id: sessionId, plugin: VR });
    return new VrClient(socket, sessionId, attached['data'].id as number);
  }

  /** Another handle on the same session. */
  async attachAnother(): Promise<VrClient> {
    const attached = await this.ws.request({ janus: 'attach', session_id: this.sessionId, plugin: VR });
    return new VrClient(this.ws, this.sessionId, attached['data'].id as number);
  }

  /** A synchronous request: the `success` reply's plugindata.data. */
  async sync(body: Record<string, unknown>): Promise<Json> {
    const reply = await this.ws.request({ janus: 'message', session_id: this.sessionId, handle_id: this.handleId, body });
    if (reply['janus'] !== 'success') throw new Error(`expected success, got ${JSON.stringify(reply)}`);
    return reply['plugindata'].data as Json;
  }

  /** An asynchronous request: `ack`, then the event with the same transaction. */
  async call(body: Record<string, unknown>, jsep?: Record<string, unknown>): Promise<{ data: Json; jsep?: Json; event: Json }> {
    const transaction = `vr-${Math.random().toString(36).slice(2)}`;
    const eventPromise = this.ws.nextEvent((e) => e['transaction'] === transaction && e['janus'] === 'event');
    const reply = await this.ws.request({ janus: 'message', session_id: this.sessionId, handle_id: this.handleId, body, transaction, ...(jsep ? { jsep } : {}) });
    if (reply['janus'] !== 'ack') {
      eventPromise.catch(() => undefined);
      throw new Error(`expected ack, got ${JSON.stringify(reply)}`);
    }
    const event = await eventPromise;
    return { data: event['plugindata'].data as Json, jsep: event['jsep'] as Json | undefined, event };
  }

  /** The raw reply of a message (for core errors such as 469). */
  async raw(body: Record<string, unknown>, jsep?: Record<string, unknown>): Promise<Json> {
    return this.ws.request({ janus: 'message', session_id: this.sessionId, handle_id: this.handleId, body, ...(jsep ? { jsep } : {}) });
  }

  /** Next event for this handle whose plugindata matches. */
  async event(match: (data: Json) => boolean, ms = 3000): Promise<{ data: Json; jsep?: Json; event: Json }> {
    const event = await this.ws.nextEvent((e) => e['sender'] === this.handleId && e['janus'] === 'event' && match(e['plugindata']?.data ?? {}), ms);
    return { data: event['plugindata'].data as Json, jsep: event['jsep'] as Json | undefined, event };
  }

  /** Plugin events already received for this handle and not yet consumed. */
  pending(): Json[] {
    return this.ws.events.filter((e) => e['sender'] === this.handleId && e['janus'] === 'event').map((e) => e['plugindata'].data as Json);
  }

  async detach(): Promise<Json> {
    return this.ws.request({ janus: 'detach', session_id: this.sessionId, handle_id: this.handleId });
  }

  async destroySession(): Promise<Json> {
    return this.ws.request({ janus: 'destroy', session_id: this.sessionId });
  }

  async hangup(): Promise<Json> {
    return this.ws.request({ janus: 'hangup', session_id: this.sessionId, handle_id: this.handleId });
  }
}

export interface OfferOptions {
  audio?: string[] | false;
  video?: string[] | false;
  data?: boolean;
  /** rids for video simulcast (RFC 8853), in the offer's order. */
  rids?: string[];
  ssrcBase?: number;
}

const PT: Record<string, { pt: number; rtpmap: string; fmtp?: string }> = {
  opus: { pt: 111, rtpmap: 'opus/48000/2', fmtp: 'minptime=10;useinbandfec=1' },
  g722: { pt: 9, rtpmap: 'G722/8000' },
  pcmu: { pt: 0, rtpmap: 'PCMU/8000' },
  vp8: { pt: 96, rtpmap: 'VP8/90000' },
  vp9: { pt: 98, rtpmap: 'VP9/90000', fmtp: 'profile-id=0' },
  h264: { pt: 102, rtpmap: 'H264/90000', fmtp: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f' },
};

let offerCounter = 0;

/** A publisher's offer as a browser writes it: sendonly m-lines, SSRCs, optional rids and data channel. */
export function publisherOffer(options: OfferOptions = {}): { type: 'offer'; sdp: string } {
  const audio = options.audio === false ? null : (options.audio ?? ['opus']);
  const video = options.video === false ? null : (options.video ?? ['vp8']);
  const base = options.ssrcBase ?? 10000 + (++offerCounter) * 100;
  const lines = ['v=0', `o=- ${base} 2 IN IP4 127.0.0.1`, 's=-', 't=0 0'];
  const mids: string[] = [];
  const body: string[] = [];
  let mindex = 0;
  const section = (kind: 'audio' | 'video', codecs: string[]) => {
    const mid = String(mindex);
    mids.push(mid);
    const pts = codecs.map((c) => PT[c]!);
    body.push(`m=${kind} 9 UDP/TLS/RTP/SAVPF ${pts.map((p) => p.pt).join(' ')}`, 'c=IN IP4 0.0.0.0', 'a=ice-ufrag:abcd', 'a=ice-pwd:abcdefghijklmnopqrstuvwx',
      'a=fingerprint:sha-256 AA:BB:CC:DD', 'a=setup:actpass', `a=mid:${mid}`, 'a=sendonly', 'a=rtcp-mux');
    for (const p of pts) {
      body.push(`a=rtpmap:${p.pt} ${p.rtpmap}`);
      if (p.fmtp) body.push(`a=fmtp:${p.pt} ${p.fmtp}`);
    }
    if (kind === 'video' && options.rids?.length) {
      for (const rid of options.rids) body.push(`a=rid:${rid} send`);
      body.push(`a=simulcast:send ${options.rids.join(';')}`);
    } else {
      body.push(`a=ssrc:${base + mindex} cname:test`);
    }
    mindex++;
  };
  if (audio) section('audio', audio);
  if (video) section('video', video);
  if (options.data) {
    mids.push(String(mindex));
    body.push('m=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 0.0.0.0', `a=mid:${mindex}`, 'a=sctp-port:5000');
  }
  lines.push(`a=group:BUNDLE ${mids.join(' ')}`, ...body, '');
  return { type: 'offer', sdp: lines.join('\r\n') };
}

/** A subscriber's answer (the fake PeerConnection only records it). */
export function subscriberAnswer(): { type: 'answer'; sdp: string } {
  return { type: 'answer', sdp: 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\n' };
}

/** Bounded wait for a condition driven by events of real time. */
export async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Joins `room` as a publisher and publishes; returns once the PeerConnection is up and announced. */
export async function publisher(bench: Bench, room: number, options: OfferOptions & { display?: string; ws?: JanusWs } = {}) {
  const c = await VrClient.open(bench, options.ws);
  const joined = await c.call({ request: 'join', ptype: 'publisher', room, ...(options.display ? { display: options.display } : {}) });
  if (joined.data['videoroom'] !== 'joined') throw new Error(`join failed: ${JSON.stringify(joined.data)}`);
  const published = await c.call({ request: 'publish' }, publisherOffer(options));
  if (published.data['configured'] !== 'ok') throw new Error(`publish failed: ${JSON.stringify(published.data)}`);
  const peer = bench.media.provider.forHandle(c.handleId);
  peer.up();
  return { c, id: joined.data['id'] as number, privateId: joined.data['private_id'] as number, peer, joined: joined.data, published };
}

/** Joins `room` as a subscriber to `streams`, answers the offer and brings the PeerConnection up. */
export async function subscriber(bench: Bench, room: number, streams: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  const c = await VrClient.open(bench);
  const attached = await c.call({ request: 'join', ptype: 'subscriber', room, streams, ...extra });
  if (attached.data['videoroom'] !== 'attached') throw new Error(`subscribe failed: ${JSON.stringify(attached.data)}`);
  const started = await c.call({ request: 'start' }, subscriberAnswer());
  if (started.data['started'] !== 'ok') throw new Error(`start failed: ${JSON.stringify(started.data)}`);
  const peer = bench.media.provider.forHandle(c.handleId);
  peer.up();
  return { c, peer, attached };
}
