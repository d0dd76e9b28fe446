/**
 * Streaming end to end: a whole ferry (native engine, real PeerConnections),
 * Debian's ffmpeg sending VP8 and Opus test sources as RTP to a mountpoint's
 * ports, and werift viewers over the Janus WebSocket API — all on 127.0.0.1.
 * Every ffmpeg started here must be stopped with `stop()` and every werift
 * peer closed with `closeAll` (the test process hangs otherwise).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { RTCPeerConnection, RtpPacket } from 'werift';

import type { ConfigOverrides } from '../../src/config/Config.js';
import { STREAMING_PACKAGE, type StreamingPlugin } from '../../src/plugins/streaming/StreamingPlugin.js';
import { startFerry, type TestFerry } from '../helpers/ferry.js';
import type { JanusWs, Json } from '../helpers/http.js';
import { PluginClient } from '../helpers/pluginClient.js';
import { connectionState, loopbackPeer, receivedByMid } from '../helpers/werift.js';
// The bounded waits and peer clean-up are the VideoRoom end-to-end harness's own.
export { closeAll, pause, until } from '../videoroom-e2e/harness.js';
import { closeAll } from '../videoroom-e2e/harness.js';

export const STREAMING = STREAMING_PACKAGE;

export interface StreamingFerry {
  f: TestFerry;
  plugin: StreamingPlugin;
  stop(): Promise<void>;
}

/** A ferry with the default plugins (Streaming included); `plugin` is its Streaming plugin. */
export async function startStreamingFerry(overrides: ConfigOverrides = {}): Promise<StreamingFerry> {
  const f = await startFerry(overrides);
  const plugin = f.ferry.gateway.plugins.get(STREAMING) as StreamingPlugin | undefined;
  if (!plugin) throw new Error('streaming plugin not registered');
  return { f, plugin, stop: () => f.stop() };
}

/** One handle over a WebSocket session, on any plugin (Streaming by default). */
export class JanusClient extends PluginClient {
  static async open(f: Pick<TestFerry, 'wsUrl'>, plugin = STREAMING, ws?: JanusWs): Promise<JanusClient> {
    const a = await PluginClient.attach(f.wsUrl, plugin, ws);
    return new JanusClient(a.ws, a.sessionId, a.handleId, a.ownsSocket);
  }
}

/** Creates an Opus + VP8 mountpoint on automatic ports; returns its id and ports. */
export async function createMountpoint(client: JanusClient, extra: Record<string, unknown> = {}): Promise<{ id: number; audioPort: number; videoPort: number; created: Json }> {
  const created = await client.sync({
    request: 'create',
    type: 'rtp',
    description: 'ffmpeg test source',
    media: [
      { type: 'audio', mid: 'a', codec: 'opus', pt: 111, port: 0 },
      { type: 'video', mid: 'v', codec: 'vp8', pt: 100, port: 0 },
    ],
    ...extra,
  });
  if (created['streaming'] !== 'created') throw new Error(`create failed: ${JSON.stringify(created)}`);
  const ports = created['stream'].ports as Json[];
  return { id: created['stream'].id as number, audioPort: ports[0]!['port'] as number, videoPort: ports[1]!['port'] as number, created };
}

export interface Encoder {
  process: ChildProcess;
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * Debian's ffmpeg sending a VP8 test pattern (15 frames/s, a keyframe every `gop` frames) and a
 * 440 Hz Opus tone as RTP to 127.0.0.1, each stream's RTCP on its RTP port (RFC 5761).
 */
export function startFfmpeg(ports: { audio?: number; video?: number }, options: { gop?: number; videoSsrc?: number; audioSsrc?: number; seconds?: number } = {}): Encoder {
  const gop = options.gop ?? 15;
  const args = ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re'];
  args.push('-f', 'lavfi', '-i', `testsrc=size=320x240:rate=15${options.seconds ? `:duration=${options.seconds}` : ''}`);
  args.push('-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000${options.seconds ? `:duration=${options.seconds}` : ''}`);
  if (ports.video !== undefined) {
    args.push('-map', '0:v', '-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '300k', '-g', String(gop), '-keyint_min', String(gop), '-auto-alt-ref', '0', '-threads', '1');
    args.push('-payload_type', '100', '-ssrc', String(options.videoSsrc ?? 0x1111), '-f', 'rtp', `rtp://127.0.0.1:${ports.video}?rtcpport=${ports.video}&pkt_size=1200`);
  }
  if (ports.audio !== undefined) {
    args.push('-map', '1:a', '-c:a', 'libopus', '-b:a', '48k', '-application', 'lowdelay');
    args.push('-payload_type', '111', '-ssrc', String(options.audioSsrc ?? 0x2222), '-f', 'rtp', `rtp://127.0.0.1:${ports.audio}?rtcpport=${ports.audio}`);
  }
  const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    process: child,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A VP8 RTP payload (RFC 7741 §4.2): where the frame starts, and whether it starts a keyframe. */
export function vp8Info(payload: Buffer): { start: boolean; keyframe: boolean } | null {
  if (payload.length < 1) return null;
  let offset = 1;
  const x = (payload[0]! & 0x80) !== 0;
  const start = (payload[0]! & 0x10) !== 0 && (payload[0]! & 0x07) === 0;
  if (x) {
    if (payload.length < 2) return null;
    const ext = payload[1]!;
    offset = 2;
    if (ext & 0x80) offset += payload.length > offset && (payload[offset]! & 0x80) ? 2 : 1; // I: PictureID, 7 or 15 bits
    if (ext & 0x40) offset += 1; // L: TL0PICIDX
    if (ext & 0x30) offset += 1; // T/K: TID|Y|KEYIDX
  }
  if (payload.length <= offset) return null;
  // RFC 6386 §9.1: the P bit of the first frame byte is 0 for a keyframe.
  return { start, keyframe: start && (payload[offset]! & 0x01) === 0 };
}

/** What a `withStreamingTest` body gets: the ferry, an admin client, and lists for what it starts. */
export interface StreamingTest {
  st: StreamingFerry;
  admin: JanusClient;
  /** werift peers, closed at the end. */
  peers: RTCPeerConnection[];
  /** Scripted senders, closed at the end. */
  senders: ScriptedSender[];
  /** ffmpeg encoders, stopped at the end. */
  encoders: Encoder[];
}

/**
 * A ferry and an admin client for one test; closes the admin client when the body passes, and in
 * any case stops the media sources, closes the werift peers and stops the ferry, in that order.
 */
export async function withStreamingTest(body: (t: StreamingTest) => Promise<void>): Promise<void> {
  const st = await startStreamingFerry();
  const peers: RTCPeerConnection[] = [];
  const senders: ScriptedSender[] = [];
  const encoders: Encoder[] = [];
  try {
    const admin = await JanusClient.open(st.f);
    await body({ st, admin, peers, senders, encoders });
    await admin.close();
  } finally {
    for (const encoder of encoders) await encoder.stop();
    for (const sender of senders) await sender.close();
    await closeAll(peers);
    await st.stop();
  }
}

/** What one werift viewer received. */
export interface WeriftViewer {
  client: JanusClient;
  pc: RTCPeerConnection;
  /** RTP packets received (decrypted) per mid, with when they arrived (performance.now()). */
  received: Map<string, { rtp: RtpPacket; at: number }[]>;
  /** ferry's offer and the `preparing` event. */
  offer: string;
  watched: Json;
}

/** A werift viewer: watch (ferry offers), answer, start; waits for ICE + DTLS. */
export async function watch(f: Pick<TestFerry, 'wsUrl'>, id: number, peers: RTCPeerConnection[], extra: Record<string, unknown> = {}, client?: JanusClient): Promise<WeriftViewer> {
  const c = client ?? (await JanusClient.open(f));
  const pc = loopbackPeer();
  peers.push(pc);
  const watched = await c.call({ request: 'watch', id, ...extra });
  if (watched.jsep?.['type'] !== 'offer') throw new Error(`no offer: ${JSON.stringify(watched)}`);
  await pc.setRemoteDescription(watched.jsep as never);
  const received = receivedByMid(pc, (rtp) => ({ rtp, at: performance.now() }));
  await pc.setLocalDescription(await pc.createAnswer());
  const started = c.next((e) => e['janus'] === 'event' && e['plugindata']?.data?.result?.status === 'started', 15_000);
  await c.call({ request: 'start' }, { type: 'answer', sdp: pc.localDescription!.sdp });
  await connectionState(pc, 'connected');
  await c.core('webrtcup');
  await started;
  return { client: c, pc, received, offer: watched.jsep['sdp'] as string, watched: watched.data };
}

/** Complete VP8 frames (marker bit) and how many of them began with a keyframe, in arrival order. */
export function vp8Frames(packets: { rtp: RtpPacket; at: number }[]): { frames: number; keyframes: number; firstFrameStart: { keyframe: boolean; at: number } | null } {
  let frames = 0;
  let keyframes = 0;
  let firstFrameStart: { keyframe: boolean; at: number } | null = null;
  for (const p of packets) {
    const info = vp8Info(p.rtp.payload);
    if (info?.start) {
      firstFrameStart ??= { keyframe: info.keyframe, at: p.at };
      if (info.keyframe) keyframes++;
    }
    if (p.rtp.header.marker) frames++;
  }
  return { frames, keyframes, firstFrameStart };
}

/**
 * A scripted RTP sender on 127.0.0.1: one single-packet VP8 "frame" every `intervalMs`
 * (RFC 7741 descriptor with S=1, then a payload header whose P bit says keyframe or not,
 * then `tag` and the frame number), answering every RTCP PLI (RFC 4585 §6.3.1) with a keyframe
 * at once — an encoder with RTCP, unlike ffmpeg.
 */
export class ScriptedSender {
  readonly plis: number[] = [];
  private seq = 1;
  private ts = 0;
  private frame = 0;
  private timer: NodeJS.Timeout | null = null;
  private constructor(
    readonly socket: import('node:dgram').Socket,
    readonly port: number,
    private readonly target: number,
    readonly ssrc: number,
    private readonly pt: number,
    readonly tag: string,
  ) {
    socket.on('message', (msg) => {
      // RTCP payload-specific feedback (PT 206) with FMT 1 is a PLI; its media SSRC is at bytes 8..12.
      if (msg.length >= 12 && msg[1] === 206 && (msg[0]! & 0x1f) === 1) {
        this.plis.push(performance.now());
        this.send(true);
      }
    });
  }

  static async open(target: number, options: { ssrc: number; pt?: number; tag: string }): Promise<ScriptedSender> {
    const { createSocket } = await import('node:dgram');
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
    return new ScriptedSender(socket, socket.address().port, target, options.ssrc, options.pt ?? 100, options.tag);
  }

  /** One frame now. */
  send(keyframe: boolean): void {
    const header = Buffer.alloc(12);
    header[0] = 0x80;
    header[1] = 0x80 | this.pt; // marker: one packet per frame
    header.writeUInt16BE(this.seq++ & 0xffff, 2);
    header.writeUInt32BE(this.ts >>> 0, 4);
    header.writeUInt32BE(this.ssrc >>> 0, 8);
    this.ts += 6000;
    const body = Buffer.from(`${this.tag}:${this.frame++}:${'x'.repeat(200)}`);
    const payload = Buffer.concat([Buffer.from([0x10, keyframe ? 0x00 : 0x01]), body]);
    this.socket.send(Buffer.concat([header, payload]), this.target, '127.0.0.1');
  }

  /** Frames every `intervalMs` (15 frames/s by default): a keyframe first, then only deltas unless asked. */
  start(intervalMs = 66): void {
    this.send(true);
    this.timer = setInterval(() => this.send(false), intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async close(): Promise<void> {
    this.stop();
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}

/** The tag a ScriptedSender wrote into a packet (after the 2-byte VP8 descriptor and header). */
export function tagOf(payload: Buffer): string {
  return payload.subarray(2, 40).toString().split(':')[0] ?? '';
}
