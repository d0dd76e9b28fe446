// Media checks shared by the SIP-plugin tests against real SIP peers: an offerless
// call accepted by a werift browser with RTP checked at both ends, and the hangup
// that must leave no port, call or PeerConnection behind.
import * as assert from 'uvu/assert';
import { MediaStreamTrack, RTCRtpCodecParameters, RtpHeader, RtpPacket, type RTCPeerConnection, type RTCRtpTransceiver } from 'werift';
import type { SrtpSession } from 'werift-rtp';

import { UserAgent } from '../../src/sip/UserAgent.js';
import { rtpPacket } from '../helpers/rtp.js';
import { udpPeer, type UdpPeer } from '../helpers/udp.js';
import { closePeer, connectionState, loopbackPeer } from '../helpers/werift.js';
import { SipClient, expectCallsReleased, registerGuest, startSipFerry, until, type SipFerry } from './helpers.js';

export const PACKETS = 100;

/** What a call test with a werift browser and a socket for a SIP peer's RTP holds. */
export interface BrowserRig {
  s: SipFerry;
  /** One janus.plugin.sip handle, not registered yet. */
  client: SipClient;
  sink: UdpPeer;
  pc: RTCPeerConnection;
}

/**
 * A SIP-plugin ferry, one handle, a werift browser and a UDP sink for one test; all closed after
 * `run`, the browser last (it also closes every UDP socket opened since werift was patched).
 */
export async function withBrowserAndSink(run: (b: BrowserRig) => Promise<void>): Promise<void> {
  const s = await startSipFerry();
  const pc = loopbackPeer();
  const sink = await udpPeer();
  let client: SipClient | undefined;
  try {
    client = await SipClient.open(s.f);
    await run({ s, client, sink, pc });
  } finally {
    await client?.close().catch(() => undefined);
    await s.f.stop();
    await sink.close().catch(() => undefined);
    await closePeer(pc);
  }
}

/** What a test against an in-process SIP peer holds. */
export interface PeerRig {
  s: SipFerry;
  client: SipClient;
  /** The SIP peer: ferry's own stack, user `peer`. */
  peer: UserAgent;
  /** The peer's media socket. */
  sink: UdpPeer;
  pc: RTCPeerConnection;
  /** ferry's SIP port (a guest account). */
  uaPort: number;
  peerUri: string;
}

/**
 * A SIP-plugin ferry with one guest handle, an in-process SIP peer (ferry's own stack) whose
 * media is the test's UDP socket, and a werift browser from `newBrowser`. After `run` every call
 * must be released (and no PeerConnection left, with `noPeerConnection`); all is closed in any case.
 */
export async function withPeerRig(newBrowser: () => RTCPeerConnection, run: (r: PeerRig) => Promise<void>, options: { noPeerConnection?: boolean } = {}): Promise<void> {
  const s = await startSipFerry();
  const peer = await UserAgent.create({ host: '127.0.0.1', user: 'peer' });
  const sink = await udpPeer();
  const pc = newBrowser();
  let client: SipClient | undefined;
  try {
    client = await SipClient.open(s.f);
    await registerGuest(client);
    const uaPort = (await client.info())['sip_udp_port'] as number;
    await run({ s, client, peer, sink, pc, uaPort, peerUri: `sip:peer@127.0.0.1:${peer.udp!.local.port}` });
    await expectCallsReleased(s, options);
  } finally {
    await client?.close().catch(() => undefined);
    await s.f.stop();
    await peer.close();
    await sink.close().catch(() => undefined);
    await closePeer(pc);
  }
}

export function payload(dir: string, i: number): Buffer {
  const b = Buffer.alloc(160);
  b.write(`${dir}:${i}:`, 0);
  for (let k = 16; k < b.length; k++) b[k] = (i * 7 + k) & 0xff;
  return b;
}

/** RTP (not RTCP) packets carrying PCMU (payload type 0). */
export function pcmuPayloads(datagrams: Buffer[]): Buffer[] {
  return datagrams.filter((d) => d.length > 12 && d[0]! >> 6 === 2 && (d[1]! & 0x7f) === 0).map((d) => {
    const cc = d[0]! & 0x0f;
    return d.subarray(12 + 4 * cc);
  });
}

/**
 * The callee side of an offerless call: `incomingcall` without jsep, `accept`
 * with a werift offer, `accepting`, then `accepted` with the JSEP answer once
 * sipp's ACK carried the SIP answer; then RTP both ways, checked at both ends.
 */
export async function acceptOfferlessWithMedia(s: SipFerry, client: SipClient, sink: UdpPeer, pc: RTCPeerConnection, caller: RegExp): Promise<void> {
  const incoming = await client.event('incomingcall');
  assert.is(incoming['jsep'], undefined, 'offerless INVITE: incomingcall carries no jsep');
  assert.match(incoming['plugindata']['data']['result']['username'], caller);
  assert.is(s.sip.stats().activeCalls, 1);

  const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
  const fromSip: Buffer[] = [];
  audio.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => fromSip.push(rtp.payload)));
  await pc.setLocalDescription(await pc.createOffer());
  await client.send({ request: 'accept' }, { type: 'offer', sdp: pc.localDescription!.sdp });
  await client.event('accepting');
  const accepted = await client.event('accepted');
  assert.is(accepted['jsep']?.['type'], 'answer', 'accepted carries the JSEP answer once the ACK brought the SIP answer');
  assert.match(accepted['jsep']['sdp'], /a=rtpmap:0 PCMU\/8000/, 'the browser gets the codec sipp chose');
  await pc.setRemoteDescription(accepted['jsep']);
  await connectionState(pc, 'connected');
  await client.core('webrtcup');
  const info = await client.info();
  assert.is(info['slot'], 'established');
  const legPort = info['media'][0]['local_port'] as number;
  assert.ok(legPort > 0);

  // SIP side → browser: a first packet lets ferry learn the peer's SSRC, then the batch.
  const ssrc = 0x5151_0001;
  await sink.send(rtpPacket({ ssrc, seq: 1, ts: 0, pt: 0, payload: payload('prime', 0) }).serialize(), legPort);
  await new Promise((r) => setTimeout(r, 150));
  for (let i = 0; i < PACKETS; i++) {
    await sink.send(rtpPacket({ ssrc, seq: i + 2, ts: (i + 1) * 160, pt: 0, payload: payload('sip', i) }).serialize(), legPort);
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
  }
  await until(() => fromSip.filter((p) => p.subarray(0, 4).toString() === 'sip:').length >= PACKETS, 5000, 'RTP from the SIP side at the browser');
  const sipToBrowser = fromSip.filter((p) => p.subarray(0, 4).toString() === 'sip:');
  sipToBrowser.forEach((p, i) => assert.ok(p.equals(payload('sip', i)), `SIP→WebRTC payload ${i} intact`));

  // Browser → SIP side: werift sends PCMU; the engine relays it to sipp's c=/m= (the test socket).
  assert.is(audio.sender.codec?.payloadType, 0);
  for (let i = 0; i < PACKETS; i++) {
    const header = new RtpHeader({ payloadType: 0, sequenceNumber: i + 1, timestamp: i * 160 });
    await audio.sender.sendRtp(new RtpPacket(header, payload('web', i)));
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
  }
  await until(() => pcmuPayloads(sink.received).filter((p) => p.subarray(0, 4).toString() === 'web:').length >= PACKETS, 5000, 'RTP from the browser at the SIP side');
  const browserToSip = pcmuPayloads(sink.received).filter((p) => p.subarray(0, 4).toString() === 'web:');
  browserToSip.forEach((p, i) => assert.ok(p.equals(payload('web', i)), `WebRTC→SIP payload ${i} intact`));
}

export async function hangUpAndCheck(s: SipFerry, client: SipClient): Promise<void> {
  await client.send({ request: 'hangup' });
  await client.event('hangingup');
  const hangup = await client.event('hangup');
  assert.is(hangup['plugindata']['data']['result']['code'], 200);
  await until(() => s.f.ferry.leasedPorts() === 0, 5000, 'RTP leg and PeerConnection ports released');
  assert.is(s.sip.stats().activeCalls, 0);
  assert.is(s.f.ferry.webrtc.count, 0, 'PeerConnection closed with the call');
}


/**
 * RTP both ways across an established bridge, checked at both ends: the SIP
 * side is the test's socket `sink` talking to the leg at `legPort` (through
 * `srtp`, a werift SRTP session keyed as the SIP peer, when the call is
 * SDES-SRTP); the browser side is werift's `audio` transceiver (PCMU).
 */
export async function rtpBothWays(opts: {
  audio: RTCRtpTransceiver;
  fromSip: Buffer[];
  sink: UdpPeer;
  legPort: number;
  srtp?: SrtpSession;
  ssrc?: number;
}): Promise<void> {
  const { audio, fromSip, sink, legPort, srtp } = opts;
  const ssrc = opts.ssrc ?? 0x5151_0002;
  const wire = (p: RtpPacket) => (srtp ? srtp.encrypt(p.payload, p.header) : p.serialize());
  // SIP side → browser: a first packet lets ferry learn the peer's SSRC, then the batch.
  await sink.send(wire(rtpPacket({ ssrc, seq: 1, ts: 0, pt: 0, payload: payload('prime', 0) })), legPort);
  await new Promise((r) => setTimeout(r, 150));
  for (let i = 0; i < PACKETS; i++) {
    await sink.send(wire(rtpPacket({ ssrc, seq: i + 2, ts: (i + 1) * 160, pt: 0, payload: payload('sip', i) })), legPort);
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
  }
  await until(() => fromSip.filter((p) => p.subarray(0, 4).toString() === 'sip:').length >= PACKETS, 5000, 'RTP from the SIP side at the browser');
  fromSip.filter((p) => p.subarray(0, 4).toString() === 'sip:').forEach((p, i) => assert.ok(p.equals(payload('sip', i)), `SIP→WebRTC payload ${i} intact`));

  // Browser → SIP side.
  const received = () => {
    const plain = srtp
      ? sink.received.filter((d) => d.length > 12 && d[0]! >> 6 === 2 && (d[1]! & 0x7f) === 0).flatMap((d) => {
        try {
          return [srtp.decrypt(d)];
        } catch {
          return [];
        }
      })
      : sink.received;
    return pcmuPayloads(plain).filter((p) => p.subarray(0, 4).toString() === 'web:');
  };
  for (let i = 0; i < PACKETS; i++) {
    const header = new RtpHeader({ payloadType: 0, sequenceNumber: i + 1, timestamp: i * 160 });
    await audio.sender.sendRtp(new RtpPacket(header, payload('web', i)));
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
  }
  await until(() => received().length >= PACKETS, 5000, 'RTP from the browser at the SIP side');
  received().forEach((p, i) => assert.ok(p.equals(payload('web', i)), `WebRTC→SIP payload ${i} intact`));
  if (srtp) {
    // What ferry sent is really encrypted: no datagram carries the payload in the clear.
    assert.not.ok(sink.received.some((d) => d.includes(Buffer.from('web:0:'))), 'no plain RTP towards an SRTP peer');
  }
}

/** A werift browser whose audio m-line offers PCMU and telephone-event/8000 as `eventPt`. */
export function browserWithEvents(eventPt: number): RTCPeerConnection {
  return loopbackPeer({
    codecs: {
      audio: [
        new RTCRtpCodecParameters({ mimeType: 'audio/PCMU', clockRate: 8000, channels: 1, payloadType: 0 }),
        new RTCRtpCodecParameters({ mimeType: 'audio/telephone-event', clockRate: 8000, payloadType: eventPt, parameters: '0-16' }),
      ],
      video: [],
    },
  });
}

/** RFC 4733 §2.3 event block. */
export function eventPayload(event: number, end: boolean, duration: number): Buffer {
  const b = Buffer.alloc(4);
  b[0] = event;
  b[1] = (end ? 0x80 : 0) | 10;
  b.writeUInt16BE(duration, 2);
  return b;
}

/** werift writes its sender's codec payload type into every packet: events go out under `pt` this way. */
export async function sendWithPayloadType(audio: RTCRtpTransceiver, packet: RtpPacket, pt: number): Promise<void> {
  const sender = audio.sender as unknown as { codec: RTCRtpCodecParameters };
  const codec = sender.codec;
  sender.codec = new RTCRtpCodecParameters({ mimeType: codec.mimeType, clockRate: codec.clockRate, payloadType: pt });
  try {
    await audio.sender.sendRtp(packet);
  } finally {
    sender.codec = codec;
  }
}

/** One digit as a browser sends it (RTCDTMFSender): two updates and the end three times, one timestamp. */
export async function browserDigit(audio: RTCRtpTransceiver, pt: number, event: number, seq: number, ts: number): Promise<void> {
  const blocks = [eventPayload(event, false, 160), eventPayload(event, false, 320), eventPayload(event, true, 640), eventPayload(event, true, 640), eventPayload(event, true, 640)];
  for (const [i, payload] of blocks.entries()) {
    await sendWithPayloadType(audio, new RtpPacket(new RtpHeader({ payloadType: pt, sequenceNumber: seq + i, timestamp: ts, marker: i === 0 }), payload), pt);
  }
}


/**
 * A browser's microphone on werift, as Chrome sends it: a PCMU packet every 20 ms, and digits
 * as RTCDTMFSender does (RFC 4733 §2.5: the event's packets take the audio's place, under one
 * timestamp, growing durations and the end sent three times; the audio then goes on with a
 * timestamp past the event).
 */
export class BrowserMicrophone {
  private seq = 1;
  private ts = 0;
  private readonly pending: Array<{ payload: Buffer; ts: number; marker: boolean; done?: () => void }> = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly audio: RTCRtpTransceiver, private readonly eventPt: number) {}

  start(): void {
    this.timer ??= setInterval(() => void this.tick(), 20);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Sends one digit (RFC 4733 event code) over five packets; resolves once they are sent. */
  digit(event: number): Promise<void> {
    return new Promise((resolve) => {
      const ts = this.ts;
      const durations = [160, 320, 640, 640, 640];
      durations.forEach((d, i) => this.pending.push({ payload: eventPayload(event, i >= 2, d), ts, marker: i === 0, ...(i === durations.length - 1 ? { done: resolve } : {}) }));
      // The audio resumes after the event's 640 ticks.
      this.ts += 640;
    });
  }

  private async tick(): Promise<void> {
    const ev = this.pending.shift();
    const seq = this.seq++;
    if (ev) {
      await sendWithPayloadType(this.audio, new RtpPacket(new RtpHeader({ payloadType: this.eventPt, sequenceNumber: seq & 0xffff, timestamp: ev.ts, marker: ev.marker }), ev.payload), this.eventPt).catch(() => undefined);
      ev.done?.();
      return;
    }
    const ts = this.ts;
    this.ts += 160;
    await this.audio.sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType: 0, sequenceNumber: seq & 0xffff, timestamp: ts }), Buffer.alloc(160, 0x55))).catch(() => undefined);
  }
}
