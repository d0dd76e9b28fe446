// slowlink (Janus): a werift receiver that loses packets reports it in its
// RTCP receiver reports (RFC 3550 §6.4.2); ferry turns that into a `slowlink`
// event with uplink=false for the m-line. A lossless receiver causes none.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, RtpHeader, RtpPacket } from 'werift';

import { JanusWs, type Json } from '../helpers/http.js';
import { startFerry } from '../helpers/ferry.js';
import { closePeer, connectionState, loopbackPeer } from '../helpers/werift.js';

async function echoFor(ms: number, inboundLossPercent: number, skipEvery = 0): Promise<Json[]> {
  const f = await startFerry();
  // werift's debug knob keeps a packet when loss/100 >= Math.random(): 60 keeps ~60 %.
  const pc = loopbackPeer(inboundLossPercent ? { debug: { inboundPacketLoss: 100 - inboundLossPercent } } : {});
  const ws = await JanusWs.connect(f.wsUrl);
  try {
    const session = (await ws.request({ janus: 'create' }))['data'].id as number;
    const handle = (await ws.request({ janus: 'attach', session_id: session, plugin: 'janus.plugin.echotest' }))['data'].id as number;
    const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
    await pc.setLocalDescription(await pc.createOffer());
    await ws.request({ janus: 'message', session_id: session, handle_id: handle, body: { audio: true }, jsep: { type: 'offer', sdp: pc.localDescription!.sdp } });
    const ev = await ws.nextEvent((e) => e['janus'] === 'event' && e['jsep']);
    await pc.setRemoteDescription(ev['jsep']);
    await connectionState(pc, 'connected');
    await ws.nextEvent((e) => e['janus'] === 'webrtcup');
    const end = Date.now() + ms;
    for (let i = 0; Date.now() < end; i++) {
      // A sequence number skipped is a packet lost on the way to ferry (its uplink).
      if (skipEvery && i % skipEvery === skipEvery - 1) continue;
      const header = new RtpHeader({ payloadType: audio.sender.codec!.payloadType, sequenceNumber: (i + 1) & 0xffff, timestamp: i * 960 });
      await audio.sender.sendRtp(new RtpPacket(header, Buffer.alloc(100, i & 0xff)));
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 1600)); // one more receiver-report interval
    return ws.events.filter((e) => e['janus'] === 'slowlink');
  } finally {
    await ws.close();
    await closePeer(pc);
    await f.stop();
  }
}

test('a receiver losing ~40 % of what ferry sends gets a slowlink (uplink=false)', async () => {
  const slow = await echoFor(3500, 40);
  assert.ok(slow.length >= 1, 'slowlink sent');
  const e = slow[0]!;
  assert.is(e['uplink'], false);
  assert.is(e['media'], 'audio');
  assert.is(e['mid'], '0');
  assert.ok(Number(e['lost']) > 0, `lost reported (${JSON.stringify(e)})`);
  assert.ok(slow.length <= 2, 'rate-limited');
});

test('a sender whose packets go missing on the way to ferry gets a slowlink (uplink=true)', async () => {
  const slow = await echoFor(3000, 0, 4); // one packet in four never sent: 25 % uplink loss
  const up = slow.filter((e) => e['uplink'] === true);
  assert.ok(up.length >= 1, `uplink slowlink sent: ${JSON.stringify(slow)}`);
  assert.is(up[0]!['media'], 'audio');
  assert.is(up[0]!['mid'], '0');
  assert.ok(Number(up[0]!['lost']) > 0);
  assert.ok(up.length <= 1, 'rate-limited to one per 5 s');
});

test('a lossless receiver causes no slowlink', async () => {
  const slow = await echoFor(2500, 0);
  assert.is(slow.length, 0);
});

test.run();
