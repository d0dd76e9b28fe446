// EchoTest through one of ferry's advertised addresses, for the tests of where ferry listens
// and answers from (wildcard bind, IPv6).
import * as assert from 'uvu/assert';
import { MediaStreamTrack, RtpHeader, RtpPacket, type RTCPeerConnection } from 'werift';

import type { JanusWs } from './http.js';
import { connectionState, loopbackPeer } from './werift.js';

/**
 * One EchoTest PeerConnection on `session` whose werift peer may only pair with ferry's
 * candidate on `address`; sends 20 audio packets and returns how many came back.
 */
export async function echoThrough(ws: JanusWs, session: number, address: string, peers: RTCPeerConnection[], peerConfig: Parameters<typeof loopbackPeer>[0] = {}): Promise<number> {
  const attached = await ws.request({ janus: 'attach', session_id: session, plugin: 'janus.plugin.echotest' });
  const handle = attached['data'].id as number;
  const pc = loopbackPeer({ iceFilterCandidatePair: (pair) => pair.remoteCandidate.host === address, ...peerConfig });
  peers.push(pc);
  const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
  let got = 0;
  audio.onTrack.subscribe((track) => track.onReceiveRtp.subscribe(() => got++));
  await pc.setLocalDescription(await pc.createOffer());
  const answered = ws.nextEvent((e) => e['sender'] === handle && e['janus'] === 'event', 15_000);
  const reply = await ws.request({ janus: 'message', session_id: session, handle_id: handle, body: { audio: true, video: false }, jsep: { type: 'offer', sdp: pc.localDescription!.sdp } });
  const event = reply['janus'] === 'event' ? reply : await answered;
  if (reply['janus'] === 'event') answered.catch(() => undefined);
  assert.match(event['jsep'].sdp, new RegExp(`a=candidate:\\S+ 1 udp \\d+ ${address.replace(/[.:]/g, (c) => `\\${c}`)} `), `ferry advertises ${address}`);
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

