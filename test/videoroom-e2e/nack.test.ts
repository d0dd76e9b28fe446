// Loss toward a subscriber, repaired: a werift subscriber throws away 5 % of the video RTP it
// receives (a fixed pattern, the first arrival of each chosen packet), sends generic NACKs
// (RFC 4585 §6.2.1) as werift does, and ferry answers them from the source's history.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RTCRtpCodecParameters, useOPUS, useVP8 } from 'werift';

import { pause, payload, publish, sendRtp, subscribe, until, withPublisherAndSubscriber, withRoom } from './harness.js';

const PACKETS = 400;
/** Every 20th sequence number (5 %) is thrown away when it first arrives. */
const dropped = (seq: number) => seq % 20 === 7;

interface Receiver {
  handleRtpBySsrc: (packet: { header: { sequenceNumber: number; payloadType: number } }, extensions: unknown) => void;
}

/** A werift subscriber that takes RFC 4588 RTX (rtx bound to VP8 by apt), or one that does not. */
function subscriberCodecs(rtx: boolean) {
  const vp8 = useVP8({ payloadType: 96 });
  const video = rtx ? [vp8, new RTCRtpCodecParameters({ mimeType: 'video/rtx', clockRate: 90000, payloadType: 97, parameters: 'apt=96' })] : [vp8];
  return { audio: [useOPUS()], video };
}

for (const rtx of [false, true]) test(`a subscriber that loses 5 % of its video gets ≥ 99.5 % of it through NACK and retransmission ${rtx ? 'as RTX' : 'as plain RTP'}`, () =>
  withPublisherAndSubscriber(77, 'lossy-link', async ({ vr, pub, sub }) => {
    const answer = sub.pc.localDescription!.sdp;
    if (rtx) assert.match(answer, /a=fmtp:97 apt=96/, 'the subscriber took RTX');
    else assert.not.match(answer, /rtx\/90000/, 'the subscriber did not take RTX');
    const video = sub.pc.getTransceivers().find((t) => t.mid === '1')!;
    const receiver = video.receiver as unknown as Receiver;
    const deliver = receiver.handleRtpBySsrc;
    const thrown = new Set<number>();
    let rtxArrived = 0;
    receiver.handleRtpBySsrc = (packet, extensions) => {
      const seq = packet.header.sequenceNumber;
      if (packet.header.payloadType === 97) rtxArrived++;
      // Only media packets are thrown away, never a retransmission (which comes as RTX, PT 97, or again as the same number).
      if (packet.header.payloadType === 96 && dropped(seq) && !thrown.has(seq)) {
        thrown.add(seq);
        return; // lost on the way: werift's NACK handler sees the gap
      }
      deliver(packet, extensions);
    };
    for (let i = 0; i < PACKETS; i++) {
      await sendRtp(pub.video, 1000 + i, i * 3000, payload('video', i, 900), true);
      if (i % 4 === 3) await pause(10); // ~400 packets/s, a video publisher's rate
    }
    const got = () => new Set(sub.received.get('1')!.map((p) => p.payload.subarray(0, 16).toString())).size;
    await until(() => got() >= PACKETS, 5000);
    const distinct = got();
    const out = vr.f.ferry.engine.stats().outputs;
    const nacked = out.reduce((n, o) => n + o.nacked, 0);
    const retransmitted = out.reduce((n, o) => n + o.retransmitted, 0);
    assert.ok(thrown.size >= PACKETS / 20 - 1, `the subscriber threw away ${thrown.size} packets`);
    assert.ok(distinct >= PACKETS * 0.995, `received ${distinct}/${PACKETS} distinct video packets (threw away ${thrown.size}; ferry: nacked ${nacked}, retransmitted ${retransmitted})`);
    assert.ok(nacked >= thrown.size, `ferry saw the NACKs (${nacked})`);
    assert.ok(retransmitted >= thrown.size, `and retransmitted (${retransmitted})`);
    assert.is(sub.decryptFailures(), 0);
    // How they came: on the RTX SSRC and payload type, or as the media packets again.
    const offer = sub.pc.remoteDescription!.sdp;
    const fid = /a=ssrc-group:FID (\d+) (\d+)/.exec(offer);
    assert.ok(fid, 'ferry offered an RTX stream');
    if (rtx) assert.ok(rtxArrived >= thrown.size, `retransmissions came as RTX (${rtxArrived})`);
    else assert.is(rtxArrived, 0, 'no RTX to a subscriber that did not take it');
  }, { subscriber: { codecs: subscriberCodecs(rtx) } }));

interface Transport {
  sendRtp: (payload: Buffer, header: { ssrc: number; sequenceNumber: number; payloadType: number }) => Promise<number>;
}

for (const rtx of [false, true]) test(`a publisher whose sending loses 5 % still reaches its subscriber with ≥ 99.5 %, through ferry's NACKs${rtx ? ', repaired as RTX' : ''}`, () =>
  withRoom({ room: 78, publishers: 2 }, async ({ vr, peers }) => {
    const pub = await publish(vr.f, 78, 'lossy-uplink', peers, { codecs: subscriberCodecs(rtx) });
    if (rtx) assert.match(pub.answer, /a=fmtp:97 apt=96/, "ferry's answer takes the publisher's RTX");
    else assert.not.match(pub.answer, /rtx\/90000/);
    const sub = await subscribe(vr.f, 78, [{ feed: pub.id }], peers);
    // The publisher's first send of every 20th video packet is lost on the way; werift keeps
    // it in its history and sends it again when NACKed.
    const transport = (pub.video as unknown as { dtlsTransport: Transport }).dtlsTransport;
    const send = transport.sendRtp.bind(transport);
    const videoSsrc = (pub.video as unknown as { ssrc: number }).ssrc;
    const lost = new Set<number>();
    transport.sendRtp = (payload, header) => {
      const seq = header.sequenceNumber;
      if (header.ssrc === videoSsrc && dropped(seq) && !lost.has(seq)) {
        lost.add(seq);
        return Promise.resolve(0);
      }
      return send(payload, header);
    };
    for (let i = 0; i < PACKETS; i++) {
      await sendRtp(pub.video, 2000 + i, i * 3000, payload('video', i, 900), true);
      if (i % 4 === 3) await pause(10);
    }
    const got = () => new Set(sub.received.get('1')!.map((p) => p.payload.subarray(0, 16).toString())).size;
    await until(() => got() >= PACKETS, 5000);
    const stats = vr.f.ferry.engine.stats();
    const nacksSent = stats.endpoints.reduce((n, e) => n + e.nacksSent, 0);
    const recovered = stats.sources.reduce((n, s) => n + s.retransmitted, 0);
    const rtxIn = stats.endpoints.reduce((n, e) => n + e.rtxIn, 0);
    if (rtx) assert.ok(rtxIn >= lost.size, `the repairs came as RTX and were unwrapped (${rtxIn})`);
    else assert.is(rtxIn, 0);
    assert.ok(lost.size >= PACKETS / 20 - 1, `the publisher lost ${lost.size} packets`);
    assert.ok(got() >= PACKETS * 0.995, `the subscriber received ${got()}/${PACKETS} (ferry sent ${nacksSent} NACKs, recovered ${recovered})`);
    assert.ok(nacksSent > 0 && recovered >= lost.size, `ferry NACKed (${nacksSent}) and the repairs arrived (${recovered})`);
    assert.is(sub.decryptFailures(), 0);
  }));

test.run();
