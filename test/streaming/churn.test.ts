// 10^3 viewers watch a live mountpoint and go, by every ending a viewer has — stop, hangup,
// detach, session destroy, kick_all, the mountpoint destroyed under them — pipelined over a few
// WebSocket connections, a handful of them fully connected with werift; then 10^2 mountpoints
// created and destroyed on a small port range. Afterwards viewers, PeerConnections, sessions and
// port leases are back to zero, and no socket of the range stays bound (/proc/net/udp).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RTCPeerConnection } from 'werift';

import { ferryStatus, mediaRange } from '../helpers/ferry.js';
import { JanusWs } from '../helpers/http.js';
import { boundUdpPorts } from '../helpers/udp.js';
import { JanusClient, ScriptedSender, closeAll, createMountpoint, startStreamingFerry, until, watch } from './harness.js';

const VIEWERS = 1000;
const CONNECTED = 10;
const CONCURRENT = 16;
const SOCKETS = 4;
const MOUNTPOINTS = 100;
const ENDINGS = ['stop', 'hangup', 'detach', 'destroy'] as const;

test(`${VIEWERS} viewers watch and go by every ending; ${MOUNTPOINTS} mountpoints come and go: nothing is left`, async () => {
  const base = mediaRange(50).rtp_port_min;
  const range = { rtp_port_min: base, rtp_port_max: base + 39 };
  const st = await startStreamingFerry({ media: range });
  const peers: RTCPeerConnection[] = [];
  let sender: ScriptedSender | null = null;
  const sockets: JanusWs[] = [];
  try {
    const admin = await JanusClient.open(st.f);
    const mp = await createMountpoint(admin);
    sender = await ScriptedSender.open(mp.videoPort, { ssrc: 7, tag: 'live' });
    sender.start(50);
    // A few real viewers: ICE, DTLS and media, then gone.
    for (let i = 0; i < CONNECTED; i++) {
      const v = await watch(st.f, mp.id, peers);
      assert.ok(await until(() => v.received.get('v')!.length > 0), 'media reaches a connected viewer');
      await v.client.close();
    }
    for (let i = 0; i < SOCKETS; i++) sockets.push(await JanusWs.connect(st.f.wsUrl));
    let done = 0;
    let next = 0;
    const one = async (n: number): Promise<void> => {
      const c = await JanusClient.open(st.f, undefined, sockets[n % SOCKETS]);
      const watched = await c.call({ request: 'watch', id: mp.id });
      assert.is(watched.jsep?.['type'], 'offer');
      const ending = ENDINGS[n % ENDINGS.length]!;
      const req = { session_id: c.sessionId, handle_id: c.handleId };
      if (ending === 'stop') await c.call({ request: 'stop' });
      else if (ending === 'hangup') await c.ws.request({ janus: 'hangup', ...req });
      else if (ending === 'detach') await c.ws.request({ janus: 'detach', ...req });
      await c.ws.request({ janus: 'destroy', session_id: c.sessionId });
      done++;
    };
    const workers = Array.from({ length: CONCURRENT }, async () => {
      while (next < VIEWERS - CONCURRENT) await one(next++);
    });
    await Promise.all(workers);
    // The last ones are still watching when every viewer is kicked, then the mountpoint destroyed.
    const last: JanusClient[] = [];
    for (let i = 0; i < CONCURRENT; i++) {
      const c = await JanusClient.open(st.f, undefined, sockets[i % SOCKETS]);
      await c.call({ request: 'watch', id: mp.id });
      last.push(c);
    }
    assert.is(st.plugin.stats().viewers, CONCURRENT);
    assert.equal(await admin.sync({ request: 'kick_all', id: mp.id }), { streaming: 'kicked_all' });
    assert.is(st.plugin.stats().viewers, 0, 'kick_all');
    for (const c of last.slice(0, CONCURRENT / 2)) await c.call({ request: 'watch', id: mp.id });
    assert.equal(await admin.sync({ request: 'destroy', id: mp.id }), { streaming: 'destroyed', id: mp.id });
    for (const c of last) await c.ws.request({ janus: 'destroy', session_id: c.sessionId });
    done += last.length;
    assert.is(done, VIEWERS);
    // Mountpoints come and go on a 40-port range: no port is kept.
    for (let i = 0; i < MOUNTPOINTS; i++) {
      const m = await createMountpoint(admin);
      const d = await admin.sync({ request: 'destroy', id: m.id });
      assert.is(d['streaming'], 'destroyed', `mountpoint ${i}`);
    }
    await admin.close();
    assert.ok(await until(() => st.f.ferry.webrtc.count === 0 && st.f.ferry.gateway.registry.sessionCount === 0, 10_000), 'every PeerConnection and session ended');
    const status = await ferryStatus(st.f);
    assert.equal([status['sessions'], status['handles'], status['peer_connections'], status['port_leases'], status['native_endpoints']], [0, 0, 0, 0, 0], JSON.stringify(status));
    assert.equal(st.plugin.stats(), { mountpoints: 0, viewers: 0, legs: 0, handles: 0 });
    // This process's own sockets next: the test's werift viewers and sender share it, and an
    // ephemeral port of theirs may fall in the range. Once they are closed, any socket of the
    // range in this process is ferry's.
    await sender.close();
    sender = null;
    await closeAll(peers.splice(0));
    const inRange = () => [...boundUdpPorts({ pid: process.pid })].filter((p) => p >= range.rtp_port_min && p <= range.rtp_port_max);
    await until(() => inRange().length === 0, 2000);
    assert.equal(inRange(), [], 'no socket of the range stays bound');
  } finally {
    await sender?.close();
    for (const s of sockets) await s.close();
    await closeAll(peers);
    await st.stop();
  }
});

test.run();
