// One werift publisher (audio + video) and five werift subscribers, all over
// the Janus WebSocket API: each subscriber decrypts what the publisher sent,
// byte for byte, with one SSRC per m-line and sequence numbers +1 per packet.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useH264, useOPUS, usePCMU, useVP8 } from 'werift';

import { pause, payload, publish, sendRtp, serialAfter, subscribe, until, withRoom, type WeriftSubscriber } from './harness.js';

const SUBSCRIBERS = 5;
const PACKETS = 300;

test(`1 publisher, ${SUBSCRIBERS} subscribers: every subscriber receives the publisher's packets intact`, () =>
  withRoom({ room: 1234, publishers: 3 }, async ({ vr, admin, peers }) => {
    const pub = await publish(vr.f, 1234, 'alice', peers);
    const subs: WeriftSubscriber[] = [];
    for (let i = 0; i < SUBSCRIBERS; i++) subs.push(await subscribe(vr.f, 1234, [{ feed: pub.id }], peers));
    for (const s of subs) {
      assert.equal(s.streams.map((x) => [x['mid'], x['type'], x['codec'], x['feed_id']]), [['0', 'audio', 'opus', pub.id], ['1', 'video', 'vp8', pub.id]]);
    }
    // Media starts with a keyframe request answered by the publisher's first packets; send paced.
    for (let i = 0; i < PACKETS; i++) {
      await sendRtp(pub.audio, 100 + i, i * 960, payload('audio', i, 160));
      await sendRtp(pub.video, 200 + i, i * 3000, payload('video', i, 1000), true);
      // 6 receivers decrypt in this same process: stay near 5k packets/s overall.
      if (i % 10 === 9) await pause(10);
    }
    const done = await until(() => subs.every((s) => s.received.get('0')!.length >= PACKETS && s.received.get('1')!.length >= PACKETS), 10_000);
    const engine = JSON.stringify(vr.f.ferry.engine.stats()).slice(0, 600);
    assert.ok(done, `every subscriber got everything: ${subs.map((s) => `${s.received.get('0')!.length}/${s.received.get('1')!.length}`).join(' ')} (engine ${engine})`);
    for (const s of subs) {
      assert.is(s.decryptFailures(), 0, 'no SRTP failure');
      for (const [mid, kind, size] of [['0', 'audio', 160], ['1', 'video', 1000]] as const) {
        const got = s.received.get(mid)!;
        assert.is(got.length, PACKETS, `${kind}: nothing extra`);
        got.forEach((p, i) => assert.ok(p.payload.equals(payload(kind, i, size)), `${kind} packet ${i} intact`));
        assert.is(new Set(got.map((p) => p.header.ssrc)).size, 1, `${kind}: one SSRC`);
        for (let i = 1; i < got.length; i++) {
          assert.is(got[i]!.header.sequenceNumber, (got[i - 1]!.header.sequenceNumber + 1) & 0xffff, `${kind}: seq +1`);
          assert.ok(serialAfter(got[i - 1]!.header.timestamp, got[i]!.header.timestamp, 32), `${kind}: timestamp advances`);
        }
      }
    }
    // Each subscriber hangs up; the publisher's feed and the other PeerConnections are untouched.
    await subs[0]!.client.call({ request: 'leave' });
    await subs[0]!.client.core('hangup');
    assert.is(vr.plugin.stats().subscribers, SUBSCRIBERS - 1);
    for (const s of subs) await s.client.close();
    await pub.client.close();
    assert.ok(await until(() => vr.f.ferry.webrtc.count === 0), 'every PeerConnection closed');
    await admin.close();
    assert.is(vr.f.ferry.ports.leased, 0, 'every port lease released');
  }));

test("the room's codec order picks the publisher's codecs (pcmu, h264 over the offer's opus, vp8); media flows", () =>
  withRoom({ room: 55, audiocodec: 'pcmu,opus', videocodec: 'h264,vp8' }, async ({ vr, peers }) => {
    const pub = await publish(vr.f, 55, 'h', peers, { codecs: { audio: [useOPUS(), usePCMU()], video: [useVP8(), useH264()] } });
    assert.equal(pub.joined['streams'] ?? null, null, 'joinandconfigure answers with joined');
    assert.match(pub.answer, /a=rtpmap:\d+ PCMU\/8000/);
    assert.match(pub.answer, /a=rtpmap:\d+ H264\/90000/);
    assert.not.match(pub.answer, /opus|VP8/i);
    assert.is(pub.audio.codec?.mimeType.toLowerCase(), 'audio/pcmu');
    assert.is(pub.video.codec?.mimeType.toLowerCase(), 'video/h264');
    const codecs = { audio: [useOPUS(), usePCMU()], video: [useVP8(), useH264()] };
    // A subscriber that cannot decode H.264 rejects that m-line: ferry then sends nothing on it.
    const vp8Only = await subscribe(vr.f, 55, [{ feed: pub.id }], peers);
    const sub = await subscribe(vr.f, 55, [{ feed: pub.id }], peers, { codecs });
    assert.equal(sub.streams.map((s) => s['codec']), ['pcmu', 'h264']);
    for (let i = 0; i < 50; i++) {
      await sendRtp(pub.audio, 1 + i, i * 160, payload('pcmu', i, 160));
      await sendRtp(pub.video, 1 + i, i * 3000, payload('h264', i, 800), true);
    }
    // Both subscribers may sit on different media threads: wait for each, not only the second.
    const relayed = await until(() => sub.received.get('0')!.length >= 50 && sub.received.get('1')!.length >= 50 && vp8Only.received.get('0')!.length >= 50);
    assert.ok(relayed, 'media relayed');
    assert.is(vp8Only.received.get('0')!.length, 50, 'the other subscriber still gets audio');
    // RFC 3264 §6: nothing is sent on the m-line the first subscriber's answer rejected.
    const outputs = vr.f.ferry.engine.stats().outputs;
    assert.equal(outputs.map((o) => o.packets), [50, 50, 50], `outputs: ${JSON.stringify(outputs)}`);
    assert.ok(sub.received.get('0')!.every((p, i) => p.payload.equals(payload('pcmu', i, 160))));
    assert.ok(sub.received.get('1')!.every((p, i) => p.payload.equals(payload('h264', i, 800))));
    assert.is(sub.decryptFailures(), 0);
  }));

test.run();
