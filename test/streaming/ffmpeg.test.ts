// Debian's ffmpeg sends VP8 and Opus test sources as RTP into an `rtp` mountpoint; five werift
// viewers watching over the Janus WebSocket API decrypt what it sends, a viewer joining 5 s in
// starts at a keyframe, and every port, PeerConnection and viewer is gone afterwards.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { withStreamingTest, createMountpoint, pause, startFfmpeg, until, vp8Frames, watch, type WeriftViewer } from './harness.js';
import { countDecryptFailures } from '../videoroom-e2e/harness.js';

const VIEWERS = 5;
const GOP = 15; // frames: one keyframe a second at 15 frames/s

test(`ffmpeg → mountpoint → ${VIEWERS} werift viewers: VP8 frames and Opus packets arrive and decrypt`, async () => {
  await withStreamingTest(async ({ st, admin, peers, encoders }) => {
    const mp = await createMountpoint(admin);
    assert.is(st.f.ferry.ports.leased, 2, 'one leased port per stream');
    const encoder = startFfmpeg({ audio: mp.audioPort, video: mp.videoPort }, { gop: GOP });
    encoders.push(encoder);
    const viewers: WeriftViewer[] = [];
    for (let i = 0; i < VIEWERS; i++) viewers.push(await watch(st.f, mp.id, peers));
    const failures = viewers.map((v) => countDecryptFailures(v.pc));
    assert.match(viewers[0]!.offer, /a=rtpmap:100 VP8\/90000/);
    assert.match(viewers[0]!.offer, /a=rtpmap:111 opus\/48000\/2/);
    assert.equal(viewers[0]!.watched, { streaming: 'event', result: { status: 'preparing' } });
    const enough = (v: WeriftViewer) => vp8Frames(v.received.get('v')!).frames >= 45 && v.received.get('a')!.length >= 100;
    const done = await until(() => viewers.every(enough), 20_000);
    const figures = viewers.map((v) => `${vp8Frames(v.received.get('v')!).frames} frames/${v.received.get('a')!.length} audio`);
    assert.ok(done, `every viewer got video frames and audio: ${figures.join(', ')}; ffmpeg: ${encoder.stderr()}`);
    for (const [i, v] of viewers.entries()) {
      assert.is(failures[i]!(), 0, 'no SRTP failure');
      const video = v.received.get('v')!;
      const audio = v.received.get('a')!;
      const frames = vp8Frames(video);
      assert.ok(frames.keyframes >= 1, 'keyframes arrive');
      for (const [kind, got, pt] of [['video', video, 100], ['audio', audio, 111]] as const) {
        assert.is(new Set(got.map((p) => p.rtp.header.ssrc)).size, 1, `${kind}: one SSRC`);
        assert.ok(got.every((p) => p.rtp.header.payloadType === pt), `${kind}: the offered payload type`);
        let gaps = 0;
        for (let k = 1; k < got.length; k++) if (got[k]!.rtp.header.sequenceNumber !== ((got[k - 1]!.rtp.header.sequenceNumber + 1) & 0xffff)) gaps++;
        assert.is(gaps, 0, `${kind}: sequence numbers +1 (no loss on loopback)`);
      }
    }
    const info = await admin.sync({ request: 'info', id: mp.id });
    assert.is(info['info'].viewers, VIEWERS);
    assert.ok(info['info'].media.every((m: Record<string, unknown>) => typeof m['age_ms'] === 'number'), `age_ms shown: ${JSON.stringify(info)}`);
    assert.is(st.plugin.stats().viewers, VIEWERS);
    // Viewers leave by every path: stop, hangup, detach, session destroy.
    await viewers[0]!.client.call({ request: 'stop' });
    await viewers[0]!.client.core('hangup');
    await viewers[1]!.client.ws.request({ janus: 'hangup', session_id: viewers[1]!.client.sessionId, handle_id: viewers[1]!.client.handleId });
    await viewers[2]!.client.ws.request({ janus: 'detach', session_id: viewers[2]!.client.sessionId, handle_id: viewers[2]!.client.handleId });
    for (const v of viewers) await v.client.close();
    assert.ok(await until(() => st.f.ferry.webrtc.count === 0 && st.plugin.stats().viewers === 0), `viewers gone: ${JSON.stringify(st.plugin.stats())}`);
    assert.is(st.f.ferry.ports.leased, 2, 'only the mountpoint ports remain');
    assert.equal(await admin.sync({ request: 'destroy', id: mp.id }), { streaming: 'destroyed', id: mp.id });
    assert.is(st.f.ferry.ports.leased, 0, 'destroy released the ingest ports');
    assert.equal(st.plugin.stats(), { mountpoints: 0, viewers: 0, legs: 0, handles: 1 });
  });
});

test('a viewer joining 5 s into the stream: the first frame it can decode is a keyframe, within one GOP', async () => {
  await withStreamingTest(async ({ st, admin, peers, encoders }) => {
    const mp = await createMountpoint(admin);
    const encoder = startFfmpeg({ audio: mp.audioPort, video: mp.videoPort }, { gop: GOP });
    encoders.push(encoder);
    await pause(5000);
    const joinedAt = performance.now();
    const v = await watch(st.f, mp.id, peers);
    const upAt = performance.now();
    assert.ok(await until(() => vp8Frames(v.received.get('v')!).keyframes >= 1, 10_000), 'a keyframe arrives');
    const video = v.received.get('v')!;
    // Frames before the first keyframe are deltas the viewer cannot decode: at most one GOP of them.
    const firstKey = video.findIndex((p) => p.rtp.payload.length > 0 && vp8Frames([p]).keyframes === 1);
    const framesBefore = video.slice(0, firstKey).filter((p) => p.rtp.header.marker).length;
    assert.ok(framesBefore <= GOP, `${framesBefore} undecodable frames before the first keyframe (GOP ${GOP})`);
    const keyAt = video[firstKey]!.at;
    console.log(`  late joiner: watch→webrtcup ${Math.round(upAt - joinedAt)} ms, webrtcup→first keyframe ${Math.round(keyAt - upAt)} ms, ${framesBefore} delta frames before it (ffmpeg ignores PLI; GOP ${GOP} frames = 1 s)`);
    // ferry asked the sender for a keyframe (PLI to the latched address) when the viewer's output began.
    const stats = st.f.ferry.engine.stats().endpoints.find((e) => e.port === mp.videoPort);
    assert.ok((stats?.keyframeRequestsRelayed ?? 0) >= 1, `PLI sent toward the source: ${JSON.stringify(stats)}`);
    await v.client.close();
  });
});

test.run();
