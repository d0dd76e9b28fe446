// A werift subscriber `switch`es between two werift publishers 100 times.
// Each phase, only the feed it is switched to sends; the subscriber must get
// every packet of every phase (no SRTP failure), with one SSRC per m-line,
// sequence numbers +1 across every switch and timestamps never going back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { assertReceivedAsSent } from './checks.js';
import { payload, publish, receivedAll, sendAudioVideo, subscribe, until, withRoom, type SentMedia, type WeriftPublisher } from './harness.js';

const SWITCHES = 100;
const PER_PHASE = 12;

test(`subscriber switches between two publishers ${SWITCHES} times: continuous, decryptable streams`, () =>
  withRoom({ room: 77, publishers: 4 }, async ({ vr, peers }) => {
    const a = await publish(vr.f, 77, 'a', peers);
    const b = await publish(vr.f, 77, 'b', peers);
    const sub = await subscribe(vr.f, 77, [{ feed: a.id }], peers);
    // Each publisher keeps its own, very different, sequence and timestamp bases.
    const state = new Map<WeriftPublisher, { seq: number; ts: number }>([
      [a, { seq: 10, ts: 1000 }],
      [b, { seq: 30_000, ts: 0x9000_0000 }],
    ]);
    const expected: SentMedia = { audio: [], video: [] };
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
      const payloads = (i: number) => ({ audio: payload(`${tag}-audio-${phase}`, i, 120), video: payload(`${tag}-video-${phase}`, i, 700) });
      await sendAudioVideo(current, st, PER_PHASE, payloads, expected);
      const delivered = await until(() => receivedAll(sub, expected), 5000, 2);
      assert.ok(delivered, `phase ${phase}: got ${sub.received.get('0')!.length}/${expected.audio.length} audio, ${sub.received.get('1')!.length}/${expected.video.length} video`);
    }
    assertReceivedAsSent(sub, expected);
  }));

test.run();
