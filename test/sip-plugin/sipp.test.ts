/**
 * The SIP plugin against sipp (a real SIP peer) with a werift browser through
 * the Janus API, media through ferry's native engine:
 * - an offerless INVITE gives `incomingcall` without jsep; the client accepts
 *   with a JSEP offer; sipp finds ferry's offer in the 200 OK and answers in
 *   the ACK, pointing media at a plain UDP socket of this test; RTP flows both
 *   ways and is checked at both ends;
 * - lessons §1 (Janus #3332): two offerless INVITEs declined (sipp demands
 *   603), then a third call is accepted and carries media.
 * Missing sipp is a failure (CI installs it with .ci/install-test-peers.sh).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MediaStreamTrack, RtpHeader, RtpPacket, type RTCPeerConnection } from 'werift';

import { rtpPacket } from '../helpers/rtp.js';
import { udpPeer, type UdpPeer } from '../helpers/udp.js';
import { closePeer, connectionState, loopbackPeer } from '../helpers/werift.js';
import { freePort, requireBinary, type Peer } from '../sip/helpers.js';
import { SipClient, expectSippSuccess, pluginScenario, sipp, stackScenario, startSipFerry, until, type SipFerry } from './helpers.js';

const test = suite('SIP plugin ↔ sipp, media through the engine');
const PACKETS = 100;

function payload(dir: string, i: number): Buffer {
  const b = Buffer.alloc(160);
  b.write(`${dir}:${i}:`, 0);
  for (let k = 16; k < b.length; k++) b[k] = (i * 7 + k) & 0xff;
  return b;
}

/** RTP (not RTCP) packets carrying PCMU (payload type 0). */
function pcmuPayloads(datagrams: Buffer[]): Buffer[] {
  return datagrams.filter((d) => d.length > 12 && d[0]! >> 6 === 2 && (d[1]! & 0x7f) === 0).map((d) => {
    const cc = d[0]! & 0x0f;
    return d.subarray(12 + 4 * cc);
  });
}

/**
 * The callee side of an offerless call: `incomingcall` without jsep, `accept`
 * with a werift offer, `accepting`, then `accepted` with the JSEP answer once
 * sipp's ACK carried the SIP answer; then RTP both ways, checked at both ends.
 */
async function acceptOfferlessWithMedia(s: SipFerry, client: SipClient, sink: UdpPeer, pc: RTCPeerConnection): Promise<void> {
  const incoming = await client.event('incomingcall');
  assert.is(incoming['jsep'], undefined, 'offerless INVITE: incomingcall carries no jsep');
  assert.match(incoming['plugindata']['data']['result']['username'], /^sip:sipp@127\.0\.0\.1/);
  assert.is(s.sip.stats().activeCalls, 1);

  const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
  const fromSip: Buffer[] = [];
  audio.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => fromSip.push(rtp.payload)));
  await pc.setLocalDescription(await pc.createOffer());
  await client.send({ request: 'accept' }, { type: 'offer', sdp: pc.localDescription!.sdp });
  await client.event('accepting');
  const accepted = await client.event('accepted');
  assert.is(accepted['jsep']?.['type'], 'answer', 'accepted carries the JSEP answer once the ACK brought the SIP answer');
  assert.match(accepted['jsep']['sdp'], /a=rtpmap:0 PCMU\/8000/, 'the browser gets the codec sipp chose');
  await pc.setRemoteDescription(accepted['jsep']);
  await connectionState(pc, 'connected');
  await client.core('webrtcup');
  const info = await client.info();
  assert.is(info['slot'], 'established');
  const legPort = info['media'][0]['local_port'] as number;
  assert.ok(legPort > 0);

  // SIP side → browser: a first packet lets ferry learn the peer's SSRC, then the batch.
  const ssrc = 0x5151_0001;
  await sink.send(rtpPacket({ ssrc, seq: 1, ts: 0, pt: 0, payload: payload('prime', 0) }).serialize(), legPort);
  await new Promise((r) => setTimeout(r, 150));
  for (let i = 0; i < PACKETS; i++) {
    await sink.send(rtpPacket({ ssrc, seq: i + 2, ts: (i + 1) * 160, pt: 0, payload: payload('sip', i) }).serialize(), legPort);
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
  }
  await until(() => fromSip.filter((p) => p.subarray(0, 4).toString() === 'sip:').length >= PACKETS, 5000, 'RTP from the SIP side at the browser');
  const sipToBrowser = fromSip.filter((p) => p.subarray(0, 4).toString() === 'sip:');
  sipToBrowser.forEach((p, i) => assert.ok(p.equals(payload('sip', i)), `SIP→WebRTC payload ${i} intact`));

  // Browser → SIP side: werift sends PCMU; the engine relays it to sipp's c=/m= (the test socket).
  assert.is(audio.sender.codec?.payloadType, 0);
  for (let i = 0; i < PACKETS; i++) {
    const header = new RtpHeader({ payloadType: 0, sequenceNumber: i + 1, timestamp: i * 160 });
    await audio.sender.sendRtp(new RtpPacket(header, payload('web', i)));
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
  }
  await until(() => pcmuPayloads(sink.received).filter((p) => p.subarray(0, 4).toString() === 'web:').length >= PACKETS, 5000, 'RTP from the browser at the SIP side');
  const browserToSip = pcmuPayloads(sink.received).filter((p) => p.subarray(0, 4).toString() === 'web:');
  browserToSip.forEach((p, i) => assert.ok(p.equals(payload('web', i)), `WebRTC→SIP payload ${i} intact`));
}

async function hangUpAndCheck(s: SipFerry, client: SipClient): Promise<void> {
  await client.send({ request: 'hangup' });
  await client.event('hangingup');
  const hangup = await client.event('hangup');
  assert.is(hangup['plugindata']['data']['result']['code'], 200);
  await until(() => s.f.ferry.leasedPorts() === 0, 5000, 'RTP leg and PeerConnection ports released');
  assert.is(s.sip.stats().activeCalls, 0);
  assert.is(s.f.ferry.webrtc.count, 0, 'PeerConnection closed with the call');
}

let workdir: string;
const peers: Peer[] = [];

test.before(() => {
  requireBinary('sipp');
});
test.before.each(() => {
  workdir = mkdtempSync(join(tmpdir(), 'ferry-sip-plugin-'));
});
test.after.each(() => {
  for (const p of peers.splice(0)) p.kill();
  rmSync(workdir, { recursive: true, force: true });
});

async function guest(client: SipClient): Promise<number> {
  await client.send({ request: 'register', type: 'guest', username: 'sip:ferry@127.0.0.1' });
  const registered = await client.event('registered');
  assert.equal(registered['plugindata']['data']['result']['register_sent'], false);
  const port = (await client.info())['sip_udp_port'] as number;
  assert.ok(port > 0);
  return port;
}

interface GuestCall {
  s: Awaited<ReturnType<typeof startSipFerry>>;
  client: SipClient;
  uaPort: number;
  sink: Awaited<ReturnType<typeof udpPeer>>;
  pc: ReturnType<typeof loopbackPeer>;
}

/** A ferry, a guest SIP account on it, a werift peer and an RTP sink for one test; all released after. */
async function withGuest(run: (g: GuestCall) => Promise<void>): Promise<void> {
  const s = await startSipFerry();
  const pc = loopbackPeer();
  const sink = await udpPeer();
  let client: SipClient | undefined;
  try {
    client = await SipClient.open(s.f);
    const uaPort = await guest(client);
    await run({ s, client, uaPort, sink, pc });
  } finally {
    await client?.close().catch(() => undefined);
    await s.f.stop();
    await sink.close().catch(() => undefined);
    await closePeer(pc); // last: it also closes every UDP socket opened since werift was patched
  }
}

/** sipp calls offerless; the call is accepted with the peer's offer, carries RTP both ways and is hung up. */
async function offerlessCallWithMedia(g: GuestCall, label: string): Promise<void> {
  const caller = sipp(['-sf', pluginScenario('uac-offerless-media.xml'), '-key', 'sink_port', String(g.sink.port), '-p', String(await freePort()), '-m', '1', `127.0.0.1:${g.uaPort}`], workdir);
  peers.push(caller);
  await acceptOfferlessWithMedia(g.s, g.client, g.sink, g.pc);
  await hangUpAndCheck(g.s, g.client);
  await expectSippSuccess(caller, label);
}

test('offerless INVITE from sipp: incomingcall without jsep, accept with an offer, answer in the ACK, RTP both ways', () =>
  withGuest((g) => offerlessCallWithMedia(g, 'offerless media scenario')));

test('lessons §1: two offerless INVITEs declined (603 by default, checked by sipp), then a third call is accepted and carries media', () =>
  withGuest(async (g) => {
    const { s, client, uaPort } = g;
    const decliner = sipp(['-sf', stackScenario('uac-offerless-decline.xml'), '-p', String(await freePort()), '-m', '2', '-l', '1', `127.0.0.1:${uaPort}`], workdir);
    peers.push(decliner);
    for (let n = 0; n < 2; n++) {
      const incoming = await client.event('incomingcall');
      assert.is(incoming['jsep'], undefined, `INVITE ${n + 1} is offerless`);
      await client.send({ request: 'decline' });
      const declining = await client.event('declining');
      assert.is(declining['plugindata']['data']['result']['code'], 603, 'Janus #3339: 603 Decline by default');
      const hangup = await client.event('hangup');
      assert.is(hangup['plugindata']['data']['result']['code'], 603);
      assert.is(s.sip.stats().activeCalls, 0, `slot idle after decline ${n + 1}`);
      assert.is((await client.info())['slot'], 'idle');
    }
    await expectSippSuccess(decliner, 'decline scenario (sipp requires 603)');
    assert.is(s.f.ferry.leasedPorts(), 0, 'no port was ever leased for the declined offerless calls');

    // The third call is not answered "486 Busy" (the #3332 symptom): it is offered, accepted and carries media.
    await offerlessCallWithMedia(g, 'third call');
  }));

test.run();
