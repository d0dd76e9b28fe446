// ICE restart (RFC 8445 §9, RFC 8839 §4.4.1.1.1), signalling side: a connected
// werift peer offers again with new ICE credentials; ferry answers with new
// credentials of its own on the same port and DTLS certificate, and the handle
// stays up. (werift 0.25 sends nothing after its own restart, so media across a
// restart is checked with Chromium in test/demos/echotest-browser.test.ts.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, RtpHeader, RtpPacket, type RTCRtpTransceiver } from 'werift';

import { JanusWs } from '../helpers/http.js';
import { startFerry } from '../helpers/ferry.js';
import { closePeer, connectionState, loopbackPeer } from '../helpers/werift.js';

const ufragOf = (sdp: string): string => /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1] ?? '';

/** Sends `n` audio packets and waits (bounded) until `n` more echoes came back. */
async function echoes(audio: RTCRtpTransceiver, received: () => number, first: number, n: number): Promise<number> {
  const before = received();
  for (let i = 0; i < n; i++) {
    const header = new RtpHeader({ payloadType: audio.sender.codec!.payloadType, sequenceNumber: (first + i) & 0xffff, timestamp: (first + i) * 960 });
    await audio.sender.sendRtp(new RtpPacket(header, Buffer.alloc(80, i & 0xff)));
    await new Promise((r) => setTimeout(r, 5));
  }
  const end = Date.now() + 5000;
  while (received() - before < n && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return received() - before;
}

test('a peer restarts ICE: ferry answers with new credentials, same port and certificate, the handle stays up', async () => {
  const f = await startFerry();
  const pc = loopbackPeer();
  const ws = await JanusWs.connect(f.wsUrl);
  try {
    const session = (await ws.request({ janus: 'create' }))['data'].id as number;
    const handle = (await ws.request({ janus: 'attach', session_id: session, plugin: 'janus.plugin.echotest' }))['data'].id as number;
    const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
    let received = 0;
    audio.onTrack.subscribe((track) => track.onReceiveRtp.subscribe(() => received++));
    const negotiate = async (offer: { sdp: string }): Promise<string> => {
      const tx = `t${Math.random()}`;
      await ws.request({ janus: 'message', session_id: session, handle_id: handle, transaction: tx, body: { audio: true }, jsep: { type: 'offer', sdp: offer.sdp } });
      const ev = await ws.nextEvent((e) => e['janus'] === 'event' && e['transaction'] === tx && e['jsep']);
      await pc.setRemoteDescription(ev['jsep']);
      return String(ev['jsep']['sdp']);
    };
    await pc.setLocalDescription(await pc.createOffer());
    const firstAnswer = await negotiate(pc.localDescription!);
    await connectionState(pc, 'connected');
    await ws.nextEvent((e) => e['janus'] === 'webrtcup');
    assert.is(await echoes(audio, () => received, 1, 50), 50, 'echo before the restart');
    const info = async () => (await f.admin.post('', { janus: 'handle_info', session_id: session, handle_id: handle, admin_secret: 'janusoverlord' }))['info'];
    const fingerprint = /^a=fingerprint:.*$/m.exec(firstAnswer)?.[0];

    const restartOffer = await pc.createOffer({ iceRestart: true });
    await pc.setLocalDescription(restartOffer);
    assert.is.not(ufragOf(pc.localDescription!.sdp), ufragOf(firstAnswer), 'werift changed its ufrag');
    const secondAnswer = await negotiate(pc.localDescription!);
    assert.is.not(ufragOf(secondAnswer), ufragOf(firstAnswer), 'ferry answers with new credentials');
    assert.is(/^a=fingerprint:.*$/m.exec(secondAnswer)?.[0], fingerprint, 'same DTLS certificate');
    assert.is(/^m=audio (\d+)/m.exec(secondAnswer)?.[1], /^m=audio (\d+)/m.exec(firstAnswer)?.[1], 'same port');
    const after = await info();
    assert.is(after['webrtc']['ice']['restarts'], 1);
    assert.is(after['webrtc']['ice']['remote-ufrag'], ufragOf(pc.localDescription!.sdp));
    assert.is(after['webrtc']['state'], 'connected');
    assert.not.ok(ws.events.some((e) => e['janus'] === 'hangup'), 'no hangup');
  } finally {
    await ws.close();
    await closePeer(pc);
    await f.stop();
  }
});

test.run();
