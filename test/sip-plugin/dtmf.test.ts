/**
 * RFC 4733 DTMF across the bridge, with an in-process SIP peer (ferry's own
 * stack) whose RTP is the test's socket, and a werift browser that negotiates
 * telephone-event:
 * - both sides have events (same payload type): the peer's digits reach the
 *   browser as events and raise Janus's `dtmf`; the browser's reach the peer;
 * - the two sides number events differently (browser 126, peer 101): renumbered
 *   both ways;
 * - the peer has no events (its answer drops them, or dtmf_method "info"): the
 *   browser's digits become SIP INFO application/dtmf-relay, and no event
 *   packet reaches the peer's RTP.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, RtpHeader, RtpPacket, type RTCPeerConnection, type RTCRtpTransceiver } from 'werift';

import type { InDialogRequestEvent } from '../../src/sip/Call.js';
import { rtpPacket } from '../helpers/rtp.js';
import { connectionState } from '../helpers/werift.js';
import { waitFor } from '../sip/helpers.js';
import { until } from './helpers.js';
import { browserDigit, browserWithEvents as browser, eventPayload, withPeerRig, type PeerRig } from './media.js';

const test = suite('SIP plugin: RFC 4733 DTMF across the bridge');
const result = (e: Record<string, any>) => e['plugindata']['data']['result'] as Record<string, any>;

type Rig = PeerRig;

/** A call test against the in-process peer with a browser negotiating telephone-event as `eventPt`; the browser hangs up at the end. */
function withRig(eventPt: number, run: (r: Rig) => Promise<void>): Promise<void> {
  return withPeerRig(() => browser(eventPt), async (r) => {
    await run(r);
    await r.client.send({ request: 'hangup' });
    await r.client.event('hangup');
  });
}

function peerSdp(port: number, eventPt: number | null): string {
  return [
    'v=0', 'o=peer 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0',
    `m=audio ${port} RTP/AVP 0${eventPt === null ? '' : ` ${eventPt}`}`, 'a=rtpmap:0 PCMU/8000',
    ...(eventPt === null ? [] : [`a=rtpmap:${eventPt} telephone-event/8000`, `a=fmtp:${eventPt} 0-16`]), 'a=sendrecv', '',
  ].join('\r\n');
}

/** What a browser receives on its audio m-line: payload types and payloads. */
function browserAudio(pc: RTCPeerConnection): { audio: RTCRtpTransceiver; got: Array<{ pt: number; payload: Buffer }> } {
  const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
  const got: Array<{ pt: number; payload: Buffer }> = [];
  audio.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => got.push({ pt: rtp.header.payloadType, payload: rtp.payload })));
  return { audio, got };
}

/** Audio from the browser, so the SIP side learns its stream first. */
async function browserSpeaks(audio: RTCRtpTransceiver, seq: number, ts: number): Promise<void> {
  await audio.sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType: 0, sequenceNumber: seq, timestamp: ts }), Buffer.alloc(160, 0x55)));
}

/** One digit as a SIP phone sends it, on the peer's socket: audio first (ferry learns the SSRC), then the event. */
async function peerDigit(r: Rig, legPort: number, pt: number, event: number): Promise<void> {
  const ssrc = 0x7777_0001;
  await r.sink.send(rtpPacket({ ssrc, seq: 1, ts: 0, pt: 0, payload: Buffer.alloc(160, 0x55) }).serialize(), legPort);
  await new Promise((res) => setTimeout(res, 150));
  const blocks = [eventPayload(event, false, 160), eventPayload(event, false, 320), eventPayload(event, true, 800), eventPayload(event, true, 800), eventPayload(event, true, 800)];
  for (const [i, payload] of blocks.entries()) {
    await r.sink.send(rtpPacket({ ssrc, seq: 2 + i, ts: 160, pt, payload, marker: i === 0 }).serialize(), legPort);
  }
}

/** An RTP datagram's payload type and payload (RTCP, whose second byte reads as 72-76, is not). */
function rtpOf(d: Buffer): { pt: number; payload: Buffer } | null {
  if (d.length < 12 || d[0]! >> 6 !== 2) return null;
  const pt = d[1]! & 0x7f;
  return pt >= 72 && pt <= 76 ? null : { pt, payload: d.subarray(12) };
}

async function established(r: Rig): Promise<number> {
  await connectionState(r.pc, 'connected');
  await r.client.core('webrtcup');
  return (await r.client.info())['media'][0]['local_port'] as number;
}

test('both sides have events (101): the peer\'s digit raises dtmf and reaches the browser; the browser\'s reaches the peer', () =>
  withRig(101, async (r) => {
    const { audio, got } = browserAudio(r.pc);
    const call = r.peer.invite(`sip:ferry@127.0.0.1:${r.uaPort}`, peerSdp(r.sink.port, 101));
    const accepted = waitFor(call, 'accepted', 10_000);
    const incoming = await r.client.event('incomingcall');
    assert.match(incoming['jsep']['sdp'], /a=rtpmap:101 telephone-event\/8000/, 'the browser is offered the peer\'s events, same number');
    await r.pc.setRemoteDescription(incoming['jsep']);
    await r.pc.setLocalDescription(await r.pc.createAnswer());
    await r.client.send({ request: 'accept' }, { type: 'answer', sdp: r.pc.localDescription!.sdp });
    const [, answer] = await accepted;
    assert.match(answer ?? '', /^m=audio \d+ RTP\/AVP 0 101\r?$/m);
    assert.match(answer ?? '', /a=rtpmap:101 telephone-event\/8000/);
    const legPort = await established(r);

    await peerDigit(r, legPort, 101, 5);
    const dtmf = result(await r.client.event('dtmf'));
    assert.equal({ signal: dtmf['signal'], duration: dtmf['duration'] }, { signal: '5', duration: 100 }, '800 ticks at 8 kHz');
    await until(() => got.filter((p) => p.pt === 101).length >= 5, 5000, 'the events at the browser');
    assert.ok(got.filter((p) => p.pt === 101).every((p) => p.payload[0] === 5));

    await browserSpeaks(audio, 1, 0);
    await browserDigit(audio, 101, 11, 2, 160);
    await until(() => r.sink.received.filter((d) => rtpOf(d)?.pt === 101).length >= 5, 5000, 'the browser\'s events at the peer');
    assert.ok(r.sink.received.map(rtpOf).filter((p) => p?.pt === 101).every((p) => p!.payload[0] === 11), 'digit #');
  }));

test('the sides number events differently (browser 126, peer 101): renumbered both ways', () =>
  withRig(126, async (r) => {
    const { audio, got } = browserAudio(r.pc);
    let offer = '';
    r.peer.on('incomingCall', (call) => {
      offer = call.remoteSdp ?? '';
      r.peer.answer(call, 200, peerSdp(r.sink.port, 101));
    });
    await r.pc.setLocalDescription(await r.pc.createOffer());
    await r.client.send({ request: 'call', uri: r.peerUri }, { type: 'offer', sdp: r.pc.localDescription!.sdp });
    const accepted = await r.client.event('accepted');
    assert.match(offer, /a=rtpmap:126 telephone-event\/8000/, 'ferry offers the browser\'s events to the peer');
    assert.match(accepted['jsep']['sdp'], /a=rtpmap:126 telephone-event\/8000/, 'and accepts them from the browser');
    await r.pc.setRemoteDescription(accepted['jsep']);
    const legPort = await established(r);

    await browserSpeaks(audio, 1, 0);
    await browserDigit(audio, 126, 9, 2, 160);
    await until(() => r.sink.received.filter((d) => rtpOf(d)?.pt === 101).length >= 5, 5000, 'events renumbered 126 → 101 at the peer');
    assert.is(r.sink.received.filter((d) => rtpOf(d)?.pt === 126).length, 0);

    await peerDigit(r, legPort, 101, 3);
    assert.is(result(await r.client.event('dtmf'))['signal'], '3');
    await until(() => got.filter((p) => p.pt === 126).length >= 5, 5000, 'events renumbered 101 → 126 at the browser');
    assert.is(got.filter((p) => p.pt === 101).length, 0);
  }));

for (const variant of ['the peer answers without events', 'dtmf_method info'] as const) {
  test(`${variant}: the browser's digits become SIP INFO, no event packet reaches the peer`, () =>
    withRig(101, async (r) => {
      const { audio } = browserAudio(r.pc);
      let offer = '';
      const infos: InDialogRequestEvent[] = [];
      r.peer.on('incomingCall', (call) => {
        offer = call.remoteSdp ?? '';
        call.on('info', (ev) => infos.push(ev));
        r.peer.answer(call, 200, peerSdp(r.sink.port, null));
      });
      await r.pc.setLocalDescription(await r.pc.createOffer());
      const info = variant === 'dtmf_method info';
      await r.client.send({ request: 'call', uri: r.peerUri, ...(info ? { dtmf_method: 'info' } : {}) }, { type: 'offer', sdp: r.pc.localDescription!.sdp });
      const accepted = await r.client.event('accepted');
      if (info) assert.not.match(offer, /telephone-event/, 'dtmf_method info: no events offered to the peer');
      else assert.match(offer, /telephone-event/);
      assert.match(accepted['jsep']['sdp'], /telephone-event/, 'the browser may still send DTMF');
      await r.pc.setRemoteDescription(accepted['jsep']);
      await established(r);

      await browserSpeaks(audio, 1, 0);
      await until(() => r.sink.received.length >= 1, 5000, 'the browser\'s audio at the peer');
      await browserDigit(audio, 101, 7, 2, 160);
      await browserDigit(audio, 101, 10, 7, 960);
      await until(() => infos.length >= 2, 5000, 'two SIP INFOs');
      assert.equal(infos.map((ev) => ev.contentType), ['application/dtmf-relay', 'application/dtmf-relay']);
      assert.equal(infos.map((ev) => /Signal=(.)/.exec(ev.body ?? '')?.[1]), ['7', '*']);
      assert.match(infos[0]!.body ?? '', /Duration=80\r\n/, '640 ticks at 8 kHz');
      await new Promise((res) => setTimeout(res, 200));
      assert.ok(r.sink.received.every((d) => d.length !== 16), 'no event packet (12 + 4 bytes) reached the peer');
    }));
}

test.run();
