// Routes that cross media threads, with placement forced: publishers' endpoints on thread 0
// (and 1), subscribers' on thread 1. The source's thread decrypts once and hands each packet to
// the subscribers' thread, which re-encrypts per output; receivers decrypt with werift-rtp.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { MediaEngine } from '../../src/media/MediaEngine.js';
import type { NativeEngineCounters } from '../../src/media/native.js';
import { newKeys, payloadFor, rtpPacket, RtpPacket, seqDelta, tsForward, weriftSession, type KeyPair } from '../helpers/rtp.js';
import { sendPaced, udpPeer, type UdpPeer } from '../helpers/udp.js';

const GCM = 'AEAD_AES_128_GCM';
const SWITCHES = 100;
const PER_PHASE = 12;


interface Publisher {
  endpoint: number;
  port: number;
  source: number;
  session: ReturnType<typeof weriftSession>;
  seq: number;
  ts: number;
}

/** A publisher endpoint with SRTP on `worker`, one video source of `ssrc`. */
function openPublisher(engine: MediaEngine, worker: number, ssrc: number, seq: number, ts: number): Publisher {
  const theirs = newKeys(GCM);
  const ours = newKeys(GCM);
  const ep = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0, worker });
  engine.setSrtp(ep.id, { profile: GCM, localKey: ours.key, localSalt: ours.salt, remoteKey: theirs.key, remoteSalt: theirs.salt });
  const source = engine.addSource(ep.id, { ssrc, kind: 'video', clockRate: 90000 });
  return { endpoint: ep.id, port: ep.port, source, session: weriftSession(GCM, theirs, ours), seq, ts };
}

/** A subscriber endpoint with SRTP on `worker`, sending to `recv`. */
function openSubscriber(engine: MediaEngine, worker: number, recv: UdpPeer): { endpoint: number; keys: KeyPair } {
  const keys = newKeys(GCM);
  const ep = engine.openEndpoint({ bindAddress: '127.0.0.1', port: 0, worker, remoteAddress: '127.0.0.1', remotePort: recv.port });
  engine.setSrtp(ep.id, { profile: GCM, localKey: keys.key, localSalt: keys.salt, remoteKey: keys.key, remoteSalt: keys.salt });
  return { endpoint: ep.id, keys };
}

function threadTotals(stats: NativeEngineCounters) {
  return stats.workers.map((w) => ({ remoteFeeds: w.remoteFeeds, subscriptions: w.subscriptions, queueDepth: w.queueDepth, inUse: w.sharedBuffersInUse }));
}

test('publisher on thread 0, subscribers on thread 1: continuous, decryptable; 100 switches between publishers on different threads', async () => {
  const engine = new MediaEngine({ workers: 2 });
  const peers: UdpPeer[] = [];
  try {
    assert.is(engine.workerCount, 2);
    const senderA = await udpPeer();
    const senderB = await udpPeer();
    const recvs = [await udpPeer(), await udpPeer(), await udpPeer()];
    peers.push(senderA, senderB, ...recvs);
    // A on thread 0; B on thread 1 and near the sequence wrap, its timestamps far from A's.
    const pubA = openPublisher(engine, 0, 0x1111, 100, 1000);
    const pubB = openPublisher(engine, 1, 0x2222, 65_530, 4_294_000_000);
    const subs = recvs.map((r) => openSubscriber(engine, 1, r));
    assert.is(engine.endpointWorker(pubA.endpoint), 0);
    assert.is(engine.endpointWorker(subs[0]!.endpoint), 1);
    const switching = engine.addOutput(subs[0]!.endpoint, { source: pubA.source, ssrc: 0xaaaa0001 });
    engine.addOutput(subs[1]!.endpoint, { source: pubA.source, ssrc: 0xaaaa0002 });
    engine.addOutput(subs[2]!.endpoint, { source: pubA.source, ssrc: 0xaaaa0003 });

    const expected: Buffer[][] = [[], [], []];
    let current: 'A' | 'B' = 'A';
    for (let phase = 0; phase <= SWITCHES; phase++) {
      // The switching output hears the current publisher; the others always A.
      const fromA: Buffer[] = [];
      const fromB: Buffer[] = [];
      for (let i = 0; i < PER_PHASE; i++) {
        for (const [pub, list] of [[pubA, fromA], [pubB, fromB]] as const) {
          const pkt = rtpPacket({ ssrc: pub === pubA ? 0x1111 : 0x2222, seq: pub.seq & 0xffff, ts: pub.ts, payload: payloadFor(phase * 100 + i + (pub === pubA ? 0 : 50), 400) });
          pub.seq++;
          pub.ts = (pub.ts + 3000) >>> 0;
          list.push(pub.session.encrypt(pkt.payload, pkt.header));
          if (pub === pubA) {
            expected[1]!.push(pkt.payload);
            expected[2]!.push(pkt.payload);
          }
          if ((current === 'A') === (pub === pubA)) expected[0]!.push(pkt.payload);
        }
      }
      await sendPaced(senderA, fromA, pubA.port);
      await sendPaced(senderB, fromB, pubB.port);
      for (let r = 0; r < recvs.length; r++) await recvs[r]!.waitFor(expected[r]!.length);
      current = current === 'A' ? 'B' : 'A';
      engine.switchOutput(switching, current === 'A' ? pubA.source : pubB.source);
    }

    const stats = engine.stats();
    for (let r = 0; r < recvs.length; r++) {
      const recv = recvs[r]!;
      assert.is(recv.received.length, expected[r]!.length, `subscriber ${r} got every packet`);
      const session = weriftSession(GCM, subs[r]!.keys, subs[r]!.keys);
      let prev: RtpPacket | undefined;
      recv.received.forEach((raw, i) => {
        const p = RtpPacket.deSerialize(session.decrypt(raw));
        assert.ok(p.payload.equals(expected[r]![i]!), `subscriber ${r}: packet ${i} is the expected one`);
        if (prev) {
          assert.is(seqDelta(prev.header.sequenceNumber, p.header.sequenceNumber), 1, `subscriber ${r}: seq +1 at ${i}`);
          assert.ok(tsForward(prev.header.timestamp, p.header.timestamp), `subscriber ${r}: timestamp forward at ${i}`);
        }
        prev = p;
      });
    }
    assert.ok(stats.workers[0]!.crossSent > 0, 'thread 0 handed packets over');
    assert.ok(stats.workers[1]!.crossReceived > 0, 'thread 1 received them');
    assert.is(stats.workers[0]!.queueOverflows + stats.workers[1]!.queueOverflows, 0);
    for (const out of stats.outputs) {
      assert.is(out.worker, 1);
      assert.is(out.queueDrops, 0);
    }
    for (const ep of stats.endpoints) assert.is(ep.srtpAuthFailures, 0);
    assert.ok(stats.workers.every((w) => w.panics === 0));
  } finally {
    engine.close();
    for (const p of peers) await p.close();
  }
});

test('churn on 2 threads: 10^3 subscribers join and leave across threads while media flows; nothing is left behind', async () => {
  const engine = new MediaEngine({ workers: 2 });
  const sender = await udpPeer();
  const sink = await udpPeer();
  let sending = true;
  try {
    const pubs = [openPublisher(engine, 0, 0x3333, 1, 0), openPublisher(engine, 1, 0x4444, 1, 0)];
    // Media flows the whole time, so hand-overs are in flight while routes come and go.
    const flow = (async () => {
      for (let round = 0; sending && round < 20_000; round++) {
        for (const pub of pubs) {
          const pkt = rtpPacket({ ssrc: pub === pubs[0] ? 0x3333 : 0x4444, seq: pub.seq++ & 0xffff, ts: (pub.ts = (pub.ts + 3000) >>> 0), payload: payloadFor(round, 200) });
          await sender.send(pub.session.encrypt(pkt.payload, pkt.header), pub.port);
        }
        if (round % 10 === 9) await new Promise((r) => setTimeout(r, 1));
      }
    })();
    // A window of 20 live subscribers slides over 10^3: each lives while ~20 others join.
    const live: { endpoint: number; output: number; i: number }[] = [];
    const leave = (s: { endpoint: number; output: number; i: number }) => {
      if (s.i % 5 === 0) engine.removeOutput(s.output); // explicit removal, then the endpoint
      engine.closeEndpoint(s.endpoint);
    };
    for (let i = 0; i < 1000; i++) {
      const sub = openSubscriber(engine, i % 2, sink);
      const output = engine.addOutput(sub.endpoint, { source: pubs[i % 3 === 0 ? 0 : 1]!.source, ssrc: 0x10000 + i });
      if (i % 4 === 0) engine.switchOutput(output, pubs[(i >> 2) % 2]!.source, { onKeyframe: i % 8 === 0 });
      live.push({ endpoint: sub.endpoint, output, i });
      if (live.length > 20) leave(live.shift()!);
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 2));
    }
    for (const s of live.splice(0)) leave(s);
    sending = false;
    await flow;
    // Let what is in flight drain (bounded).
    let stats = engine.stats();
    for (let i = 0; i < 50 && threadTotals(stats).some((t) => t.remoteFeeds || t.subscriptions || t.queueDepth || t.inUse); i++) {
      await new Promise((r) => setTimeout(r, 20));
      stats = engine.stats();
    }
    assert.ok(sink.received.length > 0, 'subscribers received media during the churn');
    assert.is(stats.outputs.length, 0, 'no output left');
    assert.is(stats.endpoints.length, 2, 'only the publishers remain');
    assert.equal(threadTotals(stats), [
      { remoteFeeds: 0, subscriptions: 0, queueDepth: 0, inUse: 0 },
      { remoteFeeds: 0, subscriptions: 0, queueDepth: 0, inUse: 0 },
    ]);
    assert.ok(stats.workers[0]!.crossSent + stats.workers[1]!.crossSent > 0, 'routes crossed threads');
    for (const pub of pubs) engine.closeEndpoint(pub.endpoint);
    stats = engine.stats();
    assert.is(stats.endpoints.length, 0);
    assert.is(stats.sources.length, 0);
    assert.ok(stats.workers.every((w) => w.panics === 0));
  } finally {
    sending = false;
    engine.close();
    await sender.close();
    await sink.close();
  }
});

test.run();
