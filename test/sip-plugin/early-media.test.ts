/**
 * Early media on an outgoing call (a 183 Session Progress with SDP), against
 * sipp (a real SIP peer) and a werift browser:
 * - 183 with SDP, then 200: `progress` carries the JSEP answer, RTP flows both
 *   ways before the 200 arrives, `accepted` then comes without a jsep, and the
 *   call ends by ferry's BYE;
 * - 183 with SDP, then the browser hangs up: ferry CANCELs (RFC 3261 §9.1),
 *   sipp answers 487, the call ends with every port released.
 * Missing sipp is a failure (.ci/install-test-peers.sh installs it).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, type RTCPeerConnection, type RTCRtpTransceiver } from 'werift';

import { rtpPacket } from '../helpers/rtp.js';
import { boundUdpPorts, type UdpPeer } from '../helpers/udp.js';
import { connectionState } from '../helpers/werift.js';
import { freePort, type Peer } from '../sip/helpers.js';
import { SipClient, registerGuest, expectCallsReleased, useSippRuns, expectSippSuccess, pluginScenario, sipp, until, type SipFerry } from './helpers.js';
import { BrowserMicrophone, pcmuPayloads, withBrowserAndSink } from './media.js';

const test = suite('SIP plugin: early media (183 with SDP) against sipp');
const result = (e: Record<string, any>) => e['plugindata']['data']['result'] as Record<string, any>;

const sippRuns = useSippRuns(test, 'ferry-sip-early-');
const peers = sippRuns.peers;

interface Rig {
  s: SipFerry;
  client: SipClient;
  sink: UdpPeer;
  pc: RTCPeerConnection;
  audio: RTCRtpTransceiver;
  /** PCMU payloads the browser received. */
  heard: Buffer[];
}

async function withCaller(run: (r: Rig) => Promise<void>): Promise<void> {
  await withBrowserAndSink(async ({ s, client, sink, pc }) => {
    await registerGuest(client);
    const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
    const heard: Buffer[] = [];
    audio.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => {
      if (rtp.header.payloadType === 0) heard.push(rtp.payload);
    }));
    await pc.setLocalDescription(await pc.createOffer());
    await run({ s, client, sink, pc, audio, heard });
    await expectCallsReleased(s, { noPeerConnection: true });
  });
}

async function callSipp(r: Rig, scenario: string): Promise<Peer> {
  const port = await freePort();
  const callee = sipp(['-sf', pluginScenario(scenario), '-key', 'sink_port', String(r.sink.port), '-p', String(port), '-m', '1'], sippRuns.workdir);
  peers.push(callee);
  // sipp binds its port once it has read the scenario: call only then.
  await until(() => boundUdpPorts().has(port), 5000, 'sipp listening');
  await r.client.send({ request: 'call', uri: `sip:service@127.0.0.1:${port}` }, { type: 'offer', sdp: r.pc.localDescription!.sdp });
  await r.client.event('calling');
  return callee;
}

/** After `progress`: the browser connects on the 183's answer; RTP both ways before any 200. */
async function earlyMedia(r: Rig): Promise<void> {
  const progress = await r.client.event('progress');
  assert.is(progress['jsep']?.['type'], 'answer', 'the 183\'s SDP answers the browser');
  assert.match(result(progress)['username'], /^sip:service@127\.0\.0\.1/);
  await r.pc.setRemoteDescription(progress['jsep']);
  await connectionState(r.pc, 'connected');
  await r.client.core('webrtcup');
  const info = await r.client.info();
  assert.is(info['slot'], 'ringing', 'still unanswered');
  const legPort = info['media'][0]['local_port'] as number;
  const mic = new BrowserMicrophone(r.audio, 101);
  mic.start();
  try {
    await until(() => pcmuPayloads(r.sink.received).length >= 10, 2500, 'the browser\'s RTP at sipp during early media');
    for (let i = 0; i < 20; i++) {
      await r.sink.send(rtpPacket({ ssrc: 0x183, seq: i + 1, ts: i * 160, pt: 0, payload: Buffer.alloc(160, 0x42) }).serialize(), legPort);
      await new Promise((res) => setTimeout(res, 10));
    }
    await until(() => r.heard.some((p) => p[0] === 0x42), 2500, 'sipp\'s RTP at the browser during early media');
  } finally {
    mic.stop();
  }
  assert.is((await r.client.info())['slot'], 'ringing', 'both ways flowed before the 200');
}

test('183 with SDP, then 200: progress with the answer, RTP both ways before the 200, accepted without jsep', () =>
  withCaller(async (r) => {
    const callee = await callSipp(r, 'uas-183-then-200.xml');
    await earlyMedia(r);
    const accepted = await r.client.event('accepted', 10_000);
    assert.is(accepted['jsep'], undefined, 'the 183 already answered the browser');
    assert.is((await r.client.info())['slot'], 'established');
    await r.client.send({ request: 'hangup' });
    assert.is(result(await r.client.event('hangup'))['code'], 200);
    await expectSippSuccess(callee, '183 then 200');
  }));

test('183 with SDP, then the browser hangs up: CANCEL, 487, nothing left', () =>
  withCaller(async (r) => {
    const callee = await callSipp(r, 'uas-183-cancel.xml');
    await earlyMedia(r);
    await r.client.send({ request: 'hangup' });
    await r.client.event('hangingup');
    const hangup = result(await r.client.event('hangup'));
    assert.is(hangup['code'], 487);
    await expectSippSuccess(callee, '183 then CANCEL');
  }));

test.run();
