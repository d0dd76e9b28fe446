// A werift subscriber `switch`es between two werift publishers 100 times.
// Each phase, only the feed it is switched to sends; the subscriber must get
// every packet of every phase (no SRTP failure), with one SSRC per m-line,
// sequence numbers +1 across every switch and timestamps never going back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RTCPeerConnection } from 'werift';

import { assertContinuous, assertPayloads } from './checks.js';
import { VrClient, closeAll, payload, publish, sendRtp, startVrFerry, subscribe, until, type WeriftPublisher } from './harness.js';

const SWITCHES = 100;
const PER_PHASE = 12;

test(`subscriber switches between two publishers ${SWITCHES} times: continuous, decryptable streams`, async () => {
  const vr = await startVrFerry();
  const peers: RTCPeerConnection[] = [];
  try {
    const admin = await VrClient.open(vr.f);
    await admin.sync({ request: 'create', room: 77, publishers: 4 });
    const a = await publish(vr.f, 77, 'a', peers);
    const b = await publish(vr.f, 77, 'b', peers);
    const sub = await subscribe(vr.f, 77, [{ feed: a.id }], peers);
    // Each publisher keeps its own, very different, sequence and timestamp bases.
    const state = new Map<WeriftPublisher, { seq: number; ts: number }>([
      [a, { seq: 10, ts: 1000 }],
      [b, { seq: 30_000, ts: 0x9000_0000 }],
    ]);
    const expected = { audio: [] as Buffer[], video: [] as Buffer[] };
    let current = a;
    for (let phase = 0; phase <= SWITCHES; phase++) {
      if (phase > 0) {
        current = current === a ? b : a;
        const switched = await sub.client.call({
          request: 'switch',
          streams: [
            { feed: current.id, mid: '0', sub_mid: '0' },
            { feed: current.id, mid: '1', sub_mid: '1' },
          ],
        });
        assert.is(switched.data['switched'], 'ok');
        assert.is(switched.data['changes'], 2);
        assert.equal(switched.data['streams'].map((s: any) => s.feed_id), [current.id, current.id]);
      }
      const st = state.get(current)!;
      const tag = current === a ? 'a' : 'b';
      for (let i = 0; i < PER_PHASE; i++) {
        const audio = payload(`${tag}-audio-${phase}`, i, 120);
        const video = payload(`${tag}-video-${phase}`, i, 700);
        await sendRtp(current.audio, st.seq, st.ts, audio);
        await sendRtp(current.video, st.seq, st.ts * 3, video, true);
        expected.audio.push(audio);
        expected.video.push(video);
        st.seq = (st.seq + 1) & 0xffff;
        st.ts = (st.ts + 960) >>> 0;
      }
      const delivered = await until(() => sub.received.get('0')!.length >= expected.audio.length && sub.received.get('1')!.length >= expected.video.length, 5000, 2);
      assert.ok(delivered, `phase ${phase}: got ${sub.received.get('0')!.length}/${expected.audio.length} audio, ${sub.received.get('1')!.length}/${expected.video.length} video`);
    }
    assert.is(sub.decryptFailures(), 0, 'zero SRTP failures at the subscriber');
    assertPayloads(sub.received.get('0')!, expected.audio, 'audio');
    assertPayloads(sub.received.get('1')!, expected.video, 'video');
    assertContinuous(sub.received.get('0')!, 'audio');
    assertContinuous(sub.received.get('1')!, 'video');
  } finally {
    await closeAll(peers);
    await vr.stop();
  }
});

test.run();
