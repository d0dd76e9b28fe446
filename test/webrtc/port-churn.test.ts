// Port churn (lessons §5): 10^4 PeerConnections, each holding a port lease,
// created by a real offer through the Janus API and ended through every path
// — hangup, detach, session destroy, session timeout, transport gone — on a
// 50-port range. The range never runs out, the pool returns to full, and no
// ferry socket stays bound (/proc/net/udp).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack } from 'werift';

import { ManualClock } from '../../src/time/Clock.js';
import { JanusWs, type Json } from '../helpers/http.js';
import { startFerry, type TestFerry } from '../helpers/ferry.js';
import { closePeer, loopbackPeer } from '../helpers/werift.js';
import { boundUdpPorts } from '../helpers/udp.js';

const TOTAL = 10_000;
const PATHS = ['hangup', 'detach', 'destroy', 'timeout', 'transport-gone'] as const;
const WAVE = 40; // live PeerConnections at once: under the 50-port range
const RANGE = { rtp_port_min: 46000 + (process.pid % 50) * 60, rtp_port_max: 46000 + (process.pid % 50) * 60 + 49 };

async function staticOffer(): Promise<string> {
  const pc = loopbackPeer();
  pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
  pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendrecv' });
  await pc.setLocalDescription(await pc.createOffer());
  const sdp = pc.localDescription!.sdp;
  await closePeer(pc);
  return sdp;
}

interface Live {
  ws: JanusWs;
  session: number;
  handle: number;
}

async function openWave(f: TestFerry, sockets: JanusWs[], count: number, offer: string): Promise<Live[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const ws = sockets[i % sockets.length]!;
      const session = (await ws.request({ janus: 'create' }))['data'].id as number;
      const handle = (await ws.request({ janus: 'attach', session_id: session, plugin: 'janus.plugin.echotest' }))['data'].id as number;
      const ack = await ws.request({ janus: 'message', session_id: session, handle_id: handle, body: { audio: true }, jsep: { type: 'offer', sdp: offer } });
      assert.is(ack['janus'], 'ack', JSON.stringify(ack));
      await ws.nextEvent((e: Json) => e['sender'] === handle && e['janus'] === 'event' && e['jsep'] !== undefined, 10_000);
      return { ws, session, handle };
    }),
  );
}

test('10^4 PeerConnections through every ending path on a 50-port range', async () => {
  const clock = new ManualClock();
  const f = await startFerry({ media: RANGE, general: { session_timeout: 60 } }, undefined, clock);
  const offer = await staticOffer();
  let sockets = await Promise.all(Array.from({ length: 4 }, () => JanusWs.connect(f.wsUrl)));
  const perPath = TOTAL / PATHS.length;
  let created = 0;
  let maxLeased = 0;
  // Ports ferry itself held: a port some other process holds is skipped by the pool, never leased.
  const leasedPorts = new Set<number>();
  try {
    for (const path of PATHS) {
      for (let done = 0; done < perPath; done += WAVE) {
        const n = Math.min(WAVE, perPath - done);
        const live = await openWave(f, sockets, n, offer);
        created += n;
        maxLeased = Math.max(maxLeased, f.ferry.ports.leased);
        for (const l of f.ferry.ports.list()) leasedPorts.add(l.port);
        assert.is(f.ferry.ports.leased, n, `${path}: one lease per PeerConnection`);
        if (done === 0) {
          // The Admin API shows every lease with its owner while they are held.
          const st = await f.admin.post('', { janus: 'ferry_status', admin_secret: 'janusoverlord' });
          const pool = st['status'].port_pools[0];
          assert.is(pool.leased, n);
          assert.is(pool.free, 50 - n);
          assert.is(pool.range, `${RANGE.rtp_port_min}-${RANGE.rtp_port_max}`);
          assert.ok(pool.leases.every((l: Json) => /^session:\d+\/handle:\d+$/.test(String(l['owner']))));
        }
        switch (path) {
          case 'hangup':
            await Promise.all(live.map((l) => l.ws.request({ janus: 'hangup', session_id: l.session, handle_id: l.handle })));
            await Promise.all(live.map((l) => l.ws.request({ janus: 'destroy', session_id: l.session })));
            break;
          case 'detach':
            await Promise.all(live.map((l) => l.ws.request({ janus: 'detach', session_id: l.session, handle_id: l.handle })));
            await Promise.all(live.map((l) => l.ws.request({ janus: 'destroy', session_id: l.session })));
            break;
          case 'destroy':
            await Promise.all(live.map((l) => l.ws.request({ janus: 'destroy', session_id: l.session })));
            break;
          case 'timeout':
            clock.advance(61_000);
            break;
          case 'transport-gone':
            await Promise.all(sockets.map((s) => s.close()));
            await new Promise((r) => setTimeout(r, 20));
            sockets = await Promise.all(Array.from({ length: 4 }, () => JanusWs.connect(f.wsUrl)));
            break;
        }
        const end = Date.now() + 5000;
        while (f.ferry.ports.leased > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
        assert.is(f.ferry.ports.leased, 0, `${path}: every lease released`);
        for (const s of sockets) s.events.length = 0;
      }
    }
    assert.is(created, TOTAL);
    assert.ok(maxLeased <= 50);
    assert.is(f.ferry.ports.free, 50, 'pool back to full');
    assert.is(f.ferry.webrtc.count, 0);
    assert.is(f.ferry.engine.endpointCount(), 0);
    assert.is(f.ferry.gateway.registry.sessionCount, 0);
    const st = await f.admin.post('', { janus: 'ferry_status', admin_secret: 'janusoverlord' });
    assert.is(st['status'].port_leases, 0);
    assert.is(st['status'].native_endpoints, 0);
    assert.is(st['status'].peer_connections, 0);
    const metrics = await (await fetch(f.admin.base.replace(/\/admin$/, '/metrics'))).text();
    const allFree = f.ferry.ports.free + (f.ferry.sipPorts?.free ?? 0);
    assert.match(metrics, new RegExp(`^ferry_ports_free ${allFree}$`, 'm'), 'every pool back to full in /metrics');
    assert.match(metrics, /^ferry_port_leases 0$/m);
    const bound = boundUdpPorts({ pid: process.pid });
    assert.ok(leasedPorts.size > 0);
    for (const p of leasedPorts) assert.not.ok(bound.has(p), `port ${p} still bound`);
  } finally {
    await Promise.all(sockets.map((s) => s.close()));
    await f.stop();
  }
});

test.run();
