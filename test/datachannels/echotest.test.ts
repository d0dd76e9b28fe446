// EchoTest data channels end to end: a werift peer opens channels on ferry's
// EchoTest and gets every message back on the same channel, intact.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { ferryStatus, startFerry, waitUntilIdle, type TestFerry } from '../helpers/ferry.js';
import { closePeer } from '../helpers/werift.js';
import { attach, channelOpen, collect, offerAndConnect, until } from './helpers.js';

let f: TestFerry;

test.before(async () => {
  f = await startFerry({ media: { datachannel_max_message_size: 2 * 1024 * 1024 } });
});

test.after(async () => {
  await f.stop();
});

test('text and binary messages come back on the same channel, in order', async () => {
  const peer = await attach(f, 'janus.plugin.echotest');
  try {
    const dc = peer.pc.createDataChannel('JanusDataChannel');
    const got = collect(dc);
    const event = await offerAndConnect(peer, { audio: true, video: true });
    assert.equal(event['plugindata'].data, { echotest: 'event', result: 'ok' });
    assert.match(event['jsep'].sdp, /m=application \d+ UDP\/DTLS\/SCTP webrtc-datachannel/);
    assert.match(event['jsep'].sdp, /a=sctp-port:5000/);
    assert.match(event['jsep'].sdp, /a=max-message-size:2097152/);
    await channelOpen(dc);
    const sent: (string | Buffer)[] = [];
    for (let i = 0; i < 200; i++) {
      const m = i % 2 === 0 ? `text ${i} ✓` : Buffer.from([i & 0xff, 0, 255, i >> 8]);
      sent.push(m);
      dc.send(m);
    }
    await until(() => got.length >= sent.length, 10_000, () => `${got.length} of ${sent.length} echoed`);
    got.forEach((m, i) => {
      const want = sent[i]!;
      if (typeof want === 'string') assert.is(m, want, `message ${i}`);
      else assert.ok(Buffer.isBuffer(m) && m.equals(want), `binary message ${i}`);
    });
    const status = await ferryStatus(f);
    assert.is(status['data_channels'].associations, 1);
    assert.is(status['data_channels'].channels, 1);
  } finally {
    await peer.close();
    await closePeer(peer.pc);
  }
  const idle = await waitUntilIdle(f);
  assert.is(idle['data_channels'].associations, 0, 'association gone with the PeerConnection');
  assert.is(idle['data_channels'].channels, 0);
  assert.is(idle['data_channels'].timers, 0);
});

test.run();
