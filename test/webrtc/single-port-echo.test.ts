// Single-port mode, no crossed media: 100 werift PeerConnections to EchoTest, all on one UDP
// port per media thread, each sending audio packets tagged with its own number; each must get
// back exactly its own packets and never another's. Then all close and the shared ports route
// to nobody.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, RtpHeader, RtpPacket, type RTCPeerConnection } from 'werift';

import { JanusWs } from '../helpers/http.js';
import { startFerry } from '../helpers/ferry.js';
import { closePeer, connectionState, loopbackPeer } from '../helpers/werift.js';
import { freeUdpPorts } from '../helpers/udp.js';

const PEERS = 100;
/** Peers connecting at once (werift does its DTLS in this process). */
const AT_ONCE = 10;
const PACKETS = 20;


const tag = (peer: number, i: number) => Buffer.from(`peer:${peer}:packet:${i}:`.padEnd(80, '.'));

test(`${PEERS} EchoTest PeerConnections on one port per media thread: each gets back only its own packets`, async () => {
  const threads = Number(process.env['FERRY_MEDIA_WORKERS'] ?? 1);
  const ports = await freeUdpPorts(threads);
  // Slots: as many as the rtp range has ports (none of which is bound in single-port mode).
  const f = await startFerry({ media: { single_port: ports.join(','), workers: threads, rtp_port_min: 50_000, rtp_port_max: 50_199 } });
  const ws = await JanusWs.connect(f.wsUrl);
  const peers: RTCPeerConnection[] = [];
  try {
    const created = await ws.request({ janus: 'create' });
    const session = created['data'].id as number;
    const candidatePorts = new Set<number>();
    const crossed: string[] = [];
    let complete = 0;
    const run = async (n: number) => {
      const attached = await ws.request({ janus: 'attach', session_id: session, plugin: 'janus.plugin.echotest' });
      const handle = attached['data'].id as number;
      const pc = loopbackPeer();
      peers.push(pc);
      const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
      const got: Buffer[] = [];
      audio.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => got.push(rtp.payload)));
      await pc.setLocalDescription(await pc.createOffer());
      const answered = ws.nextEvent((e) => e['sender'] === handle && e['janus'] === 'event', 20_000);
      const reply = await ws.request({ janus: 'message', session_id: session, handle_id: handle, body: { audio: true, video: false }, jsep: { type: 'offer', sdp: pc.localDescription!.sdp } });
      // The event shares the request's transaction: when it overtakes the ack it is the reply.
      if (reply['janus'] === 'error') throw new Error(`peer ${n}: ${JSON.stringify(reply)}`);
      const event = reply['janus'] === 'event' ? reply : await answered;
      if (reply['janus'] === 'event') answered.catch(() => undefined);
      const answer = event['jsep'];
      if (!answer) throw new Error(`peer ${n}: no answer: ${JSON.stringify(event)}`);
      candidatePorts.add(Number(/a=candidate:\S+ 1 udp \d+ \S+ (\d+) typ host/.exec(answer.sdp)?.[1]));
      await pc.setRemoteDescription(answer);
      await connectionState(pc, 'connected', 15_000);
      for (let i = 0; i < PACKETS; i++) {
        const header = new RtpHeader({ payloadType: audio.sender.codec!.payloadType, sequenceNumber: i + 1, timestamp: i * 960 });
        await audio.sender.sendRtp(new RtpPacket(header, tag(n, i)));
        await new Promise((r) => setTimeout(r, 5));
      }
      const end = Date.now() + 10_000;
      while (got.length < PACKETS && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      for (const p of got) if (!p.toString().startsWith(`peer:${n}:`)) crossed.push(`peer ${n} got ${p.subarray(0, 20).toString()}`);
      if (got.length === PACKETS && got.every((p, i) => p.equals(tag(n, i)))) complete++;
    };
    for (let start = 0; start < PEERS; start += AT_ONCE) {
      await Promise.all(Array.from({ length: Math.min(AT_ONCE, PEERS - start) }, (_, k) => run(start + k)));
    }
    assert.equal(crossed, [], 'no packet reached another PeerConnection');
    assert.is(complete, PEERS, `every PeerConnection got its own ${PACKETS} packets back, in order`);
    assert.ok([...candidatePorts].every((p) => ports.includes(p)), `every answer named a shared port: ${[...candidatePorts]}`);
    const workers = f.ferry.engine.stats().workers;
    assert.is(workers.reduce((n, w) => n + w.sharedEndpoints, 0), PEERS, 'all on the shared ports');
    assert.is(f.ferry.ports.leased, 0, 'no port of the range leased');
    await ws.request({ janus: 'destroy', session_id: session });
    const end = Date.now() + 10_000;
    while (f.ferry.webrtc.count > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const after = f.ferry.engine.stats().workers;
    assert.equal(after.map((w) => [w.sharedEndpoints, w.sharedAddresses]), after.map(() => [0, 0]), 'nobody left on the shared ports');
    assert.is(f.ferry.leasedPorts(), 0, 'every slot released');
  } finally {
    for (const pc of peers) await closePeer(pc).catch(() => undefined);
    await ws.close();
    await f.stop();
  }
});

test.run();
