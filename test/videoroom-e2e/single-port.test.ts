// Single-port mode (media.single_port): every PeerConnection of a media thread shares one UDP
// port. A werift publisher and three werift subscribers all connect to the same port, media
// reaches every subscriber intact, the leases are slots (no port each), and after the
// PeerConnections close, and after a churn of 100 more, no slot or endpoint is left while the
// port stays up for the next.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RTCPeerConnection } from 'werift';

import { VrClient, closeAll, payload, pause, publish, sendRtp, startVrFerry, subscribe, until, type WeriftSubscriber } from './harness.js';
import { freeUdpPorts } from '../helpers/udp.js';


const candidatePort = (sdp: string) => Number(/a=candidate:\S+ 1 udp \d+ \S+ (\d+) typ host/.exec(sdp)?.[1]);

test('a publisher and three subscribers share one port per media thread; media flows; slots and endpoints return to zero after churn', async () => {
  // One port per media thread (the suite may run with FERRY_MEDIA_WORKERS=2).
  const threads = Number(process.env['FERRY_MEDIA_WORKERS'] ?? 1);
  const ports = await freeUdpPorts(threads);
  const vr = await startVrFerry({ media: { single_port: ports.join(','), workers: threads } });
  const peers: RTCPeerConnection[] = [];
  try {
    const admin = await VrClient.open(vr.f);
    await admin.sync({ request: 'create', room: 9, publishers: 2 });
    const pub = await publish(vr.f, 9, 'one-port', peers);
    assert.ok(ports.includes(candidatePort(pub.answer)), 'the publisher is told a shared port');
    const subs: WeriftSubscriber[] = [];
    for (let i = 0; i < 3; i++) subs.push(await subscribe(vr.f, 9, [{ feed: pub.id }], peers));
    for (const s of subs) assert.ok(ports.includes(candidatePort(s.pc.remoteDescription!.sdp)), 'and every subscriber too');
    const PACKETS = 100;
    for (let i = 0; i < PACKETS; i++) {
      await sendRtp(pub.audio, 10 + i, i * 960, payload('audio', i, 120));
      await sendRtp(pub.video, 20 + i, i * 3000, payload('video', i, 900), true);
      if (i % 10 === 9) await pause(10);
    }
    const done = await until(() => subs.every((s) => s.received.get('0')!.length >= PACKETS && s.received.get('1')!.length >= PACKETS), 10_000);
    assert.ok(done, `every subscriber got everything: ${subs.map((s) => `${s.received.get('0')!.length}/${s.received.get('1')!.length}`).join(' ')}`);
    for (const s of subs) {
      assert.is(s.decryptFailures(), 0);
      s.received.get('1')!.forEach((p, i) => assert.ok(p.payload.equals(payload('video', i, 900)), `video packet ${i} intact`));
    }
    const workers = vr.f.ferry.engine.stats().workers;
    assert.equal(workers.map((w) => w.sharedPort), ports, 'each media thread on its port');
    assert.is(workers.reduce((n, w) => n + w.sharedEndpoints, 0), 4, 'four PeerConnections on the shared ports');
    assert.is(vr.f.ferry.ports.leased, 0, 'no port of the rtp range leased');
    assert.is(vr.f.ferry.leasedPorts(), 4, 'four slots');

    for (const s of subs) await s.client.close();
    await pub.client.close();
    assert.ok(await until(() => vr.f.ferry.webrtc.count === 0), 'every PeerConnection closed');
    assert.is(vr.f.ferry.leasedPorts(), 0, 'every slot released');

    // Churn: PeerConnections come and go on the one port; nothing is left behind.
    for (let round = 0; round < 10; round++) {
      const batch: RTCPeerConnection[] = [];
      const clients: VrClient[] = [];
      for (let i = 0; i < 10; i++) {
        const p = await publish(vr.f, 9, `churn-${round}-${i}`, batch).catch(() => null);
        if (p) clients.push(p.client);
        // Two publishers at most in room 9: leave before the next joins.
        if (p) await p.client.close();
      }
      await closeAll(batch);
      assert.ok(clients.length === 10, `round ${round}: every publisher connected (${clients.length})`);
    }
    assert.ok(await until(() => vr.f.ferry.webrtc.count === 0 && vr.f.ferry.leasedPorts() === 0, 5000), `slots back to zero (${vr.f.ferry.leasedPorts()})`);
    for (const after of vr.f.ferry.engine.stats().workers) {
      assert.equal([after.sharedEndpoints, after.sharedAddresses, after.endpoints], [0, 0, 0], 'the shared port routes to nobody');
    }
    assert.equal(vr.f.ferry.engine.stats().workers.map((w) => w.sharedPort), ports, 'and the ports stay up');
    await admin.close();
  } finally {
    await closeAll(peers);
    await vr.stop();
  }
});

test.run();
