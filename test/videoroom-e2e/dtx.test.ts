// Opus DTX (RFC 7587 §3.1.3, discontinuous transmission): in silence a sender sends one packet
// every 400 ms instead of one every 20 ms, with consecutive sequence numbers and a timestamp
// jump. That is no loss and no stall: ferry must not raise `slowlink` nor say the audio stopped
// (`media` receiving false) for the publisher or its subscriber, and the subscriber must get
// every packet with its numbering continuous.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { VrClient, closeAll, payload, pause, publish, sendRtp, startVrFerry, subscribe, until } from './harness.js';
import type { RTCPeerConnection } from 'werift';

test('an Opus publisher in DTX raises no slowlink and no media-stopped event, and its subscriber gets every packet', async () => {
  const vr = await startVrFerry();
  const peers: RTCPeerConnection[] = [];
  try {
    const admin = await VrClient.open(vr.f);
    await admin.sync({ request: 'create', room: 88, publishers: 2 });
    const pub = await publish(vr.f, 88, 'quiet', peers);
    const sub = await subscribe(vr.f, 88, [{ feed: pub.id }], peers);
    let seq = 500;
    let ts = 0;
    let sent = 0;
    const talk = async (packets: number) => {
      for (let i = 0; i < packets; i++, sent++) {
        await sendRtp(pub.audio, seq++, (ts += 960), payload('opus', sent, 80));
        await pause(20);
      }
    };
    await talk(75); // 1.5 s of speech
    // 4.8 s of silence: one DTX frame (a few bytes) every 400 ms, 20 ms of samples apart in time
    // but 400 ms in timestamps (RFC 7587 §3.1.3).
    for (let i = 0; i < 12; i++, sent++) {
      ts += 48_000 * 0.4;
      await sendRtp(pub.audio, seq++, ts, payload('dtx', sent, 3).subarray(0, 3));
      await pause(400);
    }
    await talk(50);
    const audio = () => sub.received.get('0') ?? [];
    await until(() => audio().length >= sent, 5000);
    assert.is(audio().length, sent, 'every packet, speech and DTX, reached the subscriber');
    const seqs = audio().map((p) => p.header.sequenceNumber);
    assert.ok(seqs.every((s, i) => i === 0 || s === ((seqs[i - 1]! + 1) & 0xffff)), 'its numbering is continuous');
    const events = [...pub.client.ws.events, ...sub.client.ws.events];
    const slowlinks = events.filter((e) => e['janus'] === 'slowlink');
    assert.is(slowlinks.length, 0, `no slowlink: ${JSON.stringify(slowlinks)}`);
    const stopped = events.filter((e) => e['janus'] === 'media' && e['type'] === 'audio' && e['receiving'] === false);
    assert.is(stopped.length, 0, `the audio never counted as stopped: ${JSON.stringify(stopped)}`);
    const source = vr.f.ferry.engine.stats().sources.find((s) => s.packets === sent);
    assert.ok(source, 'the audio source counted every packet');
    assert.is(source!.dropped, 0);
  } finally {
    await closeAll(peers);
    await vr.stop();
  }
});

test.run();
