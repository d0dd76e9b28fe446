/**
 * SDES-SRTP towards SIP peers (RFC 4568, Janus's `srtp` / `srtp_profile`), with
 * an in-process SIP peer (ferry's own stack) whose media is the test's socket
 * running werift-rtp's SRTP, and a werift browser:
 * - `call` with sdes_mandatory: RTP/SAVP offered with crypto lines; the peer's
 *   answer keys the call; RTP both ways is encrypted with a key per direction;
 * - an incoming RTP/SAVP offer whose first crypto line ferry cannot run (F8)
 *   and whose second is AEAD_AES_128_GCM: `incomingcall` says sdes_mandatory,
 *   ferry answers the GCM line under its tag, media both ways;
 * - sdes_optional answered without crypto is a plain call;
 * - bad input: an RTP/SAVP offer with only bad crypto lines is refused 488
 *   with a Warning (no incomingcall, counted); an answer without crypto to a
 *   mandatory offer ends the call (hangup 488, BYE with a Reason); accept with
 *   sdes_mandatory on a plain offer is 452; a bad srtp_profile is 444.
 * Every call ends with no port lease, call or PeerConnection left.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MediaStreamTrack, type RTCPeerConnection } from 'werift';

import type { Call } from '../../src/sip/Call.js';
import type { SipMessage } from '../../src/sip/SipMessage.js';
import { newKeys, weriftSession, type KeyPair } from '../helpers/rtp.js';
import { connectionState, loopbackPeer } from '../helpers/werift.js';
import { waitFor } from '../sip/helpers.js';
import { until, webrtcSdp } from './helpers.js';
import { rtpBothWays, withPeerRig, type PeerRig } from './media.js';

const test = suite('SIP plugin: SDES-SRTP towards SIP peers');
const result = (e: Record<string, any>) => e['plugindata']['data']['result'] as Record<string, any>;

interface Rig extends PeerRig {
  /** What the peer received. */
  wire: SipMessage[];
}

function withRig(run: (r: Rig) => Promise<void>): Promise<void> {
  return withPeerRig(loopbackPeer, async (r) => {
    const wire: SipMessage[] = [];
    r.peer.on('received', (m) => wire.push(m));
    await run({ ...r, wire });
  }, { noPeerConnection: true });
}

function cryptoLines(sdp: string): Array<{ tag: number; suite: string; keys: KeyPair }> {
  return [...sdp.matchAll(/^a=crypto:(\d+) (\S+) inline:([A-Za-z0-9+/=]+)/gm)].map((m) => {
    const material = Buffer.from(m[3]!, 'base64');
    const keyLen = m[2] === 'AEAD_AES_256_GCM' ? 32 : 16;
    return { tag: Number(m[1]), suite: m[2]!, keys: { key: material.subarray(0, keyLen), salt: material.subarray(keyLen) } };
  });
}

const inline = (k: KeyPair) => `inline:${Buffer.concat([k.key, k.salt]).toString('base64')}`;

function peerSdp(port: number, proto: string, crypto: string[]): string {
  return ['v=0', 'o=peer 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} ${proto} 0`, 'a=rtpmap:0 PCMU/8000', ...crypto.map((c) => `a=crypto:${c}`), 'a=sendrecv', ''].join('\r\n');
}

/** The browser's side of a call: an audio transceiver whose received payloads are collected. */
function browserAudio(pc: RTCPeerConnection) {
  const audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendrecv' });
  const fromSip: Buffer[] = [];
  audio.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => fromSip.push(rtp.payload)));
  return { audio, fromSip };
}

async function connect(r: Rig, jsep: Record<string, any>): Promise<number> {
  await r.pc.setRemoteDescription(jsep as never);
  await connectionState(r.pc, 'connected');
  await r.client.core('webrtcup');
  const media = (await r.client.info())['media'][0];
  assert.is(media['srtp'], true, 'the leg runs SRTP');
  return media['local_port'] as number;
}

async function hangUp(r: Rig): Promise<void> {
  await r.client.send({ request: 'hangup' });
  await r.client.event('hangingup');
  assert.is(result(await r.client.event('hangup'))['code'], 200);
}

test('call with sdes_mandatory: RTP/SAVP offered, the answer keys it, SRTP both ways with a key per direction', () =>
  withRig(async (r) => {
    const { audio, fromSip } = browserAudio(r.pc);
    await r.pc.setLocalDescription(await r.pc.createOffer());
    const peerKeys = newKeys('AES_CM_128_HMAC_SHA1_80');
    let ferryKeys: KeyPair | undefined;
    r.peer.on('incomingCall', (call) => {
      const offer = call.remoteSdp ?? '';
      assert.match(offer, /^m=audio \d+ RTP\/SAVP /m, 'mandatory SRTP is offered as RTP/SAVP');
      const lines = cryptoLines(offer);
      assert.equal(lines.map((l) => [l.tag, l.suite]), [[1, 'AES_CM_128_HMAC_SHA1_80'], [2, 'AES_CM_128_HMAC_SHA1_32']]);
      assert.is.not(lines[0]!.keys.key.toString('hex'), lines[1]!.keys.key.toString('hex'), 'one key per offered line');
      ferryKeys = lines[0]!.keys;
      r.peer.answer(call, 200, peerSdp(r.sink.port, 'RTP/SAVP', [`1 AES_CM_128_HMAC_SHA1_80 ${inline(peerKeys)}`]));
    });
    await r.client.send({ request: 'call', uri: r.peerUri, srtp: 'sdes_mandatory' }, { type: 'offer', sdp: r.pc.localDescription!.sdp });
    await r.client.event('calling');
    const accepted = await r.client.event('accepted');
    const legPort = await connect(r, accepted['jsep']);
    assert.ok(ferryKeys);
    assert.is.not(ferryKeys!.key.toString('hex'), peerKeys.key.toString('hex'), 'each direction has its own key');
    await rtpBothWays({ audio, fromSip, sink: r.sink, legPort, srtp: weriftSession('AES_CM_128_HMAC_SHA1_80', peerKeys, ferryKeys!) });
    await hangUp(r);
  }));

test('incoming RTP/SAVP offer: an F8 line skipped, the AEAD_AES_128_GCM line answered under its tag; incomingcall says sdes_mandatory', () =>
  withRig(async (r) => {
    const { audio, fromSip } = browserAudio(r.pc);
    const peerKeys = newKeys('AEAD_AES_128_GCM');
    const f8 = `1 F8_128_HMAC_SHA1_80 inline:${Buffer.alloc(30, 7).toString('base64')}`;
    const call = r.peer.invite(`sip:ferry@127.0.0.1:${r.uaPort}`, peerSdp(r.sink.port, 'RTP/SAVP', [f8, `7 AEAD_AES_128_GCM ${inline(peerKeys)}`]));
    const accepted = waitFor(call, 'accepted', 10_000);
    const incoming = await r.client.event('incomingcall');
    assert.is(result(incoming)['srtp'], 'sdes_mandatory');
    assert.not.match(incoming['jsep']['sdp'], /a=crypto/, 'the browser never sees SDES keys');
    await r.pc.setRemoteDescription(incoming['jsep']);
    await r.pc.setLocalDescription(await r.pc.createAnswer());
    await r.client.send({ request: 'accept' }, { type: 'answer', sdp: r.pc.localDescription!.sdp });
    await r.client.event('accepted');
    const [, answer] = await accepted;
    assert.match(answer ?? '', /^m=audio \d+ RTP\/SAVP 0/m);
    const lines = cryptoLines(answer ?? '');
    assert.equal(lines.map((l) => [l.tag, l.suite]), [[7, 'AEAD_AES_128_GCM']], 'one line, the offered tag and suite');
    await connectionState(r.pc, 'connected');
    await r.client.core('webrtcup');
    const legPort = (await r.client.info())['media'][0]['local_port'] as number;
    await rtpBothWays({ audio, fromSip, sink: r.sink, legPort, srtp: weriftSession('AEAD_AES_128_GCM', peerKeys, lines[0]!.keys) });
    const ended = waitFor(call, 'terminated', 5000);
    r.peer.bye(call);
    await ended;
    assert.is(result(await r.client.event('hangup'))['code'], 200);
  }));

test('sdes_optional answered without crypto is a plain RTP call', () =>
  withRig(async (r) => {
    const { audio, fromSip } = browserAudio(r.pc);
    await r.pc.setLocalDescription(await r.pc.createOffer());
    let offer = '';
    r.peer.on('incomingCall', (call) => {
      offer = call.remoteSdp ?? '';
      r.peer.answer(call, 200, peerSdp(r.sink.port, 'RTP/AVP', []));
    });
    await r.client.send({ request: 'call', uri: r.peerUri, srtp: 'sdes_optional', srtp_profile: 'AES_CM_128_HMAC_SHA1_32' }, { type: 'offer', sdp: r.pc.localDescription!.sdp });
    const accepted = await r.client.event('accepted');
    assert.match(offer, /^m=audio \d+ RTP\/AVP /m, 'optional SRTP is offered on RTP/AVP');
    assert.equal(cryptoLines(offer).map((l) => l.suite), ['AES_CM_128_HMAC_SHA1_32'], 'srtp_profile: that suite alone');
    await r.pc.setRemoteDescription(accepted['jsep']);
    await connectionState(r.pc, 'connected');
    await r.client.core('webrtcup');
    const media = (await r.client.info())['media'][0];
    assert.is(media['srtp'], false);
    await rtpBothWays({ audio, fromSip, sink: r.sink, legPort: media['local_port'] });
    await hangUp(r);
  }));

test('bad input: unusable crypto refused 488 with a Warning; a mandatory offer answered without crypto ends the call; 452 and 444', () =>
  withRig(async (r) => {
    // 1. Only crypto lines ferry cannot use: wrong key length, an MKI, a session parameter.
    const bad = [
      `1 AES_CM_128_HMAC_SHA1_80 inline:${Buffer.alloc(20, 1).toString('base64')}`,
      `2 AES_CM_128_HMAC_SHA1_80 inline:${Buffer.alloc(30, 2).toString('base64')}|2^20|1:4`,
      `3 AES_CM_128_HMAC_SHA1_80 inline:${Buffer.alloc(30, 3).toString('base64')} UNENCRYPTED_SRTP`,
      '4 AES_CM_128_HMAC_SHA1_80 inline:***',
    ];
    const refused = r.peer.invite(`sip:ferry@127.0.0.1:${r.uaPort}`, peerSdp(r.sink.port, 'RTP/SAVP', bad));
    const [code, , res] = await waitFor(refused, 'failed', 5000);
    assert.is(code, 488);
    assert.match(res?.headers.get('Warning') ?? '', /^399 ferry ".*a=crypto:1: .*needs 30 bytes.*a=crypto:2: .*MKI.*a=crypto:3: .*session parameters.*"$/);
    assert.is(r.s.sip.stats().sdpRefused, 1, 'counted');
    assert.is(r.s.sip.stats().activeCalls, 0);

    // 2. A mandatory offer answered in the clear: the call ends, the BYE says why.
    browserAudio(r.pc);
    await r.pc.setLocalDescription(await r.pc.createOffer());
    let peerCall: Call | undefined;
    r.peer.on('incomingCall', (call) => {
      peerCall = call;
      r.peer.answer(call, 200, peerSdp(r.sink.port, 'RTP/SAVP', []));
    });
    await r.client.send({ request: 'call', uri: r.peerUri, srtp: 'sdes_mandatory' }, { type: 'offer', sdp: r.pc.localDescription!.sdp });
    const hangup = result(await r.client.event('hangup'));
    assert.is(hangup['code'], 488);
    assert.match(hangup['reason_header'], /SDES-SRTP is mandatory and the answer has no a=crypto/);
    await until(() => peerCall?.terminated === true, 5000, 'the peer got the BYE');
    const bye = r.wire.find((m) => m.kind === 'request' && m.method === 'BYE');
    assert.match(bye?.headers.get('Reason') ?? '', /^SIP;cause=488;text="m-line 0: SDES-SRTP is mandatory/);
    assert.is(r.s.sip.stats().sdpRefused, 2);
    await until(() => r.s.f.ferry.webrtc.count === 0, 5000, 'the PeerConnection closed with the call');

    // 3. Requests the plugin refuses before any SIP happens.
    await r.client.send({ request: 'call', uri: r.peerUri, srtp: 'sdes_mandatory', srtp_profile: 'NULL_HMAC_SHA1_80' }, { type: 'offer', sdp: webrtcSdp('offer') });
    assert.is((await r.client.event('error'))['plugindata']['data']['error_code'], 444);
    const plain = r.peer.invite(`sip:ferry@127.0.0.1:${r.uaPort}`, peerSdp(r.sink.port, 'RTP/AVP', []));
    const incoming = await r.client.event('incomingcall');
    assert.is(result(incoming)['srtp'], undefined, 'a plain offer: no srtp in incomingcall');
    await r.client.send({ request: 'accept', srtp: 'sdes_mandatory' });
    const tooStrict = await r.client.event('error');
    assert.is(tooStrict['plugindata']['data']['error_code'], 452);
    const declined = waitFor(plain, 'failed', 5000);
    await r.client.send({ request: 'decline' });
    assert.is((await declined)[0], 603);
  }));

test.run();
