// Interop of ferry's SRTP (through the real engine and N-API) with werift-rtp,
// an independent implementation: werift protects → ferry unprotects, and
// ferry protects → werift unprotects, for every profile werift supports.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { MediaEngine, type SrtpProfileName } from '../../src/media/MediaEngine.js';
import { newKeys, payloadFor, rtpPacket, RtpPacket, weriftSession, WERIFT_PROFILES, type KeyPair } from '../helpers/rtp.js';
import { sendPaced, udpPeer, type UdpPeer } from '../helpers/udp.js';

const COUNT = 300;

/** Runs `body` with an engine, a UDP peer to send to it and one to receive from it; closes all three. */
async function withEngine(body: (engine: MediaEngine, sender: UdpPeer, receiver: UdpPeer) => Promise<void>): Promise<void> {
  const engine = new MediaEngine();
  const sender = await udpPeer();
  const receiver = await udpPeer();
  try {
    await body(engine, sender, receiver);
  } finally {
    engine.close();
    await sender.close();
    await receiver.close();
  }
}

/** SRTP keys of an endpoint whose peer is werift: ferry sends with its own, receives with werift's. */
function withWerift(profile: SrtpProfileName, ferryKeys: KeyPair, weriftKeys: KeyPair): Parameters<MediaEngine['setSrtp']>[1] {
  return { profile, localKey: ferryKeys.key, localSalt: ferryKeys.salt, remoteKey: weriftKeys.key, remoteSalt: weriftKeys.salt };
}

for (const profile of Object.keys(WERIFT_PROFILES) as SrtpProfileName[]) {
  test(`werift protects, ferry unprotects (${profile})`, () =>
    withEngine(async (engine, sender, sink) => {
      const weriftKeys = newKeys(profile);
      const ferryKeys = newKeys(profile);
      // Ingress endpoint: SRTP from werift. Egress endpoint: plain RTP to the sink.
      const ingress = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0 });
      engine.setSrtp(ingress.id, withWerift(profile, ferryKeys, weriftKeys));
      const egress = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0, remoteAddress: '127.0.0.1', remotePort: sink.port });
      const source = engine.addSource(ingress.id, { ssrc: 0x11223344, kind: 'video', clockRate: 90000 });
      engine.addOutput(egress.id, { source, ssrc: 0x11223344 });

      const session = weriftSession(profile, weriftKeys, ferryKeys);
      const plain: RtpPacket[] = [];
      const packets: Buffer[] = [];
      for (let i = 0; i < COUNT; i++) {
        const p = rtpPacket({ ssrc: 0x11223344, seq: 100 + i, ts: 3000 * i, payload: payloadFor(i, 200 + (i % 900)) });
        plain.push(p);
        packets.push(session.encrypt(p.payload, p.header));
      }
      await sendPaced(sender, packets, ingress.port);
      const got = await sink.waitFor(COUNT);
      assert.is(got.length, COUNT, 'every packet decrypted and forwarded');
      for (let i = 0; i < COUNT; i++) {
        const rx = RtpPacket.deSerialize(got[i]!);
        assert.ok(rx.payload.equals(plain[i]!.payload), `payload ${i} intact`);
        assert.is(rx.header.ssrc, 0x11223344);
      }
      const stats = engine.stats().endpoints.find((e) => e.id === ingress.id)!;
      assert.is(stats.srtpAuthFailures, 0);
    }));

  test(`ferry protects, werift unprotects (${profile})`, () =>
    withEngine(async (engine, sender, receiver) => {
      const weriftKeys = newKeys(profile);
      const ferryKeys = newKeys(profile);
      const ingress = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0 });
      const egress = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0, remoteAddress: '127.0.0.1', remotePort: receiver.port });
      engine.setSrtp(egress.id, withWerift(profile, ferryKeys, weriftKeys));
      const source = engine.addSource(ingress.id, { ssrc: 5555, kind: 'audio', clockRate: 48000 });
      engine.addOutput(egress.id, { source, ssrc: 7777, payloadType: 111 });

      const plain: RtpPacket[] = [];
      for (let i = 0; i < COUNT; i++) {
        plain.push(rtpPacket({ ssrc: 5555, seq: 10 + i, ts: 960 * i, pt: 100, payload: payloadFor(i, 100 + (i % 1000)) }));
      }
      await sendPaced(sender, plain.map((p) => p.serialize()), ingress.port);
      const got = await receiver.waitFor(COUNT);
      assert.is(got.length, COUNT);
      const session = weriftSession(profile, weriftKeys, ferryKeys);
      for (let i = 0; i < COUNT; i++) {
        const dec = RtpPacket.deSerialize(session.decrypt(got[i]!));
        assert.ok(dec.payload.equals(plain[i]!.payload), `payload ${i} intact`);
        assert.is(dec.header.ssrc, 7777, 'output SSRC written');
        assert.is(dec.header.payloadType, 111, 'output payload type written');
      }
    }));
}

test.run();
