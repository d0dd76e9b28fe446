// Replies leave from the address the peer used: ferry bound to 0.0.0.0 advertises 127.0.0.2 and
// 127.0.0.3; a werift peer that may only pair with 127.0.0.2 and another only with 127.0.0.3
// both connect and get their EchoTest audio back (before IP_PKTINFO, ICE never connected:
// answers left from 127.0.0.1). Also in single-port mode.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, RtpHeader, RtpPacket, type RTCPeerConnection } from 'werift';

import { JanusWs } from '../helpers/http.js';
import { startFerry } from '../helpers/ferry.js';
import { freeUdpPorts } from '../helpers/udp.js';
import { closePeer, connectionState, loopbackPeer } from '../helpers/werift.js';

async function echoThrough(ws: JanusWs, session: number, address: string, peers: RTCPeerConnection[]): Promise<number> {
  const attached = await ws.request({ janus: 'attach', session_id: session, plugin: 'janus.plugin.echotest' });
  const handle = attached['data'].id as number;
  const pc = loopbackPeer({ iceFilterCandidatePair: (pair) => pair.remoteCandidate.host === address });
  peers.push(pc);
  const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
  let got = 0;
  audio.onTrack.subscribe((track) => track.onReceiveRtp.subscribe(() => got++));
  await pc.setLocalDescription(await pc.createOffer());
  const answered = ws.nextEvent((e) => e['sender'] === handle && e['janus'] === 'event', 15_000);
  const reply = await ws.request({ janus: 'message', session_id: session, handle_id: handle, body: { audio: true, video: false }, jsep: { type: 'offer', sdp: pc.localDescription!.sdp } });
  const event = reply['janus'] === 'event' ? reply : await answered;
  if (reply['janus'] === 'event') answered.catch(() => undefined);
  assert.match(event['jsep'].sdp, new RegExp(`a=candidate:\\S+ 1 udp \\d+ ${address.replace(/\./g, '\\.')} `), `ferry advertises ${address}`);
  await pc.setRemoteDescription(event['jsep']);
  await connectionState(pc, 'connected', 15_000);
  for (let i = 0; i < 20; i++) {
    await audio.sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType: audio.sender.codec!.payloadType, sequenceNumber: i + 1, timestamp: i * 960 }), Buffer.alloc(80, i)));
    await new Promise((r) => setTimeout(r, 5));
  }
  const end = Date.now() + 5000;
  while (got < 20 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return got;
}

for (const singlePort of [false, true]) {
  test(`bound to 0.0.0.0${singlePort ? ' in single-port mode' : ''}: peers reach ferry through each advertised address`, async () => {
    const threads = Number(process.env['FERRY_MEDIA_WORKERS'] ?? 1);
    const shared = singlePort ? { single_port: (await freeUdpPorts(threads)).join(','), workers: threads } : {};
    const f = await startFerry({ media: { bind: '0.0.0.0', candidate_addresses: '127.0.0.2,127.0.0.3', ...shared } });
    const ws = await JanusWs.connect(f.wsUrl);
    const peers: RTCPeerConnection[] = [];
    try {
      const session = (await ws.request({ janus: 'create' }))['data'].id as number;
      for (const address of ['127.0.0.2', '127.0.0.3']) {
        const echoed = await echoThrough(ws, session, address, peers);
        assert.is(echoed, 20, `every packet echoed through ${address}`);
      }
    } finally {
      for (const pc of peers) await closePeer(pc).catch(() => undefined);
      await ws.close();
      await f.stop();
    }
  });
}

test.run();
