/**
 * A client without credentials floods ferry (bounded loops, as fast as it
 * can): sessions, EchoTest offers on every handle it can attach (each would
 * lease a media port), VideoRoom rooms, and sessions again to drain its
 * creation bucket. It is refused at each quota with the Janus error naming
 * the limit, holds no more ports than its PeerConnection quota (no port is
 * leased for a refused offer), while a second client (from 127.0.0.2) still
 * negotiates with a werift peer and gets its media echoed. Afterwards every
 * count in Admin `ferry_status` is zero and /metrics counted each refusal.
 *
 * The gateway runs on a manual clock, so the creation bucket refills only
 * when the test says: no wall-clock threshold anywhere.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, RtpHeader, RtpPacket } from 'werift';
import { ManualClock } from '../../src/time/Clock.js';
import { JanusWs, type Json } from '../helpers/http.js';
import { ferryStatus, startFerry, waitUntilIdle } from '../helpers/ferry.js';
import { closePeer, connectionState, loopbackPeer } from '../helpers/werift.js';

const QUOTAS = {
  session_create_rate: 1,
  session_create_burst: 8,
  sessions_per_client: 4,
  peer_connections_per_client: 6,
  rooms_per_client: 2,
  max_rooms: 100,
};
const FLOOD_CREATES = 40;
const HANDLES_PER_SESSION = 10;
const FLOOD_ROOMS = 10;
const PACKETS = 50;

function metric(text: string, limit: string): number {
  const m = new RegExp(`^ferry_quota_refusals_total\\{limit="${limit}"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

test('a flooding client is held at its quotas while another one negotiates and gets media; all counts return to zero', async () => {
  const clock = new ManualClock();
  const f = await startFerry({ quotas: QUOTAS }, undefined, clock);
  const rangeSize = f.config.media.rtp_port_max - f.config.media.rtp_port_min + 1;
  const offerPeer = loopbackPeer();
  const pc = loopbackPeer();
  let ws: JanusWs | undefined;
  try {
    // One valid offer, sent to every handle the flooder has: each accepted one would lease a port.
    offerPeer.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
    await offerPeer.setLocalDescription(await offerPeer.createOffer());
    const floodOffer = { type: 'offer', sdp: offerPeer.localDescription!.sdp };

    // 1. Sessions at full speed.
    const sessions: number[] = [];
    const sessionCodes: number[] = [];
    for (let i = 0; i < FLOOD_CREATES; i++) {
      const r = await f.http.post('', { janus: 'create' });
      if (r['janus'] === 'success') sessions.push(r['data'].id);
      else {
        sessionCodes.push(r['error'].code);
        assert.match(r['error'].reason, /sessions_per_client = 4/);
      }
    }
    assert.is(sessions.length, QUOTAS.sessions_per_client);
    assert.ok(sessionCodes.every((c) => c === 472), JSON.stringify(sessionCodes));

    // 2. Every port: an offer on every handle of every session.
    let accepted = 0;
    let refusedPcs = 0;
    for (const sid of sessions) {
      for (let h = 0; h < HANDLES_PER_SESSION; h++) {
        const hid = await f.http.attach(sid, 'janus.plugin.echotest');
        const r = await f.http.post(`/${sid}/${hid}`, { janus: 'message', body: { audio: true }, jsep: floodOffer });
        if (r['janus'] === 'ack') accepted++;
        else {
          assert.is(r['error']?.code, 490, JSON.stringify(r));
          assert.match(r['error'].reason, /peer_connections_per_client = 6/);
          refusedPcs++;
        }
      }
    }
    assert.is(accepted, QUOTAS.peer_connections_per_client);
    assert.is(refusedPcs, sessions.length * HANDLES_PER_SESSION - QUOTAS.peer_connections_per_client);
    assert.is(f.ferry.leasedPorts(), QUOTAS.peer_connections_per_client, 'no port leased for a refused offer');
    assert.ok(f.ferry.ports.free >= rangeSize - QUOTAS.peer_connections_per_client);

    // 3. Rooms.
    const vr = await f.http.attach(sessions[0]!, 'janus.plugin.videoroom');
    const rooms: number[] = [];
    for (let i = 0; i < FLOOD_ROOMS; i++) {
      const r = await f.http.post(`/${sessions[0]}/${vr}`, { janus: 'message', body: { request: 'create', description: `flood ${i}` } });
      const data = r['plugindata'].data as Json;
      if (data['videoroom'] === 'created') rooms.push(data['room']);
      else {
        assert.is(data['error_code'], 433, JSON.stringify(data));
        assert.match(data['error'], /rooms_per_client = 2/);
      }
    }
    assert.is(rooms.length, QUOTAS.rooms_per_client);

    // 4. Meanwhile a second client (another address) negotiates and gets media through EchoTest.
    ws = await JanusWs.connect(f.wsUrl, 'janus-protocol', { localAddress: '127.0.0.2' });
    const created = await ws.request({ janus: 'create' });
    assert.is(created['janus'], 'success', JSON.stringify(created));
    const session = created['data'].id as number;
    const handle = (await ws.request({ janus: 'attach', session_id: session, plugin: 'janus.plugin.echotest' }))['data'].id as number;
    const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
    const received: Buffer[] = [];
    audio.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => received.push(rtp.payload)));
    await pc.setLocalDescription(await pc.createOffer());
    const ack = await ws.request({ janus: 'message', session_id: session, handle_id: handle, body: { audio: true }, jsep: { type: 'offer', sdp: pc.localDescription!.sdp } });
    assert.is(ack['janus'], 'ack', JSON.stringify(ack));
    const answer = await ws.nextEvent((e) => e['janus'] === 'event' && e['jsep'] !== undefined, 10_000);
    await pc.setRemoteDescription(answer['jsep']);
    await connectionState(pc, 'connected');
    await ws.nextEvent((e) => e['janus'] === 'webrtcup', 10_000);
    const sender = audio.sender;
    for (let i = 0; i < PACKETS; i++) {
      const payload = Buffer.alloc(100, i);
      await sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType: sender.codec!.payloadType, sequenceNumber: i + 1, timestamp: i * 960 }), payload));
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 10));
    }
    for (let waited = 0; received.length < PACKETS && waited < 100; waited++) await new Promise((r) => setTimeout(r, 50));
    assert.is(received.length, PACKETS, 'the second client gets its media echoed');
    received.forEach((p, i) => assert.ok(p.equals(Buffer.alloc(100, i)), `payload ${i} intact`));
    // Its own room quota too.
    const vr2 = (await ws.request({ janus: 'attach', session_id: session, plugin: 'janus.plugin.videoroom' }))['data'].id as number;
    const own = await ws.request({ janus: 'message', session_id: session, handle_id: vr2, body: { request: 'create' } });
    const ownRoom = own['plugindata'].data as Json;
    assert.is(ownRoom['videoroom'], 'created', JSON.stringify(ownRoom));

    let status = await ferryStatus(f);
    assert.is(status['quotas'].clients, 2);
    assert.is(status['quotas'].peer_connections, QUOTAS.peer_connections_per_client + 1);
    assert.is(status['port_leases'], QUOTAS.peer_connections_per_client + 1);

    // 5. The flooder lets go, then drains its creation bucket: 8 tokens, 4 spent above.
    for (const room of rooms) {
      const r = await f.http.post(`/${sessions[0]}/${vr}`, { janus: 'message', body: { request: 'destroy', room } });
      assert.is(r['plugindata'].data['videoroom'], 'destroyed');
    }
    for (const sid of sessions) await f.http.post(`/${sid}`, { janus: 'destroy' });
    const again: Array<number | 'ok'> = [];
    for (let i = 0; i < 10; i++) {
      const r = await f.http.post('', { janus: 'create' });
      if (r['janus'] === 'success') {
        again.push('ok');
        await f.http.post(`/${r['data'].id}`, { janus: 'destroy' });
      } else {
        assert.match(r['error'].reason, /session_create_rate = 1/);
        again.push(r['error'].code);
      }
    }
    assert.equal(again, ['ok', 'ok', 'ok', 'ok', 472, 472, 472, 472, 472, 472]);
    clock.advance(1000); // one token a second
    const refilled = await f.http.post('', { janus: 'create' });
    assert.is(refilled['janus'], 'success');
    await f.http.post(`/${refilled['data'].id}`, { janus: 'destroy' });

    // 6. The second client leaves too; everything is back to zero.
    const destroyed = await ws.request({ janus: 'message', session_id: session, handle_id: vr2, body: { request: 'destroy', room: ownRoom['room'] } });
    assert.is(destroyed['plugindata'].data['videoroom'], 'destroyed');
    await ws.request({ janus: 'destroy', session_id: session });
    status = await waitUntilIdle(f);
    clock.advance(60_000); // buckets refill and are forgotten
    status = await ferryStatus(f);
    assert.is(status['sessions'], 0);
    assert.is(status['peer_connections'], 0);
    assert.is(status['port_leases'], 0);
    assert.equal(status['quotas'], { clients: 0, sessions: 0, peer_connections: 0, rooms: 0, rate_buckets: 0 });

    const metrics = await (await fetch(`${new URL(f.admin.base).origin}${f.config.metrics.path}`)).text();
    assert.is(metric(metrics, 'sessions_per_client'), FLOOD_CREATES - QUOTAS.sessions_per_client);
    assert.is(metric(metrics, 'peer_connections_per_client'), refusedPcs);
    assert.is(metric(metrics, 'rooms_per_client'), FLOOD_ROOMS - QUOTAS.rooms_per_client);
    assert.is(metric(metrics, 'session_create_rate'), 6);
  } finally {
    await ws?.close();
    await closePeer(pc);
    await closePeer(offerPeer);
    await f.stop();
  }
});

test.run();
