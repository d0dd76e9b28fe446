// The engine through N-API on loopback: plain UDP sockets send SRTP into
// endpoints, outputs receive rewritten, re-encrypted packets; an output is
// switched between two sources that use the SAME SSRC (lessons §4) and the
// receiver, decrypting with werift-rtp, sees one continuous stream.
import { createSocket } from 'node:dgram';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { MediaEngine } from '../../src/media/MediaEngine.js';
import { newKeys, payloadFor, rtpPacket, RtpPacket, seqDelta, tsForward, weriftSession } from '../helpers/rtp.js';
import { sendPaced, udpPeer, type UdpPeer } from '../helpers/udp.js';

const SHARED_SSRC = 1000; // what two cascaded publishers would both use
const PER_PHASE = 60;
const SWITCHES = 10;


test('fan-out to two outputs with switching between same-SSRC sources keeps continuity', async () => {
  const engine = new MediaEngine();
  const peers: UdpPeer[] = [];
  try {
    const senderA = await udpPeer();
    const senderB = await udpPeer();
    const recv1 = await udpPeer();
    const recv2 = await udpPeer();
    peers.push(senderA, senderB, recv1, recv2);

    const kA = newKeys('AEAD_AES_128_GCM');
    const kB = newKeys('AES_CM_128_HMAC_SHA1_80');
    const k1 = newKeys('AEAD_AES_128_GCM');
    const k2 = newKeys('AES_CM_128_HMAC_SHA1_80');
    const ferryKey = (p: 'AEAD_AES_128_GCM' | 'AES_CM_128_HMAC_SHA1_80') => newKeys(p);

    const inA = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0 });
    const inB = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0 });
    const fA = ferryKey('AEAD_AES_128_GCM');
    const fB = ferryKey('AES_CM_128_HMAC_SHA1_80');
    engine.setSrtp(inA.id, { profile: 'AEAD_AES_128_GCM', localKey: fA.key, localSalt: fA.salt, remoteKey: kA.key, remoteSalt: kA.salt });
    engine.setSrtp(inB.id, { profile: 'AES_CM_128_HMAC_SHA1_80', localKey: fB.key, localSalt: fB.salt, remoteKey: kB.key, remoteSalt: kB.salt });
    const srcA = engine.addSource(inA.id, { ssrc: SHARED_SSRC, ssrcOffset: 0x5a5a0001, kind: 'video', clockRate: 90000 });
    const srcB = engine.addSource(inB.id, { ssrc: SHARED_SSRC, ssrcOffset: 0x13370002, kind: 'video', clockRate: 90000 });

    const out1Ep = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0, remoteAddress: '127.0.0.1', remotePort: recv1.port });
    const out2Ep = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0, remoteAddress: '127.0.0.1', remotePort: recv2.port });
    engine.setSrtp(out1Ep.id, { profile: 'AEAD_AES_128_GCM', localKey: k1.key, localSalt: k1.salt, remoteKey: k1.key, remoteSalt: k1.salt });
    engine.setSrtp(out2Ep.id, { profile: 'AES_CM_128_HMAC_SHA1_80', localKey: k2.key, localSalt: k2.salt, remoteKey: k2.key, remoteSalt: k2.salt });
    const out1 = engine.addOutput(out1Ep.id, { source: srcA, ssrc: 0xaaaa0001 });
    engine.addOutput(out2Ep.id, { source: srcA, ssrc: 0xbbbb0002 });

    const sessA = weriftSession('AEAD_AES_128_GCM', kA, fA);
    const sessB = weriftSession('AES_CM_128_HMAC_SHA1_80', kB, fB);
    // B's sequence numbers start near the wrap and its timestamps far from A's.
    let seqA = 500, tsA = 1000;
    let seqB = 65500, tsB = 4_294_000_000;
    let n = 0;
    const expected1: Buffer[] = [];
    const expected2: Buffer[] = [];
    let current: 'A' | 'B' = 'A';

    for (let phase = 0; phase <= SWITCHES; phase++) {
      const pktsA: Buffer[] = [];
      const pktsB: Buffer[] = [];
      for (let i = 0; i < PER_PHASE; i++) {
        const pa = rtpPacket({ ssrc: SHARED_SSRC, seq: seqA++, ts: (tsA += 3000), payload: payloadFor(n++, 300) });
        const pb = rtpPacket({ ssrc: SHARED_SSRC, seq: seqB++, ts: (tsB += 3000), payload: payloadFor(n++, 300) });
        pktsA.push(sessA.encrypt(pa.payload, pa.header));
        pktsB.push(sessB.encrypt(pb.payload, pb.header));
        (current === 'A' ? expected1 : expected1).push(current === 'A' ? pa.payload : pb.payload);
        expected2.push(pa.payload);
      }
      await sendPaced(senderA, pktsA, inA.port);
      await sendPaced(senderB, pktsB, inB.port);
      await recv1.waitFor(expected1.length);
      await recv2.waitFor(expected2.length);
      current = current === 'A' ? 'B' : 'A';
      engine.switchOutput(out1, current === 'A' ? srcA : srcB);
    }

    assert.is(recv1.received.length, expected1.length, 'output 1 got every packet of its current source');
    assert.is(recv2.received.length, expected2.length, 'output 2 got every packet of A');

    for (const [recv, keys, profile, expected, ssrc] of [
      [recv1, k1, 'AEAD_AES_128_GCM', expected1, 0xaaaa0001],
      [recv2, k2, 'AES_CM_128_HMAC_SHA1_80', expected2, 0xbbbb0002],
    ] as const) {
      const session = weriftSession(profile, keys, keys);
      let prev: RtpPacket | undefined;
      recv.received.forEach((raw, i) => {
        const p = RtpPacket.deSerialize(session.decrypt(raw));
        assert.is(p.header.ssrc, ssrc);
        assert.ok(p.payload.equals(expected[i]!), `payload ${i} is the expected source's`);
        if (prev) {
          assert.is(seqDelta(prev.header.sequenceNumber, p.header.sequenceNumber), 1, `seq +1 at ${i}`);
          assert.ok(tsForward(prev.header.timestamp, p.header.timestamp), `timestamp forward at ${i}`);
        }
        prev = p;
      });
    }
    const stats = engine.stats();
    for (const ep of stats.endpoints) {
      assert.is(ep.srtpAuthFailures, 0);
      assert.is(ep.txFailed, 0);
    }
  } finally {
    engine.close();
    for (const p of peers) await p.close();
  }
});

test('bad input is dropped and counted; forwarding goes on', async () => {
  const engine = new MediaEngine();
  const sender = await udpPeer();
  const sink = await udpPeer();
  try {
    const k = newKeys('AEAD_AES_128_GCM');
    const ingress = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0 });
    engine.setSrtp(ingress.id, { profile: 'AEAD_AES_128_GCM', localKey: k.key, localSalt: k.salt, remoteKey: k.key, remoteSalt: k.salt });
    const egress = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0, remoteAddress: '127.0.0.1', remotePort: sink.port });
    const src = engine.addSource(ingress.id, { ssrc: 42, kind: 'audio', clockRate: 48000 });
    engine.addOutput(egress.id, { source: src, ssrc: 43 });
    const session = weriftSession('AEAD_AES_128_GCM', k, k);

    const garbage: Buffer[] = [Buffer.alloc(0), Buffer.from([0x80]), Buffer.from([0x80, 0x60, 0, 1])];
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let i = 0; i < 500; i++) {
      const len = 1 + (rnd() * 5) % 1400;
      const b = Buffer.alloc(len);
      for (let k2 = 0; k2 < len; k2++) b[k2] = rnd();
      if (i % 3 === 0) b[0] = 0x80 | (b[0]! & 0x3f); // looks like RTP
      garbage.push(b);
    }
    // A valid packet, then its replay, then a tampered copy.
    const good = rtpPacket({ ssrc: 42, seq: 1, ts: 960, payload: payloadFor(1) });
    const enc = session.encrypt(good.payload, good.header);
    const tampered = Buffer.from(enc);
    tampered[tampered.length - 1] ^= 0x01;
    await sendPaced(sender, [...garbage, enc, enc, tampered], ingress.port);
    const afterGood = rtpPacket({ ssrc: 42, seq: 2, ts: 1920, payload: payloadFor(2) });
    await sendPaced(sender, [session.encrypt(afterGood.payload, afterGood.header)], ingress.port);
    const got = await sink.waitFor(2);
    assert.is(got.length, 2, 'valid packets still forwarded');
    const st = engine.stats().endpoints.find((e) => e.id === ingress.id)!;
    assert.ok(st.srtpReplays >= 1, 'replay counted');
    assert.ok(st.srtpAuthFailures >= 1, 'tampered packet counted');
    assert.is(st.rxPackets, garbage.length + 4);
    assert.is(engine.stats().workers[0]!.panics, 0);
  } finally {
    engine.close();
    await sender.close();
    await sink.close();
  }
});

test('closeEndpoint closes the socket before it returns and removes its routes', async () => {
  const engine = new MediaEngine();
  try {
    const ep = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0 });
    const src = engine.addSource(ep.id, { ssrc: 1, kind: 'audio', clockRate: 48000 });
    const out = engine.addOutput(ep.id, { source: src, ssrc: 2 });
    assert.is(engine.endpointCount(), 1);
    engine.closeEndpoint(ep.id);
    assert.is(engine.endpointCount(), 0);
    assert.throws(() => engine.removeSource(src), /no source/);
    assert.throws(() => engine.removeOutput(out), /no output/);
    // The port is free again at once.
    const s = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(ep.port, '127.0.0.1', () => resolve());
    });
    s.close();
    assert.throws(() => engine.closeEndpoint(ep.id), /no endpoint/);
  } finally {
    engine.close();
  }
});

test('invalid arguments are errors, not crashes', () => {
  const engine = new MediaEngine();
  try {
    assert.throws(() => engine.openEndpoint({ bindAddress: 'not-an-ip', port: 0 }), /invalid IP/);
    assert.throws(() => engine.openEndpoint({ bindAddress: '127.0.0.1', port: 70000 }), /invalid port/);
    const ep = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0 });
    assert.throws(
      () => engine.setSrtp(ep.id, { profile: 'AEAD_AES_128_GCM', localKey: Buffer.alloc(3), localSalt: Buffer.alloc(12), remoteKey: Buffer.alloc(16), remoteSalt: Buffer.alloc(12) }),
      /key/i,
    );
    assert.throws(() => engine.setSrtp(ep.id, { profile: 'NOPE' as never, localKey: Buffer.alloc(16), localSalt: Buffer.alloc(12), remoteKey: Buffer.alloc(16), remoteSalt: Buffer.alloc(12) }), /profile/);
    assert.throws(() => engine.addSource(ep.id, { ssrc: 1, kind: 'text' as never, clockRate: 1 }), /kind/);
    assert.throws(() => engine.addOutput(ep.id, { source: 999999, ssrc: 5 }), /no source/);
    assert.throws(() => engine.addSource(424242, { ssrc: 1, kind: 'audio', clockRate: 48000 }), /no endpoint/);
    engine.addSource(ep.id, { ssrc: 1, kind: 'audio', clockRate: 48000 });
    assert.throws(() => engine.addSource(ep.id, { ssrc: 1, kind: 'audio', clockRate: 48000 }), /already/);
    assert.throws(() => engine.addSource(ep.id, { ssrc: 2, kind: 'video', clockRate: 90000, codec: 'av1' as never }), /codec/);
    const vp8 = engine.addSource(ep.id, { ssrc: 3, kind: 'video', clockRate: 90000, codec: 'vp8' });
    const out = engine.addOutput(ep.id, { ssrc: 6 });
    engine.switchOutput(out, vp8, { onKeyframe: true }); // no current source: immediate
    assert.throws(() => engine.switchOutput(out, 999999, { onKeyframe: true }), /no source/);
  } finally {
    engine.close();
  }
  assert.throws(() => engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0 }), /closed/);
});

test.run();
