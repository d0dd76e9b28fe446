// DataChannels (one PeerConnection's SCTP association and its channels) without
// DTLS or sockets: a client SctpAssociation in memory opens channels with DCEP,
// sends every kind of message, closes channels by stream reset, and throws 10^5
// random and mutated DCEP messages at it. Counters come back to zero on close.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import type { DataMessage } from '../../src/core/Media.js';
import { DataChannels, DataChannelStats } from '../../src/webrtc/DataChannels.js';
import { encodeOpen, Ppid } from '../../src/webrtc/sctp/Dcep.js';
import { SctpAssociation } from '../../src/webrtc/sctp/SctpAssociation.js';

interface Rig {
  ferry: DataChannels;
  client: SctpAssociation;
  stats: DataChannelStats;
  /** What ferry's plugin side got. */
  got: DataMessage[];
  /** What the client got: stream, ppid, data. */
  clientGot: { stream: number; ppid: number; data: Buffer }[];
  ready: () => boolean;
  pump(): void;
  now: { t: number };
}

function rig(): Rig {
  const now = { t: 0 };
  const queue: { to: 'ferry' | 'client'; packet: Buffer }[] = [];
  const stats = new DataChannelStats();
  const got: DataMessage[] = [];
  const clientGot: Rig['clientGot'] = [];
  let isReady = false;
  const ferry = new DataChannels({
    localPort: 5000,
    remotePort: 5000,
    maxMessageSize: 256 * 1024,
    remoteMaxMessageSize: 256 * 1024,
    maxSendBuffer: 4 * 1024 * 1024,
    dtlsRole: 'server',
    sendPacket: (packet) => queue.push({ to: 'client', packet }),
    onMessage: (m) => got.push(m),
    onReady: () => {
      isReady = true;
    },
    onClosed: () => undefined,
    stats,
    now: () => now.t,
  });
  const client = new SctpAssociation({
    localPort: 5000,
    remotePort: 5000,
    receiveWindow: 512 * 1024,
    maxMessageSize: 256 * 1024,
    maxSendBuffer: 64 * 1024 * 1024,
    now: () => now.t,
    output: (packet) => queue.push({ to: 'ferry', packet }),
    onEstablished: () => undefined,
    onMessage: (stream, ppid, data) => clientGot.push({ stream, ppid, data: Buffer.from(data) }),
    onIncomingStreamsReset: (streams) => client.resetStreams(streams),
    onOutgoingStreamsReset: () => undefined,
    onClosed: () => undefined,
  });
  const pump = () => {
    for (let i = 0; i < 100_000; i++) {
      const item = queue.shift();
      if (item) {
        if (item.to === 'ferry') ferry.receive(item.packet);
        else client.receive(item.packet);
        continue;
      }
      // Let delayed SACKs and retransmission timers run on the fake clock.
      const d = client.deadline();
      if (d === null || d > now.t + 1000) return;
      now.t = d;
      client.handleTimeout();
    }
  };
  client.connect();
  pump();
  return { ferry, client, stats, got, clientGot, ready: () => isReady, pump, now };
}

function open(r: Rig, stream: number, label: string, protocol = '', ordered = true): void {
  r.client.send(stream, Ppid.DCEP, encodeOpen({ label, protocol, ordered, maxRetransmits: null, maxPacketLifeTime: null, priority: 0 }), { ordered: true });
  r.pump();
}

test('channels the client opens: every kind of message reaches the plugin with its label; ferry answers with DATA_CHANNEL_ACK', () => {
  const r = rig();
  assert.ok(r.ready(), 'data_ready once the association is up');
  open(r, 0, 'chat', 'json');
  assert.equal(r.clientGot.map((m) => [m.stream, m.ppid, [...m.data]]), [[0, Ppid.DCEP, [0x02]]]);
  r.client.send(0, Ppid.STRING, Buffer.from('héllo'), { ordered: true });
  r.client.send(0, Ppid.BINARY, Buffer.from([0, 1, 2]), { ordered: true });
  r.client.send(0, Ppid.STRING_EMPTY, Buffer.from([0]), { ordered: true });
  r.client.send(0, Ppid.BINARY_EMPTY, Buffer.from([0]), { ordered: true });
  r.pump();
  assert.equal(
    r.got.map((m) => [m.label, m.protocol, m.binary, [...m.data]]),
    [
      ['chat', 'json', false, [...Buffer.from('héllo')]],
      ['chat', 'json', true, [0, 1, 2]],
      ['chat', 'json', false, []],
      ['chat', 'json', true, []],
    ],
  );
  assert.is(r.stats.channels, 1);
});

test('sending: on the channel of that label, or a new one ferry opens (odd stream as DTLS server), empty messages as RFC 8831 §6.6 says', () => {
  const r = rig();
  open(r, 0, 'chat');
  r.clientGot.length = 0;
  assert.ok(r.ferry.send({ label: 'chat', data: 'back' }));
  assert.ok(r.ferry.send({ data: Buffer.alloc(0), binary: true }));
  assert.ok(r.ferry.send({ label: 'news', protocol: 'x', data: 'first' }));
  r.pump();
  const [a, b, c, d] = r.clientGot;
  assert.equal([a!.stream, a!.ppid, a!.data.toString()], [0, Ppid.STRING, 'back']);
  assert.equal([b!.stream, b!.ppid, b!.data.length], [0, Ppid.BINARY_EMPTY, 1]);
  // A new channel: DATA_CHANNEL_OPEN on stream 1 (ferry is the DTLS server), then the message.
  assert.equal([c!.stream, c!.ppid, c!.data[0]], [1, Ppid.DCEP, 0x03]);
  assert.equal([d!.stream, d!.ppid, d!.data.toString()], [1, Ppid.STRING, 'first']);
  assert.is(r.stats.channels, 2);
  // Too big for the peer's announced max-message-size: refused and counted.
  assert.not.ok(r.ferry.send({ label: 'chat', data: Buffer.alloc(256 * 1024 + 1) }));
  assert.is(r.stats.oversizeRefused, 1);
});

test('a channel the client closes (stream reset) is closed by ferry too and leaves the table', () => {
  const r = rig();
  open(r, 0, 'a');
  open(r, 2, 'b');
  assert.is(r.stats.channels, 2);
  r.client.resetStreams([2]);
  r.pump();
  assert.is(r.stats.channels, 1);
  // Stream 2 can carry a new channel afterwards.
  open(r, 2, 'c');
  assert.is(r.stats.channels, 2);
});

test('10^5 random and mutated DCEP messages: counted drops, never a throw; channels stay within the streams', () => {
  const r = rig();
  let seed = 99;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  const valid = encodeOpen({ label: 'label', protocol: 'proto', ordered: true, maxRetransmits: null, maxPacketLifeTime: null, priority: 0 });
  for (let i = 0; i < 100_000; i++) {
    let m: Buffer;
    if (i % 2 === 0) {
      m = Buffer.alloc(1 + Math.floor(random() * 40));
      for (let k = 0; k < m.length; k++) m[k] = Math.floor(random() * 256);
    } else {
      m = Buffer.from(valid);
      for (let k = 0; k < 3; k++) m[Math.floor(random() * m.length)] = Math.floor(random() * 256);
    }
    r.client.send(Math.floor(random() * 1024), Ppid.DCEP, m, { ordered: true });
    if (i % 500 === 0) r.pump();
  }
  r.pump();
  assert.ok(r.stats.dcepDrops > 90_000, `DCEP drops ${r.stats.dcepDrops}`);
  assert.ok(r.stats.channels <= 1024, `channels ${r.stats.channels}`);
  assert.is(r.ferry.state, 'established');
  r.ferry.close('done');
  assert.is(r.stats.associations, 0);
  assert.is(r.stats.channels, 0);
  assert.is(r.stats.timers, 0);
});

test.run();
