// EchoTest data channels end to end: a werift peer opens channels on ferry's
// EchoTest and gets every message back on the same channel, intact.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import type { RTCDataChannel } from 'werift';

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
    const metrics = await (await fetch(`${new URL(f.admin.base).origin}${f.config.metrics.path}`)).text();
    assert.match(metrics, /^ferry_sctp_associations 1$/m);
    assert.match(metrics, /^ferry_data_channel_messages_in_total 200$/m);
  } finally {
    await peer.close();
    await closePeer(peer.pc);
  }
  const idle = await waitUntilIdle(f);
  assert.is(idle['data_channels'].associations, 0, 'association gone with the PeerConnection');
  assert.is(idle['data_channels'].channels, 0);
  assert.is(idle['data_channels'].timers, 0);
});

/** What ferry's Admin handle_info says of the handle's data channels. */
async function channelsOf(peer: { session: number; handle: number }): Promise<Record<string, any>[]> {
  const info = (await f.admin.post('', { janus: 'handle_info', session_id: peer.session, handle_id: peer.handle, admin_secret: f.config.auth.admin_secret })) as Record<string, any>;
  return info['info'].webrtc['data-channels'].channels as Record<string, any>[];
}

test('10^4 ordered messages, a 64 KiB and a 1 MiB binary message come back intact', async () => {
  const peer = await attach(f, 'janus.plugin.echotest');
  try {
    const dc = peer.pc.createDataChannel('bulk');
    const got = collect(dc);
    await offerAndConnect(peer, { audio: false, video: false });
    await channelOpen(dc);
    const count = 10_000;
    // werift's own sender slows down quadratically with the messages it has queued (each queued
    // send waits on one shared event), so the peer keeps at most 200 unanswered, as a chat would.
    for (let i = 0; i < count; i++) {
      if (i - got.length >= 200) await until(() => i - got.length < 200, 20_000, () => `${got.length} of ${i} echoed`);
      dc.send(`#${i}`);
    }
    await until(() => got.length >= count, 60_000, () => `${got.length} of ${count} echoed`);
    for (let i = 0; i < count; i++) assert.is(got[i], `#${i}`);
    const sizes = [64 * 1024, 1024 * 1024];
    const big = sizes.map((n, k) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + k) & 0xff)));
    for (const b of big) dc.send(b);
    await until(() => got.length >= count + big.length, 60_000, () => `${got.length - count} of ${big.length} large messages echoed`);
    big.forEach((b, k) => {
      const m = got[count + k]!;
      assert.ok(Buffer.isBuffer(m) && m.length === b.length && m.equals(b), `message of ${b.length} bytes intact`);
    });
  } finally {
    await peer.close();
    await closePeer(peer.pc);
  }
});

test('unordered, maxRetransmits and maxPacketLifeTime channels open as configured; 10 channels on one association', async () => {
  const peer = await attach(f, 'janus.plugin.echotest');
  try {
    const kinds = [
      { label: 'unordered', options: { ordered: false } },
      { label: 'rexmit', options: { ordered: false, maxRetransmits: 0 } },
      { label: 'timed', options: { maxPacketLifeTime: 150 } },
    ];
    const channels: { dc: RTCDataChannel; got: (string | Buffer)[] }[] = [];
    for (const k of kinds) {
      const dc = peer.pc.createDataChannel(k.label, k.options);
      channels.push({ dc, got: collect(dc) });
    }
    for (let i = channels.length; i < 10; i++) {
      const dc = peer.pc.createDataChannel(`chat-${i}`, { protocol: `proto-${i}` });
      channels.push({ dc, got: collect(dc) });
    }
    await offerAndConnect(peer, { audio: true, video: true });
    for (const c of channels) await channelOpen(c.dc);
    for (const [n, c] of channels.entries()) for (let i = 0; i < 50; i++) c.dc.send(`${c.dc.label}:${n}:${i}`);
    await until(() => channels.every((c) => c.got.length >= 50), 20_000, () => channels.map((c) => `${c.dc.label} ${c.got.length}`).join(', '));
    for (const [n, c] of channels.entries()) {
      const want = Array.from({ length: 50 }, (_, i) => `${c.dc.label}:${n}:${i}`);
      // Each message back on its own channel; unordered ones in any order.
      assert.equal([...c.got].sort(), [...want].sort(), c.dc.label);
    }
    const described = await channelsOf(peer);
    assert.is(described.length, 10);
    const byLabel = new Map(described.map((c) => [c.label, c]));
    assert.is(byLabel.get('unordered')!.ordered, false);
    assert.is(byLabel.get('rexmit')!['max-retransmits'], 0);
    assert.is(byLabel.get('timed')!['max-packet-life-time'], 150);
    assert.is(byLabel.get('chat-5')!.protocol, 'proto-5');
    assert.ok(described.every((c) => c.state === 'open' && c['opened-by'] === 'peer'));
    // RFC 8831 §6.7: a channel the client closes is reset on both sides and gone from ferry.
    channels[9]!.dc.close();
    await until(() => channels[9]!.dc.readyState === 'closed', 5_000, () => `channel is ${channels[9]!.dc.readyState}`);
    await until(() => (ferryChannels() ?? 10) === 9, 5_000, () => `ferry counts ${ferryChannels()} channels`);
  } finally {
    await peer.close();
    await closePeer(peer.pc);
  }
});

function ferryChannels(): number | undefined {
  return f.ferry.webrtc.dataChannelStats.channels;
}

test.run();
