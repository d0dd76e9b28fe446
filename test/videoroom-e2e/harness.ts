/**
 * VideoRoom end to end: a whole ferry (native engine, real PeerConnections)
 * with the VideoRoom plugin, driven over the Janus WebSocket API by werift
 * peers that never leave 127.0.0.1. Every peer opened here must be closed
 * with `closeAll` (the test process hangs otherwise).
 */
import { MediaStreamTrack, RtpHeader, RtpPacket, type RTCPeerConnection, type RTCRtpSender } from 'werift';

import type { ConfigOverrides } from '../../src/config/Config.js';
import { VideoRoomPlugin, type VideoRoomConfig } from '../../src/plugins/videoroom/VideoRoomPlugin.js';
import { startFerry, type TestFerry } from '../helpers/ferry.js';
import type { JanusWs, Json } from '../helpers/http.js';
import { PluginClient } from '../helpers/pluginClient.js';
import { closePeer, connectionState, loopbackPeer, receivedByMid } from '../helpers/werift.js';

export const VR = 'janus.plugin.videoroom';

/** Anything with a Janus WebSocket URL: an in-process TestFerry or a ferry child process. */
export type WsEndpoint = Pick<TestFerry, 'wsUrl'>;

export interface VrFerry {
  f: TestFerry;
  plugin: VideoRoomPlugin;
  stop(): Promise<void>;
}

export async function startVrFerry(overrides: ConfigOverrides = {}, config: Partial<VideoRoomConfig> = {}): Promise<VrFerry> {
  let plugin: VideoRoomPlugin | null = null;
  const f = await startFerry(overrides, (services) => {
    plugin = new VideoRoomPlugin({ media: services, config });
    return [plugin];
  });
  if (!plugin) throw new Error('videoroom plugin not built');
  return { f, plugin, stop: () => f.stop() };
}

/** One VideoRoom handle over a WebSocket session. */
export class VrClient extends PluginClient {
  static async open(f: WsEndpoint, ws?: JanusWs): Promise<VrClient> {
    const a = await PluginClient.attach(f.wsUrl, VR, ws);
    return new VrClient(a.ws, a.sessionId, a.handleId, a.ownsSocket);
  }
}

/** Counts SRTP packets werift could not authenticate/decrypt (it drops them silently otherwise). */
export function countDecryptFailures(pc: RTCPeerConnection): () => number {
  let failures = 0;
  const wrapped = new WeakSet<object>();
  const wrap = () => {
    for (const t of pc.dtlsTransports) {
      const srtp = (t as unknown as { srtp?: { decrypt(data: Buffer): Buffer } }).srtp;
      if (!srtp || wrapped.has(srtp)) continue;
      wrapped.add(srtp);
      const original = srtp.decrypt.bind(srtp);
      srtp.decrypt = (data: Buffer) => {
        try {
          return original(data);
        } catch (err) {
          failures++;
          throw err;
        }
      };
    }
  };
  wrap();
  return () => {
    wrap();
    return failures;
  };
}

export interface WeriftPublisher {
  client: VrClient;
  id: number;
  pc: RTCPeerConnection;
  audio: RTCRtpSender;
  video: RTCRtpSender;
  /** The `joined` event and ferry's SDP answer. */
  joined: Json;
  answer: string;
}

/** A werift publisher (audio + video, sendonly) joined and published with joinandconfigure. */
export async function publish(
  f: WsEndpoint,
  room: number,
  display: string,
  peers: RTCPeerConnection[],
  peerConfig: Parameters<typeof loopbackPeer>[0] = {},
): Promise<WeriftPublisher> {
  const client = await VrClient.open(f);
  const pc = loopbackPeer(peerConfig);
  peers.push(pc);
  const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
  const video = pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendonly' });
  await pc.setLocalDescription(await pc.createOffer());
  const joined = await client.call({ request: 'joinandconfigure', ptype: 'publisher', room, display }, { type: 'offer', sdp: pc.localDescription!.sdp });
  if (joined.jsep?.['type'] !== 'answer') throw new Error(`no answer: ${JSON.stringify(joined)}`);
  await pc.setRemoteDescription(joined.jsep as never);
  await connectionState(pc, 'connected');
  await client.core('webrtcup');
  return { client, id: joined.data['id'] as number, pc, audio: audio.sender, video: video.sender, joined: joined.data, answer: joined.jsep!['sdp'] as string };
}

/** What a subscriber's werift peer received, per mid of its PeerConnection. */
export interface WeriftSubscriber {
  client: VrClient;
  pc: RTCPeerConnection;
  received: Map<string, RtpPacket[]>;
  decryptFailures: () => number;
  streams: Json[];
}

/** A werift subscriber: join (ferry offers), answer, start; waits for ICE + DTLS. */
export async function subscribe(
  f: WsEndpoint,
  room: number,
  streams: Record<string, unknown>[],
  peers: RTCPeerConnection[],
  peerConfig: Parameters<typeof loopbackPeer>[0] = {},
): Promise<WeriftSubscriber> {
  const client = await VrClient.open(f);
  const pc = loopbackPeer(peerConfig);
  peers.push(pc);
  const attached = await client.call({ request: 'join', ptype: 'subscriber', room, streams });
  if (attached.jsep?.['type'] !== 'offer') throw new Error(`no offer: ${JSON.stringify(attached)}`);
  await pc.setRemoteDescription(attached.jsep as never);
  const received = receivedByMid(pc, (rtp) => rtp);
  await pc.setLocalDescription(await pc.createAnswer());
  await client.call({ request: 'start' }, { type: 'answer', sdp: pc.localDescription!.sdp });
  await connectionState(pc, 'connected');
  await client.core('webrtcup');
  return { client, pc, received, decryptFailures: countDecryptFailures(pc), streams: attached.data['streams'] as Json[] };
}

/** A recognisable payload: tag and index up front, a pattern after. */
export function payload(tag: string, i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  b.write(`${tag}:${i}:`, 0);
  for (let k = 24; k < size; k++) b[k] = (i * 7 + k) & 0xff;
  return b;
}

/** Sends one RTP packet through a werift sender (werift sets the SSRC and payload type). */
export async function sendRtp(sender: RTCRtpSender, seq: number, timestamp: number, body: Buffer, marker = false): Promise<void> {
  const header = new RtpHeader({ payloadType: sender.codec!.payloadType, sequenceNumber: seq & 0xffff, timestamp: timestamp >>> 0, marker });
  await sender.sendRtp(new RtpPacket(header, body));
}

export const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` until true; false after `ms`. */
export async function until(cond: () => boolean, ms = 5000, step = 5): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await pause(step);
  }
  return true;
}

/** RFC 3550 §A.1 serial-number arithmetic: is `b` after `a` (modulo 2^bits)? */
export function serialAfter(a: number, b: number, bits: 16 | 32): boolean {
  const mod = 2 ** bits;
  const d = (b - a + mod) % mod;
  return d !== 0 && d < mod / 2;
}

export async function closeAll(peers: RTCPeerConnection[]): Promise<void> {
  for (const pc of peers) await closePeer(pc);
}

/** What `withRoom` hands its body. */
export interface RoomTest {
  vr: VrFerry;
  /** The client that created the room. */
  admin: VrClient;
  /** Every werift peer the body opens goes here: all are closed at the end. */
  peers: RTCPeerConnection[];
}

/**
 * Runs `body` against a started ferry (with `overrides`) in which an admin client has created a
 * room (`create`: the create request's fields, `room` among them); whatever happens, closes the
 * peers the body opened and stops the ferry.
 */
export async function withRoom(create: Record<string, unknown>, body: (t: RoomTest) => Promise<void>, overrides: ConfigOverrides = {}): Promise<void> {
  const vr = await startVrFerry(overrides);
  const peers: RTCPeerConnection[] = [];
  try {
    const admin = await VrClient.open(vr.f);
    await admin.sync({ request: 'create', ...create });
    await body({ vr, admin, peers });
  } finally {
    await closeAll(peers);
    await vr.stop();
  }
}

/** A new VideoRoom client and a werift peer (kept in `peers`) for it, before any negotiation. */
export async function openClientAndPeer(f: WsEndpoint, peers: RTCPeerConnection[], peerConfig: Parameters<typeof loopbackPeer>[0] = {}): Promise<{ client: VrClient; pc: RTCPeerConnection }> {
  const client = await VrClient.open(f);
  const pc = loopbackPeer(peerConfig);
  peers.push(pc);
  return { client, pc };
}

/** Audio and video payloads sent, in order. */
export interface SentMedia {
  audio: Buffer[];
  video: Buffer[];
}

/**
 * Sends `count` audio and video packets from `pub`, numbered on from `at` (which it advances;
 * video's timestamps run at 3× audio's), with the payloads `payloads(i)` gives; records them in
 * `sent`.
 */
export async function sendAudioVideo(pub: WeriftPublisher, at: { seq: number; ts: number }, count: number, payloads: (i: number) => { audio: Buffer; video: Buffer }, sent: SentMedia): Promise<void> {
  for (let i = 0; i < count; i++) {
    const { audio, video } = payloads(i);
    await sendRtp(pub.audio, at.seq, at.ts, audio);
    await sendRtp(pub.video, at.seq, at.ts * 3, video, true);
    sent.audio.push(audio);
    sent.video.push(video);
    at.seq = (at.seq + 1) & 0xffff;
    at.ts = (at.ts + 960) >>> 0;
  }
}

/** Whether the subscriber has received as many audio (mid 0) and video (mid 1) packets as were sent. */
export function receivedAll(sub: WeriftSubscriber, sent: SentMedia): boolean {
  return sub.received.get('0')!.length >= sent.audio.length && sub.received.get('1')!.length >= sent.video.length;
}

/** What `withPublisherAndSubscriber` hands its body. */
export interface PublisherAndSubscriber extends RoomTest {
  pub: WeriftPublisher;
  sub: WeriftSubscriber;
}

/**
 * `withRoom` for the commonest room: `room` (for two publishers) with one werift publisher
 * (`display`) and one werift subscriber to all its streams, both connected before `body` runs.
 */
export function withPublisherAndSubscriber(
  room: number,
  display: string,
  body: (t: PublisherAndSubscriber) => Promise<void>,
  peerConfigs: { publisher?: Parameters<typeof loopbackPeer>[0]; subscriber?: Parameters<typeof loopbackPeer>[0] } = {},
): Promise<void> {
  return withRoom({ room, publishers: 2 }, async (t) => {
    const pub = await publish(t.vr.f, room, display, t.peers, peerConfigs.publisher);
    const sub = await subscribe(t.vr.f, room, [{ feed: pub.id }], t.peers, peerConfigs.subscriber);
    await body({ ...t, pub, sub });
  });
}
