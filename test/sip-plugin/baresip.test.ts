/**
 * The SIP plugin against baresip (a real SIP phone, Debian package `baresip`,
 * run headless by test/sip-plugin/baresip.ts) with SDES-SRTP mandatory on
 * baresip's side (`mediaenc=srtp-mand`), and a werift browser:
 * - the browser calls baresip (`call` with sdes_mandatory); baresip answers
 *   by itself;
 * - baresip calls ferry; `incomingcall` says sdes_mandatory; the browser
 *   answers.
 * Both ways: the SRTP keys in the two SDPs differ (one per direction), RTP
 * arrives at werift (baresip's 440 Hz sine, PCMU) and at baresip (its receive
 * bitrate), and every port, call and PeerConnection is released at the end.
 * Missing baresip is a failure (.ci/install-test-peers.sh installs it).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, RtpHeader, RtpPacket, type RTCPeerConnection, type RTCRtpTransceiver } from 'werift';

import type { SipMessage } from '../../src/sip/SipMessage.js';
import { closePeer, connectionState, loopbackPeer } from '../helpers/werift.js';
import { requireBinary } from '../sip/helpers.js';
import { Baresip } from './baresip.js';
import { SipClient, startSipFerry, until, type SipFerry } from './helpers.js';

const test = suite('SIP plugin ↔ baresip: SDES-SRTP calls both ways');
const result = (e: Record<string, any>) => e['plugindata']['data']['result'] as Record<string, any>;

test.before(() => {
  requireBinary('baresip');
});

interface Rig {
  s: SipFerry;
  client: SipClient;
  phone: Baresip;
  pc: RTCPeerConnection;
  uaPort: number;
  wire: SipMessage[];
}

async function withPhone(accountParams: string, run: (r: Rig) => Promise<void>): Promise<void> {
  const s = await startSipFerry();
  const phone = await Baresip.start({ accountParams });
  const pc = loopbackPeer();
  let client: SipClient | undefined;
  try {
    client = await SipClient.open(s.f);
    await client.send({ request: 'register', type: 'guest', username: 'sip:ferry@127.0.0.1' });
    await client.event('registered');
    const wire: SipMessage[] = [];
    const ua = s.sip.accountOf(client.handle)!.ua;
    ua.on('sent', (m) => wire.push(m));
    ua.on('received', (m) => wire.push(m));
    const uaPort = (await client.info())['sip_udp_port'] as number;
    await run({ s, client, phone, pc, uaPort, wire });
    await until(() => s.f.ferry.leasedPorts() === 0, 5000, 'every port released');
    assert.is(s.sip.stats().activeCalls, 0);
    assert.is(s.f.ferry.webrtc.count, 0);
  } finally {
    await client?.close().catch(() => undefined);
    await s.f.stop();
    await phone.stop();
    await closePeer(pc);
  }
}

function browserAudio(pc: RTCPeerConnection): { audio: RTCRtpTransceiver; heard: Buffer[] } {
  const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
  const heard: Buffer[] = [];
  audio.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => {
    if (rtp.header.payloadType === 0) heard.push(rtp.payload);
  }));
  return { audio, heard };
}

/** The keys of the SDP bodies on the wire, in order: one per direction. */
function sdesKeys(wire: SipMessage[]): string[] {
  return wire.flatMap((m) => [...m.body.toString('utf8').matchAll(/^a=crypto:\d+ AES_CM_128_HMAC_SHA1_(?:80|32) inline:([A-Za-z0-9+/=]+)/gm)].map((x) => x[1]!));
}

/**
 * PCMU from the browser (a 20 ms packet each 20 ms) until baresip reports receiving it
 * (its status line averages over a few seconds), and baresip's sine at the browser.
 */
async function mediaBothWays(r: Rig, audio: RTCRtpTransceiver, heard: Buffer[]): Promise<void> {
  const payload = Buffer.alloc(160, 0x55);
  let seq = 0;
  const sender = setInterval(() => {
    seq++;
    void audio.sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType: 0, sequenceNumber: seq, timestamp: seq * 160 }), payload)).catch(() => undefined);
  }, 20);
  try {
    await until(() => r.phone.rxBitrate() > 0, 15_000, `baresip receiving the browser's RTP\n${r.phone.peer.output().slice(-1500)}`);
    await until(() => heard.length >= 50, 5000, 'the browser receiving baresip\'s RTP');
  } finally {
    clearInterval(sender);
  }
  // baresip's sine is not silence (PCMU silence is 0xFF/0x7F throughout).
  assert.ok(heard.some((p) => p.some((b) => b !== 0xff && b !== 0x7f)), 'the browser got baresip\'s tone');
}

test('the browser calls baresip with sdes_mandatory: SRTP both ways, a key per direction', () =>
  withPhone('answermode=auto;mediaenc=srtp-mand', async (r) => {
    const { audio, heard } = browserAudio(r.pc);
    await r.pc.setLocalDescription(await r.pc.createOffer());
    await r.client.send({ request: 'call', uri: r.phone.uri, srtp: 'sdes_mandatory' }, { type: 'offer', sdp: r.pc.localDescription!.sdp });
    await r.client.event('calling');
    const accepted = await r.client.event('accepted', 15_000);
    await r.pc.setRemoteDescription(accepted['jsep']);
    await connectionState(r.pc, 'connected');
    await r.client.core('webrtcup');
    assert.is((await r.client.info())['media'][0]['srtp'], true);
    const keys = sdesKeys(r.wire);
    assert.ok(keys.length >= 2, `crypto lines in the offer and the answer: ${keys.length}`);
    assert.is.not(keys[0], keys[keys.length - 1], 'ferry\'s key and baresip\'s key differ');
    await mediaBothWays(r, audio, heard);
    await r.client.send({ request: 'hangup' });
    assert.is(result(await r.client.event('hangup'))['code'], 200);
    await r.phone.event('CALL_CLOSED');
  }));

test('baresip calls ferry with srtp-mand: incomingcall says sdes_mandatory, the browser answers, SRTP both ways', () =>
  withPhone('mediaenc=srtp-mand', async (r) => {
    const { audio, heard } = browserAudio(r.pc);
    assert.ok((await r.phone.command('dial', `sip:ferry@127.0.0.1:${r.uaPort}`)).ok);
    const incoming = await r.client.event('incomingcall', 15_000);
    assert.is(result(incoming)['srtp'], 'sdes_mandatory');
    await r.pc.setRemoteDescription(incoming['jsep']);
    await r.pc.setLocalDescription(await r.pc.createAnswer());
    await r.client.send({ request: 'accept' }, { type: 'answer', sdp: r.pc.localDescription!.sdp });
    await r.client.event('accepted');
    await connectionState(r.pc, 'connected');
    await r.client.core('webrtcup');
    await r.phone.event('CALL_ESTABLISHED');
    const keys = sdesKeys(r.wire);
    assert.ok(keys.length >= 2);
    assert.is.not(keys[0], keys[keys.length - 1]);
    await mediaBothWays(r, audio, heard);
    assert.ok((await r.phone.command('hangup')).ok);
    assert.is(result(await r.client.event('hangup'))['code'], 200, 'baresip\'s BYE ended the call');
  }));

test.run();
