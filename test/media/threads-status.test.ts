// What an operator sees of the media threads: Admin ferry_status `media_threads`, /metrics
// per-thread series and handle-level placement, on a whole ferry with two media threads and a
// route that crosses them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { ferryStatus, startFerry } from '../helpers/ferry.js';
import { newKeys, payloadFor, rtpPacket, weriftSession } from '../helpers/rtp.js';
import { sendPaced, udpPeer } from '../helpers/udp.js';

const GCM = 'AEAD_AES_128_GCM';

test('ferry_status and /metrics report each media thread: load, packets, drops, queue', async () => {
  const gw = await startFerry({ media: { workers: 2, placement: 'load' } });
  const sender = await udpPeer();
  const sink = await udpPeer();
  try {
    const engine = gw.ferry.engine;
    assert.is(engine.workerCount, 2);
    const theirs = newKeys(GCM);
    const ours = newKeys(GCM);
    const ingress = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0, worker: 0 });
    engine.setSrtp(ingress.id, { profile: GCM, localKey: ours.key, localSalt: ours.salt, remoteKey: theirs.key, remoteSalt: theirs.salt });
    const source = engine.addSource(ingress.id, { ssrc: 7, kind: 'audio', clockRate: 48000 });
    const egress = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0, worker: 1, remoteAddress: '127.0.0.1', remotePort: sink.port });
    engine.addOutput(egress.id, { source, ssrc: 8 });
    const session = weriftSession(GCM, theirs, ours);
    const packets = Array.from({ length: 40 }, (_, i) => {
      const p = rtpPacket({ ssrc: 7, seq: i + 1, ts: 960 * (i + 1), payload: payloadFor(i) });
      return session.encrypt(p.payload, p.header);
    });
    await sendPaced(sender, packets, ingress.port);
    assert.is((await sink.waitFor(40)).length, 40);

    const threads = (await ferryStatus(gw))['media_threads'] as Record<string, number>[];
    assert.is(threads.length, 2);
    assert.equal(threads.map((t) => t['thread']), [0, 1]);
    assert.is(threads[0]!['packets_in'], 40, 'thread 0 received the publisher');
    assert.is(threads[1]!['packets_out'], 40, 'thread 1 sent to the subscriber');
    assert.is(threads[0]!['cross_sent'], 40);
    assert.is(threads[1]!['cross_received'], 40);
    assert.is(threads[1]!['remote_feeds'], 1);
    assert.is(threads[0]!['subscriptions'], 1);
    for (const t of threads) {
      assert.is(t['drops'], 0);
      assert.is(t['queue_overflows'], 0);
      for (const key of ['load_pps', 'busy', 'endpoints', 'queue_depth']) assert.type(t[key], 'number');
      // 40 paced packets are far from the bursts per ms that make a thread wake itself.
      assert.is(t['coalescing_wakes'] as unknown, false);
    }
    const metrics = await (await fetch(`${gw.admin.base.replace(/\/admin$/, '')}/metrics`)).text();
    assert.match(metrics, /ferry_media_thread_packets_in_total\{thread="0"\} 40/);
    assert.match(metrics, /ferry_media_thread_packets_out_total\{thread="1"\} 40/);
    assert.match(metrics, /ferry_media_thread_queue_depth\{thread="1"\} 0/);
    assert.match(metrics, /ferry_media_thread_load_pps\{thread="0"\}/);
    assert.match(metrics, /ferry_media_thread_coalescing_wakes\{thread="1"\} 0/);
    engine.closeEndpoint(egress.id);
    engine.closeEndpoint(ingress.id);
    const after = (await ferryStatus(gw))['media_threads'] as Record<string, number>[];
    assert.equal(after.map((t) => [t['endpoints'], t['remote_feeds'], t['subscriptions']]), [[0, 0, 0], [0, 0, 0]]);
  } finally {
    await sender.close();
    await sink.close();
    await gw.stop();
  }
});

test.run();
